"""confluent-kafka clients configured the way every Tributary stage needs them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


def _conf(overrides: dict[str, Any]) -> dict[str, Any]:
    """Python-friendly keyword names (enable_partition_eof) to librdkafka's (enable.partition.eof)."""
    return {k.replace("_", "."): v for k, v in overrides.items()}


def producer(bootstrap: str, **overrides: Any) -> Producer:
    """Idempotent producer: retries never duplicate or reorder within a partition."""
    conf = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
    }
    conf.update(_conf(overrides))
    return Producer(conf)


def consumer(bootstrap: str, group_id: str, *, offset_reset: str = "earliest", **overrides: Any) -> Consumer:
    """A consumer that reads only committed data (Flink's transactional sink writes it)."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "auto.offset.reset": offset_reset,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
    }
    conf.update(_conf(overrides))
    return Consumer(conf)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int = 4,
    compacted: Iterable[str] = (),
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    client = admin(bootstrap)
    existing = set(client.list_topics(timeout=timeout).topics)
    compacted = set(compacted)
    new = [
        NewTopic(
            n,
            num_partitions=partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"} if n in compacted else {},
        )
        for n in names
        if n not in existing
    ]
    if not new:
        return []
    for name, fut in client.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:  # created concurrently by someone else: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return [t.topic for t in new]


def delete_topics(bootstrap: str, names: Iterable[str], timeout: float = 30.0) -> None:
    client = admin(bootstrap)
    for _, fut in client.delete_topics(list(names), operation_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException:
            pass


class DeliveryTracker:
    """Counts delivery reports so a producer can prove every message was acknowledged."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None

    def __call__(self, err, msg) -> None:  # confluent-kafka's on_delivery signature
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = str(err)
            log.warning("delivery failed: %s", err)


def count_messages(bootstrap: str, topic: str, timeout: float = 10.0) -> int:
    """Exact number of messages currently in ``topic`` (high minus low watermark, all partitions)."""
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap, group_id="tributary-count", enable_partition_eof=True)
    try:
        meta = c.list_topics(topic, timeout=timeout)
        total = 0
        for p in meta.topics[topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            total += hi - lo
        return total
    finally:
        c.close()
