"""Helpers shared by the tests: ports, processes, Kafka waits and profile builders."""
