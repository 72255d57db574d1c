"""End to end on the real stack: generator (with truth) -> Kafka -> Flink -> aggregates.v1 ->
serving's ingester -> Redis -> HTTP, checked against the generator's exact truth."""

from __future__ import annotations

import subprocess
import sys

import httpx
import orjson
import pytest

from adapters.local import stack
from app.generator.truth import Truth
from tests.support.stack import consume_all, wait_for

pytestmark = pytest.mark.e2e

BASE_MS = 1_750_000_000_000


@pytest.fixture
def serving(topics):
    s = topics.model_copy(update={"redis_key_prefix": f"trb:{topics.topic_prefix}"})
    part = stack.serving_part(s)
    stack.start_part(part)
    yield s
    part.process.stop()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, timeout=600)


def test_generated_stream_is_answered_within_bounds(serving, sketch_job, tmp_path):
    s = serving
    truth_file = tmp_path / "truth.json"
    out = _run_cli(
        "generate", "--count", "20000", "--rate", "1000", "--seed", "11", "--start-ms", str(BASE_MS),
        "--malformed-rate", "0.01", "--late-rate", "0.002", "--truth", str(truth_file), "--as-fast-as-possible",
        "--topic-prefix", s.topic_prefix, "--bootstrap", s.kafka_bootstrap, "--no-bots",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    truth = Truth.load(truth_file)
    summary = truth.summary()
    # one event 10 minutes later in event time closes every window
    closer = tmp_path / "closer.jsonl"
    closer.write_bytes(orjson.dumps({
        "event_id": "closer", "event_type": "impression", "event_time": BASE_MS + 30 * 60_000, "user_id": "closer",
        "session_id": "s", "item_id": "i", "category": "c", "country": "US", "device": "mobile", "price": 0.0,
    }) + b"\n")  # fmt: skip
    out = _run_cli("produce", str(closer), "--topic-prefix", s.topic_prefix, "--bootstrap", s.kafka_bootstrap)
    assert out.returncode == 0, out.stdout + out.stderr

    start, end = BASE_MS - 3_600_000, BASE_MS + 20 * 60_000
    url = f"{s.serving_url}/v1/aggregates/distinct"

    last: dict = {}

    def answered():
        r = httpx.get(url, params={"field": "user_id", "start": start, "end": end}, timeout=10)
        last.update(status=r.status_code, body=r.text[:500])
        return r.json() if r.status_code == 200 and r.json().get("events") == summary["valid"] else None

    try:
        body = wait_for(answered, timeout=300, interval=2, what=f"distinct over all {summary['valid']} on-time events")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {last}; truth windows: {summary['windows'][:8]}") from None
    true_users = summary["distinct"]["user_id"]
    assert body["lower_bound"] <= true_users <= body["upper_bound"], (true_users, body)
    assert body["confidence"] >= 0.95 and body["windows"] >= 1 and body["freshness_ms"] is not None

    # every other sketch over the real stack, against the exact truth of the same range
    on_time = truth.table().select(start, end, late=False)
    api = s.serving_url + "/v1/aggregates"
    rng = {"start": start, "end": end}

    def complete(route: str, params, events: int = summary["valid"]) -> dict:
        """The answer once it covers every on-time event: each sketch is its own record in
        aggregates.v1, so one series can be complete in Redis while another is still arriving."""

        def answer():
            r = httpx.get(f"{api}/{route}", params=params, timeout=10)
            return r.json() if r.status_code == 200 and r.json().get("events") == events else None

        return wait_for(answer, timeout=60, interval=1, what=f"{route} {params} over all {events} on-time events")

    top = complete("top", {"field": "item_id", "k": 20, **rng})
    reported = {row["item"]: row for row in top["estimate"]}
    for row in top["estimate"]:  # frequent-items bounds are deterministic
        assert row["lower_bound"] <= on_time.frequency("item_id", row["item"]) <= row["upper_bound"], row
    for item, n in on_time.top("item_id", 20):
        if n > top["threshold"]:
            assert item in reported, (item, n, top["threshold"])  # no false negatives above the threshold
    quant = complete("quantiles", [("field", "price"), ("q", 0.5), ("q", 0.99), *rng.items()])
    for row in quant["estimate"]:  # the true quantile lies inside the reported value bounds
        assert row["lower_bound"] <= on_time.quantile(row["q"]) <= row["upper_bound"], row
    item, n = on_time.top("item_id", 1)[0]
    freq = complete("frequency", {"field": "item_id", "value": item, **rng})
    assert freq["lower_bound"] <= n <= freq["upper_bound"], (item, n, freq)
    germany = on_time.select(start, end, country="DE")
    by_country = complete("distinct", {"field": "user_id", "country": "DE", **rng}, events=germany.count())
    assert by_country["lower_bound"] <= germany.distinct("user_id") <= by_country["upper_bound"]
    # the sample: built from the JVM's candidates (SampleCandidates), every item a real on-time
    # event of the group, as many as asked, out of the group's exact population
    def sampled():
        r = httpx.get(f"{s.serving_url}/v1/samples", params={"n": 50, "country": "DE", **rng}, timeout=10)
        return r.json() if r.status_code == 200 and r.json().get("population") == germany.count() else None

    smp = wait_for(sampled, timeout=60, interval=1, what="samples of country DE over every on-time event")
    events = [e if isinstance(e, dict) else orjson.loads(e) for e in smp["estimate"]]
    assert smp["sample_size"] == len(events) == min(50, germany.count())
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(e["country"] == "DE" and start <= e["event_time"] < end for e in events), events[:3]

    # malformed: exactly as many in the DLQ as the generator sent
    dlq = consume_all(s.kafka_bootstrap, s.topics.dlq, expect=summary["malformed"], timeout=60)
    assert len(dlq) == summary["malformed"]
    # late: counted exactly, kept in late.v1
    late = consume_all(s.kafka_bootstrap, s.topics.late, expect=summary["late"], timeout=60) if summary["late"] else []
    assert len(late) == summary["late"]
    wait_for(lambda: httpx.get(url, params={"field": "user_id", "start": start, "end": end}).json()["late_events"] == summary["late"],
             timeout=60, what="late events counted")
