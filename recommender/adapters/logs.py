"""Log set-up shared by the worker and the API: plain text, or one JSON object per line.

``ZMOT_LOG_FORMAT=json`` gives log shippers one JSON object per line, with the fields a record
carries in ``extra`` (the worker puts ``topic``, ``partition`` and ``offset`` on every stream
error) as top-level keys.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def json_logging_config(level: str | int, stream: str = "ext://sys.stderr") -> dict[str, Any]:
    """A ``dictConfig`` that sends every logger through :class:`JsonFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "recommender.adapters.logs.JsonFormatter"}},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}
        },
        "root": {"level": level, "handlers": ["default"]},
    }


def message_fields(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """The ``extra=`` of a log call about one Kafka message."""
    return {"topic": topic, "partition": partition, "offset": offset}
