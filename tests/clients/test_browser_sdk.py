"""The browser SDK (``clients/js``): its node tests pass, the committed build is what
``build.mjs`` makes of the source, and the API serves it at ``/sdk/zmot.js``; the example shop
page exists only in demo mode."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from api.app import create_app
from api.routes.sdk import SDK_FILE
from recommender.core.settings import Settings
from tests.api.support import serve, write_model

JS = Path(__file__).resolve().parents[2] / "clients" / "js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node (18 or later) is needed for the browser SDK's tests")
    return found


def test_the_trackers_node_tests_pass() -> None:
    done = subprocess.run(
        [node(), "--test", "test/"], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_the_committed_build_is_the_build_of_the_source(tmp_path: Path) -> None:
    copy = tmp_path / "js"
    shutil.copytree(JS, copy, ignore=shutil.ignore_patterns("dist", "node_modules"))
    done = subprocess.run(
        [node(), "build.mjs"], cwd=copy, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    built = (copy / "dist" / "zmot.js").read_text(encoding="utf-8")
    assert built == SDK_FILE.read_text(encoding="utf-8"), "run `node clients/js/build.mjs`"
    # The IIFE is a script, not a module: nothing exported, everything inside one function.
    assert "export " not in built.split("*/", 1)[1].replace("// ", "")
    assert built.rstrip().endswith("})();")


@pytest.mark.integration
async def test_the_api_serves_the_sdk_and_the_shop_only_in_demo_mode(
    isolated: Settings, tmp_path: Path
) -> None:
    model_dir, catalog_path = write_model(tmp_path)
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    async with serve(create_app(settings)) as client:
        script = await client.get("/sdk/zmot.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.content == SDK_FILE.read_bytes()
        assert (await client.get("/demo/shop")).status_code == 404
    copy = tmp_path / "zmot.js"
    copy.write_text("/* an installed copy */", encoding="utf-8")
    installed = settings.model_copy(update={"sdk_path": copy})
    async with serve(create_app(installed)) as client:
        assert (await client.get("/sdk/zmot.js")).text == "/* an installed copy */"
    missing = settings.model_copy(update={"sdk_path": tmp_path / "none.js"})
    async with serve(create_app(missing)) as client:
        gone = await client.get("/sdk/zmot.js")
        assert gone.status_code == 404 and "none.js" in gone.json()["detail"]
    demo = settings.model_copy(update={"demo_shop": True})
    async with serve(create_app(demo)) as client:
        page = await client.get("/demo/shop")
        assert page.status_code == 200
        assert '<script src="/sdk/zmot.js"></script>' in page.text
        assert "grants consent to profiling itself" in page.text
