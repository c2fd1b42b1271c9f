"""One settings object for every zmot process, read from ``ZMOT_*`` environment variables.

Every default works on a developer machine with ``zmot infra up``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """zmot configuration; each field is ``ZMOT_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ZMOT_", extra="ignore")

    # --- where things run -------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        description="Kafka bootstrap servers (host:port[,host:port]). `zmot infra up` starts a "
        "broker on the first one when it is on loopback.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How producer, worker and admin clients talk to Kafka. SASL_SSL (SCRAM or "
        "PLAIN over TLS) is for any network you do not own; SASL_PLAINTEXT sends the password "
        "in SCRAM's challenge form but the events in clear; PLAINTEXT only on loopback or a "
        "private network.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-256",
        description="SASL mechanism with SASL_*: SCRAM never sends the password itself; PLAIN "
        "does (use it only with SASL_SSL).",
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (SASL_* only).")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (SASL_* only); never logged or shown on /ops."
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL). Unset: "
        "the system's CAs.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL for profiles: redis://[:password@]host:port/db, rediss:// for "
        "TLS. `zmot infra up` starts redis-server on its port (with the URL's password as "
        "requirepass). The password is redacted wherever zmot logs the URL.",
    )
    redis_cluster: bool = Field(
        False,
        description="Talk to a Redis Cluster (redis-py's cluster client): ZMOT_REDIS_URL names "
        "any node and the client learns the others. Every key of one user shares a hash tag "
        "and every script touches one key, so nothing crosses slots. Off: one Redis server "
        "(a cluster node then answers with MOVED errors, which start-up reports).",
    )
    api_host: str = Field("127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the API binds to.")
    state_dir: Path = Field(
        Path(".zmot"),
        description="Local state of `zmot infra` (Kafka log dirs, Redis dir, pid and log files) "
        "and of `make demo`.",
    )

    # --- topics and keys --------------------------------------------------------------
    events_topic: str = Field("zmot.events", description="Topic of browsing events.")
    dlq_topic: str = Field(
        "zmot.events.dlq", description="Dead letters: original bytes plus the reason."
    )
    topic_partitions: int = Field(
        12,
        ge=1,
        description="Partitions of the events topic when zmot creates it: at most this many "
        "worker processes share the stream (each user stays in one partition, key = user_id). "
        "12 leaves room to add workers without re-partitioning; an existing topic keeps its "
        "count.",
    )
    decisions_topic: str = Field(
        "zmot.decisions",
        description="Where the API logs every decision (id, user, time, placement, "
        "experiment and arm, model version, each slot's offer, item, policy and logged "
        "probability): what `zmot ope --from-kafka` reads. A record holds the decisions of a "
        "few milliseconds as JSON lines, without a key (it mixes users). Sent without "
        "waiting for the broker (a lost log line never fails an answer; failures are "
        "counted). Empty: no decision log on Kafka.",
    )
    decisions_linger_ms: float = Field(
        5.0,
        ge=0.0,
        le=1000.0,
        description="How long the decision log waits after an answer for more answers to "
        "share its Kafka record (0: send at the next turn of the event loop). Longer: fewer, "
        "larger records and less CPU per answer; a decision reaches the topic that much later.",
    )
    consumer_group: str = Field(
        "zmot-worker", description="Kafka consumer group (and faust app id) of the worker."
    )
    redis_prefix: str = Field(
        "zmot:",
        description="Prefix of every Redis key zmot writes (lets stacks share a Redis). No "
        "'{' or '}': zmot puts its own hash tags in the keys (Redis Cluster slots).",
    )

    # --- profile math -----------------------------------------------------------------
    half_life_hours: float = Field(
        72.0,
        gt=0,
        description="Half-life of a profile feature's weight, in event time. Shorter follows "
        "intent faster, longer remembers more.",
    )
    profile_top_n: int = Field(
        64,
        ge=1,
        description="Features kept per profile (highest weight wins). Bounds memory per user; "
        "too small forgets older but still relevant interests.",
    )
    profile_ttl_days: float = Field(
        60.0,
        gt=0,
        description="A profile untouched for this long (wall clock) expires from Redis.",
    )
    profile_pack_level: int = Field(
        0,
        ge=0,
        le=9,
        description="zlib level of the compact profiles the worker writes to Redis: 0 stores "
        "them as they are; 1 deflates a 64-feature profile from about 860 to 760 bytes of Redis "
        "memory for about 28 us more worker CPU per profile written (twice the encoding); "
        "levels above 1 save little more "
        "(BENCHMARKS.md).",
    )
    purchase_memory: int = Field(
        32, ge=0, description="Most recent purchases remembered per profile (for exclusion)."
    )
    touch_memory: int = Field(
        20,
        ge=0,
        description="Items whose last-touch time each profile remembers (the newest ones): "
        "the hybrid ranker's 'how recently' signal.",
    )

    # --- feedback: exposure kept in each profile --------------------------------------
    cap_window_hours: float = Field(
        24.0,
        gt=0,
        description="Frequency caps count a user's impressions of an offer (any channel) over "
        "this event-time window, rounded out to whole hours. Longer spaces repeats further "
        "apart and keeps more exposure per profile; shorter lets an offer come back sooner.",
    )
    dismiss_window_hours: float = Field(
        168.0,
        gt=0,
        description="Dismissals of an offer suppress it for the user over this window (whole "
        "hours). Longer respects a 'no' for longer but also hides an offer whose context "
        "changed; profiles keep exposure for max(cap_window_hours, dismiss_window_hours).",
    )
    exposure_memory: int = Field(
        512,
        ge=1,
        description="Most (offer, hour) exposure entries kept per profile and kind; beyond it "
        "the oldest hours are dropped first. Bounds a profile hammered with many offers at the "
        "price of undercounting the oldest exposure of such a user.",
    )
    dedupe_window_hours: float = Field(
        24.0,
        ge=0,
        description="Idempotent ingestion: an event_id is remembered in its user's profile "
        "while its event time is within this many hours of the user's newest event, and an "
        "event with an id already applied counts once. Longer catches later retries at the "
        "price of profile memory; events without event_id are never deduplicated.",
    )
    dedupe_memory: int = Field(
        128,
        ge=0,
        description="Most event ids remembered per profile (oldest dropped first): bounds the "
        "profile of a user with many events (about 60 bytes each in Redis). A retry of more "
        "than this many events of one user within the window can count twice.",
    )

    # --- files ------------------------------------------------------------------------
    catalog_path: Path | None = Field(
        None,
        description="catalog.jsonl (item_id, title, category, brand, price, tags). The worker "
        "adds category and brand features from it; the API titles offers with it. An absent "
        "file is an empty catalog (with a warning) in both; a broken one stops either at start.",
    )
    offers_path: Path | None = Field(
        None,
        description="offers.jsonl (offer_id, item_id, title, value). Without it every catalog "
        "item is its own offer.",
    )
    model_dir: Path | None = Field(
        None,
        description="The model registry (`<version>/` folders and a `current` pointer, written "
        "by `zmot train` and `zmot model`), or one model artifact (a folder with meta.json, as "
        "`zmot train --out` writes).",
    )
    experiments_path: Path | None = Field(
        None,
        description="experiments.yaml: online experiments, their arms (model version, "
        "exploration) and traffic shares (README, Experiments). Read at start and by `POST "
        "/v1/admin/reload`; a bad file is refused with its line and field. Unset: none.",
    )
    attribution_hours: float = Field(
        24.0,
        gt=0,
        description="A cart or purchase of an offered item this long (event time) after the "
        "decision that offered it counts for that decision's experiment arm; decisions are "
        "kept in Redis this long plus an hour. Longer: more conversions attributed, more "
        "memory, more chance that something else caused them.",
    )
    retrain_max_drop: float = Field(
        0.0,
        description="`zmot retrain` activates a new model only if its HR@10 on a fresh time "
        "split is at least the served model's minus this (0: never worse; 0.005: tolerate "
        "half a point of noise; negative: must be better by that much).",
    )
    model_poll_s: float = Field(
        2.0,
        ge=0,
        description="How often the API and the worker look at the registry's `current` pointer "
        "(one stat call) to swap in a newly activated model, and the API at the offer, placement "
        "and experiment files to reload them when they changed (every process of `zmot api "
        "--workers N` does); 0: never (restart or `POST /v1/admin/model` / `reload` instead). "
        "Shorter: faster pick-up, more stat calls.",
    )

    rebuild_max_lag: int = Field(
        500,
        ge=0,
        description="A profile rebuild for an incompatible model (`zmot model activate V "
        "--rebuild`) becomes live once its consumer group is at most this many messages "
        "behind the end of the events topic. Nothing is lost either way (the same group goes "
        "on applying the rest); smaller: the new profiles are fresher at the switch, but a "
        "busy topic may keep the rebuild from ever getting that close.",
    )
    retired_profiles_ttl_s: float = Field(
        900.0,
        gt=0,
        description="After a profile rebuild became live, the old profiles expire within this "
        "many seconds (API processes that have not switched yet still read them meanwhile). "
        "Longer: more memory held twice; shorter than `ZMOT_MODEL_POLL_S` plus a batch: an API "
        "process may briefly find no profile.",
    )

    # --- serving ----------------------------------------------------------------------
    purchase_exclusion_days: float | None = Field(
        None,
        ge=0,
        description="An item the user bought is not offered again for this many days. Unset: "
        "30 days, unless the model's hybrid ranker found on its end-of-training moments that "
        "shoppers come back to what they bought (`zmot train` tests it; then 0, the ranker's "
        "`bought` signals order those items). Set it (e.g. 30) to never offer a bought item "
        "again whatever the data says; a bought item's category stays blocked for "
        "`ZMOT_SUBSTITUTE_EXCLUSION_DAYS` either way.",
    )
    recent_item_boost: float | None = Field(
        None,
        ge=0,
        description="How much the items a user already looked at are lifted above the model's "
        "picks (standardised score units; 0 = model only). Unset: the value stored with the "
        "model (chosen by evaluation).",
    )
    hybrid: Literal["auto", "off"] = Field(
        "auto",
        description="auto: when the model carries the hybrid ranker's tables (`zmot train "
        "--hybrid`), item scores and propensities come from it (candidates: the profile's own "
        "items, their co-visitation neighbours, the model's top, trending; a learned logistic "
        "order). It found the next item more often than the model alone on the shared samples, "
        "at the price of a candidate pass per request (BENCHMARKS.md); items that are no "
        "candidate get no propensity, so fewer offers clear the floor. off: the model and its "
        "calibration only, as for a model without tables.",
    )
    produce_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Longest wait of POST /v1/events for Kafka's acknowledgement (acks=all) "
        "before answering 503 with Retry-After and the events' ids. Shorter frees callers "
        "sooner during a broker outage; too short turns a slow broker into retries (which "
        "the event ids make harmless).",
    )
    retry_after_s: int = Field(
        5,
        ge=1,
        description="Retry-After of a 503 (Kafka or Redis unavailable): when a client should "
        "try again.",
    )
    default_timeout_ms: int = Field(
        500,
        ge=1,
        le=60_000,
        description="Deadline of a next-best-offer request that names no timeout_ms. Past it "
        "(Redis slow, stopped or unreachable) the answer is popular offers that pass every "
        "rule, flagged fallback with a note, never an error. Shorter protects the page; too "
        "short turns a busy Redis into impersonal answers.",
    )
    default_k: int = Field(3, ge=1, le=100, description="Offers returned when k is not given.")
    max_k: int = Field(100, ge=1, description="Largest k a caller may ask for.")

    # --- decisioning (arbitration, journey, placements) -------------------------------
    placements_path: Path | None = Field(
        None,
        description="placements.yaml: per placement k, allowed channels, context weights and "
        "exploration share (README). Unset: every placement gets the defaults, no exploration.",
    )
    relevance_floor: float = Field(
        0.02,
        ge=0,
        le=1,
        description="Least calibrated propensity an offer needs to be shown. Higher shows fewer "
        "but surer offers (and more empty answers); 0 always fills the slots.",
    )
    floor_fallback: bool = Field(
        False,
        description="When nothing clears the floor: popular offers flagged fallback (true) or "
        "an empty list (false). Empty nags less; popular fills a slot that must be filled.",
    )
    substitute_exclusion_days: float = Field(
        14.0,
        ge=0,
        description="After a purchase, items of the same category (direct substitutes) are not "
        "offered for this many days. Longer avoids offering a second TV; too long hides "
        "genuine repeat purchases.",
    )
    smot_window_days: float = Field(
        14.0,
        gt=0,
        description="A purchase this recent puts the user in the smot stage (first use), where "
        "complements and support offers are favoured.",
    )
    dismiss_limit: int = Field(
        3,
        ge=1,
        description="Dismissals of an offer within ZMOT_DISMISS_WINDOW_HOURS that suppress it for "
        "the user. Lower respects a 'no' sooner; higher tolerates accidental closes.",
    )
    complement_boost: float = Field(
        1.0,
        ge=0,
        description="How much the learned complement share (what follows a purchase or the "
        "page's item) multiplies an offer's context weight: x(1 + boost x share).",
    )
    stage_boost: float = Field(
        1.5,
        ge=0,
        description="Context-weight multiplier of offers that name the user's journey stage.",
    )

    # --- worker -----------------------------------------------------------------------
    batch_size: int = Field(
        2000,
        ge=1,
        description="Most events the worker takes per batch (one Redis read, and one write "
        "per ZMOT_WORKER_WRITE_CHUNK profiles); a fetch of fewer is processed at once, "
        "without waiting for more. Larger batches hold more of a user's events per profile "
        "read, decode, encode and write: draining a backlog of full profiles, 2000 vs 1000 "
        "gave ~1.2-1.3x the events per worker CPU-second, 4000 another 3-9% "
        "(BENCHMARKS.md); a bigger batch is also a bigger read (one MGET) and more to read "
        "again after a failure.",
    )
    worker_write_chunk: int = Field(
        1000,
        ge=1,
        description="Most profiles the worker writes per Redis script call and round trip "
        "(a batch's profiles go in several calls beyond it, each profile behind its own "
        "fence). Redis runs a script to its end before serving anyone else, about 5-8 us per "
        "profile of 64 features here: this bounds how long a batch's write holds the API's "
        "reads of the same Redis (~5-8 ms at 1000), whatever ZMOT_BATCH_SIZE is.",
    )
    worker_intake: Literal["agent", "fetch"] = Field(
        "fetch",
        description="How the worker takes its batches: 'fetch', whole fetches of faust's "
        "consumer (stream/intake.py: ~20-30k events/s per process here); 'agent', a faust "
        "agent's take_events, faust's own per-message stream (~8-17k events/s: each message "
        "goes through faust's conductor, a queue and the agent's stream). Both keep faust's "
        "rebalances, acks after the write and commits.",
    )
    worker_profile_cache: int = Field(
        10_000,
        ge=0,
        description="Profiles the worker keeps decoded after writing them, reused when Redis "
        "still holds exactly the value written (users active across batches cost one decode); "
        "about 4-8 KiB each; 0 turns it off.",
    )
    batch_timeout_s: float = Field(
        0.2,
        gt=0,
        description="Longest wait to fill a batch of faust's take_events: the agent intake "
        "(ZMOT_WORKER_INTAKE=agent) and the benchmarks' baseline agents; the fetch intake "
        "processes each fetch at once.",
    )
    worker_session_timeout_s: float = Field(
        10.0,
        ge=6.0,
        le=90.0,
        description="Kafka consumer session timeout of the worker: a worker that died without "
        "leaving the group (kill -9, a lost machine) keeps its partitions this long before "
        "another member (or its own restart without ZMOT_WORKER_INSTANCE_ID) gets them. "
        "Shorter recovers sooner; too short for the network or for long GC pauses makes "
        "healthy workers lose their partitions. The broker's group.min.session.timeout.ms "
        "(6 s by default) is the floor.",
    )
    worker_instance_id: str | None = Field(
        None,
        description="Static group membership (Kafka's group.instance.id): a worker restarted "
        "with the same id takes its partitions back at once, without waiting out its old "
        "session or rebalancing the others. Must be unique per running worker (a second "
        "worker with the same id fences the first out); unset: dynamic membership.",
    )
    worker_web_port: int = Field(
        6066, ge=1, le=65535, description="Port of the worker's own web server (metrics)."
    )
    worker_web_host: str = Field(
        "127.0.0.1",
        description="Address the worker's web server (/metrics) binds to. Loopback by default; "
        "0.0.0.0 only inside a container network, where Prometheus scrapes it.",
    )

    # --- security and privacy ---------------------------------------------------------
    api_keys_file: Path | None = Field(
        None,
        description="YAML file of API keys (SHA-256 of each key, its scopes, origins, event "
        "types, reasons and rate; `zmot keys create`). Unset: the API is open, which it allows "
        "only on a loopback address (or with ZMOT_ALLOW_OPEN=true). Re-read within seconds of "
        "a change, without a restart.",
    )
    allow_open: bool = Field(
        False,
        description="Serve without keys on a non-loopback address (anyone who reaches the port "
        "can read profiles and write events). Only behind a gateway that authenticates.",
    )
    sdk_path: Path | None = Field(
        None,
        description="The built browser script served at /sdk/zmot.js (unset: clients/js/dist/"
        "zmot.js of the checkout the API runs from; the Docker image sets its copy).",
    )
    demo_shop: bool = Field(
        False,
        description="Serve the example shop page at /demo/shop (`zmot demo` turns it on). The "
        "page grants the tracker consent itself, as a demo may and a real shop must not.",
    )
    default_consent: Literal["granted", "denied"] = Field(
        "granted",
        description="Profiling consent of a person without a recorded choice (PUT "
        "/v1/users/{id}/consent). denied: only people who opted in get a profile; everyone "
        "else's events are counted and dropped and their offers are not personalised.",
    )
    dlq_retention_days: float = Field(
        7.0,
        gt=0,
        description="Retention of the dead-letter topic, set when zmot creates it (`zmot infra "
        "up`, the worker, docker compose). Dead letters hold the original event bytes, user id "
        "included, and erasure cannot reach into Kafka: shorter keeps less personal data, "
        "longer leaves more time to inspect and replay bad events.",
    )
    api_concurrency: int = Field(
        1000,
        ge=1,
        description="Connections and tasks uvicorn serves at once per process; beyond it new "
        "requests get a 503 instead of queueing without bound.",
    )
    api_shutdown_timeout_s: int = Field(
        10,
        ge=1,
        description="How long a stopping API process waits for requests in flight.",
    )

    # --- operations -------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines of worker and API: text for people, json (one object per line, "
        "topic/partition/offset on stream errors) for log shippers.",
    )
    worker_metrics_url: str | None = Field(
        None,
        description="Where the API's ops page reads the worker's metrics (freshness, events/s). "
        "Unset: http://127.0.0.1:<ZMOT_WORKER_WEB_PORT>/metrics.",
    )
    lag_refresh_s: float = Field(
        5.0,
        gt=0,
        description="How often the worker reads its consumer lag from Kafka, and how long the "
        "API reuses a lag reading. Shorter is fresher; each read is a few Kafka requests.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if urlparse(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"expected a redis:// URL, got {value!r}")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _check_redis_prefix(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                f"no '{{' or '}}' in the key prefix, got {value!r}: a brace would take the "
                "hash tag zmot puts in every key (the Redis Cluster slot of a user's keys)"
            )
        return value

    @model_validator(mode="after")
    def _check_sasl(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (self.kafka_sasl_username is None or self.kafka_sasl_password is None):
            raise ValueError(
                f"ZMOT_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "ZMOT_KAFKA_SASL_USERNAME and ZMOT_KAFKA_SASL_PASSWORD"
            )
        return self

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        """Host and port of the first bootstrap server."""
        host, _, port = self.kafka_bootstrap.split(",")[0].strip().rpartition(":")
        return host, int(port)

    @property
    def redis_host_port(self) -> tuple[str, int]:
        """Host and port of the Redis URL."""
        parsed = urlparse(self.redis_url)
        return parsed.hostname or "127.0.0.1", parsed.port or 6379

    @property
    def dlq_retention_ms(self) -> int:
        return int(self.dlq_retention_days * 86_400_000)

    @property
    def half_life_s(self) -> float:
        return self.half_life_hours * 3600.0

    @property
    def worker_metrics_address(self) -> str:
        """URL of the worker's Prometheus metrics, as the API reads them."""
        return self.worker_metrics_url or f"http://127.0.0.1:{self.worker_web_port}/metrics"

    def to_env(self) -> dict[str, str]:
        """``ZMOT_*`` variables that rebuild these settings in another process."""
        env = {
            f"ZMOT_{name.upper()}": str(value)
            for name, value in self.model_dump(mode="json").items()
            if value is not None
        }
        if self.kafka_sasl_password is not None:  # dumped as '**********'
            env["ZMOT_KAFKA_SASL_PASSWORD"] = self.kafka_sasl_password.get_secret_value()
        return env


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost): where the API may
    serve without keys, and where ``zmot infra`` manages Kafka and Redis."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs, errors and the ops page)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    user = parsed.username or ""
    host = parsed.netloc.rpartition("@")[2]
    return parsed._replace(netloc=f"{user}:***@{host}").geturl()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
