"""Kafka implementations of :mod:`trainers.online.ports` (confluent-kafka, via adapters.kafka_io).

Thin on purpose: everything that decides anything lives in :mod:`trainers.online.core` and
:mod:`trainers.online.service`; an integration test drives these against a real broker.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from adapters.kafka_io import DeliveryTracker, consumer, producer

log = logging.getLogger(__name__)

#: Artifacts are bigger than Kafka's 1 MB default (a hashed logreg is ~1 MB pickled, an FM more);
#: the topic's ``max.message.bytes`` must allow it too.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024


class KafkaExampleSource:
    """``examples.v1`` through a consumer group; positions always come from the learner.

    On every partition assignment (start-up and any later rebalance) each partition is set to
    the learner's own offsets (``seek``), never to the group's committed offset: the offsets
    stored in the snapshot are the truth, group commits are only advisory (lag monitoring).
    """

    def __init__(self, bootstrap: str, topic: str, group_id: str, **overrides) -> None:
        self.topic = topic
        self._offsets: Mapping[int, int] = {}
        conf = {
            # Static membership: a learner restarted after kill -9 takes its partitions back at
            # once, instead of waiting for the dead member's session to expire (45 s by default);
            # a second process of the same learner fences the first (FENCED_INSTANCE_ID).
            "group.instance.id": f"{group_id}.{topic}",
            "session.timeout.ms": 10_000,  # a learner gone for good hands its partitions on in 10 s
        }
        conf.update(overrides)
        self._consumer = consumer(bootstrap, group_id, offset_reset="earliest", **conf)
        self._subscribed = False

    def _on_assign(self, c, partitions) -> None:
        for tp in partitions:
            tp.offset = self._offsets.get(tp.partition, OFFSET_BEGINNING)
        log.info("assigned %s", [(tp.partition, tp.offset) for tp in partitions])
        c.assign(partitions)

    def seek(self, offsets: Mapping[int, int]) -> None:
        self._offsets = offsets
        if not self._subscribed:
            self._consumer.subscribe([self.topic], on_assign=self._on_assign)
            self._subscribed = True
        else:  # already assigned: move every assigned partition now
            for tp in self._consumer.assignment():
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offsets.get(tp.partition, OFFSET_BEGINNING)))

    def poll(self, max_records: int, timeout_s: float) -> list[tuple[int, int, bytes]]:
        msgs = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            out.append((m.partition(), m.offset(), m.value()))
        return out

    def commit(self, offsets: Mapping[int, int]) -> None:
        if offsets:
            tps = [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
            try:
                self._consumer.commit(offsets=tps, asynchronous=True)
            except KafkaException as exc:  # advisory: never fatal
                log.warning("advisory offset commit failed: %s", exc)

    def close(self) -> None:
        self._consumer.close()


class KafkaSink:
    """Idempotent producer; ``flush`` raises unless every message was acknowledged."""

    def __init__(self, bootstrap: str, **overrides) -> None:
        self.tracker = DeliveryTracker()
        conf = {"message.max.bytes": MAX_MESSAGE_BYTES, "linger.ms": 5}
        conf.update(overrides)
        self._producer = producer(bootstrap, **conf)
        self._failed_seen = 0

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self.tracker)
                break
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise RuntimeError(f"{remaining} messages not acknowledged after {timeout_s}s")
        if self.tracker.failed > self._failed_seen:
            self._failed_seen = self.tracker.failed
            raise RuntimeError(f"delivery failed: {self.tracker.last_error}")

    def close(self) -> None:
        self._producer.flush(10)


class KafkaSnapshotStore:
    """Reads ``models.v1`` (compacted) from the beginning to its end; keeps the newest value per key.

    With ``accept`` (e.g. "the HMAC verifies"), the newest value that ``accept`` takes, among the
    last ``keep`` values of the key: a junk or forged message published after the learner's own
    snapshot (serving rejects those) must not stop the learner from restoring. If none is
    accepted, the newest is returned as is (the learner's verify then refuses to start).
    """

    def __init__(
        self, bootstrap: str, topic: str, timeout_s: float = 30.0, *,
        accept: Callable[[bytes], bool] | None = None, keep: int = 16,
    ) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s
        self.accept = accept
        self.keep = keep

    def latest(self, model_name: str) -> bytes | None:
        key = model_name.encode()
        c = consumer(
            self.bootstrap,
            f"tributary-snapshot-reader-{uuid.uuid4().hex}",  # throwaway: never commits
            enable_partition_eof=True,
            **{"fetch.message.max.bytes": MAX_MESSAGE_BYTES},
        )
        try:
            meta = c.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
            if meta.error is not None:
                raise KafkaException(meta.error)
            ends = {}
            for p in meta.partitions:
                lo, hi = c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout_s)
                if hi > lo:
                    ends[p] = hi
            if not ends:
                return None
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
            latest: deque[bytes] = deque(maxlen=self.keep)
            done: set[int] = set()
            while len(done) < len(ends):
                m = c.poll(self.timeout_s)
                if m is None:
                    raise TimeoutError(f"reading {self.topic} timed out")
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        done.add(m.partition())
                        continue
                    raise KafkaException(m.error())
                if m.key() == key:
                    if m.value() is None:  # tombstone: the model was deleted
                        latest.clear()
                    else:
                        latest.append(m.value())
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
            if not latest:
                return None
            if self.accept is not None:
                for i, value in enumerate(reversed(latest)):
                    if self.accept(value):
                        if i:
                            log.warning("skipped the %d newest %s value(s) of %s: not accepted", i, self.topic, model_name)
                        return value
            return latest[-1]
        finally:
            c.close()
