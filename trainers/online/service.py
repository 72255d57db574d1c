"""The online learner service: :class:`OnlineLearner` wires :class:`~trainers.online.core.LearnerCore`
to its ports (Kafka in production, in-memory in unit tests).

Exactly-once learning, by snapshot offsets (not a Kafka transaction) — why:
the state that must stay consistent is *(model, metric state, offsets consumed)*, and the model
only exists in memory and in ``models.v1``. We put the offsets (and the watermark, and the
prequential and drift state) **inside** the signed snapshot: a single Kafka message, so atomic
without a transaction coordinator. On start the learner restores the newest snapshot and seeks
every partition to the offsets in it; examples after them are learned again by the restored
model (whose state excludes them), so none is learned twice or skipped. Consumer-group offsets
are committed after each acknowledged snapshot for lag monitoring only, and never read back.
``send_offsets_to_transaction`` would also tie group offsets to the snapshot, but restart would
still need the model from ``models.v1``; metrics would become visible to ``read_committed``
readers only at each commit (staler dashboards); and each snapshot would cost extra
coordinator round trips. What we give up: ``metrics.v1``/drift records published after the last
snapshot are published again after a crash (same model, version and ``n``: readers dedupe on
them), and a second learner process for the same model name is fenced only on the consumer
side (static group membership: the first one's consumer gets FENCED_INSTANCE_ID, but snapshots
it already queued are published) — run one per model.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson

from app.config import Settings
from app.learners.artifact import MIN_KEY_BYTES, ArtifactError, verify
from trainers.online.core import LearnerCore
from trainers.online.ports import ExampleSource, Sink, SnapshotStore

log = logging.getLogger(__name__)


class OnlineLearner:
    """Consumes ``examples.v1``, learns, publishes metrics, drift events and snapshots.

    Parameters
    ----------
    settings
        Topics (with prefix) and Kafka bootstrap.
    model_name, pipeline_name
        The ``models.v1`` key, and the :mod:`app.learners.pipelines` pipeline.
    snapshot_every_n, snapshot_every_s
        Publish a snapshot after this many examples, or this many seconds if anything was consumed.
    hmac_key
        Shared key that signs snapshots (and verifies the one restored), at least 16 bytes.
    source, sink, snapshots
        Ports; default to Kafka built from ``settings`` at :meth:`start`.
    """

    def __init__(
        self,
        settings: Settings,
        model_name: str,
        pipeline_name: str = "logreg",
        snapshot_every_n: int = 100_000,
        snapshot_every_s: float = 5.0,
        hmac_key: bytes = b"",
        *,
        pipeline_params: dict[str, Any] | None = None,
        metrics_every_n: int = 10_000,
        batch_size: int = 5_000,
        poll_timeout_s: float = 0.2,
        flush_timeout_s: float = 30.0,
        source: ExampleSource | None = None,
        sink: Sink | None = None,
        snapshots: SnapshotStore | None = None,
        clock=time.monotonic,
        wall_clock_ms=lambda: int(time.time() * 1000),
    ) -> None:
        if len(hmac_key) < MIN_KEY_BYTES:
            raise ValueError(f"hmac_key must be at least {MIN_KEY_BYTES} bytes")
        self.settings = settings
        self.topics = settings.topics
        self.model_name = model_name
        self.pipeline_name = pipeline_name
        self.pipeline_params = pipeline_params
        self.snapshot_every_n = snapshot_every_n
        self.snapshot_every_s = snapshot_every_s
        self.hmac_key = hmac_key
        self.metrics_every_n = metrics_every_n
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.source, self.sink, self.snapshots = source, sink, snapshots
        self.clock, self.wall_clock_ms = clock, wall_clock_ms
        self.core: LearnerCore | None = None
        self._key = model_name.encode()
        self._snap_consumed = 0
        self._snap_t = 0.0

    # -- life cycle -----------------------------------------------------------------------------

    def _connect(self) -> None:
        if self.source is not None and self.sink is not None and self.snapshots is not None:
            return
        from trainers.online.kafka_ports import KafkaExampleSource, KafkaSink, KafkaSnapshotStore

        bootstrap = self.settings.kafka_bootstrap
        if self.snapshots is None:
            self.snapshots = KafkaSnapshotStore(bootstrap, self.topics.models, accept=self._authentic)
        if self.sink is None:
            self.sink = KafkaSink(bootstrap)
        if self.source is None:
            group = f"tributary-learner-{self.model_name}"
            self.source = KafkaExampleSource(bootstrap, self.topics.examples, group)

    def _authentic(self, blob: bytes) -> bool:
        """Restore only from a learner snapshot of this model signed with our key: junk, forged or
        foreign artifacts on ``models.v1`` (serving rejects them too) are skipped."""
        try:
            LearnerCore.restore(verify(blob, self.hmac_key), self.model_name, self.pipeline_name)
        except (ArtifactError, KeyError, TypeError, AttributeError) as exc:
            log.warning("a %s artifact on %s is not a snapshot to restore (%r): skipped",
                        self.model_name, self.topics.models, exc)  # fmt: skip
            return False
        return True

    def start(self) -> LearnerCore:
        """Restore the newest verified snapshot (or start fresh) and position the source."""
        self._connect()
        config = {"metrics_every_n": self.metrics_every_n}
        blob = self.snapshots.latest(self.model_name)
        if blob is None:
            self.core = LearnerCore(self.model_name, self.pipeline_name, self.pipeline_params, **config)
            log.info("no snapshot of %s: learning from the beginning of %s", self.model_name, self.topics.examples)
        else:
            artifact = verify(blob, self.hmac_key)  # ArtifactError: refuse to start, never guess
            topic = artifact.header.kafka_topic
            if topic not in (None, self.topics.examples):
                raise RuntimeError(f"snapshot offsets are for topic {topic!r}, not {self.topics.examples!r}")
            self.core = LearnerCore.restore(artifact, self.model_name, self.pipeline_name, **config)
            log.info(
                "restored %s v%d (n=%d) at offsets %s",
                self.model_name, self.core.version, self.core.n, self.core.offsets,
            )
        self.source.seek(self.core.offsets)  # the live mapping: re-assignments resume from it
        self._snap_consumed = self.core.consumed
        self._snap_t = self.clock()
        return self.core

    def close(self, final_snapshot: bool = True) -> None:
        if self.core is not None and final_snapshot and self.core.consumed > self._snap_consumed:
            self.snapshot()
        for port in (self.source, self.sink):
            if port is not None:
                port.close()

    # -- work -----------------------------------------------------------------------------------

    def step(self) -> int:
        """Poll one batch, learn it, publish what it produced, snapshot if due; return its size."""
        core = self.core
        if core is None:
            raise RuntimeError("call start() first")
        records = self.source.poll(self.batch_size, self.poll_timeout_s)
        if records:
            events = core.process(records)
            if events:
                now = self.wall_clock_ms()
                for e in events:
                    e["emitted_at"] = now
                    self.sink.publish(self.topics.metrics, self._key, orjson.dumps(e))
        if self._snapshot_due():
            self.snapshot()
        return len(records)

    def _snapshot_due(self) -> bool:
        fresh = self.core.consumed - self._snap_consumed
        if fresh <= 0:
            return False
        return fresh >= self.snapshot_every_n or self.clock() - self._snap_t >= self.snapshot_every_s

    def snapshot(self) -> bytes:
        """Publish a signed snapshot, wait for its acknowledgement, then commit offsets (advisory)."""
        core = self.core
        blob = core.snapshot(self.hmac_key, topic=self.topics.examples, created_at=self.wall_clock_ms())
        self.sink.publish(self.topics.models, self._key, blob)
        record = core._record(
            "snapshot", n=core.n, bytes=len(blob), watermark=core.watermark, offsets=dict(core.offsets),
            emitted_at=self.wall_clock_ms(),
        )
        self.sink.publish(self.topics.metrics, self._key, orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS))
        self.sink.flush(self.flush_timeout_s)  # raises if not acknowledged: crash, restart restores
        self.source.commit(dict(core.offsets))
        self._snap_consumed = core.consumed
        self._snap_t = self.clock()
        log.info("snapshot %s v%d: n=%d, %d bytes", self.model_name, core.version, core.n, len(blob))
        return blob

    def run(self, stop: threading.Event | None = None, max_examples: int | None = None) -> LearnerCore:
        """Start, then step until ``stop`` is set or ``max_examples`` records were consumed."""
        core = self.start()
        try:
            while not (stop is not None and stop.is_set()):
                if max_examples is not None and core.consumed >= max_examples:
                    break
                self.step()
        except BaseException:
            self.close(final_snapshot=False)  # state may be mid-example: resume from the last snapshot
            raise
        self.close()
        return core
