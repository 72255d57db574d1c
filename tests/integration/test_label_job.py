"""The Flink label job on the real cluster: one example per impression, duplicates dropped,
late answers counted, and the positive rate equal to the generator's truth.

Every test produces its whole input first and only then starts the job: with all partitions
already filled, the source's per-partition watermarks advance together. (Started first, the job
would see idle partitions, and whichever partition it fetched first could push the watermark past
the others' events: those would then be counted as ``behind_watermark`` instead of labelled.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import orjson
import pytest

from adapters.kafka_io import DeliveryTracker, consumer, producer
from app.contracts.examples import Example
from app.generator import EventGenerator
from flink_jobs.label_sql import LATE_LABELS_METRIC
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.integration

BASE_MS = 1_700_000_000_000  # fixed event time, far from "now": windows close only by watermark
CLOSE_AFTER_MS = 10 * 60_000  # a closing event this much later moves the watermark past every window


@pytest.fixture
def label_job(topics) -> Iterator[Callable[[], str]]:
    """Start the label job on this test's topics when called (after producing); cancelled afterwards."""
    from adapters.local import jobs

    name = f"labels-{topics.topic_prefix.rstrip('.')}"
    started: list[str] = []

    def start() -> str:
        jobs.submit_label_job(topics, name=name)
        started.append(name)
        wait_for(lambda: jobs.tasks_running(topics, name), timeout=180, what=f"every task of {name} running")
        return name

    yield start
    if started:
        jobs.cancel(topics, name)


def _event(event_id: str, event_type: str, t: int, user: str = "u1", impression_id: str | None = None, **extra) -> dict:
    ev = {"event_id": event_id, "event_type": event_type, "event_time": t, "user_id": user, "session_id": f"s-{user}",
          "item_id": f"item-{event_id}", "category": "books", "country": "DE", "device": "desktop", "price": 9.5,
          "features": {"position": 2.0}, **extra}  # fmt: skip
    if impression_id is not None:
        ev["impression_id"] = impression_id
    return ev


def _produce(s, messages: list[tuple[bytes, bytes]]) -> None:
    p, tracker = producer(s.kafka_bootstrap), DeliveryTracker()
    for key, value in messages:
        p.produce(s.topics.events, value, key=key, on_delivery=tracker)
        p.poll(0)
    p.flush(60)
    assert tracker.failed == 0 and tracker.delivered == len(messages)


def _produce_events(s, events: list[dict]) -> None:
    _produce(s, [(e["user_id"].encode(), orjson.dumps(e)) for e in events])


def _consume_pairs(bootstrap: str, topic: str, expect: int, timeout: float) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``expect`` committed messages (or all there are when the time is up)."""
    c = consumer(bootstrap, group_id=f"test-reader-{uuid.uuid4().hex[:8]}")
    c.subscribe([topic])
    out: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(msg.error())
            out.append((msg.key(), msg.value()))
    finally:
        c.close()
    return out


def _late_counts(s) -> dict[tuple[str, str], int]:
    """(reason, event_type) -> count, from the newest (= largest) value of each late_labels key."""
    newest: dict[tuple[str, str, int], int] = {}
    for m in consume_all(s.kafka_bootstrap, s.topics.metrics, timeout=20):
        d = orjson.loads(m)
        assert d["metric"] == LATE_LABELS_METRIC and d["window_end"] - d["window_start"] == s.window_seconds * 1000
        key = (d["reason"], d["event_type"], d["window_start"])
        newest[key] = max(newest.get(key, 0), d["value"])
    totals: dict[tuple[str, str], int] = {}
    for (reason, event_type, _), n in newest.items():
        totals[(reason, event_type)] = totals.get((reason, event_type), 0) + n
    return totals


def test_one_example_per_impression_with_duplicates_and_late_answers(topics, label_job):
    w = topics.attribution_window_ms
    assert w == 30_000
    t = BASE_MS
    events = [
        _event("imp1", "impression", t, user="u1"),
        _event("imp2", "impression", t + 1_000, user="u2"),  # never answered -> 0
        _event("imp3", "impression", t + 2_000, user="u3"),  # purchase in time -> 1
        _event("imp4", "impression", t + 3_000, user="u4"),  # click after the window -> 0, counted
        _event("imp5", "impression", t + 3_500, user="u5"),  # sent twice -> one example
        _event("imp6", "impression", t + 4_000, user="u6"),  # click exactly at t + window -> 1
        _event("c1", "click", t + 5_000, user="u1", impression_id="imp1"),
        _event("c2", "click", t + 8_000, user="u1", impression_id="imp1"),  # a second click: still one example
        _event("cx", "click", t + 10_000, user="u7", impression_id="imp-unknown"),  # unknown impression: counted
        _event("p3", "purchase", t + 20_000, user="u3", impression_id="imp3"),
        _event("c6", "click", t + 4_000 + w, user="u6", impression_id="imp6"),
        _event("c4", "click", t + 3_000 + w + 10_000, user="u4", impression_id="imp4"),
        _event("p1", "purchase", t + 60_000, user="u1", impression_id="imp1"),  # after the window: counted
    ]
    dup = {e["event_id"]: e for e in events}
    # exact duplicates (a producer retry): an impression, a click (whose twin must not count twice)
    # and a late click (counted once)
    events[5:5] = [dup["imp5"]]
    events.insert(8, dup["c1"])
    events.append(dup["c4"])
    events.append(_event("closer", "impression", t + CLOSE_AFTER_MS, user="u1"))
    _produce_events(topics, events)
    label_job()

    want = {  # impression -> (label, example_time)
        "imp1": (1, t + 5_000),
        "imp2": (0, t + 1_000 + w),
        "imp3": (1, t + 20_000),
        "imp4": (0, t + 3_000 + w),
        "imp5": (0, t + 3_500 + w),
        "imp6": (1, t + 4_000 + w),
    }
    pairs = _consume_pairs(topics.kafka_bootstrap, topics.topics.examples, expect=len(want), timeout=240)
    examples = [Example.from_json(v) for _, v in pairs]  # every record decodes with the contract
    got = {ex.event_id: (ex.label, ex.example_time) for ex in examples}
    assert sorted(ex.event_id for ex in examples) == sorted(want), "exactly one example per impression"
    assert got == want
    src = {e["event_id"]: e for e in events}
    for (key, _), ex in zip(pairs, examples):
        ev = src[ex.event_id]
        assert key == ex.user_id.encode() == ev["user_id"].encode()
        assert (ex.event_time, ex.item_id, ex.session_id, ex.category, ex.country, ex.device, ex.price, ex.features) == (
            ev["event_time"], ev["item_id"], ev["session_id"], ev["category"], ev["country"], ev["device"], ev["price"], ev["features"],
        )  # fmt: skip

    # late answers: the click after imp4's window (sent twice, counted once), the click for an
    # unknown impression and imp1's purchase after its window; nothing behind the watermark
    want_late = {("no_impression_in_window", "click"): 2, ("no_impression_in_window", "purchase"): 1}
    wait_for(lambda: _late_counts(topics) == want_late, timeout=120, what="late_labels counts")
    # and no second example for anything, a few checkpoints later
    time.sleep(6)
    again = consume_all(topics.kafka_bootstrap, topics.topics.examples, timeout=20)
    assert sorted(Example.from_json(m).event_id for m in again) == sorted(want)


def test_positive_rate_equals_the_generators_truth(topics, label_job):
    w = topics.attribution_window_ms
    gen = EventGenerator(seed=5, rate=300, start_ms=BASE_MS, n_users=3_000, n_items=800, id_prefix="g-")
    msgs = list(gen.events(until_ms=BASE_MS + 60_000))
    assert all(m.kind == "valid" for m in msgs)
    events = [m.fields for m in msgs]
    impressions = {e["event_id"]: e["event_time"] for e in events if e["event_type"] == "impression"}
    # truth: the impressions the generator actually followed by a click within the window
    clicked = {
        e["impression_id"] for e in events
        if e["event_type"] == "click" and 0 <= e["event_time"] - impressions[e["impression_id"]] <= w
    }  # fmt: skip
    answered = {
        e["impression_id"] for e in events
        if e["event_type"] in ("click", "purchase") and 0 <= e["event_time"] - impressions[e["impression_id"]] <= w
    }  # fmt: skip
    assert answered == clicked  # a purchase only ever follows a click
    assert 0 < len(clicked) < len(impressions)
    late_answers = sum(
        1 for e in events if e["event_type"] in ("click", "purchase") and e["event_time"] - impressions[e["impression_id"]] > w
    )
    closer = _event("closer", "impression", BASE_MS + 60_000 + CLOSE_AFTER_MS, user="closer")
    _produce(topics, [(m.key, m.value) for m in msgs] + [(b"closer", orjson.dumps(closer))])
    label_job()

    records = consume_all(topics.kafka_bootstrap, topics.topics.examples, expect=len(impressions), timeout=300)
    examples = [Example.from_json(m) for m in records]
    labels = {ex.event_id: ex.label for ex in examples}
    assert len(examples) == len(labels) == len(impressions) and set(labels) == set(impressions)
    positive_rate = sum(labels.values()) / len(labels)
    assert positive_rate == len(clicked) / len(impressions)
    assert {i for i, label in labels.items() if label} == clicked  # and impression by impression
    assert all(ex.example_time - ex.event_time <= w for ex in examples)
    # the clicks and purchases that came too late are all counted; nothing was behind the watermark
    wait_for(
        lambda: sum(_late_counts(topics).values()) == late_answers and all(r == "no_impression_in_window" for r, _ in _late_counts(topics)),
        timeout=120, what=f"{late_answers} late answers counted",
    )  # fmt: skip
