"""Experiments on the real app: each answer names its experiment and arm, an arm's model
version and exploration are what serve it, the decision log records both, a bad file or an
arm whose model builds profiles differently stops the start."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from api.app import create_app
from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.redis_store import connect
from recommender.core.attribution import DecisionRecord
from recommender.core.errors import ConfigError
from recommender.core.model import Model
from recommender.core.profile import ProfileParams
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from tests.api.support import ServeFactory, serve
from tests.support.profiles import PutProfile, profile_of

pytestmark = pytest.mark.integration

V1, V2, V3 = "20261130T100000-aaaa1111", "20261130T110000-bbbb2222", "20261130T120000-cc33"


def experiments_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def settings(isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path) -> Settings:
    model_dir, catalog_path = model_files
    base = Model.load(model_dir)
    reg = Registry(tmp_path / "registry")
    reg.register(replace(base, version=V1))
    reg.register(replace(base, version=V2, item_biases=base.item_biases + 0.5))
    reg.register(replace(base, version=V3, profile_params=ProfileParams(half_life_s=60.0)))
    reg.activate(V1)
    path = experiments_file(
        tmp_path,
        f"""\
experiments:
  - name: ranker-v2
    salt: 7f3a
    placements: [home]
    arms:
      - {{name: control, share: 0.4}}
      - {{name: challenger, share: 0.3, model_version: {V2}}}
      - {{name: explore, share: 0.3, exploration: {{share: 1.0, method: epsilon}}}}
""",
    )
    return isolated.model_copy(
        update={
            "model_dir": tmp_path / "registry",
            "catalog_path": catalog_path,
            "experiments_path": path,
            "model_poll_s": 0.0,
        }
    )


async def test_answers_carry_experiment_and_arm_served_by_that_arm(
    settings: Settings,
    serve_app: ServeFactory,
    put_profile: PutProfile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = [f"u{i}" for i in range(60)]
    for user in users[:30]:  # half with a profile, half strangers (fallback answers)
        await put_profile(user, profile_of({"q:tv": 2.0, "cat:electronics.tv": 1.0}))
    async with serve_app(settings) as client:
        with caplog.at_level(logging.INFO, logger="zmot.decisions"):
            answers = [
                (
                    await client.get(
                        "/v1/next-best-offer", params={"user_id": u, "placement": "home"}
                    )
                ).json()
                for u in users
            ]
        again = (await client.post(
            "/v1/next-best-offer:batch", json={"user_ids": users, "placement": "home"}
        )).json()["results"]  # fmt: skip
        elsewhere = (
            await client.get("/v1/next-best-offer", params={"user_id": "u1", "placement": "pdp"})
        ).json()
    arms = Counter(a["arm"] for a in answers)
    assert set(arms) == {"control", "challenger", "explore"}, arms
    assert {a["experiment"] for a in answers} == {"ranker-v2"}
    assert any(a["fallback"] for a in answers) and any(not a["fallback"] for a in answers)
    for a in answers:
        assert a["model_version"] == (V2 if a["arm"] == "challenger" else V1)
        policies = {o["policy"] for o in a["offers"]}
        if a["arm"] == "explore" and not a["fallback"]:  # popular lists never explore
            assert policies == {"explore"}  # share 1.0: every slot explores
        else:
            assert policies <= {"greedy"}
    # the batch form assigns the same arms, the other placement is in no experiment
    assert [(b["user_id"], b["arm"]) for b in again] == [(a["user_id"], a["arm"]) for a in answers]
    assert (elsewhere["experiment"], elsewhere["arm"], elsewhere["model_version"]) == (
        None,
        None,
        V1,
    )
    logged = {
        r.getMessage().split()[1]: r.getMessage()
        for r in caplog.records
        if r.name == "zmot.decisions"
    }
    for a in answers:
        assert f"experiment=ranker-v2 arm={a['arm']} " in logged[a["decision_id"]]
    # each decision inside the experiment is kept for the worker's attribution
    client = connect(settings.redis_url)
    try:
        store = DecisionStore(client, settings.redis_prefix, 3600.0)
        for a in answers[:5]:
            raw = await client.get(store.record_key(a["decision_id"]))
            record = DecisionRecord.from_json(raw)
            assert (record.user_id, record.experiment, record.arm) == (
                a["user_id"],
                "ranker-v2",
                a["arm"],
            )
            assert {o: item for o, (item, _) in record.offers.items()} == {
                o["offer_id"]: o["item_id"] for o in a["offers"]
            }
        assert await client.get(store.record_key(elsewhere["decision_id"])) is None
    finally:
        await client.aclose()


async def test_a_bad_experiments_file_stops_the_start_naming_line_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    bad = experiments_file(
        tmp_path,
        "experiments:\n  - name: a\n    salt: s\n    arms:\n      - {name: c, share: 0.7}\n",
    )
    app = create_app(settings.model_copy(update={"experiments_path": bad}))
    with pytest.raises(ConfigError, match=r"experiments.yaml:5: experiments\[0\].arms: shares"):
        async with serve(app):
            pass


async def test_an_arm_whose_model_builds_profiles_differently_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    text = (
        "experiments:\n  - name: a\n    salt: s\n    arms:\n      - {name: c, share: 0.5}\n"
        f"      - {{name: d, share: 0.5, model_version: {V3}}}\n"
    )
    app = create_app(
        settings.model_copy(update={"experiments_path": experiments_file(tmp_path, text)})
    )
    with pytest.raises(ConfigError, match="arm 'd': model_version .* incompatible"):
        async with serve(app):
            pass


async def test_reload_reads_the_experiments_again(
    settings: Settings, serve_app: ServeFactory
) -> None:
    async with serve_app(settings) as client:
        before = (await client.get("/v1/next-best-offer", params={"user_id": "u1"})).json()
        assert before["experiment"] is None  # the file covers `home` only
        assert settings.experiments_path is not None
        settings.experiments_path.write_text(
            "experiments:\n  - name: all\n    salt: z\n    arms:\n      - {name: only, share: 1}\n"
        )
        assert (await client.post("/v1/admin/reload")).status_code == 200
        after = (await client.get("/v1/next-best-offer", params={"user_id": "u1"})).json()
        assert (after["experiment"], after["arm"]) == ("all", "only")
        settings.experiments_path.write_text("experiments:\n  - name: all\n")
        refused = await client.post("/v1/admin/reload")
        assert refused.status_code == 422
        assert "experiments.yaml:2: experiments[0].salt: missing" in refused.text
        still = (await client.get("/v1/next-best-offer", params={"user_id": "u1"})).json()
        assert still["arm"] == "only"
