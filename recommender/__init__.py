"""zmot's domain, in three packages with one direction of imports.

- :mod:`recommender.core`: the online core, pure logic the worker and the API run on every
  event and request (contract, features, profile math, model scoring, offers, arbitration).
  Imports only the standard library, numpy, pydantic and PyYAML.
- :mod:`recommender.offline`: tools that run beside the stream (training, calibration,
  evaluation and its report, tuning, importers, the synthetic shop). Imports the core.
- :mod:`recommender.adapters`: the edges the worker and the API share (Redis stores, Kafka
  producer and admin, Prometheus metrics, logging, the local Kafka/Redis stack). Imports the core.
"""
