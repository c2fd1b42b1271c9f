"""zmot's domain: pure logic for events, features, profiles, training and scoring.

Nothing in this package talks to Kafka, Redis or HTTP, except :mod:`recommender.adapters`,
which holds what the stream worker and the API share at the edges.
"""
