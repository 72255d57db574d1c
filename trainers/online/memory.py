"""In-memory implementations of :mod:`trainers.online.ports`, for tests and demos.

>>> sink = MemorySink()
>>> sink.publish("models.v1", b"ctr", b"blob-1"); sink.publish("models.v1", b"ctr", b"blob-2")
>>> MemorySnapshots(sink, "models.v1").latest("ctr")
b'blob-2'
>>> src = MemorySource({0: [b"a", b"b", b"c"], 1: [b"x"]})
>>> src.seek({0: 1})
>>> src.poll(10, 0.0)
[(0, 1, b'b'), (1, 0, b'x'), (0, 2, b'c')]
>>> src.poll(10, 0.0)
[]
"""

from __future__ import annotations

from collections.abc import Mapping


class MemorySource:
    """Partitions of values; ``poll`` interleaves partitions round-robin, one record at a time."""

    def __init__(self, partitions: Mapping[int, list[bytes]]) -> None:
        self.partitions = {p: list(v) for p, v in partitions.items()}
        self._offsets: Mapping[int, int] = {}
        self._pos: dict[int, int] = {p: 0 for p in self.partitions}
        self.committed: dict[int, int] = {}
        self.closed = False

    def append(self, partition: int, value: bytes) -> None:
        self.partitions.setdefault(partition, []).append(value)
        self._pos.setdefault(partition, self._offsets.get(partition, 0))

    def seek(self, offsets: Mapping[int, int]) -> None:
        self._offsets = offsets
        self._pos = {p: offsets.get(p, 0) for p in self.partitions}

    def poll(self, max_records: int, timeout_s: float) -> list[tuple[int, int, bytes]]:
        out = []
        while len(out) < max_records:
            progressed = False
            for p in sorted(self.partitions):
                pos = self._pos[p]
                if pos < len(self.partitions[p]) and len(out) < max_records:
                    out.append((p, pos, self.partitions[p][pos]))
                    self._pos[p] = pos + 1
                    progressed = True
            if not progressed:
                break
        return out

    def commit(self, offsets: Mapping[int, int]) -> None:
        self.committed = dict(offsets)

    def close(self) -> None:
        self.closed = True


class MemorySink:
    """Keeps every published message; ``fail_flushes`` makes the next flushes raise."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.fail_flushes = 0
        self.closed = False

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        self.messages.append((topic, key, value))

    def flush(self, timeout_s: float) -> None:
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise RuntimeError("flush failed (injected)")

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.messages if t == topic]

    def close(self) -> None:
        self.closed = True


class MemorySnapshots:
    """The newest value published to ``topic`` under ``key = model name`` (as compaction keeps)."""

    def __init__(self, sink: MemorySink, topic: str) -> None:
        self.sink = sink
        self.topic = topic

    def latest(self, model_name: str) -> bytes | None:
        key = model_name.encode()
        found = None
        for t, k, v in self.sink.messages:
            if t == self.topic and k == key:
                found = v
        return found
