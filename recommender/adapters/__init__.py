"""Edges shared by the stream worker and the API: the Redis profile store, the Kafka producer."""
