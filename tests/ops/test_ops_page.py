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
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recommender.adapters.localstack import stop_child
from recommender.core.settings import Settings
from tests.api.support import MODEL_VERSION
from tests.ops.conftest import events, produce
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,1000",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    # Less of the browser's own background traffic (the page's is what the test judges).
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--no-pings",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
]


BROWSER_SERVICE_HOSTS = {"update.googleapis.com", "accounts.google.com", "clients2.google.com"}
"""Hosts Chromium itself calls (never the page); requests to them are refused by the proxy."""


def host_of(request_line: str) -> str:
    """The host of a proxy request line (``CONNECT host:443 ...`` or ``GET http://host/...``)."""
    target = request_line.split()[1]
    return target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium not found: `make system-deps` installs Debian's chromium")


class ProxyRecorder:
    """An HTTP proxy on loopback that refuses and records every request it is sent."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if line:
            self.requests.append(line.decode("latin-1").strip())
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> ProxyRecorder:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class DevTools:
    """A minimal DevTools protocol client for one page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.requests: list[str] = []
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif data.get("method") == "Network.requestWillBeSent":
                self.requests.append(data["params"]["request"]["url"])

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self.ws.send_json({"id": self._next, "method": method, "params": params})
        reply = await asyncio.wait_for(future, 30)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self._reader.cancel()


@asynccontextmanager
async def chromium(profile: Path, proxy_port: int) -> AsyncIterator[DevTools]:
    """Headless Chromium with an empty profile, all non-loopback traffic sent to the proxy."""
    proc = subprocess.Popen(
        [
            chromium_binary(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                try:
                    yield tools
                finally:
                    tools.close()
    finally:
        stop_child(proc, timeout_s=10.0)


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

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with ProxyRecorder() as proxy, chromium(profile, proxy.port) as page:
        await page.call("Network.enable")
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{api.url}/ops")
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
