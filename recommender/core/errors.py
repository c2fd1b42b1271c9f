"""The one exception root of zmot.

Hierarchy::

    ZmotError
    ├── ConfigError          bad settings or a missing file named by the settings
    ├── InvalidEventError    an event that breaks the contract (carries field and reason)
    ├── CatalogError         a catalog or offer file that cannot be read
    ├── ModelError           a model artifact that is missing, corrupt or incompatible
    └── InfraError           a local service (Kafka, Redis, Java, Maven) missing or unhealthy
"""

from __future__ import annotations


class ZmotError(Exception):
    """Root of every error zmot raises on purpose."""


class ConfigError(ZmotError):
    """Settings that cannot work, or a file the settings name that is missing."""


class InvalidEventError(ZmotError):
    """An event that breaks the contract; ``field`` names the offending field."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class CatalogError(ZmotError):
    """A catalog or offer file that cannot be read."""


class ModelError(ZmotError):
    """A model artifact that is missing, corrupt or does not fit the settings."""


class InfraError(ZmotError):
    """A local service or tool (Kafka, Redis, Java, Maven, a port) is missing or unhealthy."""
