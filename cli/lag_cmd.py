"""`zmot lag`: the worker group's consumer lag per partition, read from Kafka."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Optional

import typer
from aiokafka.errors import KafkaError

from recommender.core.errors import ConfigError, ZmotError
from recommender.core.settings import Settings, get_settings


def lag_table(document: dict[str, Any]) -> str:
    """The lag document as a table for people (the JSON is for machines)."""
    lines = [
        f"group {document['group']}  topic {document['topic']}",
        f"{'partition':>9} {'end':>12} {'committed':>12} {'lag':>10} {'lag s':>10}",
    ]
    for row in document["partitions"]:
        committed = "never" if row["committed_offset"] is None else str(row["committed_offset"])
        lines.append(
            f"{row['partition']:>9} {row['end_offset']:>12} {committed:>12} "
            f"{row['lag']:>10} {row['lag_seconds']:>10.1f}"
        )
    lines.append(
        f"{'total':>9} {'':>12} {'':>12} {document['total_lag']:>10} "
        f"{document['max_lag_seconds']:>10.1f}"
    )
    return "\n".join(lines)


def live_group(settings: Settings) -> str:
    """The consumer group of the live profile generation (README, Blue/green profiles);
    ZMOT_CONSUMER_GROUP when Redis cannot tell."""
    from cli.model_cmd import generation_store

    async def read() -> str:
        async with generation_store(settings) as store:
            return (await store.live()).group

    try:
        return asyncio.run(read())
    except ZmotError as exc:
        typer.echo(f"(profile generation unknown: {exc}; using ZMOT_CONSUMER_GROUP)", err=True)
        return settings.consumer_group


def register(app: typer.Typer) -> None:
    """Add the lag command to the zmot CLI."""

    @app.command()
    def lag(
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the JSON document of GET /ops/lag.")
        ] = False,
        group: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                help="Consumer group (default: the live profile generation's, "
                "ZMOT_CONSUMER_GROUP until a rebuild went live)."
            ),
        ] = None,
        topic: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(help="Topic (default ZMOT_EVENTS_TOPIC)."),
        ] = None,
    ) -> None:
        """Consumer lag of the worker per partition: messages and age of the oldest unprocessed
        event, read from Kafka (a stopped worker shows growing lag)."""
        from recommender.adapters.kafka import kafka_auth, read_lag

        settings = get_settings()
        try:
            document = asyncio.run(
                read_lag(
                    settings.kafka_bootstrap,
                    group or live_group(settings),
                    topic or settings.events_topic,
                    auth=kafka_auth(settings),
                )
            )
        except (KafkaError, OSError) as exc:
            raise ConfigError(
                f"cannot read the lag from Kafka at {settings.kafka_bootstrap}: {exc!r}"
            ) from exc
        typer.echo(json.dumps(document) if as_json else lag_table(document))
