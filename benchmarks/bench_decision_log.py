"""CPU per answer of the decision log on Kafka (``ZMOT_DECISIONS_TOPIC``), the API's own writer.

What it does: builds the log entry of an answer with three offers (as the offer routes do) and
hands it to :class:`~recommender.adapters.kafka.DecisionLog` on a real producer, ``--answers``
times at about 1,000 answers per 20 ms slice, yielding between slices so the writer's flusher
encodes and sends meanwhile, then waits for every acknowledgement. It prints the process CPU
time per answer (entry, buffering, encoding, sending, acknowledgement: what the API's event
loop pays in all) for ``--rounds`` rounds, each against the same loop logging nothing run
just before it, and appends the differences to ``BENCHMARKS.md``. Compare with
the CPU of one next-best-offer answer in the API sections of that file (about 1 ms).

Kafka comes from the ``ZMOT_*`` settings (``make bench`` starts the test stack).

    python benchmarks/bench_decision_log.py [--answers 20000] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import append_section, command_line, machine, now_utc, say  # noqa: E402
from recommender.adapters.kafka import DecisionLog, EventProducer, ensure_topics  # noqa: E402
from recommender.core.decision_log import decision_entry  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402

OFFERS = [
    ("OFF-TV-55", "tv-1", "greedy", 0.95),
    ("OFF-MOUNT", "mount-1", "explore", 0.05),
    ("OFF-BAR", "bar-1", "greedy", 0.9),
]
CONTEXT = {"placement": "home", "stage": "zmot", "fallback": False, "model_version": "v1"}


async def one_round(writer: DecisionLog | None, answers: int) -> float:
    """CPU seconds per answer for ``answers`` logged decisions, all acknowledged (``writer``
    None: the same loop logging nothing, the baseline)."""
    started = time.process_time()
    for i in range(answers):
        decision_id = uuid.uuid4().hex
        if writer is not None:
            writer.write([decision_entry(decision_id, f"user-{i}", time.time(), OFFERS, CONTEXT)])
        if i % 20 == 19:
            await asyncio.sleep(0.0002)  # the answers' own awaits, where the flusher runs
    if writer is not None:
        await writer.drain()
    return (time.process_time() - started) / answers


async def main(answers: int, rounds: int) -> list[tuple[float, float]]:
    settings = Settings()
    topic = f"zmot.decisions.bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: settings.topic_partitions})
    lost: list[int] = []
    per_answer = []
    async with EventProducer(settings.kafka_bootstrap, settings.events_topic) as producer:
        writer = DecisionLog(producer, topic, lost.append)
        for number in range(rounds):  # interleaved: baseline, logged, per round
            base = await one_round(None, answers)
            cpu = await one_round(writer, answers)
            per_answer.append((base, cpu))
            say(
                f"round {number + 1}: {cpu * 1e6:.1f} us CPU per answer logged, "
                f"{base * 1e6:.1f} us without (the loop alone), lost {sum(lost)}"
            )
    if sum(lost):
        raise SystemExit(f"{sum(lost)} decisions were not sent: the figures are not valid")
    return per_answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Do not append BENCHMARKS.md.")
    args = parser.parse_args()
    figures = asyncio.run(main(args.answers, args.rounds))
    if not args.no_write:
        rounds = ", ".join(f"{(c - b) * 1e6:.1f}" for b, c in figures)
        append_section(
            f"## Decision log on Kafka: CPU per answer ({now_utc()})\n\n"
            f"Machine: {machine()}. Command: `{command_line()}`.\n\n"
            f"{args.answers} answers with three offers per round, each logged through the "
            "API's DecisionLog and acknowledged by the broker, minus the same loop logging "
            f"nothing (interleaved, same run): {rounds} us of CPU per answer (rounds in order; "
            "the machine was shared by other work, so read the order of magnitude)."
        )
