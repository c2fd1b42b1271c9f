"""The stream worker: Kafka events -> live profiles in Redis (faust app, agent, start-up)."""
