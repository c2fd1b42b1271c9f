"""Online experiments: arms with traffic shares, and a stable assignment of people to arms.

``ZMOT_EXPERIMENTS_PATH`` names a YAML file::

    experiments:
      - name: ranker-v2
        salt: 7f3a
        placements: [home]          # optional: only requests for these placements
        arms:
          - {name: control, share: 0.5}
          - {name: challenger, share: 0.5, model_version: 20261201T0300-ab12cd34}
          - {name: explore, share: 0.0, exploration: {share: 0.1, method: epsilon}}

An arm may name a model version (from the registry; otherwise the served model) and an
exploration policy for every placement (otherwise each placement's own). Shares are fractions
summing to 1. A request falls in the first experiment that covers its placement (one without
``placements`` covers all), so every answer is in at most one experiment.

Assignment hashes ``salt:user_id`` with SHA-256 to a point ``u`` in [0, 1) and picks the arm
whose cumulative share interval holds ``u``: the same person gets the same arm in every
process and after every restart; a new salt reshuffles everyone, independently of any other
experiment.

A bad file is refused whole, naming the line and the field (``experiments.yaml:7: arms[1].share:
must be a number in [0, 1]``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import yaml

from recommender.core.errors import ConfigError
from recommender.core.exploration import ExplorationPolicy

SHARE_TOLERANCE = 1e-6
"""How far the shares of an experiment may sum from 1 (decimal fractions such as 1/3)."""

_SCALE = float(1 << 53)


@dataclass(frozen=True)
class Arm:
    """One arm: its name, traffic share and what it changes."""

    name: str
    share: float
    model_version: str | None = None
    exploration: ExplorationPolicy | None = None


@dataclass(frozen=True)
class Experiment:
    """An experiment: a salt, the arms and (optionally) the placements it covers."""

    name: str
    salt: str
    arms: tuple[Arm, ...]
    placements: frozenset[str] | None = None

    def covers(self, placement: str | None) -> bool:
        return self.placements is None or (placement is not None and placement in self.placements)

    def arm_for(self, user_id: str) -> Arm:
        """The user's arm: stable for (salt, user_id)."""
        u = unit_hash(self.salt, user_id)
        cumulative = 0.0
        for arm in self.arms:
            cumulative += arm.share
            if u < cumulative:
                return arm
        return next(a for a in reversed(self.arms) if a.share > 0)  # rounding at the top end


@dataclass(frozen=True)
class Assignment:
    """The experiment and arm of one answer."""

    experiment: Experiment
    arm: Arm


@dataclass(frozen=True)
class Experiments:
    """Every running experiment, in file order."""

    items: tuple[Experiment, ...] = ()

    def assign(self, user_id: str, placement: str | None) -> Assignment | None:
        """The experiment (first covering the placement) and the user's arm in it, if any."""
        for experiment in self.items:
            if experiment.covers(placement):
                return Assignment(experiment, experiment.arm_for(user_id))
        return None

    def model_versions(self) -> set[str]:
        """The model versions the arms name."""
        return {a.model_version for e in self.items for a in e.arms if a.model_version}

    def __len__(self) -> int:
        return len(self.items)


def unit_hash(salt: str, user_id: str) -> float:
    """A point in [0, 1) from SHA-256 of ``salt:user_id`` (53 bits: exact as a float)."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _SCALE


# --- the file -----------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, node: yaml.Node, field: str, reason: str) -> None:
        super().__init__(f"{node.start_mark.line + 1}: {field}: {reason}")


def _mapping(node: yaml.Node, field: str, allowed: Sequence[str]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _Bad(node, field, "must be a mapping")
    out: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = str(key.value)
        if name not in allowed:
            raise _Bad(key, f"{field}.{name}" if field else name, "unknown field")
        if name in out:
            raise _Bad(key, f"{field}.{name}" if field else name, "given twice")
        out[name] = value
    return out


def _text(node: yaml.Node, field: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise _Bad(node, field, "must be a non-empty text")
    return str(node.value)


def _name(node: yaml.Node, field: str) -> str:
    text = _text(node, field)
    if "|" in text:  # it separates experiment and arm in the attribution counters
        raise _Bad(node, field, "must not contain '|'")
    return text


def _scalar(node: yaml.Node) -> object:
    """The value of a scalar node as safe_load would give it (None for anything else)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _fraction(node: yaml.Node, field: str) -> float:
    value = _scalar(node)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _Bad(node, field, "must be a number in [0, 1]")
    return float(value)


def _exploration(node: yaml.Node, field: str) -> ExplorationPolicy:
    raw = _mapping(node, field, ("share", "method", "temperature"))
    share = _fraction(raw["share"], f"{field}.share") if "share" in raw else 0.0
    method = _text(raw["method"], f"{field}.method") if "method" in raw else "epsilon"
    if method not in ("epsilon", "softmax"):
        raise _Bad(raw["method"], f"{field}.method", "must be epsilon or softmax")
    temperature = 0.5
    if "temperature" in raw:
        value = _scalar(raw["temperature"])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _Bad(raw["temperature"], f"{field}.temperature", "must be a number > 0")
        temperature = float(value)
    return ExplorationPolicy(share, cast(Literal["epsilon", "softmax"], method), temperature)


def _arm(node: yaml.Node, field: str) -> Arm:
    raw = _mapping(node, field, ("name", "share", "model_version", "exploration"))
    for required in ("name", "share"):
        if required not in raw:
            raise _Bad(node, f"{field}.{required}", "missing")
    return Arm(
        name=_name(raw["name"], f"{field}.name"),
        share=_fraction(raw["share"], f"{field}.share"),
        model_version=_text(raw["model_version"], f"{field}.model_version")
        if "model_version" in raw
        else None,
        exploration=_exploration(raw["exploration"], f"{field}.exploration")
        if "exploration" in raw
        else None,
    )


def _experiment(node: yaml.Node, field: str) -> Experiment:
    raw = _mapping(node, field, ("name", "salt", "arms", "placements"))
    for required in ("name", "salt", "arms"):
        if required not in raw:
            raise _Bad(node, f"{field}.{required}", "missing")
    arms_node = raw["arms"]
    if not isinstance(arms_node, yaml.SequenceNode) or not arms_node.value:
        raise _Bad(arms_node, f"{field}.arms", "must be a non-empty list of arms")
    arms = tuple(_arm(a, f"{field}.arms[{i}]") for i, a in enumerate(arms_node.value))
    names = [a.name for a in arms]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _Bad(arms_node.value[i], f"{field}.arms[{i}].name", f"{name!r} given twice")
    total = sum(a.share for a in arms)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise _Bad(arms_node, f"{field}.arms", f"shares sum to {total:g}, not 1")
    placements = None
    if "placements" in raw:
        seq = raw["placements"]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            raise _Bad(seq, f"{field}.placements", "must be a non-empty list of placement names")
        placements = frozenset(
            _text(p, f"{field}.placements[{i}]") for i, p in enumerate(seq.value)
        )
    return Experiment(
        name=_name(raw["name"], f"{field}.name"),
        salt=_text(raw["salt"], f"{field}.salt"),
        arms=arms,
        placements=placements,
    )


def parse_experiments(text: str, where: str = "experiments") -> Experiments:
    """Experiments from YAML text; :class:`ConfigError` names ``where:line: field: reason``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not YAML: {exc}") from None
    if root is None:
        return Experiments()
    try:
        top = _mapping(root, "", ("experiments",))
        seq = top.get("experiments")
        if seq is None:
            return Experiments()
        if not isinstance(seq, yaml.SequenceNode):
            raise _Bad(seq, "experiments", "must be a list of experiments")
        items = tuple(_experiment(e, f"experiments[{i}]") for i, e in enumerate(seq.value))
        names = [e.name for e in items]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise _Bad(seq.value[i], f"experiments[{i}].name", f"{name!r} given twice")
    except _Bad as exc:
        raise ConfigError(f"{where}:{exc}") from None
    return Experiments(items)


def load_experiments(path: Path | None) -> Experiments:
    """The experiments of ``ZMOT_EXPERIMENTS_PATH`` (None: no experiment)."""
    if path is None:
        return Experiments()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read experiments {path}: {exc.strerror}") from None
    return parse_experiments(text, str(path))
