"""`zmot ope` on files as a user writes them: the same estimates as the library, bad lines
refused with their number."""

from __future__ import annotations

import json
from pathlib import Path

from recommender.core.ope import Logged, TablePolicy, evaluate
from tests.recommender.core.test_ope import logged_sample
from tests.support.processes import run_zmot


def test_ope_command_reads_the_files_and_prints_the_estimates(tmp_path: Path) -> None:
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text(
        "\n".join(
            json.dumps({"offer_id": d.offer_id, "probability": d.probability, "reward": d.reward})
            for d in logged_sample(2000, seed=3)
        )
    )
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("policy: {C: 1.0}\n")
    done = run_zmot("ope", "--decisions", str(decisions), "--candidate", str(candidate), "--json")
    assert done.returncode == 0, done.stderr
    expected = evaluate(read_back(decisions), TablePolicy({"C": 1.0})).to_dict()
    assert json.loads(done.stdout) == json.loads(json.dumps(expected))
    decisions.write_text('{"offer_id": "A"}\n')
    bad = run_zmot("ope", "--decisions", str(decisions), "--candidate", str(candidate))
    assert bad.returncode == 1 and "decisions.jsonl:1: not a logged decision" in bad.stderr


def read_back(path: Path) -> list[Logged]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [Logged(r["offer_id"], r["probability"], r["reward"]) for r in rows]
