"""The synthetic generator: determinism, realism, faults, the hidden click model, replay and the CLI."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import orjson
import pytest

from app.contracts.events import Event, Rejection, parse_event
from app.generator import MALFORMED_KINDS, EventGenerator, GeneratorConfig, Truth
from app.generator.faults import corrupt
from app.generator.replay import read_messages

START = 1_800_000_000_000
LATE_BY = 5_000
SMALL = dict(seed=11, rate=200, start_ms=START, n_users=3_000, n_items=2_000)


@pytest.fixture(scope="module")
def run():
    """One faulty run shared by the tests that only read it."""
    gen = EventGenerator(**SMALL, malformed_rate=0.05, late_rate=0.05, late_by_ms=LATE_BY)
    return gen, list(gen.events(30_000))


def _valid(msgs):
    return [m for m in msgs if m.kind != "malformed"]


# ---------------------------------------------------------------------- determinism


def test_same_seed_same_stream_other_seed_other_stream():
    a = [(m.key, m.value, m.kind) for m in EventGenerator(**SMALL, malformed_rate=0.1).events(3_000)]
    b = [(m.key, m.value, m.kind) for m in EventGenerator(**SMALL, malformed_rate=0.1).events(3_000)]
    c = [(m.key, m.value, m.kind) for m in EventGenerator(**{**SMALL, "seed": 12}, malformed_rate=0.1).events(3_000)]
    assert a == b
    assert a != c


def test_continuing_the_stream_is_the_same_as_one_call():
    whole = [m.value for m in EventGenerator(**SMALL).events(2_000)]
    g = EventGenerator(**SMALL)
    assert [m.value for m in g.events(700)] + [m.value for m in g.events(1_300)] == whole


def test_until_ms_stops_at_event_time():
    g = EventGenerator(**SMALL, diurnal_amplitude=0.0, n_bots=0)
    msgs = list(g.events(until_ms=START + 10_000))
    assert all(m.at_ms < START + 10_000 for m in msgs)
    assert 1_600 < len(msgs) < 2_400  # 200 events/s for 10 s, Poisson


def test_rate_is_events_per_second_of_event_time():
    g = EventGenerator(**{**SMALL, "rate": 5_000}, diurnal_amplitude=0.0, n_bots=0)
    msgs = list(g.events(20_000))
    span_s = (msgs[-1].at_ms - START) / 1000
    assert 20_000 / span_s == pytest.approx(5_000, rel=0.05)


def test_ids_are_unique_and_differ_between_runs():
    ids = [orjson.loads(m.value)["event_id"] for m in EventGenerator(**SMALL).events(5_000)]
    assert len(set(ids)) == len(ids)
    other = orjson.loads(next(EventGenerator(**{**SMALL, "start_ms": START + 1}).events(1)).value)["event_id"]
    assert other not in ids


# ---------------------------------------------------------------------- realism


def test_valid_messages_parse_to_their_event_with_the_user_as_key(run):
    _, msgs = run
    for m in _valid(msgs):
        e = parse_event(m.value)
        assert isinstance(e, Event)
        assert e == m.event
        assert m.key == e.user_id.encode()
    impressions = [m.event for m in _valid(msgs) if m.event.event_type == "impression"]
    assert all(set(e.features) == {"position", "dwell"} for e in impressions)
    assert all(1 <= e.features["position"] <= 10 and e.features["dwell"] > 0 for e in impressions)


def test_item_popularity_is_zipf(run):
    gen, msgs = run
    counts = Counter(m.event.item_id for m in _valid(msgs) if m.event.event_type == "impression")
    # Count by true popularity rank (catalog index); log-count against log-rank is a line of slope -s.
    ranks = np.arange(1, 31)
    y = np.log([counts[gen.catalog.item_ids[k - 1]] for k in ranks])
    slope = np.polyfit(np.log(ranks), y, 1)[0]
    assert -1.5 < slope < -0.7, slope
    top10 = sum(c for _, c in counts.most_common(10)) / sum(counts.values())
    assert top10 > 0.25


def test_sessions_belong_to_one_user_and_users_come_back(run):
    _, msgs = run
    owner: dict[str, str] = {}
    for m in _valid(msgs):
        e = m.event
        assert owner.setdefault(e.session_id, e.user_id) == e.user_id
    per_user = Counter(owner.values())
    assert per_user.most_common(1)[0][1] >= 3  # heavy users have several sessions
    assert len(owner) > 1_000


def test_clicks_follow_an_earlier_impression_of_the_same_user(run):
    _, msgs = run
    shown: dict[str, Event] = {}
    clicked: set[str] = set()
    clicks = purchases = 0
    for m in _valid(msgs):
        e = m.event
        if e.event_type == "impression":
            shown[e.event_id] = e
            continue
        imp = shown[e.impression_id]  # the impression was sent before
        assert (imp.user_id, imp.session_id, imp.item_id) == (e.user_id, e.session_id, e.item_id)
        if m.kind == "valid" and imp.event_time <= m.at_ms:
            assert e.event_time >= imp.event_time
        if e.event_type == "click":
            clicks += 1
            clicked.add(e.impression_id)
        else:
            purchases += 1
            assert e.impression_id in clicked  # a purchase comes after a click on that impression
    assert clicks > 500 and purchases > 20


def test_click_delays_are_spread_like_the_configured_distribution():
    g = EventGenerator(**SMALL, n_bots=0)
    sent: dict[str, int] = {}
    delays = []
    for m in g.events(20_000):
        e = m.event
        if e.event_type == "impression":
            sent[e.event_id] = e.event_time
        elif e.event_type == "click":
            delays.append((e.event_time - sent[e.impression_id]) / 1000)
    median = float(np.median(delays))
    assert 2.5 < median < 7.0, median  # configured median 4 s (plus a few ms of queueing)
    assert max(delays) <= g.config.max_click_delay_s + 1


def test_bot_bursts_come_from_bots():
    g = EventGenerator(**SMALL, bot_burst_every_s=10, bot_burst_duration_s=5, bot_burst_intensity=1.0)
    msgs = list(g.events(10_000))
    bots = {g.population.user_ids[i] for i in g.population.bot_indices}
    bot_events = [m for m in msgs if m.event.user_id in bots]
    assert g.counts["bot_events"] > 0 and g.counts["bursts"] >= 1
    assert len([m for m in bot_events if m.event.event_type == "impression"]) == g.counts["bot_events"]


# ---------------------------------------------------------------------- faults


def test_malformed_count_is_exact_and_each_gets_its_reason(run):
    gen, msgs = run
    malformed = [m for m in msgs if m.kind == "malformed"]
    assert len(malformed) == gen.counts["malformed"]
    assert 0.04 < len(malformed) / len(msgs) < 0.06
    for m in malformed:
        r = parse_event(m.value)
        assert isinstance(r, Rejection)
        assert r.reason == m.reason
        assert m.event is None
    codes = Counter(m.reason.partition(":")[0] for m in malformed)
    assert set(codes) == {"invalid_json", "not_object", "missing_field", "wrong_type", "out_of_range"}


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_rejected_as_announced(kind):
    rng = random.Random(kind)
    for m in EventGenerator(**SMALL).events(200):
        value, reason = corrupt(m.fields, kind, rng)
        assert parse_event(value).reason == reason


def test_late_events_are_late(run):
    gen, msgs = run
    late = [m for m in msgs if m.kind == "late"]
    assert len(late) == gen.counts["late"] > 500
    newest = 0
    for m in msgs:
        if m.kind == "valid":
            assert m.event.event_time == m.at_ms >= newest  # on time: in order, at the clock
            newest = m.at_ms
        elif m.kind == "late":
            # More than the lateness behind the clock, which is at or past every event sent so far.
            assert newest <= m.at_ms
            assert m.at_ms - 2 * LATE_BY <= m.event.event_time < m.at_ms - LATE_BY


def test_fault_rates_are_validated():
    with pytest.raises(ValueError):
        GeneratorConfig(late_rate=-0.1)
    with pytest.raises(ValueError):
        GeneratorConfig(malformed_kinds=("nope",))


# ---------------------------------------------------------------------- the hidden click model


def test_drift_changes_the_click_rate():
    g = EventGenerator(**SMALL, drift_at=10_000, n_bots=0)
    msgs = list(g.events(20_000))
    before = [m.p_click for m in msgs[:10_000] if m.p_click is not None]
    after = [m.p_click for m in msgs[10_000:] if m.p_click is not None]
    assert np.mean(after) > 1.15 * np.mean(before)  # drift_shift = +0.4: more clicks
    clicks_before = sum(m.event.event_type == "click" for m in msgs[1_000:10_000])
    clicks_after = sum(m.event.event_type == "click" for m in msgs[11_000:20_000])
    assert clicks_after > clicks_before
    # A shift the other way is a configuration away.
    down = EventGenerator(**SMALL, drift_at=10_000, n_bots=0, drift_shift=-1.2)
    p_down = [m.p_click for m in down.events(20_000) if m.p_click is not None]
    assert np.mean(p_down[len(p_down) // 2 + 500 :]) < 0.8 * np.mean(p_down[: len(p_down) // 2 - 500])
    # The same (user, item, context) answers differently in the two regimes.
    cm = g.click_model
    p0 = [cm.probability(0, u, i, 1, 0, 1.0, 12.0) for u, i in zip(range(200), range(200))]
    p1 = [cm.probability(1, u, i, 1, 0, 1.0, 12.0) for u, i in zip(range(200), range(200))]
    assert np.corrcoef(p0, p1)[0, 1] < 0.5
    # Segments' category tastes flip: the static part of the logit is anti-correlated across regimes.
    r0, r1 = np.array(cm.regimes[0].static), np.array(cm.regimes[1].static)
    assert np.corrcoef((r0 - r0.mean(0)).ravel(), (r1 - r1.mean(0)).ravel())[0, 1] < -0.3


def test_latent_taste_match_matters_beyond_per_id_biases():
    """The user x item dot product (only embeddings can learn it) moves the logit a lot."""
    g = EventGenerator(**SMALL)
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 3_000, 2_000), rng.integers(0, 2_000, 2_000)
    term = [g.click_model.latent_weight * g.click_model.affinity(0, int(u), int(i)) for u, i in zip(users, items)]
    assert np.std(term) > 0.6
    # And it is an interaction: it does not factor into a user part plus an item part.
    table = np.array([[g.click_model.affinity(0, u, i) for i in range(40)] for u in range(40)])
    additive = table.mean(1, keepdims=True) + table.mean(0, keepdims=True) - table.mean()
    assert np.std(table - additive) > 0.5 * np.std(table)


def test_click_rate_is_realistic(run):
    _, msgs = run
    p = [m.p_click for m in msgs if m.p_click is not None]
    assert 0.02 < np.mean(p) < 0.2
    assert np.quantile(p, 0.99) > 5 * np.median(p)  # some impressions are far likelier to be clicked


# ---------------------------------------------------------------------- replay


def test_replay_jsonl_csv_parquet(run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, msgs = run
    sample = msgs[:300]
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_bytes(b"\n".join(m.value for m in sample) + b"\n")
    replayed = list(read_messages(jsonl))
    assert [v for _, v in replayed] == [m.value for m in sample]  # byte for byte, malformed too
    assert [k for (k, _), m in zip(replayed, sample) if m.kind != "malformed"] == [m.key for m in _valid(sample)]

    events = [m.event for m in _valid(sample)]
    rows = [e.to_dict() for e in events]
    flat = [{**{k: v for k, v in r.items() if k != "features"}, **{f"features.{k}": v for k, v in r.get("features", {}).items()}} for r in rows]
    columns = sorted({k for r in flat for k in r})
    csv_file = tmp_path / "e.csv"
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in flat]
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parquet_file = tmp_path / "e.parquet"
    pq.write_table(pa.table({c: [r.get(c) for r in flat] for c in columns}), parquet_file)
    for path in (csv_file, parquet_file):
        got = [parse_event(v) for _, v in read_messages(path)]
        assert got == events, path


# ---------------------------------------------------------------------- the CLI (with a fake producer)


class FakeProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self._callbacks = []
        self.fail_every = fail_every

    def produce(self, topic, value=None, key=None, on_delivery=None):
        self.sent.append((topic, key, value))
        self._callbacks.append(on_delivery)

    def poll(self, timeout=0):
        callbacks, self._callbacks = self._callbacks, []
        for i, cb in enumerate(callbacks, start=len(self.sent) - len(callbacks) + 1):
            cb("broker down" if self.fail_every and i % self.fail_every == 0 else None, None)
        return len(callbacks)

    def flush(self, timeout=None):
        self.poll()
        return 0


@pytest.fixture()
def cli(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from adapters import kafka_io
    from app.cli import data_cmds

    producer = FakeProducer()
    monkeypatch.setattr(kafka_io, "producer", lambda bootstrap, **kw: producer)
    monkeypatch.setattr(kafka_io, "ensure_topics", lambda *a, **kw: [])
    app = typer.Typer()
    data_cmds.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args]), producer


def test_generate_command_produces_and_writes_truth(cli, tmp_path):
    invoke, producer = cli
    truth_file = tmp_path / "truth.json"
    result = invoke("generate", "--count", 3_000, "--rate", 1_000, "--seed", 5, "--malformed-rate", 0.02,
                    "--late-rate", 0.02, "--as-fast-as-possible", "--topic-prefix", "t1.", "--truth", truth_file,
                    "--n-users", 1_000, "--n-items", 500, "--start-ms", START)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(producer.sent) == 3_000
    assert {t for t, _, _ in producer.sent} == {"t1.events.v1"}
    summary = Truth.load(truth_file).summary()
    rejected = sum(isinstance(parse_event(v), Rejection) for _, _, v in producer.sent)
    assert summary["malformed"] == rejected > 0
    assert summary["messages"] == 3_000
    assert "delivered" in result.output


def test_generate_command_fails_when_deliveries_fail(cli):
    invoke, producer = cli
    producer.fail_every = 100
    result = invoke("generate", "--count", 500, "--as-fast-as-possible", "--n-users", 100, "--n-items", 50)
    assert result.exit_code == 1


def test_produce_command_sends_jsonl_lines_as_they_are(cli, tmp_path):
    invoke, producer = cli
    good = next(EventGenerator(**SMALL).events(1)).value
    path = tmp_path / "in.jsonl"
    path.write_bytes(good + b"\nnot json\n")
    result = invoke("produce", path)
    assert result.exit_code == 0, result.output
    assert [v for _, _, v in producer.sent] == [good, b"not json"]


def test_schema_command_check(cli):
    invoke, _ = cli
    assert invoke("schema", "--check").exit_code == 0


def test_generator_is_fast_enough():
    """>= 100k events/s is the goal on an idle core; here only a loose floor, the machine is shared."""
    import time

    g = EventGenerator(**{**SMALL, "rate": 50_000}, malformed_rate=0.01, late_rate=0.01)
    t0 = time.process_time()
    n = sum(1 for _ in g.events(50_000))
    rate = n / (time.process_time() - t0)
    assert rate > 30_000, f"{rate:.0f} events/s"
    assert math.isfinite(rate)
