"""The example shop (``/demo/shop``) in headless Chromium against the real API, worker, Kafka
and Redis, with the demo shop's trained model: the page shows offers on load; typing
"fernseher reparatur" into its search box and pressing Enter (real input events) makes a TV
offer appear with its reason; clicking it reaches the ops summary through Kafka and the worker.
and the ops page's offers table. Screenshots of both are saved to ``.zmot/artifacts/``
(``demo-shop.png``, ``demo-shop-ops.png``) and the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from recommender.core.settings import Settings
from tests.support.browser import BROWSER_SERVICE_HOSTS, DevTools, host_of, page_at
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / ".zmot" / "artifacts"
QUERY = "fernseher reparatur"

SHOP_STATE = """JSON.stringify({
  count: Number(document.getElementById('offers').dataset.count || -1),
  personalised: document.getElementById('status').dataset.personalised || '',
  status: document.getElementById('status').textContent,
  decision: document.getElementById('offers').dataset.decisionId || '',
  seen: document.querySelectorAll('.zmot-offer[data-seen=true]').length,
  clicked: document.getElementById('clicked').dataset.offerId || '',
  queued: zmot._queue().length,
  cards: [...document.querySelectorAll('.zmot-offer')].map((card) => ({
    offer: card.dataset.offerId,
    title: card.querySelector('h3').textContent,
    category: card.querySelector('.category').textContent,
    reasons: [...card.querySelectorAll('li')].map((li) => li.textContent),
  })),
})"""


async def state(page: DevTools) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(await page.evaluate(SHOP_STATE) or "{}")
    return found


async def wait_for(
    page: DevTools, done: Callable[[dict[str, Any]], bool], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        now = await state(page)
        if done(now):
            return now
        assert time.monotonic() < deadline, now
        await asyncio.sleep(0.25)


async def click_at(page: DevTools, selector: str) -> None:
    """A real mouse click (pressed, released) at the centre of the element."""
    box = await page.evaluate(
        f"JSON.stringify(document.querySelector({json.dumps(selector)}).getBoundingClientRect())"
    )
    rect = json.loads(box)
    x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    for kind in ("mousePressed", "mouseReleased"):
        await page.call(
            "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
        )


async def offer_stats(url: str, offer_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        async with session.get(f"{url}/ops/summary") as response:
            assert response.status == 200
            summary = await response.json()
    stats: dict[str, Any] = (summary.get("offers") or {}).get(offer_id, {})
    return stats


async def test_the_demo_shop_in_chromium_shows_a_tv_offer_for_a_repair_search_and_counts_the_click(
    isolated: Settings,
    demo_shop: Any,
    worker: Callable[..., Any],
    api_server: Callable[..., ApiProcess],
    tmp_path: Path,
) -> None:
    settings = demo_shop.serving(isolated)
    proc = worker(settings)
    api = api_server(
        settings,
        **demo_shop.files(),
        demo_shop=True,
        worker_web_port=proc.settings.worker_web_port,  # the ops page reads its metrics
    )

    async with page_at(f"{api.url}/demo/shop", tmp_path) as (page, proxy):
        first = await wait_for(page, lambda s: s.get("count", -1) > 0)
        assert first["personalised"] == "false", first  # a stranger: popular offers

        await page.evaluate("document.getElementById('search').focus()")
        await page.call("Input.insertText", text=QUERY)
        for kind in ("keyDown", "keyUp"):
            await page.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )
        shown = await wait_for(page, lambda s: s.get("personalised") == "true", timeout_s=90)
        top = shown["cards"][0]
        assert top["category"] == "electronics.tv", shown["cards"]
        assert any("searched" in reason for reason in top["reasons"]), top
        await wait_for(page, lambda s: s.get("seen", 0) > 0)  # impressions reported

        await click_at(page, f".zmot-offer[data-offer-id={json.dumps(top['offer'])}] h3")
        clicked = await wait_for(page, lambda s: s.get("clicked") == top["offer"])
        await wait_for(page, lambda s: s.get("queued") == 0)  # the click event was sent
        shot = await page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        anonymous = await page.evaluate("zmot.anonymousId()")

        # The click (and the impression) went page -> API -> Kafka -> worker -> ops summary,
        # and the ops page shows it in its offers table.
        deadline = time.monotonic() + 60
        while (stats := await offer_stats(api.url, top["offer"])).get("clicks", 0) < 1:
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(0.5)
        assert stats["impressions"] >= 1, stats
        await page.call("Page.navigate", url=f"{api.url}/ops")
        row = f"#offers tr[data-offer={json.dumps(top['offer'])}] td"
        cells: list[str] = []
        while len(cells) < 5:
            assert time.monotonic() < deadline, "the ops page shows no row for the offer"
            await asyncio.sleep(0.5)
            found = await page.evaluate(
                f"JSON.stringify([...document.querySelectorAll({json.dumps(row)})]"
                ".map((td) => td.textContent))"
            )
            cells = json.loads(found or "[]")
        ops_shot = await page.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True
        )
        requests = list(page.requests)

    assert cells[0] == top["offer"] and int(cells[2]) >= 1, cells  # offer, ..., clicks
    assert clicked["decision"], clicked
    for name, data in (("demo-shop.png", shot["data"]), ("demo-shop-ops.png", ops_shot["data"])):
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        (tmp_path / name).write_bytes(png)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / name).write_bytes(png)

    # The page used only the API, and the events carried the visitor's anonymous id.
    assert anonymous and anonymous.startswith("anon-")
    assert f"{api.url}/sdk/zmot.js" in requests
    assert any(u.startswith(f"{api.url}/v1/events") for u in requests)
    assert [u for u in requests if not u.startswith(f"{api.url}/")] == []
    assert [r for r in proxy.requests if host_of(r) not in BROWSER_SERVICE_HOSTS] == []
