"""Background consumer of ``aggregates.v1`` into the Redis store.

Reads committed data only (Flink's sink is transactional), decodes each :class:`AggregateRecord`
(a bad one is logged and counted, never fatal), writes a batch to Redis and only then commits
the offsets. Writes are idempotent (keyed by window, higher revision wins), so a restart that
re-reads a batch changes nothing. The consumer is injectable: ``consumer_factory(group_id)``
returns anything with confluent-kafka's ``subscribe``/``consume``/``commit``/``close``
(``assignment`` for readiness; ``list_topics``/``get_watermark_offsets``/``assign`` for a rebuild).
Ready once consuming: a message arrived or partitions are assigned. Serving replicas that share
one Redis may share the default group (partitions split between them); give each its own
``group_id`` when each has its own Redis.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from adapters.redis_store import AggregateStore
from app.config import Settings
from app.contracts.aggregates import AggregateRecord
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

BATCH = 500
POLL_S = 0.5
COMPACT_EVERY_S = 0.5
COMPACT_BUDGET = 2_000  # child windows merged per compaction pass (~0.1 s of work)


def _kafka_consumer_factory(settings: Settings) -> Callable[[str], Any]:
    def make(group_id: str):
        from adapters.kafka_io import consumer

        return consumer(settings.kafka_bootstrap, group_id)

    return make


class AggregateIngester:
    def __init__(
        self,
        settings: Settings,
        store: AggregateStore,
        *,
        consumer_factory: Callable[[str], Any] | None = None,
        metrics: ServingMetrics | None = None,
        group_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.topic = settings.topics.aggregates
        self.group_id = group_id or f"{settings.topic_prefix}tributary-serving"
        self.consumer_factory = consumer_factory or _kafka_consumer_factory(settings)
        self.metrics = metrics or ServingMetrics()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_compact = 0.0
        self.rebuild_status: dict[str, Any] = {"state": "idle"}
        self._rebuild_thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="aggregate-ingester", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in (self._thread, self._rebuild_thread):
            if t is not None:
                t.join(timeout)
        self.ready.clear()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:  # once per store: header keys for windows written before they existed (fast reads)
            self.store.reference_ms()
            if self.store.layout < 2:
                log.info("giving stored windows their header keys: %d done", self.store.backfill_heads())
        except Exception:  # noqa: BLE001 - reads still work without (one more round trip)
            log.exception("could not backfill header keys")
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self.consumer_factory(self.group_id)
                consumer.subscribe([self.topic])
                self._loop(consumer, until=None)
            except Exception:  # noqa: BLE001 - reconnect, never die
                self.ready.clear()
                self.metrics.ingest_errors.labels("consumer").inc()
                log.exception("ingester failed; restarting in 2 s")
                self._stop.wait(2.0)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # noqa: BLE001
                        pass

    def _loop(self, consumer, until: dict[int, int] | None) -> None:
        """Consume until stopped (or, for a replay, until every partition reached ``until``)."""
        while not self._stop.is_set():
            msgs = consumer.consume(num_messages=BATCH, timeout=POLL_S)
            if until is None and not self.ready.is_set() and (msgs or _assigned(consumer)):
                self.ready.set()  # consuming: a message came, or partitions are assigned
            good = self.process(msgs)
            if msgs and self._write(good) and until is None:
                self._commit(consumer)
            if until is None:
                self._maybe_compact()
            else:
                for m in msgs:
                    if m.error() is None and until.get(m.partition(), 0) <= m.offset() + 1:
                        until.pop(m.partition(), None)
                self.rebuild_status["records"] = self.rebuild_status.get("records", 0) + len(good)
                self.store.compact()  # keep up with the replay: children may expire soon after
                if not until:
                    return

    # -- the work -----------------------------------------------------------------------------
    def process(self, msgs) -> list[AggregateRecord]:
        """Decode and validate; count what is bad."""
        good = []
        for m in msgs or ():
            err = m.error()
            if err is not None:
                if not _is_eof(err):
                    self.metrics.ingest_errors.labels("message").inc()
                    log.warning("consumer error: %s", err)
                continue
            if m.value() is None:
                # A tombstone: the upsert sink of late counts writes one before each new count
                # (its retraction); the next record carries the new value, so skip it.
                continue
            try:
                rec = AggregateRecord.from_json(m.value())
            except Exception as exc:  # noqa: BLE001 - any undecodable record is counted, not fatal
                self._bad("decode", m, exc)
                continue
            try:
                self.store.validate(rec)
            except Exception as exc:  # noqa: BLE001
                self._bad("invalid", m, exc)
                continue
            good.append(rec)
        return good

    def _bad(self, reason: str, m, exc: Exception) -> None:
        self.metrics.bad_records.labels(reason).inc()
        log.warning("bad aggregate record (%s) at %s[%s]@%s: %s", reason, m.topic(), m.partition(), m.offset(), exc)

    def _write(self, records: list[AggregateRecord]) -> bool:
        """Write to Redis, retrying with back-off until it works; False if stopped first
        (then the offsets must stay uncommitted)."""
        delay = 0.1
        while records:
            try:
                results = self.store.put_many(records)
                break
            except Exception:  # noqa: BLE001 - Redis down: wait and retry, never skip data
                self.ready.clear()
                self.metrics.ingest_errors.labels("redis").inc()
                log.exception("Redis write failed; retrying in %.1f s", delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)
        else:
            return True
        for r in results:
            self.metrics.ingested.labels(r).inc()
        self.metrics.newest_window_end.set(max(r.window_end for r in records))
        return True

    def _commit(self, consumer) -> None:
        try:
            consumer.commit(asynchronous=True)
        except Exception as exc:  # noqa: BLE001 - e.g. nothing new to commit; the next batch commits
            if "NO_OFFSET" not in str(exc):
                self.metrics.ingest_errors.labels("commit").inc()
                log.warning("offset commit failed: %s", exc)

    def _maybe_compact(self) -> None:
        now = time.monotonic()
        if now - self._last_compact < COMPACT_EVERY_S:
            return
        self._last_compact = now
        try:
            self.metrics.rollups.inc(self.store.compact(budget=COMPACT_BUDGET))
        except Exception:  # noqa: BLE001
            self.metrics.ingest_errors.labels("compact").inc()
            log.exception("roll-up compaction failed")

    # -- rebuild ------------------------------------------------------------------------------
    def rebuild(self, flush: bool = False) -> dict[str, Any]:
        """Replay ``aggregates.v1`` from the beginning into Redis (in the background)."""
        if self._rebuild_thread is not None and self._rebuild_thread.is_alive():
            raise RuntimeError("a rebuild is already running")
        self.rebuild_status = {"state": "running", "flush": flush, "records": 0, "started_ms": int(time.time() * 1000)}
        self._rebuild_thread = threading.Thread(target=self._replay, args=(flush,), name="aggregate-rebuild", daemon=True)
        self._rebuild_thread.start()
        return dict(self.rebuild_status)

    def _replay(self, flush: bool) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        consumer = None
        try:
            if flush:
                self.store.clear()
            consumer = self.consumer_factory(f"{self.group_id}-rebuild-{uuid.uuid4().hex[:8]}")
            parts = consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            until = {}
            for p in parts:
                lo, hi = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                if hi > lo:
                    until[p] = hi
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in until])
            if until:
                self._loop(consumer, until)
            self.store.compact()
            self.rebuild_status.update(state="done", finished_ms=int(time.time() * 1000))
        except Exception as exc:  # noqa: BLE001
            log.exception("rebuild failed")
            self.rebuild_status.update(state="failed", error=str(exc))
        finally:
            if consumer is not None:
                consumer.close()


def _assigned(consumer) -> bool:
    try:
        return bool(consumer.assignment())
    except Exception:  # noqa: BLE001 - a test double without assignment(), or a closed consumer
        return False


def _is_eof(err) -> bool:
    try:
        from confluent_kafka import KafkaError

        return err.code() == KafkaError._PARTITION_EOF
    except Exception:  # noqa: BLE001
        return False
