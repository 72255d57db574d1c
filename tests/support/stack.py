"""The real services for integration and end-to-end tests, on ports of their own.

Tests never touch a developer's running stack: Kafka 19092, Redis 16379, Flink 18081,
serving 18000, data under var/test. Set TRIBUTARY_TEST_KEEP_STACK=1 to leave them running
between pytest runs (much faster when iterating).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from app.config import PROJECT_ROOT, Settings

#: Several engineers (or CI jobs) on one machine: TRIBUTARY_TEST_PORT_OFFSET=100 moves every
#: test port by 100 and the data to var/test-100, so their stacks never meet.
_OFFSET = int(os.environ.get("TRIBUTARY_TEST_PORT_OFFSET", "0"))

TEST_ENV = {
    "TRIBUTARY_VAR_DIR": str(PROJECT_ROOT / "var" / (f"test-{_OFFSET}" if _OFFSET else "test")),
    "TRIBUTARY_KAFKA_PORT": str(19092 + _OFFSET),
    "TRIBUTARY_KAFKA_CONTROLLER_PORT": str(19093 + _OFFSET),
    "TRIBUTARY_REDIS_PORT": str(16379 + _OFFSET),
    "TRIBUTARY_FLINK_REST_PORT": str(18081 + _OFFSET),
    "TRIBUTARY_FLINK_RPC_PORT": str(16123 + _OFFSET),
    "TRIBUTARY_SERVING_PORT": str(18000 + _OFFSET),
    "TRIBUTARY_KAFKA_HEAP": "512m",
}


def test_settings(**overrides) -> Settings:
    env = {k: v for k, v in TEST_ENV.items()}
    # The test ports win over a developer's exported TRIBUTARY_* ports; other settings pass through.
    env.update({k: v for k, v in os.environ.items() if k.startswith("TRIBUTARY_") and k not in TEST_ENV and k != "TRIBUTARY_TOPIC_PREFIX"})
    kwargs = {k.removeprefix("TRIBUTARY_").lower(): v for k, v in env.items() if k.removeprefix("TRIBUTARY_").lower() in Settings.model_fields}
    kwargs.update(overrides)
    return Settings(**kwargs)


def start_infrastructure(s: Settings) -> list:
    from adapters.local import stack

    parts = stack.infrastructure(s)
    for part in parts:
        stack.start_part(part)
    return parts


def stop_infrastructure(s: Settings) -> None:
    from adapters.local import stack

    stack.stop_all(stack.all_parts(s, generator_rate=1))


def unique_prefix(name: str) -> str:
    """One topic set per test: ``t-<name>-<random>.``"""
    safe = "".join(c if c.isalnum() else "-" for c in name)[:40]
    return f"t-{safe}-{uuid.uuid4().hex[:6]}."


def consume_all(bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 60.0) -> list[bytes]:
    """Every committed message of ``topic`` (read_committed), waiting for ``expect`` of them if given."""
    from confluent_kafka import KafkaError

    from adapters.kafka_io import consumer

    c = consumer(bootstrap, group_id=f"test-reader-{uuid.uuid4().hex[:8]}", enable_partition_eof=True)
    c.subscribe([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                if expect is None and out and time.monotonic() > deadline - timeout + 5:
                    break
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    if expect is None:
                        # all partitions at EOF once at least: good enough for "what is there now"
                        if len(c.assignment()) and _all_eof(c):
                            break
                    continue
                raise RuntimeError(msg.error())
            if msg.value() is None:  # a tombstone (upsert sinks retract before they update)
                continue
            out.append(msg.value())
            if expect is not None and len(out) >= expect:
                break
    finally:
        c.close()
    return out


def _all_eof(c) -> bool:
    from confluent_kafka import OFFSET_END, TopicPartition

    for tp in c.assignment():
        lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
        pos = c.position([tp])[0].offset
        if pos not in (OFFSET_END,) and pos < hi and hi > lo:
            return False
    return True


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {last!r})")


def repo_path(*parts: str) -> Path:
    return PROJECT_ROOT.joinpath(*parts)


def iter_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from (line.rstrip(b"\n") for line in fh)
