"""OnlineLearner's step logic with in-memory ports: metrics, snapshots, restart exactness."""

from __future__ import annotations

import orjson
import pytest
from river import evaluate, metrics

from app.config import Settings
from app.features import features
from app.learners.artifact import ArtifactError, sign, verify
from app.learners.pipelines import build
from app.learners.prequential import default_metrics
from app.learners.synthetic import synthetic_examples
from trainers.online.memory import MemorySink, MemorySnapshots, MemorySource
from trainers.online.service import OnlineLearner

KEY = b"test-key-0123456789abcdef-xxxxxx"
SETTINGS = Settings(topic_prefix="t.")
T = SETTINGS.topics
RAW = synthetic_examples(6_000, seed=21)


def _partitions(n_partitions: int, rows=RAW) -> dict[int, list[bytes]]:
    parts: dict[int, list[bytes]] = {p: [] for p in range(n_partitions)}
    for i, r in enumerate(rows):
        parts[i % n_partitions].append(orjson.dumps(r))
    return parts


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _learner(source, sink, **kw) -> OnlineLearner:
    defaults = dict(snapshot_every_n=1_000, snapshot_every_s=1e9, metrics_every_n=500, batch_size=250)
    defaults.update(kw)
    return OnlineLearner(
        SETTINGS, "ctr", "logreg", defaults.pop("snapshot_every_n"), defaults.pop("snapshot_every_s"), KEY,
        source=source, sink=sink, snapshots=MemorySnapshots(sink, T.models), clock=FakeClock(),
        wall_clock_ms=lambda: 42, **defaults,
    )  # fmt: skip


def _drain(learner: OnlineLearner, until: int | None = None) -> None:
    """Step until the source is empty, or until ``until`` records were consumed."""
    while until is None or learner.core.consumed < until:
        if not learner.step():
            break


def _published(sink: MemorySink, type_: str) -> list[dict]:
    return [r for r in map(orjson.loads, sink.on(T.metrics)) if r["type"] == type_]


def test_fault_free_run_publishes_metrics_and_signed_snapshots():
    sink, source = MemorySink(), MemorySource(_partitions(1))
    learner = _learner(source, sink)
    learner.start()
    _drain(learner)
    learner.close()
    metrics_records = _published(sink, "prequential")
    assert [r["n"] for r in metrics_records] == list(range(500, 6_001, 500))
    assert all(r["model"] == "ctr" and r["emitted_at"] == 42 and "log_loss" in r["metrics"] for r in metrics_records)
    arts = [verify(b, KEY) for b in sink.on(T.models)]
    assert [a.header.version for a in arts] == [1, 2, 3, 4, 5, 6]
    assert [a.header.kafka_offsets for a in arts] == [{0: n} for n in range(1_000, 6_001, 1_000)]
    assert arts[-1].header.trained_until_watermark == max(r["example_time"] for r in RAW)
    assert source.committed == {0: 6_000}  # advisory commit after the last acknowledged snapshot
    assert [r["version"] for r in _published(sink, "snapshot")] == [1, 2, 3, 4, 5, 6]
    # the learner's metrics equal river's own progressive validation on the same rows
    rows = [(features(r), bool(r["label"])) for r in RAW]
    theirs = evaluate.progressive_val_score(rows, build("logreg"), metrics.base.Metrics(default_metrics()))
    assert list(metrics_records[-1]["metrics"].values()) == [m.get() for m in theirs]


def test_restart_after_a_crash_equals_a_fault_free_run():
    clean_sink = MemorySink()
    clean = _learner(MemorySource(_partitions(1)), clean_sink)
    clean.start()
    _drain(clean)

    sink = MemorySink()
    crashing = _learner(MemorySource(_partitions(1)), sink)
    crashing.start()
    _drain(crashing, until=3_750)  # snapshots at 1000, 2000, 3000; 750 examples learned after
    assert crashing.core.n == 3_750
    del crashing  # kill -9: nothing flushed, no final snapshot

    restarted = _learner(MemorySource(_partitions(1)), sink)
    core = restarted.start()
    assert (core.version, core.n, core.offsets) == (3, 3_000, {0: 3_000})
    _drain(restarted)
    assert restarted.core.n == clean.core.n == 6_000  # nothing learned twice, nothing skipped
    assert restarted.core.prequential.get() == clean.core.prequential.get()
    x = features(RAW[0])
    assert restarted.core.model.predict_proba_one(x) == clean.core.model.predict_proba_one(x)
    # the metrics at n = 6000 are identical; records 3500 was published twice (before and after the crash)
    final = [r["metrics"] for r in _published(sink, "prequential") if r["n"] == 6_000]
    assert final == [r["metrics"] for r in _published(clean_sink, "prequential") if r["n"] == 6_000]
    assert [r["n"] for r in _published(sink, "prequential")].count(3_500) == 2


def test_restart_with_several_partitions_neither_skips_nor_repeats():
    sink = MemorySink()
    first = _learner(MemorySource(_partitions(3)), sink)
    first.start()
    _drain(first, until=2_600)
    del first
    restarted = _learner(MemorySource(_partitions(3)), sink)
    core = restarted.start()
    assert sum(core.offsets.values()) == core.n == 2_000
    _drain(restarted)
    assert restarted.core.n == len(RAW)
    assert restarted.core.offsets == {p: len(v) for p, v in _partitions(3).items()}


def test_snapshot_by_time_and_only_when_something_was_consumed():
    sink, source = MemorySink(), MemorySource(_partitions(1, RAW[:300]))
    learner = _learner(source, sink, snapshot_every_n=10**9, snapshot_every_s=5.0)
    learner.start()
    learner.step()
    assert sink.on(T.models) == []
    learner.clock.t = 6.0
    learner.step()  # consumes the remaining 50 and snapshots on time
    assert len(sink.on(T.models)) == 1
    learner.clock.t = 20.0
    learner.step()  # nothing new: no snapshot
    assert len(sink.on(T.models)) == 1


def test_malformed_examples_are_counted_and_skipped():
    rows = [orjson.dumps(r) for r in RAW[:100]]
    rows[10] = b"{not json"
    rows[20] = orjson.dumps({**RAW[20], "label": 7})
    rows[30] = orjson.dumps({k: v for k, v in RAW[30].items() if k != "label"})
    sink = MemorySink()
    learner = _learner(MemorySource({0: rows}), sink)
    learner.start()
    _drain(learner)
    learner.close()
    assert (learner.core.n, learner.core.malformed, learner.core.offsets) == (97, 3, {0: 100})
    assert verify(sink.on(T.models)[-1], KEY).state["malformed"] == 3


def test_refuses_to_start_from_a_forged_or_foreign_snapshot():
    sink = MemorySink()
    sink.publish(T.models, b"ctr", sign({"w": 1}, key=b"not-the-shared-key-0123456789", model_name="ctr",
                                        kind="river:logreg", version=9))  # fmt: skip
    with pytest.raises(ArtifactError, match="bad signature"):
        _learner(MemorySource({0: []}), sink).start()
    sink.publish(T.models, b"ctr", sign({"w": 1}, key=KEY, model_name="ctr", kind="river:fm", version=9))
    with pytest.raises(ArtifactError, match="river:fm"):
        _learner(MemorySource({0: []}), sink).start()


def test_unacknowledged_snapshot_crashes_and_restart_resumes_from_the_previous_one():
    sink = MemorySink()
    learner = _learner(MemorySource(_partitions(1)), sink)
    learner.start()
    _drain(learner, until=1_000)  # first snapshot, acknowledged
    sink.fail_flushes = 1
    with pytest.raises(RuntimeError, match="flush failed"):
        _drain(learner, until=2_000)
    assert learner.source.committed == {0: 1_000}  # never committed past the acknowledged snapshot
    sink.messages = [m for m in sink.messages if not (m[0] == T.models and verify(m[2], KEY).header.version == 2)]
    restarted = _learner(MemorySource(_partitions(1)), sink)
    assert restarted.start().n == 1_000


def test_short_keys_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        OnlineLearner(SETTINGS, "ctr", hmac_key=b"short", source=MemorySource({}), sink=MemorySink())
