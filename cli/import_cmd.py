"""``zmot import``: public clickstreams (Taobao, REES46, DIGINETICA, Retailrocket, YooChoose) into
the event contract.

The conversion lives in :mod:`recommender.offline.importers`; this module parses the options, prints
the skipped-row examples to stderr and a summary to stdout.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from recommender.core.events import parse_ts
from recommender.offline.importers import (
    CATALOG_FILE,
    EVENTS_FILE,
    REPORT_FILE,
    FavPolicy,
    Format,
    ImportReport,
    default_window,
    import_file,
)


class SourceFormat(StrEnum):
    taobao = "taobao"
    rees46 = "rees46"
    diginetica = "diginetica"
    retailrocket = "retailrocket"
    yoochoose = "yoochoose"


FORMAT_OF: dict[SourceFormat, Format] = {
    SourceFormat.taobao: "taobao",
    SourceFormat.rees46: "rees46",
    SourceFormat.diginetica: "diginetica",
    SourceFormat.retailrocket: "retailrocket",
    SourceFormat.yoochoose: "yoochoose",
}


class FavAs(StrEnum):
    page_view = "page_view"
    skip = "skip"


def _when(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _summary(report: ImportReport) -> list[str]:
    by_type = ", ".join(f"{kind} {n}" for kind, n in report.events.most_common())
    lines = [f"{report.format}: {report.rows} rows -> {report.n_events} events ({by_type})"]
    if report.skipped:
        reasons = ", ".join(f"{reason} {n}" for reason, n in report.skipped.most_common())
        lines.append(f"skipped {report.n_skipped} rows: {reasons}")
    data = report.to_dict()
    span = data["time_range"]
    ordered = "yes" if report.time_ordered else f"no ({report.out_of_order_rows} rows go back)"
    per_user = "yes" if report.time_ordered_per_user else f"no ({report.user_out_of_order_rows})"
    lines.append(
        f"{report.users} users, {report.catalog_items} items; {span['first']} .. {span['last']}; "
        f"time-ordered: {ordered}, per user: {per_user}"
    )
    out = Path(report.out_dir)
    lines.append(f"wrote {out / EVENTS_FILE}, {out / CATALOG_FILE}, {out / REPORT_FILE}")
    return lines


def import_command(
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="CSV file of the data set (plain or .gz).")
    ],
    source_format: Annotated[
        SourceFormat, typer.Option("--format", help="Which data set the file comes from.")
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for events.jsonl, catalog.jsonl, import-report.json.")
    ],
    fav: Annotated[
        FavAs, typer.Option(help="Taobao 'fav' rows: import as page_view, or skip them.")
    ] = FavAs.page_view,
    since: Annotated[
        str | None,
        typer.Option(
            help="Skip rows before this ISO time (default: Taobao 2017-11-24T16:00Z, "
            "DIGINETICA 2016-01-01, Retailrocket 2015-05-01, YooChoose 2014-04-01)."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Skip rows at or after this ISO time (Taobao 2017-12-03T16:00Z, "
            "DIGINETICA 2016-07-01, Retailrocket 2015-10-01, YooChoose 2014-10-01)."
        ),
    ] = None,
    no_window: Annotated[
        bool, typer.Option("--no-window", help="No default window: only the 2000-2100 check.")
    ] = False,
    examples: Annotated[
        int, typer.Option(min=0, help="Skipped rows shown per reason (with line numbers).")
    ] = 3,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
) -> None:
    """Convert a Taobao UserBehavior, REES46, DIGINETICA, Retailrocket or YooChoose CSV into zmot
    events and a catalog."""
    fmt = FORMAT_OF[source_format]
    fav_as: FavPolicy = "page_view" if fav is FavAs.page_view else "skip"
    default_since, default_until = (None, None) if no_window else default_window(fmt)
    start = _when(since, "--since")
    end = _when(until, "--until")
    report = import_file(
        input_file,
        out,
        fmt,
        fav=fav_as,
        window=(
            start if start is not None else default_since,
            end if end is not None else default_until,
        ),
        examples_per_reason=examples,
        progress=progress,
    )
    for example in report.examples:
        detail = f"{example.detail}: " if example.detail else ""
        typer.echo(
            f"{input_file}:{example.line}: skipped ({example.reason}): {detail}{example.text}",
            err=True,
        )
    for line in _summary(report):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``zmot import`` to ``app``."""
    app.command("import")(import_command)
