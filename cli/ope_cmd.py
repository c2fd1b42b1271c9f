"""`zmot ope --decisions FILE --candidate CONFIG [--json]`: a candidate policy's reward rate
estimated from logged decisions (IPS and SNIPS with 95% intervals, effective sample size)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from recommender.core.errors import ConfigError
from recommender.core.ope import Logged, evaluate, table_policy


def read_logged(path: Path) -> list[Logged]:
    """One logged decision per JSON line: ``{"offer_id", "probability", "reward"}`` (the
    first slot's offer and probability as the decision log has them; reward 1 for a click or
    conversion, else 0). A bad line is refused with its number."""
    out: list[Logged] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(
                Logged(str(row["offer_id"]), float(row["probability"]), float(row["reward"]))
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a logged decision ({exc!r})") from None
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def ope(
        decisions: Annotated[
            Path, typer.Option(help='JSON lines: {"offer_id", "probability", "reward"}.')
        ],
        candidate: Annotated[
            Path, typer.Option(help="YAML: policy: {offer_id: probability, ...}.")
        ],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Estimate a candidate policy's click or conversion rate from logged decisions."""
        try:
            data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the candidate {candidate}: {exc}") from None
        result = evaluate(read_logged(decisions), table_policy(data, str(candidate)))
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
            return
        typer.echo(
            f"{result.n} logged decisions (logged rate {result.logged_rate:.4f}"
            + (f", {result.unsupported} with probability 0 left out" if result.unsupported else "")
            + ")"
        )
        for name, est in (("IPS", result.ips), ("SNIPS", result.snips)):
            typer.echo(f"{name:<6} {est.value:.4f}  95% [{est.low:.4f}, {est.high:.4f}]")
        typer.echo(f"effective sample size {result.effective_sample_size:.1f}")
