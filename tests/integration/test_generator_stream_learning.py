"""The generator's stream end to end: events.v1 → the Flink label job → examples.v1 → the online
learner → metrics.v1, and the learner's prequential metrics equal river's own.

One seeded :class:`~app.generator.EventGenerator` run is produced to ``events.v1`` (4 partitions,
key = ``user_id`` as the contract says), then the real label job turns it into ``examples.v1``
(4 partitions, key = ``user_id``). Checked:

* the examples are exactly those of the pure label join in ``benchmarks/label_examples.py`` (the
  benchmark's examples are the job's), and their positive rate is what the generator's hidden
  click model predicts (mean probability of a click within the attribution window);
* :class:`~trainers.online.service.OnlineLearner`, in process with its Kafka ports, learns them;
  its source is wrapped to record the ``(partition, offset)`` of every record in the order it
  consumed them, which *defines* the order (``examples.v1`` has several partitions, and the
  interleaving of partitions is the consumer's choice). The examples are read back from
  ``examples.v1`` independently and put in that order; river's
  ``progressive_val_score`` over them equals the prequential records on ``metrics.v1``, and the
  final snapshot's metrics, to 1e-12.
"""

from __future__ import annotations

import math
import threading
import time
import uuid

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from adapters.kafka_io import consumer
from app.contracts.examples import Example
from app.generator import EventGenerator
from benchmarks.label_examples import label_examples, label_probabilities
from tests.integration.test_label_job import BASE_MS, CLOSE_AFTER_MS, _event, _produce, label_job  # noqa: F401
from tests.integration.test_online_learning_kafka import KEY, NAMES, assert_same_metrics, by_n, river_checkpoints
from tests.support.stack import consume_all
from trainers.online.kafka_ports import KafkaExampleSource
from trainers.online.service import OnlineLearner

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N_EVENTS = 30_000
RATE = 300.0  # events per second of event time: 30,000 events span ~100 s, over three attribution windows
EVERY = 1_000  # a prequential record every 1,000 examples


class RecordingSource:
    """An :class:`~trainers.online.ports.ExampleSource` that remembers what it handed out, in order."""

    def __init__(self, inner: KafkaExampleSource) -> None:
        self.inner = inner
        self.consumed: list[tuple[int, int]] = []  # (partition, offset), in the learner's order

    def seek(self, offsets) -> None:
        self.inner.seek(offsets)

    def poll(self, max_records: int, timeout_s: float):
        records = self.inner.poll(max_records, timeout_s)
        self.consumed.extend((p, o) for p, o, _ in records)
        return records

    def commit(self, offsets) -> None:
        self.inner.commit(offsets)

    def close(self) -> None:
        self.inner.close()


def read_with_offsets(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> dict[tuple[int, int], tuple[bytes, bytes]]:
    """(partition, offset) -> (key, value) of every committed record, from the beginning."""
    c = consumer(bootstrap, f"test-offsets-{uuid.uuid4().hex[:8]}")
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for m in c.consume(num_messages=5_000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(m.error())
                out[(m.partition(), m.offset())] = (m.key(), m.value())
    finally:
        c.close()
    return out


def test_generator_stream_label_job_learner_equals_river(topics, label_job) -> None:
    w = topics.attribution_window_ms
    gen = EventGenerator(seed=23, rate=RATE, start_ms=BASE_MS, n_users=3_000, n_items=800, id_prefix="gs-")
    msgs = list(gen.events(N_EVENTS))
    assert all(m.kind == "valid" for m in msgs)
    events = [m.fields for m in msgs]
    t_last = msgs[-1].at_ms
    impressions = {e["event_id"]: e for e in events if e["event_type"] == "impression"}
    expected = label_examples(events, w)  # the pure label join: what the job must write
    assert len(expected) == len(impressions)

    # events.v1: the generator's messages as they are (key = user_id), then one far-later event
    # so that the watermark passes every attribution window.
    assert all(m.key == m.fields["user_id"].encode() for m in msgs)
    closer = _event("closer", "impression", t_last + CLOSE_AFTER_MS, user="closer")
    _produce(topics, [(m.key, m.value) for m in msgs] + [(b"closer", orjson.dumps(closer))])
    label_job()
    consume_all(topics.kafka_bootstrap, topics.topics.examples, expect=len(impressions), timeout=300)
    stored = read_with_offsets(topics.kafka_bootstrap, topics.topics.examples, expect=len(impressions))
    assert len(stored) == len(impressions)
    examples = {pos: Example.from_json(v) for pos, (_, v) in stored.items()}  # the contract decodes each
    assert all(key == examples[pos].key() for pos, (key, _) in stored.items())  # key = user_id
    assert len({p for p, _ in stored}) > 1, "examples.v1 has several partitions in use: the order is the learner's"

    # 1. The job's examples are the pure label join's, field for field.
    got = {ex.event_id: orjson.loads(ex.to_json()) for ex in examples.values()}
    want = {r["event_id"]: {**r, "context": {}} for r in expected}
    assert got == want

    # 2. The positive rate is the hidden click model's: among impressions whose window closed before the
    #    generator stopped (later ones may have lost a click the generator never got to emit), the mean
    #    label equals the mean hidden probability of a click within the window, within 4 standard errors.
    p_label = label_probabilities(gen, msgs, w)
    complete = [i for i, e in impressions.items() if e["event_time"] + w <= t_last]
    assert len(complete) > 0.6 * len(impressions)
    rate = sum(got[i]["label"] for i in complete) / len(complete)
    mean_p = sum(p_label[i] for i in complete) / len(complete)
    se = math.sqrt(sum(p_label[i] * (1 - p_label[i]) for i in complete)) / len(complete)
    p_click = {m.fields["event_id"]: m.p_click for m in msgs if m.fields["event_type"] == "impression"}
    mean_p_click = sum(p_click[i] for i in complete) / len(complete)
    print(f"positive rate {rate:.4f}, hidden P(click within {w} ms) {mean_p:.4f} ± {se:.4f}, "
          f"mean p_click {mean_p_click:.4f}, {len(complete)} of {len(impressions)} impressions")  # fmt: skip
    assert abs(rate - mean_p) <= 4 * se, (rate, mean_p, se)
    # (the plain mean p_click is a little higher: a few clicks come after the window)
    assert 0.9 * mean_p_click - 4 * se <= rate <= mean_p_click + 4 * se, (rate, mean_p_click)
    assert 0.02 < rate < 0.5

    # 3. The learner on examples.v1 (in process, Kafka ports; the source records the order it consumed).
    n = len(stored)
    source = RecordingSource(KafkaExampleSource(topics.kafka_bootstrap, topics.topics.examples, "tributary-learner-ctr"))
    learner = OnlineLearner(
        topics, "ctr", "logreg", 1_000_000, 1e9, KEY, metrics_every_n=EVERY, batch_size=500, poll_timeout_s=0.2,
        source=source,
    )  # fmt: skip
    stop = threading.Event()
    timer = threading.Timer(180, stop.set)
    timer.start()
    try:
        core = learner.run(stop, max_examples=n)
    finally:
        timer.cancel()
    assert core.consumed == n and core.n == n and core.malformed == 0

    # The order the learner used: every stored record once, each partition in offset order.
    order = source.consumed
    assert len(order) == n and set(order) == set(stored)
    for p in {p for p, _ in order}:
        offsets = [o for q, o in order if q == p]
        assert offsets == sorted(offsets)
    assert core.offsets == {p: max(o for q, o in order if q == p) + 1 for p in {p for p, _ in order}}
    values = [stored[pos][1] for pos in order]  # read back from examples.v1, in the learner's order

    # 4. metrics.v1 == river's progressive_val_score on the same examples in the same order.
    theirs = river_checkpoints(values, EVERY)
    records = [r for r in map(orjson.loads, consume_all(topics.kafka_bootstrap, topics.topics.metrics, timeout=30))
               if r.get("type") == "prequential"]  # fmt: skip  # (the label job's late_labels counts share the topic)
    ours = by_n(records)
    assert sorted(ours) == [k * EVERY for k in range(1, n // EVERY + 1)]
    assert_same_metrics(ours, {k: v for k, v in theirs.items() if k in ours})
    example_times = [orjson.loads(v)["example_time"] for v in values]
    for k, r in ours.items():
        assert r["watermark"] == max(example_times[:k]) and r["model"] == "ctr" and r["kind"] == "river:logreg"
    # ... and the final snapshot (at close, n = all examples) carries river's final numbers.
    from app.learners.artifact import verify

    final = verify(consume_all(topics.kafka_bootstrap, topics.topics.models, timeout=30)[-1], KEY).header
    assert final.examples_seen == n and final.kafka_offsets == core.offsets
    assert {k: final.metrics[k] for k in NAMES} == pytest.approx(theirs[n], rel=1e-12, abs=1e-15)
    switches = sum(1 for a, b in zip(order, order[1:]) if a[0] != b[0])
    print(f"{n} examples from {N_EVENTS} events on {len({p for p, _ in order})} partitions ({switches} partition "
          f"switches in the learner's order); learner == river at n = {sorted(ours)[0]} ... {n}: {theirs[n]}")
