"""The API's in-memory decision side: loaded once at start-up, offers reloaded on demand.

:func:`load_engine` reads model, catalog, offers and placements named by the settings and builds
the :class:`~recommender.core.arbitration.Arbiter`; :func:`reload_engine` swaps in offers and
placements read again, keeping model and catalog. Routes see only the :class:`Decider` surface,
so tests can hand the app a small fake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from recommender.core.arbitration import Arbiter, OfferRequest, RatingLike
from recommender.core.catalog import Catalog, load_catalog
from recommender.core.errors import ConfigError
from recommender.core.experiments import Assignment, Experiments, load_experiments
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog, catalog_offers, load_offer_catalog
from recommender.core.placements import Placements, load_placements
from recommender.core.profile import Profile
from recommender.core.registry import Compatibility, Located, Registry, compatibility, locate
from recommender.core.runtime import resolve
from recommender.core.scoring import Decision
from recommender.core.settings import Settings

logger = logging.getLogger("zmot.api")


class Decider(Protocol):
    """What the API asks of arbitration (:class:`~recommender.core.arbitration.Arbiter`)."""

    offers: OfferCatalog
    placements: Placements

    @property
    def version(self) -> str: ...

    def decide(self, profile: Profile | None, request: OfferRequest, now: float) -> Decision: ...

    def fallback(
        self,
        profile: Profile | None,
        request: OfferRequest,
        now: float,
        *,
        stage: str | None = None,
        note: str | None = None,
    ) -> Decision: ...

    def with_ratings(
        self, decision: Decision, ratings: Mapping[str, RatingLike], lang: str
    ) -> Decision: ...

    def with_offers(
        self, offers: OfferCatalog, placements: Placements | None = None
    ) -> Decider: ...


@dataclass(frozen=True)
class Engine:
    """Model version, catalog and the arbiter over the active offer catalog."""

    model_version: str
    catalog: Catalog
    arbiter: Decider
    half_life_s: float
    """The runtime's half-life (:func:`recommender.core.runtime.resolve`): the model's
    when it names one, which is what the worker decays profiles with."""
    located: Located | None = None
    """Where the model came from (None: handed in, e.g. by a test)."""
    model_meta: Mapping[str, Any] = field(default_factory=dict)
    """The model's runtime meta (feature config, profile math): what a new version must
    equal to be swapped in hot (:func:`recommender.core.registry.compatibility`)."""
    experiments: Experiments = field(default_factory=Experiments)
    arms: Mapping[tuple[str, str], Engine] = field(default_factory=dict)
    """(experiment, arm) -> the engine of an arm that changes something (its model version or
    exploration); arms that change nothing are served by this engine."""

    def for_user(self, user_id: str, placement: str | None) -> tuple[Engine, Assignment | None]:
        """The engine that answers this user for this placement, and their experiment arm."""
        assignment = self.experiments.assign(user_id, placement)
        if assignment is None:
            return self, None
        key = (assignment.experiment.name, assignment.arm.name)
        return self.arms.get(key, self), assignment

    @property
    def catalog_version(self) -> str:
        """Content hash of the active offer catalog: the one version that metrics, ``/readyz``,
        reload and every answer report."""
        return self.arbiter.version

    @property
    def n_offers(self) -> int:
        return len(self.arbiter.offers)


def load_offers(settings: Settings, catalog: Catalog) -> OfferCatalog:
    """The offer catalog named by the settings (every catalog item when no offer file)."""
    if settings.offers_path is not None:
        offers = load_offer_catalog(settings.offers_path, catalog if len(catalog) else None)
    else:
        offers = catalog_offers(catalog)
    if not len(offers):
        raise ConfigError(
            "no offers: set ZMOT_OFFERS_PATH to offers.jsonl or ZMOT_CATALOG_PATH to a catalog"
        )
    return offers


def load_engine(settings: Settings) -> Engine:
    """Model, catalog, offers, placements and the arbiter over them, from the settings.

    ``ZMOT_MODEL_DIR`` is one artifact or a registry (its ``current`` version):
    :func:`recommender.core.registry.locate`.
    """
    if settings.model_dir is None:
        raise ConfigError("no model: set ZMOT_MODEL_DIR to a directory written by `zmot train`")
    located = locate(settings.model_dir)
    catalog = load_catalog(settings.catalog_path)
    offers = load_offers(settings, catalog)
    placements = load_placements(settings.placements_path)
    engine = _with_model(settings, located, catalog, offers, placements)
    return with_experiments(engine, settings, load_experiments(settings.experiments_path))


def with_experiments(engine: Engine, settings: Settings, experiments: Experiments) -> Engine:
    """``engine`` serving ``experiments``: an engine per arm that changes something.

    An arm's model version is loaded from the registry (``ZMOT_MODEL_DIR``) and must build
    profiles as the served model does (they read the same live profiles); an arm's
    exploration replaces every placement's. :class:`ConfigError` names the arm otherwise.
    """
    base = replace(engine, experiments=Experiments(), arms={})
    arms: dict[tuple[str, str], Engine] = {}
    models: dict[str, Engine] = {engine.model_version: base}
    for experiment in experiments.items:
        for arm in experiment.arms:
            where = f"experiment {experiment.name!r}, arm {arm.name!r}"
            arm_engine = base
            if arm.model_version is not None and arm.model_version not in models:
                models[arm.model_version] = _arm_model(base, settings, arm.model_version, where)
            if arm.model_version is not None:
                arm_engine = models[arm.model_version]
            if arm.exploration is not None:
                decider = arm_engine.arbiter
                placements = decider.placements.with_exploration(arm.exploration)
                arm_engine = replace(
                    arm_engine, arbiter=decider.with_offers(decider.offers, placements)
                )
            if arm_engine is not base:
                arms[(experiment.name, arm.name)] = arm_engine
    if len(experiments):
        logger.info(
            "experiments: %s",
            "; ".join(
                f"{e.name} ({', '.join(f'{a.name} {a.share:g}' for a in e.arms)})"
                for e in experiments.items
            ),
        )
    return replace(engine, experiments=experiments, arms=arms)


def _arm_model(base: Engine, settings: Settings, version: str, where: str) -> Engine:
    """The engine of a registered model version for an experiment arm."""
    if settings.model_dir is None or base.located is None or not base.located.registry:
        raise ConfigError(
            f"{where}: model_version {version} needs ZMOT_MODEL_DIR to be a model registry"
        )
    path = Registry(settings.model_dir).path_of(version)
    model = Model.load(path)
    verdict = compatibility(base.model_meta, model.runtime_meta())
    if not verdict.compatible:
        raise ConfigError(f"{where}: model_version {version} is {verdict.describe()}")
    located = Located(path, version, registry=True)
    return _with_model(
        settings, located, base.catalog, base.arbiter.offers, base.arbiter.placements, model
    )


def _with_model(
    settings: Settings,
    located: Located,
    catalog: Catalog,
    offers: OfferCatalog,
    placements: Placements,
    model: Model | None = None,
) -> Engine:
    model = model or Model.load(located.path)
    meta = model.runtime_meta()
    runtime = resolve(settings, meta, where=f"model {located.path}")
    arbiter = Arbiter(model, catalog, offers, placements, runtime.arbitration)
    logger.info(
        "model %s loaded: %d items, %d offers (catalog %s), scored by %s",
        model.version,
        len(catalog),
        len(offers),
        offers.version,
        type(arbiter.scorer).__name__,
    )
    return Engine(model.version, catalog, arbiter, runtime.half_life_s, located, meta)


def swap_model(
    engine: Engine, settings: Settings, located: Located, *, profiles_rebuilt: bool = False
) -> tuple[Engine, Compatibility]:
    """The engine serving the model at ``located`` (catalog, offers and placements kept), and
    how its profile configs compare with the serving model's.

    An incompatible model would read live profiles built with other features: the engine
    returned is then the old one, unless ``profiles_rebuilt`` (it is to read a profile
    generation built its way). Loading reads files and builds tables: call it off the
    event loop.
    """
    candidate = Model.load(located.path)
    verdict = compatibility(engine.model_meta, candidate.runtime_meta())
    if not verdict.compatible and not profiles_rebuilt:
        return engine, verdict
    new = _with_model(
        settings,
        located,
        engine.catalog,
        engine.arbiter.offers,
        engine.arbiter.placements,
        candidate,
    )
    return with_experiments(new, settings, engine.experiments), verdict


def reload_engine(engine: Engine, settings: Settings) -> Engine:
    """The engine with offers, placements and experiments read again (model and catalog
    kept)."""
    offers = load_offers(settings, engine.catalog)
    arbiter = engine.arbiter.with_offers(offers, load_placements(settings.placements_path))
    experiments = load_experiments(settings.experiments_path)
    logger.info("offers reloaded: catalog %s, %d offers", offers.version, len(offers))
    return with_experiments(replace(engine, arbiter=arbiter), settings, experiments)
