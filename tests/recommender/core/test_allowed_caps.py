""":meth:`~recommender.core.arbitration.rules.Rules.allowed` with the table's caps gathered
once (``OfferTable.uncapped``) and the eligibility loop skipped when no offer has rules gives
what the former code gives (kept here as the reference): offers with and without eligibility
rules and caps, profiles with and without exposure, other exposure types, and a dismiss
limit of 0."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.arbitration.rules import Rules
from recommender.core.profile import Profile
from tests.recommender.core.arbitration_support import ITEMS, Exposed, arbiter

NOW = 1_770_000_000.0
FEATURES = ["cat:vip", "q:tv", "q:boots"]


def reference(rules: Rules, offers: Any, weights: Any, exposure: Any, now: float) -> Any:
    """``Rules.allowed`` as it was."""
    a = rules.table
    ok = np.ones(len(offers), dtype=bool)
    for j in np.flatnonzero(a.ruled[offers]).tolist():
        if not rules.specs[offers[j]].eligible(weights):
            ok[j] = False
    if exposure is None:
        return ok
    if type(exposure) is Profile:
        if rules.config.dismiss_limit <= 0:
            return np.zeros(len(offers), dtype=bool)
        ok &= ~(a.cap[offers] <= 0)
        touched = exposure.shown.keys() | exposure.dismissed.keys()
        if not touched:
            return ok
        position = {int(o): j for j, o in enumerate(offers.tolist())}
        check = [
            position[i] for offer_id in touched for i in a.by_id.get(offer_id, ()) if i in position
        ]
    else:
        check = list(range(len(offers)))
    for j in check:
        if ok[j] and rules.capped(rules.specs[offers[j]], exposure, now):
            ok[j] = False
    return ok


offer_rows = st.lists(
    st.fixed_dictionaries(
        {"item_id": st.sampled_from([i.item_id for i in ITEMS])},
        optional={
            "max_impressions": st.integers(1, 3),
            "eligibility": st.lists(
                st.one_of(
                    st.sampled_from(FEATURES).map(lambda f: {"requires_feature": f}),
                    st.sampled_from(FEATURES).map(lambda f: {"excludes_feature": f}),
                ),
                min_size=1,
                max_size=2,
            ),
        },
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(offer_rows, st.data())
def test_allowed_is_the_reference(rows: list[dict[str, Any]], data: Any) -> None:
    dismiss_limit = data.draw(st.sampled_from([0, 1, 3]))
    a = arbiter(
        [{"offer_id": f"o{n}", **r} for n, r in enumerate(rows)], dismiss_limit=dismiss_limit
    )
    rules = a.rules
    offers = np.array(
        sorted(data.draw(st.lists(st.integers(0, len(rows) - 1), unique=True))), dtype=np.intp
    )
    weights = {f: 0.5 for f in data.draw(st.lists(st.sampled_from(FEATURES), unique=True))}
    hour = int(NOW // 3600)
    shown = {
        f"o{n}": {hour: data.draw(st.integers(1, 4))}
        for n in data.draw(st.lists(st.integers(0, len(rows) - 1), unique=True))
    }
    exposures = [
        None,
        Profile(weights=dict(weights), landmark=NOW, last_ts=NOW),
        Profile(weights=dict(weights), landmark=NOW, last_ts=NOW, shown=shown, dismissed=shown),
        Exposed(weights=dict(weights), landmark=NOW, last_ts=NOW, shown_n={"o0": 2}),
    ]
    for exposure in exposures:
        got = rules.allowed(offers, weights, exposure, NOW)
        want = reference(rules, offers, weights, exposure, NOW)
        assert got.dtype == want.dtype and got.tolist() == want.tolist()
