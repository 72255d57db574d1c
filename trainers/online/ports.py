"""The learner's I/O, as small interfaces: Kafka implementations live in
:mod:`trainers.online.kafka_ports`, in-memory ones in :mod:`trainers.online.memory`.

A record is a ``(partition, offset, value)`` tuple: the learner needs nothing else from a
consumed message, and tuples keep the hot loop cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

Record = tuple[int, int, bytes]  # (partition, offset, value)


class ExampleSource(Protocol):
    """Where examples come from (``examples.v1``)."""

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Resume every partition at ``offsets[partition]`` (the next offset to read); partitions
        absent from ``offsets`` from their beginning. Implementations keep the mapping object and
        read it again on every later (re)assignment: the learner passes its live offsets."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to ``max_records`` records, in partition order; ``[]`` if none came in time."""

    def commit(self, offsets: Mapping[int, int]) -> None:
        """Advisory commit of consumed offsets (monitoring, lag); never used to resume."""

    def close(self) -> None: ...


class Sink(Protocol):
    """Where the learner publishes (``metrics.v1``, ``models.v1``)."""

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one message (asynchronous)."""

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued message is acknowledged; raise if any was not."""

    def close(self) -> None: ...


class SnapshotStore(Protocol):
    """Reads back the newest snapshot of a model (``models.v1``, compacted, key = model name)."""

    def latest(self, model_name: str) -> bytes | None:
        """The newest artifact published for ``model_name``, or ``None``."""
