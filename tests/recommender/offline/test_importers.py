"""Importers of public clickstreams: the real samples round-trip into the contract, broken rows
are counted under the right reason, and an input where nothing imports is an error."""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recommender.core.catalog import Catalog
from recommender.core.events import Event, parse_event
from recommender.offline.importers import (
    CATALOG_FILE,
    EVENTS_FILE,
    REPORT_FILE,
    TAOBAO_SINCE,
    TAOBAO_UNTIL,
    DataImportError,
    Format,
    ImportReport,
    import_file,
)
from tests.support.processes import run_zmot

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
TAOBAO = DATA / "taobao-userbehavior-10k.csv"
REES46 = DATA / "rees46-2019-oct-sample.csv"
DIGINETICA = DATA / "diginetica-train-item-views-sample.csv"
REES46_HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
)


def _events(out: Path) -> list[Event]:
    return [parse_event(line) for line in (out / EVENTS_FILE).read_bytes().splitlines()]


def _catalog(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / CATALOG_FILE).read_text().splitlines()]


def _check_output(out: Path, report: ImportReport) -> list[Event]:
    """What holds for every import: counts add up, lines parse, the catalog covers the items."""
    events = _events(out)
    assert len(events) == report.n_events
    assert report.n_events + report.n_skipped == report.rows
    assert all(event.ts is not None and event.item_id for event in events)
    items = {event.item_id for event in events}
    catalog = Catalog.load(out / CATALOG_FILE)  # the catalog loader the trainer uses
    assert set(catalog.items) == items == {row["item_id"] for row in _catalog(out)}
    assert report.catalog_items == len(items)
    assert report.users == len({event.user_id for event in events})
    assert json.loads((out / REPORT_FILE).read_text()) == report.to_dict()
    assert not list(out.glob(".*.part"))
    return events


# --- the real samples ---------------------------------------------------------------------
def test_taobao_sample_round_trips(tmp_path: Path) -> None:
    report = import_file(TAOBAO, tmp_path, "taobao", examples_per_reason=10)
    events = _check_output(tmp_path, report)

    assert report.rows == 10_000 and not report.header
    assert report.source_kinds == {"pv": 9046, "cart": 536, "fav": 212, "buy": 206}
    # fav -> page_view by default; the sample's 4 rows from before 2017-11-25 (China time)
    # are outliers outside the documented window.
    assert report.skipped == {"impossible timestamp": 4}
    assert report.events == {"page_view": 9046 + 212 - 4, "add_to_cart": 536, "purchase": 206}
    assert report.users == 114
    assert report.catalog_conflicts == 0
    assert not report.time_ordered and report.time_ordered_per_user  # sorted by user
    skipped_lines = {example.line for example in report.examples}
    assert len(skipped_lines) == 4

    kinds = {"pv": "page_view", "fav": "page_view", "cart": "add_to_cart", "buy": "purchase"}
    with TAOBAO.open(newline="") as handle:
        rows = [row for n, row in enumerate(csv.reader(handle), 1) if n not in skipped_lines]
    assert len(rows) == len(events)
    for (user, item, _, behavior, ts), event in zip(rows, events, strict=True):
        assert (event.user_id, event.item_id, event.type) == (user, item, kinds[behavior])
        assert event.ts == int(ts)  # seconds, exactly
        assert TAOBAO_SINCE <= event.ts < TAOBAO_UNTIL
    first = json.loads((tmp_path / EVENTS_FILE).read_text().splitlines()[0])
    assert first == {
        "user_id": "999477",
        "type": "page_view",
        "ts": 1511848894000,
        "item_id": "2200475",
    }
    assert _catalog(tmp_path)[0] == {"item_id": "2200475", "category": "3607361"}
    assert report.first_ts_ms is not None and report.first_ts_ms >= TAOBAO_SINCE * 1000


def test_taobao_without_window_keeps_the_outliers_and_fav_can_be_skipped(tmp_path: Path) -> None:
    report = import_file(TAOBAO, tmp_path, "taobao", window=(None, None), fav="skip")
    _check_output(tmp_path, report)
    assert report.skipped == {"unmapped kind": 212}
    assert report.events == {"page_view": 9046, "add_to_cart": 536, "purchase": 206}
    assert report.to_dict()["time_range"]["first"] == "2017-11-24T08:45:57Z"


def test_rees46_sample_round_trips(tmp_path: Path) -> None:
    report = import_file(REES46, tmp_path, "rees46")
    events = _check_output(tmp_path, report)

    assert report.header and report.rows == 1000
    assert report.skipped == {}
    assert report.source_kinds == {"view": 987, "cart": 3, "purchase": 10}
    assert report.events == {"page_view": 987, "add_to_cart": 3, "purchase": 10}
    assert report.time_ordered and report.time_ordered_per_user
    assert report.to_dict()["time_range"] == {
        "first": "2019-10-01T00:00:00Z",
        "last": "2019-10-01T00:17:26Z",
        "first_ms": 1569888000000,
        "last_ms": 1569889046000,
    }
    with REES46.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kinds = {"view": "page_view", "cart": "add_to_cart", "purchase": "purchase"}
    for row, event in zip(rows, events, strict=True):
        assert (event.user_id, event.item_id) == (row["user_id"], row["product_id"])
        assert event.type == kinds[row["event_type"]]
    assert events[2].ts == 1569888001.0  # 2019-10-01 00:00:01 UTC

    catalog = {row["item_id"]: row for row in _catalog(tmp_path)}
    assert catalog["1307067"] == {
        "item_id": "1307067",
        "title": "lenovo notebook",
        "category": "computers.notebook",
        "brand": "lenovo",
        "price": 251.74,
    }
    assert catalog["3900821"]["title"] == "aqua water heater"
    # no category code: the raw category_id; no brand: no brand field
    assert catalog["44600062"]["category"] == "2103807459595387724"
    assert catalog["17200506"] == {
        "item_id": "17200506",
        "title": "sofa",
        "category": "furniture.living_room.sofa",
        "price": 543.1,
    }


def _midnight_ms(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) * 1000


def test_diginetica_sample_round_trips(tmp_path: Path) -> None:
    report = import_file(DIGINETICA, tmp_path, "diginetica")
    events = _check_output(tmp_path, report)

    with DIGINETICA.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    assert len(rows) == 12_391  # the data README says 12,390: the last line has no newline
    assert report.header and report.rows == len(rows)
    assert report.skipped == {}
    assert report.source_kinds == {"view": 12_391}
    assert report.events == {"page_view": 12_391}
    assert report.users == len({row["session_id"] for row in rows}) == 2986
    assert report.catalog_items == 7139
    assert all(row == {"item_id": row["item_id"]} for row in _catalog(tmp_path))
    assert report.options == {"since": "2016-01-01T00:00:00Z", "until": "2016-07-01T00:00:00Z"}

    # one user per session, even where the row names a real user
    assert sum(row["user_id"] != "NA" for row in rows) == 4710
    for row, event in zip(rows, events, strict=True):
        assert (event.user_id, event.item_id, event.type) == (
            row["session_id"],
            row["item_id"],
            "page_view",
        )
        assert event.ts is not None
        assert round(event.ts * 1000) == _midnight_ms(row["eventdate"]) + int(row["timeframe"])
    first = json.loads((tmp_path / EVENTS_FILE).read_text().splitlines()[0])
    assert first == {"user_id": "1", "type": "page_view", "ts": 1462752526309, "item_id": "81766"}

    # Inside every session the events' times give the order of the source's timeframes, also
    # in the two sessions that run past midnight (their later rows carry the next day).
    by_timeframe: dict[str, list[tuple[int, str]]] = defaultdict(list)
    by_ts: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for row, event in zip(rows, events, strict=True):
        by_timeframe[row["session_id"]].append((int(row["timeframe"]), row["item_id"]))
        by_ts[event.user_id].append((event.ts or 0.0, event.item_id or ""))
    assert by_timeframe.keys() == by_ts.keys()
    for session, views in by_timeframe.items():
        assert [i for _, i in sorted(views)] == [i for _, i in sorted(by_ts[session])], session
    assert {row["eventdate"] for row in rows if row["session_id"] == "2205"} == {
        "2016-05-31",
        "2016-06-01",
    }
    # the file is grouped by session, but not in time order inside a session
    assert not report.time_ordered_per_user and report.user_out_of_order_rows == 6791


DIGINETICA_BROKEN = b"""\
session_id;user_id;item_id;timeframe;eventdate
1;NA;10;0;2016-05-09
1;NA;11;1500;2016-05-09
2;7;12;20;2016-05-10
2;NA;13;abc;2016-05-10
2;NA;14;-5;2016-05-10
2;NA;15;5;10.05.2016
2;NA;16;5;2016-02-30
;NA;17;5;2016-05-10
3;NA;;5;2016-05-10
3;NA;18;5

3;NA;19;5;2015-12-31
3;NA;\xff;5;2016-05-10
session_id;user_id;item_id;timeframe;eventdate
"3";NA;"20";7;2016-05-11
4;NA;21;86400000;2016-06-30
4;NA;22;1.5;2016-05-10
4;NA;23;+5;2016-05-10
"""


def test_diginetica_broken_rows_are_counted_per_reason(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(DIGINETICA_BROKEN)
    report = import_file(source, tmp_path / "out", "diginetica", examples_per_reason=10)
    events = _check_output(tmp_path / "out", report)

    assert report.header and report.rows == 18
    assert [(e.user_id, e.item_id, e.ts) for e in events] == [
        ("1", "10", 1462752000.0),
        ("1", "11", 1462752001.5),
        ("2", "12", 1462838400.02),  # the session, not the row's user 7
        ("3", "20", 1462924800.007),  # quoted fields
    ]
    assert report.skipped == {
        "bad timestamp": 7,  # abc, -5, 10.05.2016, 2016-02-30, the header again, 1.5, +5
        "empty session_id": 1,
        "empty item_id": 1,
        "bad column count": 1,
        "blank line": 1,
        "impossible timestamp": 2,  # 2015-12-31, and 2016-06-30 plus a day
        "not UTF-8": 1,
    }
    by_line = {example.line: example for example in report.examples}
    assert {line: by_line[line].reason for line in by_line} == {
        5: "bad timestamp",
        6: "bad timestamp",
        7: "bad timestamp",
        8: "bad timestamp",
        9: "empty session_id",
        10: "empty item_id",
        11: "bad column count",
        12: "blank line",
        13: "impossible timestamp",
        14: "not UTF-8",
        15: "bad timestamp",
        17: "impossible timestamp",
        18: "bad timestamp",
        19: "bad timestamp",
    }
    assert by_line[5].detail == "timeframe not whole ms: 'abc'"
    assert by_line[6].detail == "negative timeframe: '-5'"
    assert by_line[7].detail == "eventdate not YYYY-MM-DD: '10.05.2016'"
    assert by_line[8].detail == "eventdate not YYYY-MM-DD: '2016-02-30'"
    assert by_line[11].detail == "4 columns, expected 5"
    assert by_line[17].detail.startswith("2016-07-01T00:00:00Z is outside [2016-01-01")


def test_diginetica_full_release_header_and_foreign_files(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("sessionId;userId;itemId;timeframe;eventdate\n1;NA;10;0;2016-05-09\n")
    report = import_file(source, tmp_path / "out", "diginetica")
    assert report.header and report.rows == 1 and report.n_events == 1
    with pytest.raises(DataImportError, match="bad column count 10000"):
        import_file(TAOBAO, tmp_path / "t", "diginetica")
    with pytest.raises(DataImportError, match=r"first 10000 rows .* \(bad column count 10000\)"):
        import_file(DIGINETICA, tmp_path / "d", "taobao")


@pytest.mark.parametrize(
    ("sample", "fmt", "rows"), [(TAOBAO, "taobao", 10_000), (DIGINETICA, "diginetica", 12_391)]
)
def test_gzip_input_gives_the_same_files(
    tmp_path: Path, sample: Path, fmt: Format, rows: int
) -> None:
    packed = tmp_path / "sample.csv.gz"
    packed.write_bytes(gzip.compress(sample.read_bytes()))
    import_file(sample, tmp_path / "plain", fmt)
    report = import_file(packed, tmp_path / "gz", fmt)
    assert report.rows == rows
    for name in (EVENTS_FILE, CATALOG_FILE):
        assert (tmp_path / "gz" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()


# --- broken rows --------------------------------------------------------------------------
TAOBAO_BROKEN = """\
1,10,100,pv,1511848894
1,11,100,click,1511848895
1,12,100,pv,0
1,13,100,pv,2145916800
1,14,100,pv
,15,100,pv,1511848896
1,,100,pv,1511848896
1,16,100,pv,yesterday
1,17,100,fav,1511848897

2,18,101,buy,1511848898.0
1,10,100,cart,nan
"""


def test_taobao_broken_rows_are_counted_per_reason(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(TAOBAO_BROKEN)
    report = import_file(source, tmp_path / "out", "taobao", fav="skip")
    _check_output(tmp_path / "out", report)

    assert report.rows == 12
    assert report.events == {"page_view": 1, "purchase": 1}
    assert report.skipped == {
        "unknown kind": 1,
        "impossible timestamp": 2,  # 1970 and 2038
        "bad column count": 1,
        "empty user_id": 1,
        "empty item_id": 1,
        "bad timestamp": 2,  # text and NaN
        "unmapped kind": 1,  # fav with fav="skip"
        "blank line": 1,
    }
    lines = {(example.line, example.reason) for example in report.examples}
    assert {(2, "unknown kind"), (5, "bad column count"), (8, "bad timestamp")} <= lines
    assert {(10, "blank line"), (3, "impossible timestamp"), (4, "impossible timestamp")} <= lines
    by_line = {example.line: example for example in report.examples}
    assert by_line[5].text == "1,14,100,pv" and "4 columns" in by_line[5].detail
    assert by_line[8].detail == "not unix seconds: 'yesterday'"


def test_contract_rejections_name_the_field(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(f"{'u' * 129},10,100,pv,1511848894\nu,{'i' * 300},100,pv,1511848894\n")
    source.write_text(source.read_text() + "u,10,100,pv,1511848894\n")
    report = import_file(source, tmp_path / "out", "taobao")
    assert report.skipped == {"invalid user_id": 1, "invalid item_id": 1}
    assert report.n_events == 1
    assert "128" in report.examples[0].detail


def test_examples_are_limited_per_reason(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("1,10,100,pv,1511848894\n" + "1,10,100,pv\n" * 50 + "1,10,100,x,1\n" * 50)
    report = import_file(source, tmp_path / "out", "taobao", examples_per_reason=2)
    assert report.skipped == {"bad column count": 50, "unknown kind": 50}
    assert [(e.line, e.reason) for e in report.examples] == [
        (2, "bad column count"),
        (3, "bad column count"),
        (52, "unknown kind"),
        (53, "unknown kind"),
    ]


def test_rees46_columns_by_header_remove_from_cart_and_catalog_merge(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "user_id,event_type,event_time,product_id,category_id,category_code,brand,price\n"
        "7,view,2019-10-01 00:00:00 UTC,1,55,,,0\n"
        "7,view,2019-10-01 00:00:05 UTC,1,55,,acme,9.5\n"
        '7,cart,2019-10-01 00:00:09 UTC,2,56,"kids.toys",acme,"1,5"\n'
        "7,remove_from_cart,2019-10-01 00:00:10 UTC,2,56,kids.toys,acme,1.5\n"
        "8,purchase,2019-10-01 00:00:07 UTC,2,57,sport.bike,acme,2\n"
        "8,view,Oct 1st,3,57,,,1\n"
        "8,view,2019-10-01 00:00:11 UTC,3,57,,,1,extra\n"
        "8,view,1999-12-31 23:59:59 UTC,3,57,,,1\n"
    )
    report = import_file(source, tmp_path / "out", "rees46")
    events = _check_output(tmp_path / "out", report)
    assert report.header and report.rows == 8
    assert [e.type for e in events] == ["page_view", "page_view", "add_to_cart", "purchase"]
    assert [e.ts for e in events] == [1569888000, 1569888005, 1569888009, 1569888007]
    assert report.skipped == {
        "unmapped kind": 1,
        "bad timestamp": 1,
        "bad column count": 1,
        "impossible timestamp": 1,
    }
    assert report.out_of_order_rows == 1 and report.time_ordered_per_user
    catalog = {row["item_id"]: row for row in _catalog(tmp_path / "out")}
    # first non-empty value per field wins: brand and price filled in from the second row
    assert catalog["1"] == {
        "item_id": "1",
        "title": "acme 1",
        "category": "55",
        "brand": "acme",
        "price": 9.5,
    }
    # "1,5" is no price; the purchase's other category is a conflict, the first one is kept
    assert catalog["2"] == {
        "item_id": "2",
        "title": "acme toys",
        "category": "kids.toys",
        "brand": "acme",
        "price": 2.0,
    }
    assert report.catalog_conflicts == 1


def test_rees46_without_header_uses_the_published_column_order(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s\n"
    )
    report = import_file(source, tmp_path / "out", "rees46")
    assert not report.header and report.n_events == 1
    assert _catalog(tmp_path / "out")[0]["brand"] == "shiseido"


def test_rees46_header_without_needed_columns_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("event_time,event_type,price\n2019-10-01 00:00:00 UTC,view,1\n")
    with pytest.raises(DataImportError, match="no column product_id, user_id"):
        import_file(source, tmp_path / "out", "rees46")


# --- nothing imports ----------------------------------------------------------------------
def test_no_importable_row_is_an_error_and_keeps_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    import_file(TAOBAO, out, "taobao")
    before = (out / EVENTS_FILE).read_bytes()
    with pytest.raises(DataImportError, match=r"no row of 1001 imports as taobao .*bad column"):
        import_file(REES46, out, "taobao")
    assert (out / EVENTS_FILE).read_bytes() == before
    assert not list(out.glob(".*.part"))

    bad = tmp_path / "bad.csv"
    bad.write_text("1,10,100,pv,1\n1,10,100,pv,2\n")  # 1970
    with pytest.raises(DataImportError, match="impossible timestamp 2"):
        import_file(bad, tmp_path / "o2", "taobao")
    assert not (tmp_path / "o2" / EVENTS_FILE).exists()


def test_a_foreign_file_is_refused_after_the_first_rows(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n" * 100 + "1,10,100,pv,1511848894\n")
    with pytest.raises(DataImportError, match="none of the first 10 rows .* taobao file"):
        import_file(source, tmp_path / "out", "taobao", probe_rows=10)


def test_unreadable_empty_and_broken_gzip_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataImportError, match="cannot read"):
        import_file(tmp_path / "missing.csv", tmp_path / "out", "taobao")
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataImportError, match="no data rows"):
        import_file(empty, tmp_path / "out", "taobao")
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(TAOBAO.read_bytes())[:5000])
    with pytest.raises(DataImportError, match="broken gzip"):
        import_file(truncated, tmp_path / "out", "taobao")


def test_not_utf8_rows_are_counted(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbf1,10,100,pv,1511848894\n1,\xff\xfe,100,pv,1511848894\n")
    report = import_file(source, tmp_path / "out", "taobao")
    assert report.skipped == {"not UTF-8": 1}
    assert _events(tmp_path / "out")[0].user_id == "1"  # BOM dropped


# --- the command --------------------------------------------------------------------------
def test_command_prints_summary_and_examples(tmp_path: Path) -> None:
    result = run_zmot(
        "import", "--format", "taobao", str(TAOBAO), "--out", str(tmp_path), "--no-progress"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10000 rows -> 9996 events" in result.stdout
    assert "impossible timestamp 4" in result.stdout
    assert f"{TAOBAO}:3696: skipped (impossible timestamp)" in result.stderr
    assert (tmp_path / EVENTS_FILE).exists()

    result = run_zmot(
        "import", "--format", "taobao", str(TAOBAO), "--out", str(tmp_path / "w"),
        "--no-window", "--until", "2017-12-01T00:00:00Z", "--fav", "skip", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "w" / REPORT_FILE).read_text())
    assert report["options"] == {"fav": "skip", "since": None, "until": "2017-12-01T00:00:00Z"}
    assert report["time_range"]["first"] == "2017-11-24T08:45:57Z"


def test_command_imports_diginetica(tmp_path: Path) -> None:
    result = run_zmot(
        "import", "--format", "diginetica", str(DIGINETICA), "--out", str(tmp_path), "--no-progress"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "diginetica: 12391 rows -> 12391 events (page_view 12391)",
        "2986 users, 7139 items; 2016-01-03T00:00:07.112000Z .. 2016-06-01T00:18:44.305000Z; "
        "time-ordered: no (6123 rows go back), per user: no (6791)",
        f"wrote {tmp_path / EVENTS_FILE}, {tmp_path / CATALOG_FILE}, {tmp_path / REPORT_FILE}",
    ]
    assert result.stderr == ""  # nothing skipped, no examples


def test_command_fails_on_the_wrong_format(tmp_path: Path) -> None:
    result = run_zmot(
        "import", "--format", "rees46", str(TAOBAO), "--out", str(tmp_path), "--no-progress"
    )
    # import_file, which the command runs, raises DataImportError; main() prints it, exits 1.
    with pytest.raises(DataImportError, match="bad column count 10000"):
        import_file(TAOBAO, tmp_path / "direct", "rees46")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: " in result.stderr and "bad column count 10000" in result.stderr


# --- Retailrocket and YooChoose (no shared sample: rows in the published layouts) ----------
RETAILROCKET = b"""\
timestamp,visitorid,event,itemid,transactionid
1433221332117,257597,view,355908,
1433224214164,992329,view,248676,
1433221999827,111016,addtocart,5206,
1433222276276,111016,transaction,5206,4000
1433222276276,111016,remove,5206,
1433222276276,111016,view,,
1433222276276,,view,7,
14332222762.5,111016,view,8,
1033222276276,111016,view,9,
1433222276276,111016,view
"""


def test_retailrocket_rows_map_to_the_contract_and_broken_ones_are_counted(
    tmp_path: Path,
) -> None:
    source = tmp_path / "events.csv"
    source.write_bytes(RETAILROCKET)
    report = import_file(source, tmp_path / "out", "retailrocket", examples_per_reason=10)
    events = _check_output(tmp_path / "out", report)
    assert report.header and report.rows == 10
    assert [(e.user_id, e.type, e.item_id, e.ts) for e in events] == [
        ("257597", "page_view", "355908", 1433221332.117),
        ("992329", "page_view", "248676", 1433224214.164),
        ("111016", "add_to_cart", "5206", 1433221999.827),
        ("111016", "purchase", "5206", 1433222276.276),
    ]
    assert report.skipped == {
        "unknown kind": 1,
        "empty item_id": 1,
        "empty user_id": 1,
        "bad timestamp": 1,  # not whole milliseconds
        "impossible timestamp": 1,  # 2002: outside the log's months
        "bad column count": 1,
    }
    assert _catalog(tmp_path / "out") == [
        {"item_id": "355908"},
        {"item_id": "248676"},
        {"item_id": "5206"},
    ]


def test_retailrocket_columns_by_header_and_a_header_without_needed_columns(
    tmp_path: Path,
) -> None:
    source = tmp_path / "events.csv"
    source.write_text("visitorid,itemid,event,timestamp\n5,6,view,1433221332117\n")
    report = import_file(source, tmp_path / "out", "retailrocket")
    assert [(e.user_id, e.item_id) for e in _check_output(tmp_path / "out", report)] == [("5", "6")]
    source.write_text("timestamp,visitorid,event\n1433221332117,5,view\n")
    with pytest.raises(DataImportError, match="no column itemid"):
        import_file(source, tmp_path / "bad", "retailrocket")


YOOCHOOSE = b"""\
1,2014-04-07T10:51:09.277Z,214536502,0
1,2014-04-07T10:54:09.868Z,214536500,S
2,2014-04-07T13:56:37.614Z,214662742,5
2,2014-04-07T13:57:19.373Z,214825110,2089639422
2,2014-04-07T13:58:21.000Z,214662742,0
420374,2014-04-06T18:44:58.314Z,214537888,12462,1
420374,2014-04-06T18:44:58.325Z,214662742,0,1
3,2014-04-07 10:51:09,214536503,0
3,07.04.2014,214536504,0
,2014-04-07T10:51:09.277Z,214536505,0
3,2013-12-31T23:59:59.999Z,214536506,0
3,2014-04-07T10:51:09.277Z,214536507
"""


def test_yoochoose_clicks_and_buys_import_as_one(tmp_path: Path) -> None:
    source = tmp_path / "yoochoose.dat"
    source.write_bytes(YOOCHOOSE)
    report = import_file(source, tmp_path / "out", "yoochoose", examples_per_reason=10)
    events = _check_output(tmp_path / "out", report)
    assert not report.header and report.rows == 12
    assert [(e.user_id, e.type, e.item_id) for e in events] == [
        ("1", "page_view", "214536502"),
        ("1", "page_view", "214536500"),
        ("2", "page_view", "214662742"),
        ("2", "page_view", "214825110"),
        ("2", "page_view", "214662742"),
        ("420374", "purchase", "214537888"),
        ("420374", "purchase", "214662742"),
        ("3", "page_view", "214536503"),  # no zone: read as UTC
    ]
    assert events[0].ts == datetime(2014, 4, 7, 10, 51, 9, 277000, tzinfo=UTC).timestamp()
    assert events[7].ts == datetime(2014, 4, 7, 10, 51, 9, tzinfo=UTC).timestamp()
    assert report.source_kinds == {"click": 9, "buy": 2}
    assert report.skipped == {
        "bad timestamp": 1,
        "empty session_id": 1,
        "impossible timestamp": 1,
        "bad column count": 1,
    }
    catalog = {row["item_id"]: row for row in _catalog(tmp_path / "out")}
    assert catalog["214536502"] == {"item_id": "214536502"}  # context 0: unknown
    assert catalog["214536500"] == {"item_id": "214536500"}  # S: a special offer, no category
    # clicked in category 5, then without a context, then bought at 0 (no price): one category
    assert catalog["214662742"] == {"item_id": "214662742", "category": "5"}
    assert catalog["214825110"] == {"item_id": "214825110", "brand": "2089639422"}
    assert catalog["214537888"] == {"item_id": "214537888", "price": 12462.0}


@pytest.mark.parametrize(
    ("fmt", "rows"), [("retailrocket", RETAILROCKET), ("yoochoose", YOOCHOOSE)]
)
def test_command_imports_retailrocket_and_yoochoose(tmp_path: Path, fmt: str, rows: bytes) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(rows)
    result = run_zmot("import", "--format", fmt, str(source), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    written = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert written["format"] == fmt and written["events_written"] > 0
    assert result.stdout.startswith(f"{fmt}: {written['rows_read']} rows -> ")
    assert f"{source}:" in result.stderr  # the skipped rows' examples, with line numbers
