"""Fixtures of the client tests: the real API process of the ops tests (``api_server``)."""

from tests.ops.conftest import api_server, no_proxy_env  # noqa: F401  (fixtures for this folder)
