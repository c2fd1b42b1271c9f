"""Experiments: the file (shape, refusals with line and field) and the stable assignment."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest

from recommender.core.errors import ConfigError
from recommender.core.experiments import parse_experiments, unit_hash
from recommender.core.exploration import ExplorationPolicy

ISSUE_EXAMPLE = """\
experiments:
  - name: ranker-v2
    salt: 7f3a
    arms:
      - {name: control, share: 0.5}
      - {name: challenger, share: 0.5, model_version: 20261201T0300-ab12cd34}
      - {name: explore, share: 0.0, exploration: {share: 0.1, method: epsilon}}
"""

THREE_WAY = """\
experiments:
  - name: home-only
    salt: s1
    placements: [home]
    arms:
      - {name: a, share: 0.5}
      - {name: b, share: 0.3}
      - {name: c, share: 0.2}
  - name: everywhere
    salt: s2
    arms:
      - {name: x, share: 0.9}
      - {name: y, share: 0.1}
"""


def test_the_issue_example_parses() -> None:
    [exp] = parse_experiments(ISSUE_EXAMPLE).items
    assert (exp.name, exp.salt, exp.placements) == ("ranker-v2", "7f3a", None)
    assert [(a.name, a.share, a.model_version) for a in exp.arms] == [
        ("control", 0.5, None),
        ("challenger", 0.5, "20261201T0300-ab12cd34"),
        ("explore", 0.0, None),
    ]
    assert exp.arms[2].exploration == ExplorationPolicy(0.1, "epsilon", 0.5)


def test_assignment_is_stable_and_depends_on_the_salt() -> None:
    experiments = parse_experiments(THREE_WAY)
    ids = [f"user-{i}" for i in range(4000)]
    first = [experiments.assign(u, "home") for u in ids]
    again = [experiments.assign(u, "home") for u in reversed(ids)][::-1]
    assert first == again  # the same person, the same arm, whatever else was asked before
    assert all(a is not None and a.experiment.name == "home-only" for a in first)
    # Another salt draws everyone again, independently: a person keeps the arm with chance
    # 0.5^2 + 0.3^2 + 0.2^2 = 0.38.
    [home, _] = experiments.items
    resalted = replace(home, salt="another")
    kept = sum(home.arm_for(u) == resalted.arm_for(u) for u in ids) / len(ids)
    assert abs(kept - 0.38) < 4 * math.sqrt(0.38 * 0.62 / len(ids))
    assert unit_hash("s1", "user-1") != unit_hash("s2", "user-1")
    assert 0.0 <= unit_hash("s1", "user-1") < 1.0


def test_placements_pick_the_first_covering_experiment() -> None:
    experiments = parse_experiments(THREE_WAY)
    home = experiments.assign("u1", "home")
    other = experiments.assign("u1", "product_page")
    none = experiments.assign("u1", None)
    assert home is not None and home.experiment.name == "home-only"
    assert other is not None and other.experiment.name == "everywhere"
    assert none is not None and none.experiment.name == "everywhere"
    assert parse_experiments("").assign("u1", "home") is None


def test_shares_hold_within_binomial_bounds_over_100k_ids() -> None:
    experiments = parse_experiments(THREE_WAY)
    n = 100_000
    counts = Counter(
        a.arm.name for i in range(n) if (a := experiments.assign(f"id{i}", "home")) is not None
    )
    for arm, share in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        sigma = math.sqrt(n * share * (1 - share))
        assert abs(counts[arm] - n * share) < 4 * sigma, (arm, counts)
    # a zero share never gets anyone
    zero = parse_experiments(ISSUE_EXAMPLE)
    arms = Counter(a.arm.name for i in range(20_000) if (a := zero.assign(f"id{i}", None)))
    assert arms["explore"] == 0 and arms["control"] + arms["challenger"] == 20_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "experiments:\n  - name: a\n    salt: s\n    arms:\n"
            "      - {name: c, share: 0.5}\n      - {name: d, share: 1.5}\n",
            "x.yaml:6: experiments[0].arms[1].share: must be a number in [0, 1]",
        ),
        (
            "experiments:\n  - name: a\n    salt: s\n    arms:\n"
            "      - {name: c, share: 0.5}\n      - {name: d, share: 0.4}\n",
            "x.yaml:5: experiments[0].arms: shares sum to 0.9, not 1",
        ),
        (
            "experiments:\n  - name: a\n    salt: s\n    colour: red\n    arms: []\n",
            "x.yaml:4: experiments[0].colour: unknown field",
        ),
        (
            "experiments:\n  - name: a\n    arms:\n      - {name: c, share: 1}\n",
            "x.yaml:2: experiments[0].salt: missing",
        ),
        (
            "experiments:\n  - name: a\n    salt: s\n    arms:\n"
            "      - {name: c, share: 0.5}\n      - {name: c, share: 0.5}\n",
            "x.yaml:6: experiments[0].arms[1].name: 'c' given twice",
        ),
        (
            "experiments:\n  - name: a\n    salt: s\n    arms:\n"
            "      - {name: c, share: 1, exploration: {share: 0.1, method: greedy}}\n",
            "x.yaml:5: experiments[0].arms[0].exploration.method: must be epsilon or softmax",
        ),
        (
            "experiments:\n  - name: a\n    salt: s\n    arms:\n      - {name: c, share: yes}\n",
            "x.yaml:5: experiments[0].arms[0].share: must be a number in [0, 1]",
        ),
        ("experiments: [unclosed\n", "x.yaml: not YAML"),
    ],
)
def test_a_bad_file_is_refused_with_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_experiments(text, "x.yaml")
    assert str(caught.value).startswith(message)
