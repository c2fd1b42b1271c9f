"""The ops page in headless Chromium against a running API, worker, Kafka and Redis: it draws
the lag chart and fills the numbers, and no request leaves 127.0.0.1.

Chromium is driven over the DevTools protocol (aiohttp's websocket client): every request the
page makes is recorded from ``Network.requestWillBeSent`` and must go to the API, and a local
proxy refuses and records any request that would go to another host (loopback is never
proxied; DNS is mapped to nothing too): only Chromium's own update/sign-in services may show up
there. The screenshot is saved to the test's tmp dir and, if ``ZMOT_SCREENSHOT_DIR`` is set, there.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recommender.core.settings import Settings
from tests.api.support import MODEL_VERSION
from tests.ops.conftest import events, produce
from tests.support.browser import BROWSER_SERVICE_HOSTS, host_of, page_at
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

PAGE_STATE = """JSON.stringify({
  updated: Number(document.body.dataset.updated),
  lines: [...document.querySelectorAll('#lag-chart polyline.lag-line')].map(
      (l) => [l.dataset.partition, l.getAttribute('points').trim().split(' ').length]),
  secondsLines: document.querySelectorAll('#lag-seconds-chart polyline.lag-line').length,
  rows: document.querySelectorAll('#partitions tbody tr').length,
  health: document.getElementById('health').textContent,
  ids: Object.fromEntries(['total-lag', 'max-lag-seconds', 'events-per-second', 'dlq-count',
      'freshness-p50', 'freshness-p99', 'latency-p50', 'latency-p99', 'model-version']
      .map((id) => [id, document.getElementById(id).textContent])),
})"""


async def test_ops_page_renders_offline_in_chromium(
    isolated: Settings,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
    api_server: Callable[..., ApiProcess],
    tmp_path: Path,
) -> None:
    settings = isolated.model_copy(update={"lag_refresh_s": 0.5})
    proc = worker(settings)
    await produce(settings, events(500))
    await caught_up(settings, proc)
    api = api_server(settings, worker_web_port=proc.settings.worker_web_port)
    async with aiohttp.ClientSession(trust_env=False) as session:
        for user in ("u-1", "u-2", "nobody"):
            url = f"{api.url}/v1/next-best-offer?user_id={user}&placement=home"
            async with session.get(url) as response:
                assert response.status == 200

    async with page_at(f"{api.url}/ops", tmp_path) as (page, proxy):
        deadline = time.monotonic() + 45
        while True:
            state = json.loads(await page.evaluate(PAGE_STATE) or "{}")
            lines = state.get("lines", [])
            if state.get("updated", 0) >= 3 and lines and all(n >= 2 for _, n in lines):
                break
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.5)
        dom = await page.evaluate("document.documentElement.outerHTML")
        shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        requests = list(page.requests)

    (tmp_path / "ops.html").write_text(dom)
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    (tmp_path / "ops.png").write_bytes(png)
    if os.environ.get("ZMOT_SCREENSHOT_DIR"):
        target = Path(os.environ["ZMOT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "ops-page.png").write_bytes(png)

    # The chart: one line per partition, in messages and in seconds, each with several points.
    assert sorted(int(p) for p, _ in state["lines"]) == list(range(settings.topic_partitions))
    assert state["secondsLines"] == settings.topic_partitions
    assert state["rows"] == settings.topic_partitions
    ids = state["ids"]
    assert ids["total-lag"] == "0"
    assert ids["max-lag-seconds"] == "0 s"
    assert ids["dlq-count"] == "0"
    assert ids["model-version"] == MODEL_VERSION
    for name in ("events-per-second", "freshness-p50", "freshness-p99", "latency-p50"):
        assert ids[name] not in ("", "-"), (name, ids)
    assert state["health"] == "healthy", state
    assert 'id="lag-chart"' in dom and "lag-line" in dom

    # Nothing but the API on 127.0.0.1 was asked for, and the proxy saw no request at all.
    assert requests, "DevTools recorded no request"
    outside = [u for u in requests if not u.startswith(f"{api.url}/")]
    assert outside == []
    assert f"{api.url}/ops/lag" in requests and f"{api.url}/ops/summary" in requests
    # Chromium's own services (component updater, sign-in, network time) still try to call
    # home despite the flags; the proxy refused them, so nothing left the machine. Anything
    # else reaching the proxy would have come from the page.
    page_traffic = [r for r in proxy.requests if host_of(r) not in BROWSER_SERVICE_HOSTS]
    assert page_traffic == [], proxy.requests
