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

``--paced`` measures it at a real rate instead: one answer (one three-offer entry) every
``1 / --rate`` seconds for ``--seconds``, the writer's flusher running between answers as in
the API, then ``drain()``; minus the same paced loop logging nothing, run just before it in the
same process. At a real rate every answer (or every few, when the writer gathers them) pays the
flusher's wake-up and the producer's per-record path, which the burst mode above hides. Each
``--tree NAME=DIR`` (default: this tree) runs in a child process with ``DIR`` first on the
import path, the trees interleaved round by round, each on a fresh topic of
``ZMOT_TOPIC_PARTITIONS`` partitions; after each run every decision is read back from the topic
(records and decisions counted: nothing may be lost).

    python benchmarks/bench_decision_log.py --paced [--rate 1000] [--seconds 10] [--rounds 3] \
        [--tree before=/tmp/base --tree after=.] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import append_section, command_line, machine, now_utc, say  # noqa: E402
from recommender.adapters.kafka import DecisionLog, EventProducer, ensure_topics  # noqa: E402
from recommender.core.decision_log import DecisionLine  # noqa: E402
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
            writer.write([DecisionLine(decision_id, f"user-{i}", time.time(), OFFERS, **CONTEXT)])
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


PACED_CHILD = r"""
import asyncio, json, sys, time, uuid

from recommender.adapters.kafka import (
    DecisionLog, EventProducer, ensure_topics, read_topic_values, topic_message_count,
)
from recommender.core.settings import Settings

OFFERS = OFFERS_LITERAL
CONTEXT = CONTEXT_LITERAL
try:  # the entry as this tree's API builds it
    from recommender.core.decision_log import DecisionLine

    def entry(decision_id, user, ts):
        return DecisionLine(decision_id, user, ts, OFFERS, CONTEXT["placement"], CONTEXT["stage"],
                            CONTEXT["fallback"], None, None, CONTEXT["model_version"])
except ImportError:
    from recommender.core.decision_log import decision_entry

    def entry(decision_id, user, ts):
        return decision_entry(decision_id, user, ts, OFFERS, CONTEXT)
RATE, SECONDS = float(sys.argv[1]), float(sys.argv[2])


async def paced(writer):
    n = int(RATE * SECONDS)
    loop = asyncio.get_running_loop()
    start = loop.time()
    cpu = time.process_time()
    for i in range(n):
        delay = start + i / RATE - loop.time()
        await asyncio.sleep(delay if delay > 0 else 0)  # the flusher runs while answers wait
        decision_id = uuid.uuid4().hex
        if writer is not None:
            writer.write([entry(decision_id, f"user-{i}", time.time())])
    if writer is not None:
        await writer.drain()
    return (time.process_time() - cpu) / n, loop.time() - start


async def main():
    settings = Settings()
    topic = f"zmot.decisions.bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, {topic: settings.topic_partitions})
    lost = []
    async with EventProducer(settings.kafka_bootstrap, settings.events_topic) as producer:
        writer = DecisionLog(producer, topic, lost.append)
        await paced(writer)  # warm-up: connections, metadata of every partition
        await asyncio.sleep(0.5)
        warm = await topic_message_count(settings.kafka_bootstrap, topic)
        base, _ = await paced(None)
        cpu, wall = await paced(writer)
    records = await topic_message_count(settings.kafka_bootstrap, topic) - warm
    values = await read_topic_values(settings.kafka_bootstrap, topic)
    decisions = sum(len([x for x in v.split(b"\n") if x.strip()]) for _, v, _ in values)
    print(json.dumps({"base": base, "cpu": cpu, "wall": wall, "records": records,
                      "decisions": decisions, "lost": sum(lost)}))


asyncio.run(main())
"""


def paced_run(tree: Path, rate: float, seconds: float) -> dict[str, float]:
    """One paced measurement in a child process importing ``tree``'s code."""
    code = PACED_CHILD.replace("OFFERS_LITERAL", repr(OFFERS)).replace(
        "CONTEXT_LITERAL", repr(CONTEXT)
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(rate), str(seconds)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the paced run in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def paced(
    trees: list[tuple[str, Path]], rate: float, seconds: float, rounds: int
) -> dict[str, list[dict[str, float]]]:
    """Every tree's paced runs, interleaved (the order turned round each round)."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
    expected = int(rate * seconds) * 2  # the warm-up and the measured run
    for number in range(rounds):
        order = trees if number % 2 == 0 else list(reversed(trees))
        for name, tree in order:
            r = paced_run(tree, rate, seconds)
            out[name].append(r)
            say(
                f"round {number + 1} {name}: {(r['cpu'] - r['base']) * 1e6:.1f} us CPU per "
                f"answer logged ({r['cpu'] * 1e6:.1f} with, {r['base'] * 1e6:.1f} without), "
                f"{r['records']:.0f} records for {int(rate * seconds)} answers, "
                f"{r['decisions']:.0f}/{expected} decisions read back, lost {r['lost']:.0f}"
            )
            if r["lost"] or r["decisions"] != expected:
                raise SystemExit(f"{name}: decisions were lost: the figures are not valid")
    return out


def paced_section(
    trees: list[tuple[str, Path]],
    figures: dict[str, list[dict[str, float]]],
    rate: float,
    seconds: float,
) -> str:
    rows = []
    for name, tree in trees:
        runs = figures[name]
        rows.append(
            f"| {name} (`{tree}`) | "
            + ", ".join(f"{(r['cpu'] - r['base']) * 1e6:.1f}" for r in runs)
            + " | "
            + ", ".join(f"{r['base'] * 1e6:.1f}" for r in runs)
            + " | "
            + ", ".join(f"{r['records'] / (rate * seconds):.3f}" for r in runs)
            + " |"
        )
    return (
        f"## Decision log on Kafka at a paced {rate:,.0f} answers/s ({now_utc()})\n\n"
        f"Machine: {machine()}. Command: `{command_line()}`. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}.\n\n"
        f"One three-offer answer every {1e3 / rate:g} ms for {seconds:g} s through each "
        "tree's DecisionLog on a real producer and broker, drained, minus the same paced loop "
        "logging nothing (same process, just before); trees interleaved round by round; "
        "every decision read back from the topic.\n\n"
        "| tree | CPU us per answer for the log (rounds in order) | the loop alone, us | "
        "Kafka records per answer |\n|---|---|---|---|\n" + "\n".join(rows)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Do not append BENCHMARKS.md.")
    parser.add_argument(
        "--paced", action="store_true", help="One answer every 1/--rate s (see above)."
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="--paced: answers per second.")
    parser.add_argument("--seconds", type=float, default=10.0, help="--paced: length of a run.")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="--paced: a source tree to measure (repeatable; default: this tree).",
    )
    args = parser.parse_args()
    if args.paced:
        trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
        trees = trees or [("this", ROOT)]
        paced_figures = paced(trees, args.rate, args.seconds, args.rounds)
        if not args.no_write:
            append_section(paced_section(trees, paced_figures, args.rate, args.seconds))
        raise SystemExit(0)
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
