"""The evaluation report: files, plots, numbers that agree with EvalResult, an honest verdict."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommender.core.model import Model
from recommender.offline.evaluation import EvalResult
from recommender.offline.report import PLOTS, UserSums, bootstrap, by_history, hr_by_k, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ["live", "frozen", "popular", "recent"]
N_USERS, PER_USER = 60, 5
CHROMIUM = Path("/usr/bin/chromium")


def constructed() -> EvalResult:
    """Known answer on HR@5: live hits half the time, frozen as often on other events (not
    distinguishable), popular never (live beats it), recent always (live does not beat it)."""
    rows, users, seen = [], [], []
    for u in range(N_USERS):
        for i in range(PER_USER):
            live = (u * 3 + i) % 4  # ranks 0..3: hits at k=5, partial credit in MRR/NDCG
            live = live if (u + i) % 2 == 0 else 7  # half of them beyond k=5, within depth
            frozen = 1 if (u + i) % 2 == 1 else -1
            rows.append([live, frozen, -1, 0])
            users.append(u)
            seen.append(u % 9 + i * 6)  # spans 0-2 .. 21-50; nothing in 51+
    recommended = {
        m: {k: {f"i{j}" for j in range(k + n)} for k in (5, 10)} for n, m in enumerate(METHODS)
    }
    return EvalResult(
        ks=[5, 10],
        methods=list(METHODS),
        ranks=np.array(rows, dtype=np.int32),
        users=np.array(users, dtype=np.int32),
        seen=np.array(seen, dtype=np.int32),
        recommended=recommended,
        n_items=40,
        user_ids=[f"u{u}" for u in range(N_USERS)],
        depth=12,
    )


def random_result(seed: int = 3, n: int = 2000, n_users: int = 150) -> EvalResult:
    """Random ranks with misses, uneven users, three cut-offs."""
    rng = np.random.default_rng(seed)
    ranks = rng.integers(-1, 30, size=(n, 3)).astype(np.int32)
    ranks[rng.random((n, 3)) < 0.4] = -1
    users = np.sort(rng.integers(0, n_users, n)).astype(np.int32)
    ks = [1, 5, 20]
    return EvalResult(
        ks=ks,
        methods=["live", "popular", "recent"],
        ranks=ranks,
        users=users,
        seen=rng.integers(0, 80, n).astype(np.int32),
        recommended={m: {k: {"a", "b"} for k in ks} for m in ("live", "popular", "recent")},
        n_items=10,
        user_ids=[f"u{u}" for u in range(n_users)],
        depth=30,
    )


def model(info: dict[str, Any] | None = None) -> Model:
    z = np.zeros((1, 2), dtype=np.float32)
    one = np.zeros(1, dtype=np.float32)
    return Model("v-test-1", ["f"], ["i"], z, one, z, one, ["i"], info=info or {})


def trained_info() -> dict[str, Any]:
    curve = [
        {"epoch": e, "seconds": 0.5 * e, "train_hr@10": 0.4 * (1 - math.exp(-e / 3))}
        for e in range(1, 11)
    ]
    return {
        "train_config": {"no_components": 48, "loss": "warp"},
        "n_contexts": 999,
        "curve": curve,
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalResult]:
    out = tmp_path_factory.mktemp("report")
    result = constructed()
    summary = result.summary()
    summary["model_version"] = "v-test-1"
    path = write_report(out, result, summary, model(trained_info()), rounds=200, progress=False)
    assert path == out / "report.html"
    return out, result


def test_writes_html_json_and_valid_pngs_referenced_from_the_page(
    report: tuple[Path, EvalResult],
) -> None:
    out, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) > 5000, name  # a drawn plot, not an empty canvas
        assert f'src="{name}"' in page
    assert set(re.findall(r'src="([^"]*)"', page)) == set(PLOTS)
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert "<link" not in page and "<script" not in page


def test_page_shows_every_method_and_metric_value(report: tuple[Path, EvalResult]) -> None:
    out, result = report
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert "v-test-1" in page and "no_components" in page
    assert f"{result.n_predictions} predictions for {N_USERS} users" in page
    for method in result.methods:
        assert method in page
        for name, value in result.method_metrics(method).items():
            if name != "coverage":
                assert f"{value:.4f}" in page, (method, name)
    for word in ("bootstrap", "what zmot serves", "How to read this"):
        assert word in page


def test_metrics_json_has_the_summary_and_intervals_around_the_estimates(
    report: tuple[Path, EvalResult],
) -> None:
    out, result = report
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert doc["n_predictions"] == result.n_predictions == N_USERS * PER_USER
    assert doc["model_version"] == "v-test-1" and doc["main_k"] == 5
    assert doc["confidence"]["level"] == 0.95
    for method in result.methods:
        point = doc["methods"][method]
        assert set(doc["ci"][method]) == {
            f"{m}@{k}" for k in (5, 10) for m in ("hr", "mrr", "ndcg")
        }
        for metric, (low, high) in doc["ci"][method].items():
            assert low - 1e-12 <= point[metric] <= high + 1e-12, (method, metric)


def test_verdict_beats_does_not_beat_and_not_distinguishable(
    report: tuple[Path, EvalResult],
) -> None:
    out, _ = report
    doc = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    outcomes = {v["baseline"]: v["outcome"] for v in doc["verdict"]}
    assert outcomes == {
        "frozen": "not distinguishable",
        "popular": "beats",
        "recent": "does not beat",
    }
    assert all(v["metric"] == "hr@5" for v in doc["verdict"])
    page = html.unescape((out / "report.html").read_text(encoding="utf-8"))
    assert "live beats popular" in page
    assert "live does not beat recent" in page
    assert "live vs frozen on HR@5" in page and "Not distinguishable" in page
    assert "does not demonstrably beat: frozen, recent" in page


@pytest.mark.parametrize("result", [constructed(), random_result()], ids=["constructed", "random"])
def test_vectorised_metrics_equal_method_metrics_on_the_full_sample(result: EvalResult) -> None:
    sums = UserSums.of(result)
    full = sums.evaluate(np.ones((1, len(result.user_ids))))[0]
    boot = bootstrap(result, rounds=5)
    for j, method in enumerate(result.methods):
        expected = result.method_metrics(method)
        for i, metric in enumerate(sums.metrics):
            assert full[j, i] == pytest.approx(expected[metric], abs=1e-12)
            assert boot.estimate(method, metric) == pytest.approx(expected[metric], abs=1e-12)


def test_bootstrap_draws_the_same_users_as_the_reference_loop() -> None:
    result = random_result()
    boot = bootstrap(result, rounds=40, seed=7)
    for method, metric in (("live", "hr@5"), ("recent", "ndcg@20"), ("popular", "mrr@1")):
        slow = bootstrap_ci(result, method, metric, rounds=40, seed=7)
        assert boot.interval(method, metric) == pytest.approx(slow, abs=1e-12)


def test_hr_by_k_and_history_buckets() -> None:
    result = random_result()
    curves = hr_by_k(result, result.depth)
    for method, values in curves.items():
        assert len(values) == result.depth
        assert all(a <= b for a, b in zip(values, values[1:], strict=False))
        for k in result.ks:
            assert values[k - 1] == pytest.approx(result.method_metrics(method)[f"hr@{k}"])
    rows = by_history(constructed(), 5)
    assert [r["bucket"] for r in rows] == ["0-2", "3-5", "6-10", "11-20", "21-50"]  # no 51+
    assert sum(r["n"] for r in rows) == N_USERS * PER_USER


def test_no_predictions_and_no_curve_still_give_a_report(tmp_path: Path) -> None:
    empty = EvalResult(
        ks=[10],
        methods=["live", "popular"],
        ranks=np.zeros((0, 2), dtype=np.int32),
        users=np.zeros(0, dtype=np.int32),
        seen=np.zeros(0, dtype=np.int32),
        recommended={"live": {10: set()}, "popular": {10: set()}},
        n_items=0,
    )
    page = write_report(tmp_path, empty, empty.summary(), model(), rounds=10, progress=False)
    text = page.read_text(encoding="utf-8")
    assert "no training configuration" in text
    for name in PLOTS:
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    doc = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert doc["ci"]["live"]["hr@10"] == [None, None]
    assert doc["verdict"][0]["outcome"] == "not distinguishable"


def test_new_items_get_their_own_table_and_intervals(tmp_path: Path) -> None:
    from dataclasses import replace

    base = constructed()
    new = np.arange(base.n_predictions) % 3 == 0  # every third target new to its user
    shown = {m: {k: {"n1"} for k in base.ks} for m in base.methods}
    result = replace(base, new=new, recommended_new=shown)
    part = result.only_new()
    summary = result.summary()
    write_report(
        tmp_path, result, summary, model(), others={"new": part}, rounds=50, progress=False
    )
    page = html.unescape((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert f"Targets: every target ({result.n_predictions} predictions)" in page
    assert f"({part.n_predictions} predictions)" in page and "targets new to the shopper" in page
    for method in part.methods:
        assert f"{part.method_metrics(method)['mrr@5']:.4f}" in page, method
    doc = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert doc["by_items"]["new"]["n_predictions"] == part.n_predictions == int(new.sum())
    assert doc["by_items"]["new"]["methods"]["live"] == part.method_metrics("live")
    assert doc["by_items"]["any"]["ci"] == doc["ci"]
    low, high = doc["by_items"]["new"]["ci"]["live"]["hr@5"]
    assert low <= part.method_metrics("live")["hr@5"] <= high
    assert doc["by_items"]["new"]["methods"]["recent"]["coverage@5"] == 1 / result.n_items


def test_importing_the_report_module_does_not_import_matplotlib() -> None:
    code = "import sys, recommender.offline.report; sys.exit('matplotlib' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_report_renders_in_headless_chromium_with_every_image_loaded(
    report: tuple[Path, EvalResult], tmp_path: Path
) -> None:
    out, _ = report
    for name in PLOTS:
        shutil.copy(out / name, tmp_path / name)
    probe = (
        "<script>window.addEventListener('load', () => {const p = document.createElement('pre');"
        "p.id = 'zmot-check'; p.textContent = JSON.stringify([...document.images].map("
        "i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]));"
        "document.body.appendChild(p);});</script></body>"
    )
    page = (out / "report.html").read_text(encoding="utf-8").replace("</body>", probe)
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (tmp_path / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    found = re.search(r'<pre id="zmot-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    loaded = dict(json.loads(html.unescape(found.group(1))))
    assert loaded == {name: True for name in PLOTS}


def bootstrap_ci(
    result: EvalResult,
    method: str,
    metric: str,
    *,
    rounds: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Reference bootstrap: resample users one round at a time (slow, obviously right);
    the report's vectorised bootstrap must draw the same users and give the same interval."""
    n_users = len(result.user_ids)
    if n_users == 0 or result.n_predictions == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    rows_of = [np.flatnonzero(result.users == u) for u in range(n_users)]
    values = []
    for _ in range(rounds):
        picked = rng.integers(0, n_users, n_users)
        rows = np.concatenate([rows_of[u] for u in picked])
        values.append(result.method_metrics(method, rows)[metric])
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)
