"""The models a serving process answers with: :class:`ModelRegistry` follows ``models.v1`` and
hot-swaps verified snapshots in.

For every message of ``models.v1`` (a consumer group of its own per serving process, read from
the beginning, so the history is rebuilt on every start): **verify** the artifact with the shared
HMAC key (:func:`app.learners.artifact.verify`: framing, signature and SHA-256 *before* the payload
is unpickled); **check** that the message key names the model, that the feature spec is the one
this build computes and that the version is newer than any seen for that name; **warm up** (one
prediction on a canned example must be a probability); **swap**. Any failure rejects the artifact:
logged, counted (``tributary_model_artifacts_rejected_total{reason}``), kept in the recent
rejections; the active model keeps serving.

The swap: the active models are an immutable snapshot (a fresh ``dict`` of frozen
:class:`ActiveModel` per change) that a writer replaces with a single assignment, under a lock
only writers take. A request reads :meth:`ModelRegistry.active` **once** and predicts with that
object to the end, so it finishes on the model it started with; readers never lock.

Rollback: :meth:`ModelRegistry.activate` makes any version in the (bounded) history active.
Activating one older than the newest *pins* the model: later snapshots are verified and kept but
not activated until an admin activates the newest again (roll forward), which unpins it.

>>> from app.learners.artifact import sign
>>> from app.learners.pipelines import build
>>> key = b"k" * 32
>>> reg = ModelRegistry(key=key, topic="models.v1")
>>> reg.active("ctr") is None
True
>>> def blob(v, lr=0.01):
...     return sign(build("logreg", lr=lr), key=key, model_name="ctr", kind="river:logreg", version=v)
>>> reg.handle(blob(1), key=b"ctr"), reg.handle(blob(2), key=b"ctr")
('activated', 'activated')
>>> reg.handle(blob(2), key=b"ctr"), reg.handle(blob(1, lr=0.5), key=b"ctr"), reg.handle(b"junk", key=b"ctr")
('duplicate', 'rejected:stale_version', 'rejected:corrupt')
>>> reg.active("ctr").version, reg.predict_one(reg.active("ctr"), {"device": "mobile"})
(2, 0.5)
>>> reg.activate("ctr", 1).version, reg.pinned("ctr"), reg.handle(blob(3), key=b"ctr")
(1, True, 'stored')
>>> reg.activate("ctr", 3).version, reg.pinned("ctr")
(3, False)
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.features import FEATURE_SPEC_VERSION, features
from app.learners.artifact import MIN_KEY_BYTES, Artifact, ArtifactError, ArtifactHeader, verify

log = logging.getLogger(__name__)

__all__ = ["ActiveModel", "ModelRegistry", "ModelVersion", "UnknownModel", "WARMUP_EXAMPLE", "p_click", "reason_of"]

MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # artifacts exceed Kafka's 1 MB default (the learner allows 32 MB)
#: The canned impression every new model must answer before it is swapped in.
WARMUP_EXAMPLE: dict[str, Any] = {
    "event_id": "warmup", "event_time": 1_795_700_000_000, "user_id": "u-warmup", "session_id": "s-warmup",
    "item_id": "i-warmup", "category": "c-warmup", "country": "US", "device": "mobile", "price": 9.99,
    "features": {"quality": 0.5, "rank": 3}, "context": {"user_recent": 2, "item_recent": 5},
}  # fmt: skip
_REASONS = (("unsigned", "unsigned"), ("bad signature", "bad_signature"),
            ("unsupported artifact format", "unsupported_format"), ("payload does not load", "unloadable"))  # fmt: skip


def reason_of(exc: ArtifactError) -> str:
    """A short, bounded label for a rejection (the Prometheus label; the message is logged).

    >>> reason_of(ArtifactError("bad signature: wrong key")), reason_of(ArtifactError("truncated artifact"))
    ('bad_signature', 'corrupt')
    """
    msg = str(exc)  # "corrupt": bad magic, truncated, malformed, sha256 or format mismatch
    return next((label for prefix, label in _REASONS if msg.startswith(prefix)), "corrupt")


class UnknownModel(LookupError):
    """No such model name, or no such version of it in the history."""


class _Rejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ModelVersion:
    """One verified version of a model: its header, the loaded model, and when it arrived."""

    header: ArtifactHeader
    model: Any
    received_at: int  # ms: when serving read it from models.v1
    message_timestamp: int | None = None  # ms: the models.v1 record's timestamp

    @property
    def version(self) -> int:
        return self.header.version

    def describe(self) -> dict[str, Any]:
        h = self.header
        return {
            "version": h.version, "kind": h.kind, "trained_until_watermark": h.trained_until_watermark,
            "metrics": h.metrics, "examples_seen": h.examples_seen, "created_at": h.created_at,
            "sha256": h.payload_sha256, "kafka_topic": h.kafka_topic,
            "kafka_offsets": {str(p): o for p, o in h.kafka_offsets.items()},
            "feature_spec_version": h.feature_spec_version, "received_at": self.received_at,
        }  # fmt: skip


@dataclass(frozen=True)
class ActiveModel:
    """What a request reads once and predicts with; immutable."""

    name: str
    entry: ModelVersion
    activated_at: int  # ms
    cause: str  # "stream" (newest snapshot) | "admin" (activate)

    @property
    def version(self) -> int:
        return self.entry.header.version


def p_click(model: Any, x: Mapping[str, float]) -> float:
    """P(click) of feature dict ``x``: river classifiers (``predict_proba_one``) for now."""
    out = model.predict_proba_one(x)
    p = out.get(True)
    return float(out.get(1, 0.0) if p is None else p)


@dataclass
class _Line:  # everything about one model name; writers only, under the lock
    history: deque  # of ModelVersion, oldest first
    newest: int = 0  # highest version ever accepted (never decreases)
    pinned: bool = False


class ModelRegistry:
    """Follows ``models.v1``; verified snapshots are warmed up and swapped in atomically.

    ``settings`` gives the Kafka bootstrap, the topic (``settings.topics.models``) and the key
    (``settings.model_hmac_key``); ``key`` and ``topic`` override them. ``history_size`` versions
    are kept per model name, with their loaded models (instant rollback). ``default_model`` is
    the model a request that names none gets. ``metrics``: a :class:`serving.metrics.ServingMetrics`.
    """

    def __init__(
        self, settings=None, *, key: bytes | None = None, topic: str | None = None, history_size: int = 10,
        default_model: str = "ctr-online", metrics=None, poll_timeout_s: float = 0.2,
        warmup_example: Mapping[str, Any] | None = None,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:  # fmt: skip
        key = key if key is not None else (settings.model_hmac_key if settings is not None else "").encode()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the model HMAC key must be at least {MIN_KEY_BYTES} bytes (TRIBUTARY_MODEL_HMAC_KEY)")
        if topic is None and settings is None:
            raise ValueError("give settings or topic")
        self.settings, self.topic, self._key = settings, topic or settings.topics.models, bytes(key)
        self.history_size, self.default_model, self.metrics = max(1, int(history_size)), default_model, metrics
        self.poll_timeout_s, self.wall_clock_ms = poll_timeout_s, wall_clock_ms
        self.warmup_example = dict(warmup_example or WARMUP_EXAMPLE)
        self._lock = threading.Lock()  # writers only: stream thread and admin activations
        self._active: dict[str, ActiveModel] = {}  # replaced, never mutated
        self._lines: dict[str, _Line] = {}
        self.rejections: deque[dict[str, Any]] = deque(maxlen=50)
        self.rejected = Counter()
        self.activations: deque[dict[str, Any]] = deque(maxlen=1000)  # for freshness measurements
        self.caught_up = threading.Event()  # set once the history present at start was read
        self._stop, self._thread = threading.Event(), None
        self._group = f"tributary-serving-models-{uuid.uuid4().hex[:12]}"  # one per process: reads everything
        self._positions: dict[int, int] = {}  # partition -> next offset: a reconnect resumes there

    def active(self, name: str | None = None) -> ActiveModel | None:
        """The active model called ``name`` (default: :attr:`default_model`, or the only one)."""
        snapshot = self._active
        if name is not None:
            return snapshot.get(name)
        found = snapshot.get(self.default_model)
        if found is None and len(snapshot) == 1:
            (found,) = snapshot.values()
        return found

    def active_models(self) -> dict[str, ActiveModel]:
        return self._active  # the current snapshot: never mutated

    @staticmethod
    def predict_one(model: ActiveModel, example: Mapping[str, Any]) -> float:
        """P(click) of one impression with ``model`` (features by :func:`app.features.features`)."""
        return p_click(model.entry.model, features(example))

    def pinned(self, name: str) -> bool:
        line = self._lines.get(name)
        return bool(line and line.pinned)

    def describe(self) -> dict[str, Any]:
        """``GET /v1/models``: per name, the active version and the history."""
        with self._lock:
            out = {}
            for name, line in sorted(self._lines.items()):
                act = self._active.get(name)
                out[name] = {
                    "active": act and {**act.entry.describe(), "activated_at": act.activated_at, "cause": act.cause},
                    "newest_version": line.newest, "pinned": line.pinned,
                    "history": [{**e.describe(), "active": act is not None and e is act.entry}
                                for e in reversed(line.history)],
                }  # fmt: skip
            return {
                "models": out, "default_model": self.default_model, "topic": self.topic,
                "caught_up": self.caught_up.is_set(), "rejected": dict(self.rejected),
                "recent_rejections": list(self.rejections)[-10:],
            }  # fmt: skip

    def handle(self, blob: bytes | None, *, key: bytes | None = None, partition: int | None = None,
               offset: int | None = None, timestamp: int | None = None) -> str:  # fmt: skip
        """Process one ``models.v1`` message; returns ``activated``, ``stored`` (pinned),
        ``duplicate`` or ``rejected:<reason>``. Never raises for a bad artifact."""
        received = self.wall_clock_ms()
        where = f"{self.topic}[{partition}]@{offset}" if partition is not None else self.topic
        name_hint = key.decode(errors="replace") if key else "?"
        try:
            if blob is None:
                raise _Rejected("tombstone", "tombstone (unsigned deletion) ignored")
            t0 = time.perf_counter()
            try:
                art = verify(blob, self._key)  # authenticates before anything is unpickled
            except ArtifactError as exc:
                raise _Rejected(reason_of(exc), str(exc)) from None
            entry = self._check(art, key, received, timestamp)
            self._warm_up(art)
            outcome = self._install(entry)
            if self.metrics is not None:
                self.metrics.model_load_seconds.observe(time.perf_counter() - t0)
            if outcome == "activated":
                log.info("model %s v%d active (%s)", entry.header.model_name, entry.version, where)
            return outcome
        except _Rejected as rej:
            if rej.reason == "duplicate":
                return "duplicate"
            self._reject(name_hint, rej.reason, str(rej), where, received)
            return f"rejected:{rej.reason}"
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong, the active model keeps serving
            log.exception("model artifact %s: unexpected error", where)
            self._reject(name_hint, "error", repr(exc), where, received)
            return "rejected:error"

    def _check(self, art: Artifact, key: bytes | None, received: int, timestamp: int | None) -> ModelVersion:
        h = art.header
        if key is not None and key != h.model_name.encode():
            raise _Rejected("name_mismatch", f"message key {key!r} but artifact of model {h.model_name!r}")
        if h.feature_spec_version != FEATURE_SPEC_VERSION:
            msg = f"trained with feature spec {h.feature_spec_version}, this build computes {FEATURE_SPEC_VERSION}"
            raise _Rejected("feature_spec", msg)
        if h.payload_encoding != "pickle":
            raise _Rejected("unsupported_kind", f"no loader for a {h.payload_encoding!r} payload of kind {h.kind!r}")
        line = self._lines.get(h.model_name)
        if line is not None and h.version <= line.newest:
            same = next((e for e in line.history if e.version == h.version), None)
            if same is not None and same.header.payload_sha256 == h.payload_sha256:
                raise _Rejected("duplicate", "already have it")
            raise _Rejected("stale_version", f"version {h.version} is not newer than v{line.newest}")
        return ModelVersion(header=h, model=art.model, received_at=received, message_timestamp=timestamp)

    def _warm_up(self, art: Artifact) -> None:
        try:
            p = p_click(art.model, features(self.warmup_example))
        except Exception as exc:  # noqa: BLE001 - any failure of the new model rejects it
            raise _Rejected("warmup_failed", f"warm-up prediction failed: {exc!r}") from None
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise _Rejected("warmup_failed", f"warm-up prediction {p!r} is not a probability")

    def _install(self, entry: ModelVersion) -> str:
        name = entry.header.model_name
        with self._lock:
            line = self._lines.get(name)
            if line is None:
                line = self._lines[name] = _Line(history=deque(maxlen=self.history_size))
            if entry.version <= line.newest:  # an admin or another writer got there first
                raise _Rejected("stale_version", f"version {entry.version} is not newer than v{line.newest}")
            line.history.append(entry)
            line.newest = entry.version
            if line.pinned:
                log.info("model %s v%d stored, not activated: pinned by an admin", name, entry.version)
                return "stored"
            self._swap(name, entry, "stream")
            return "activated"

    def _swap(self, name: str, entry: ModelVersion, cause: str) -> ActiveModel:
        """Under ``self._lock``: the one reference assignment that changes what requests see."""
        now = self.wall_clock_ms()
        act = ActiveModel(name=name, entry=entry, activated_at=now, cause=cause)
        self._active = {**self._active, name: act}
        self.activations.append({
            "model": name, "version": entry.version, "cause": cause, "activated_at": now,
            "received_at": entry.received_at, "message_timestamp": entry.message_timestamp,
            "created_at": entry.header.created_at, "kafka_offsets": dict(entry.header.kafka_offsets),
            "kafka_topic": entry.header.kafka_topic,
        })  # fmt: skip
        if self.metrics is not None:
            self.metrics.model_activations.labels(name, cause).inc()
            self.metrics.model_active_version.labels(name).set(entry.version)
        return act

    def activate(self, name: str, version: int) -> ActiveModel:
        """Admin: make ``version`` of ``name`` active (rollback or roll forward). Activating an
        older version than the newest pins the model; activating the newest unpins it."""
        with self._lock:
            line = self._lines.get(name)
            if line is None:
                raise UnknownModel(f"unknown model {name!r}")
            entry = next((e for e in line.history if e.version == version), None)
            if entry is None:
                kept = [e.version for e in line.history]
                raise UnknownModel(f"model {name!r} has no version {version} in its history (kept: {kept})")
            line.pinned = version < line.newest  # (the entry was warmed up when it arrived)
            act = self._swap(name, entry, "admin")
        log.warning("admin activated %s v%d%s", name, version, " (pinned)" if line.pinned else "")
        return act

    def _reject(self, name: str, reason: str, message: str, where: str, at: int) -> None:
        with self._lock:  # describe() copies them under the lock
            self.rejected[reason] += 1
            self.rejections.append({"model": name, "reason": reason, "message": message, "where": where, "at": at})
        if self.metrics is not None:
            self.metrics.model_rejected.labels(reason).inc()
        log.warning("rejected model artifact %s for %r: %s (%s); the active model keeps serving", where, name, reason, message)

    def start(self) -> None:
        if self.alive:
            return
        if self.settings is None:
            raise RuntimeError("start() needs settings (Kafka bootstrap)")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-registry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    alive = property(lambda self: self._thread is not None and self._thread.is_alive())

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException

        from adapters.kafka_io import consumer

        conf = {"fetch.message.max.bytes": MAX_MESSAGE_BYTES, "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
                "topic.metadata.refresh.interval.ms": 10_000, "fetch.wait.max.ms": 100}  # fmt: skip
        backoff = 0.5
        while not self._stop.is_set():
            c = None
            try:
                c = consumer(self.settings.kafka_bootstrap, self._group, enable_partition_eof=True, **conf)
                eof: set[int] = set()
                assigned: set[int] = set()

                def on_assign(cons, partitions, assigned=assigned):
                    for tp in partitions:  # never the group's offsets: this process's own position
                        tp.offset = self._positions.get(tp.partition, OFFSET_BEGINNING)
                    assigned.update(tp.partition for tp in partitions)
                    cons.assign(partitions)

                c.subscribe([self.topic], on_assign=on_assign)
                while not self._stop.is_set():
                    msg = c.poll(self.poll_timeout_s)
                    if msg is None:
                        continue
                    err = msg.error()
                    if err is None:
                        self._positions[msg.partition()] = msg.offset() + 1
                        ts_type, ts = msg.timestamp()
                        self.handle(msg.value(), key=msg.key(), partition=msg.partition(), offset=msg.offset(),
                                    timestamp=ts if ts_type != 0 else None)  # fmt: skip
                        backoff = 0.5
                    elif err.code() == KafkaError._PARTITION_EOF:
                        eof.add(msg.partition())
                        if assigned and eof >= assigned and not self.caught_up.is_set():
                            self.caught_up.set()
                            log.info("models: history of %s read (%d models)", self.topic, len(self._lines))
                    elif err.fatal():
                        raise KafkaException(err)
                    else:
                        log.warning("models consumer: %s", err)
            except Exception as exc:  # noqa: BLE001 - keep following; the active model keeps serving
                log.warning("models consumer failed (%r); reconnecting in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                if c is not None:
                    c.close()
