"""The online learner against a real broker, and serving following its snapshots.

* parity: examples produced to ``examples.v1`` (one partition, so the order is defined) and learned
  by :class:`trainers.online.service.OnlineLearner` with its Kafka ports give, on ``metrics.v1``,
  exactly river's own ``progressive_val_score`` on the same rows in the same order (a synthetic
  stream and ``river.datasets.Phishing``);
* kill -9: ``python -m trainers.online`` killed twice (once idle with learned-but-unsnapshotted
  examples, once mid-run right after a snapshot) and restarted ends with the metrics, and the
  model, of a fault-free run;
* serving: the snapshot appears in serving (a real Redis), POST /v1/predict answers with its
  version; corrupt, unsigned, wrong-key and stale artifacts are rejected and the previous version
  keeps serving; the admin route rolls back (and pins), and forward again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from river import datasets, evaluate
from river import metrics as rm

from adapters.kafka_io import DeliveryTracker, producer
from adapters.local.parts import settings_env
from app.config import PROJECT_ROOT, Settings
from app.contracts.examples import Example
from app.features import features
from app.learners.artifact import pack, sign, verify
from app.learners.pipelines import build
from app.learners.prequential import Prequential, default_metrics
from app.learners.synthetic import synthetic_examples
from tests.support.stack import consume_all, wait_for
from trainers.online.core import LearnerCore
from trainers.online.service import OnlineLearner

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

KEY = b"integration-test-key-0123456789ab"
OTHER_KEY = b"some-other-key-that-is-long-enough"
TOKEN = "admin-token-for-tests"
NAMES = Prequential().names  # log_loss, roc_auc, accuracy, ece


# -- helpers ------------------------------------------------------------------------------------------
def produce(s: Settings, topic: str, values: list[bytes], keys: list[bytes | None] | None = None,
            partition: int | None = 0) -> None:
    """Produce ``values`` (to one partition by default, so their order is defined); all acknowledged."""
    p = producer(s.kafka_bootstrap, **{"message.max.bytes": 32 * 1024 * 1024})
    tracker = DeliveryTracker()
    for i, v in enumerate(values):
        kw = {"key": keys[i] if keys else None, "on_delivery": tracker}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                p.produce(topic, value=v, **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    assert tracker.failed == 0, tracker.last_error
    assert tracker.delivered == len(values)


def example_bytes(rows: list[dict]) -> list[bytes]:
    """The records as the label join writes them (validated :class:`Example` JSON)."""
    return [Example.from_dict(r).to_json() for r in rows]


def phishing_rows() -> list[dict]:
    """``river.datasets.Phishing`` as examples: its numeric features ride in ``features`` (so
    they reach the model as ``f:<name>``), every other field is constant."""
    rows = []
    for i, (x, y) in enumerate(datasets.Phishing()):
        rows.append({
            "event_id": f"phishing-{i}", "event_time": 1_795_700_000_000 + i, "user_id": "site", "session_id": "s",
            "item_id": "page", "category": "web", "country": "US", "device": "desktop", "price": 0.0,
            "label": int(bool(y)), "example_time": 1_795_700_000_000 + i, "features": dict(x),
        })  # fmt: skip
    return rows


def river_checkpoints(values: list[bytes], every: int, pipeline: str = "logreg") -> dict[int, dict[str, float]]:
    """river's own ``progressive_val_score`` loop on the learner's feature path: metrics every ``every``."""
    dataset = []
    for v in values:
        d = orjson.loads(v)
        dataset.append((features(d), d["label"] == 1))
    metric_objs = default_metrics()
    out = {}
    for cp in evaluate.iter_progressive_val_score(dataset, build(pipeline), rm.base.Metrics(metric_objs), step=every):
        out[cp["Step"]] = {name: float(m.get()) for name, m in zip(NAMES, metric_objs)}
    final = evaluate.progressive_val_score(dataset, build(pipeline), rm.base.Metrics(default_metrics()))
    assert [float(m.get()) for m in final] == list(out[len(values)].values())  # the one-call form agrees
    return out


def metrics_records(s: Settings, type_: str = "prequential") -> list[dict]:
    return [r for r in map(orjson.loads, consume_all(s.kafka_bootstrap, s.topics.metrics, timeout=30))
            if r["type"] == type_]  # fmt: skip


def by_n(records: list[dict]) -> dict[int, dict]:
    """Prequential records by ``n``; records published again after a crash must equal the first."""
    out: dict[int, dict] = {}
    for r in records:
        seen = out.get(r["n"])
        if seen is not None:
            assert seen["metrics"] == r["metrics"] and seen["watermark"] == r["watermark"], (seen, r)
        out[r["n"]] = r
    return out


def assert_same_metrics(ours: dict[int, dict], theirs: dict[int, dict[str, float]]) -> None:
    assert sorted(ours) == sorted(theirs)
    for n, expected in theirs.items():
        got = ours[n]["metrics"]
        assert list(got) == NAMES
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15), n


def run_learner(s: Settings, n: int, *, every: int, snapshot_every_n: int = 1_000_000, name: str = "ctr",
                timeout_s: float = 180.0) -> LearnerCore:
    """The service in-process with its real Kafka ports, until it consumed ``n`` records in all
    (those of the snapshot it restores included)."""
    learner = OnlineLearner(
        s, name, "logreg", snapshot_every_n, 1e9, KEY, metrics_every_n=every, batch_size=500, poll_timeout_s=0.2
    )
    stop = threading.Event()
    timer = threading.Timer(timeout_s, stop.set)
    timer.start()
    try:
        core = learner.run(stop, max_examples=n)
    finally:
        timer.cancel()
    assert core.consumed == n, f"learner consumed {core.consumed} of {n} records in {timeout_s} s"
    return core


# -- a. parity with river through Kafka ---------------------------------------------------------------
@pytest.mark.parametrize("stream", ["synthetic", "phishing"])
def test_prequential_metrics_through_kafka_equal_river(topics, stream) -> None:
    rows = synthetic_examples(6_000, seed=5) if stream == "synthetic" else phishing_rows()
    every = 500 if stream == "synthetic" else 125
    values = example_bytes(rows)
    produce(topics, topics.topics.examples, values, [r["user_id"].encode() for r in rows])

    core = run_learner(topics, len(values), every=every, snapshot_every_n=2_000)

    expected = river_checkpoints(values, every)
    ours = by_n(metrics_records(topics))
    assert_same_metrics(ours, expected)
    assert core.n == len(values) and core.malformed == 0 and core.offsets == {0: len(values)}
    assert ours[len(values)]["watermark"] == max(r["example_time"] for r in rows)

    # The snapshots on models.v1: signed, versions 1, 2, ..., the last at the end of the stream.
    snaps = [verify(b, KEY) for b in consume_all(topics.kafka_bootstrap, topics.topics.models, timeout=30)]
    assert [a.header.version for a in snaps] == list(range(1, len(snaps) + 1))
    last = snaps[-1].header
    assert last.kafka_offsets == {0: len(values)} and last.kafka_topic == topics.topics.examples
    assert last.examples_seen == len(values)
    assert {k: last.metrics[k] for k in NAMES} == pytest.approx(expected[len(values)], rel=1e-12)


# -- b. kill -9 ---------------------------------------------------------------------------------------
class LearnerProcess:
    """``python -m trainers.online`` for one test's topics; its output goes to a log file."""

    def __init__(self, s: Settings, log: Path, *args: str) -> None:
        self.env = {**os.environ, **settings_env(s), "TRIBUTARY_MODEL_HMAC_KEY": KEY.decode(), "PYTHONUNBUFFERED": "1"}
        self.argv = [sys.executable, "-m", "trainers.online", "--model-name", "ctr", "--no-create-topics", *args]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv, cwd=PROJECT_ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


class Tail:
    """Every record of a topic as it arrives (a background consumer), to react within milliseconds."""

    def __init__(self, s: Settings, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        from adapters.kafka_io import consumer

        self.records: list[dict] = []
        self._stop = threading.Event()
        self._c = consumer(s.kafka_bootstrap, f"test-tail-{os.getpid()}-{id(self)}")
        parts = self._c.list_topics(topic, timeout=10).topics[topic].partitions
        self._c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self._c.poll(0.02)
            if m is not None and m.error() is None:
                self.records.append(orjson.loads(m.value()))

    def ns(self, type_: str) -> set[int]:
        return {r["n"] for r in list(self.records) if r["type"] == type_}

    def close(self) -> None:
        self._stop.set()
        self._t.join(5)
        self._c.close()


def test_kill_9_mid_run_then_restart_equals_fault_free_run(topics, tmp_path) -> None:
    n_total = 40_000
    rows = synthetic_examples(n_total, seed=9, drift_at=20_000)
    values = example_bytes(rows)
    keys = [r["user_id"].encode() for r in rows]
    every, snap_n = 500, 5_000
    part_a = 12_345
    produce(topics, topics.topics.examples, values[:part_a], keys[:part_a])

    proc = LearnerProcess(
        topics, tmp_path / "learner.log", "--snapshot-every-n", str(snap_n), "--snapshot-every-s", "100000",
        "--metrics-every-n", str(every), "--batch-size", "250",
    )  # fmt: skip
    tail = Tail(topics, topics.topics.metrics)

    def progressed(snapshot_n: int, metrics_n: int):
        def check():
            assert proc.alive(), proc.tail()
            return snapshot_n in tail.ns("snapshot") and metrics_n in tail.ns("prequential")
        return check

    try:
        # 1st kill: idle, with 2,345 examples learned after the last snapshot (n=10,000), and their
        # metrics records (10,500 ... 12,000) already published.
        proc.start()
        wait_for(progressed(10_000, 12_000), timeout=180, what="learner at n=12,000 after the 10,000 snapshot")
        time.sleep(0.5)
        proc.kill9()

        # 2nd kill: mid-run, as soon as the 25,000 snapshot is seen (the learner is still consuming).
        produce(topics, topics.topics.examples, values[part_a:], keys[part_a:])
        proc.start()
        wait_for(progressed(25_000, 25_000), timeout=180, interval=0.005, what="the n=25,000 snapshot after a restart")
        proc.kill9()
        killed_at = max(tail.ns("prequential"))

        proc.start()
        wait_for(progressed(n_total, n_total), timeout=180, what=f"all {n_total} examples learned")
        assert proc.terminate() == 0, proc.tail()  # SIGTERM: a clean exit
    finally:
        if proc.alive():
            proc.kill9()
        tail.close()

    # The fault-free run on the same records.
    clean = LearnerCore("ctr", "logreg", metrics_every_n=every)
    events = clean.process([(0, i, v) for i, v in enumerate(values)])
    expected = {e["n"]: e for e in events if e["type"] == "prequential"}

    ours = by_n(metrics_records(topics))
    assert sorted(ours) == sorted(expected)
    for n, e in expected.items():
        assert ours[n]["metrics"] == e["metrics"], n  # bit for bit: same code, same order, same state
        assert ours[n]["watermark"] == e["watermark"]
    # ... which is river's own loop too.
    assert_same_metrics(ours, river_checkpoints(values, every))

    # Drift records: replayed ones equal the originals, and the set equals the fault-free run's.
    def strip(r):
        return {k: v for k, v in r.items() if k not in ("version", "emitted_at")}

    drifts = {orjson.dumps(strip(r), option=orjson.OPT_SORT_KEYS) for r in metrics_records(topics, "drift")}
    assert drifts == {orjson.dumps(strip(e), option=orjson.OPT_SORT_KEYS) for e in events if e["type"] == "drift"}
    assert drifts, "the stream drifts at 15,000: at least one drift record"

    # The final model is the fault-free model.
    final = verify(consume_all(topics.kafka_bootstrap, topics.topics.models, timeout=30)[-1], KEY)
    assert final.header.examples_seen == len(values) and final.header.kafka_offsets.get(0) == len(values)
    assert final.model["LogisticRegression"].weights == clean.model["LogisticRegression"].weights
    assert final.model["LogisticRegression"].intercept == clean.model["LogisticRegression"].intercept
    log_text = (tmp_path / "learner.log").read_text()
    assert log_text.count("restored ctr") == 2, proc.tail()
    assert killed_at < len(values), "the second kill came after the learner had finished: not mid-run"


# -- c. serving follows the snapshots -----------------------------------------------------------------
IMPRESSION = {"user_id": "u12", "item_id": "i3", "category": "c4", "country": "DE", "device": "mobile",
              "price": 19.5, "event_time": 1_795_700_123_456, "features": {"quality": 0.3, "rank": 2},
              "context": {"user_recent": 2, "item_recent": 7}}  # fmt: skip


def test_serving_follows_snapshots_rejects_bad_artifacts_and_rolls_back(topics, caplog) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    s = topics.model_copy(update={"admin_token": TOKEN, "model_hmac_key": KEY.decode()})
    admin = {"Authorization": f"Bearer {TOKEN}"}
    rows = synthetic_examples(8_000, seed=3)
    values = example_bytes(rows)
    keys = [r["user_id"].encode() for r in rows]

    with TestClient(create_app(s, start_ingester=False)) as client:  # Redis from settings (infra's)
        reg = client.app.state.models
        assert reg is not None
        wait_for(reg.caught_up.is_set, timeout=60, what="registry caught up with an empty models.v1")
        r = client.post("/v1/predict", json=IMPRESSION)
        assert r.status_code == 503 and "no model" in r.json()["detail"]

        # The learner publishes v1 (n=2,000) ... v3 (n=6,000): serving swaps each in as it comes.
        produce(topics, topics.topics.examples, values[:6_000], keys[:6_000])
        core = run_learner(topics, 6_000, every=1_000, snapshot_every_n=2_000)
        assert core.version == 3
        wait_for(lambda: (reg.active("ctr") or None) and reg.active("ctr").version == 3, timeout=60,
                 what="v3 active in serving")  # fmt: skip
        r = client.post("/v1/predict", json=IMPRESSION)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "ctr" and body["model_version"] == 3
        # The same feature function on both sides: the learner's model gives the same number.
        assert body["predictions"][0]["p_click"] == pytest.approx(
            core.model.predict_proba_one(features(IMPRESSION))[True], rel=1e-12)
        batch = client.post("/v1/predict?model=ctr", json=[IMPRESSION, {**IMPRESSION, "device": "tablet"}])
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 2
        assert batch.json()["predictions"][0] == body["predictions"][0]

        listing = client.get("/v1/models").json()["models"]["ctr"]
        assert listing["active"]["version"] == 3 and listing["active"]["kind"] == "river:logreg"
        assert listing["active"]["trained_until_watermark"] == max(r["example_time"] for r in rows[:6_000])
        assert listing["active"]["metrics"]["n"] == 6_000
        assert [h["version"] for h in listing["history"]] == [3, 2, 1]

        # Bad artifacts, all claiming to be v4 (and one stale v2): rejected, v3 keeps serving.
        good = sign(core.model, key=KEY, model_name="ctr", kind="river:logreg", version=4, examples_seen=1)
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0xFF
        unsigned = good[:-36]
        header_len = int.from_bytes(good[10:14], "big")  # b"TRBMODEL" | u16 format | u32 header length
        header = orjson.loads(good[14 : 14 + header_len])
        bad = {
            "corrupt": good[: len(good) // 3],  # truncated
            "bad_signature": bytes(flipped),  # tampered payload
            "unsigned": unsigned,
            "wrong_key": sign(core.model, key=OTHER_KEY, model_name="ctr", kind="river:logreg", version=4),
            "stale_version": sign(build("logreg"), key=KEY, model_name="ctr", kind="river:logreg", version=2),
            "unsigned_pack": pack(header, b"\x80\x04N.", None),
        }
        produce(topics, topics.topics.models, list(bad.values()), [b"ctr"] * len(bad), partition=None)
        wait_for(lambda: sum(reg.rejected.values()) >= len(bad), timeout=60, what="all bad artifacts rejected")
        assert dict(reg.rejected) == {"corrupt": 1, "bad_signature": 2, "unsigned": 2, "stale_version": 1}
        assert reg.active("ctr").version == 3
        assert client.post("/v1/predict", json=IMPRESSION).json()["model_version"] == 3
        prom = client.get("/metrics").text
        assert 'tributary_model_artifacts_rejected_total{reason="bad_signature"} 2.0' in prom
        assert 'tributary_model_active_version{model="ctr"} 3.0' in prom

        # Admin: rollback to v1 (pins), guarded, 404s, then the learner's v4 is stored, not activated.
        url = "/v1/models/ctr/activate"
        assert client.post(url, json={"version": 1}).status_code == 401
        assert client.post(url, json={"version": 1}, headers={"Authorization": "Bearer nope"}).status_code == 403
        assert client.post(url, json={"version": 99}, headers=admin).status_code == 404
        assert client.post("/v1/models/nope/activate", json={"version": 1}, headers=admin).status_code == 404
        assert client.post(url, json={"version": "x"}, headers=admin).status_code == 422
        r = client.post(url, json={"version": 1}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == 1 and r.json()["pinned"] is True
        assert client.post("/v1/predict", json=IMPRESSION).json()["model_version"] == 1

        produce(topics, topics.topics.examples, values[6_000:], keys[6_000:])
        core = run_learner(topics, 8_000, every=1_000, snapshot_every_n=2_000)  # restores v3, learns 2,000 more
        assert core.version == 4 and core.n == 8_000
        # The bad artifacts published after v3 did not stop the learner: it skipped them.
        assert "is not a snapshot to restore" in caplog.text
        wait_for(lambda: client.get("/v1/models").json()["models"]["ctr"]["newest_version"] == 4, timeout=60,
                 what="v4 received")  # fmt: skip
        listing = client.get("/v1/models").json()["models"]["ctr"]
        assert listing["active"]["version"] == 1 and listing["pinned"] is True
        assert client.post("/v1/predict", json=IMPRESSION).json()["model_version"] == 1

        r = client.post(url, json={"version": 4}, headers=admin)  # roll forward: unpinned
        assert r.status_code == 200 and r.json()["pinned"] is False
        assert client.post("/v1/predict", json=IMPRESSION).json()["model_version"] == 4

        # Bad bodies: 422, never a 500.
        for bad_body in ([], [{"price": -1}], {"device": "fridge"}, [IMPRESSION] * 1_001, "x", {"features": {"a": "b"}}):
            assert client.post("/v1/predict", json=bad_body).status_code == 422, bad_body
        assert client.post("/v1/predict", content=b"{not json").status_code == 422
        assert client.post("/v1/predict?model=other", json=IMPRESSION).status_code == 404

    # A new serving process rebuilds the history from models.v1 and activates the newest version.
    with TestClient(create_app(s, start_ingester=False)) as client:
        reg = client.app.state.models
        wait_for(reg.caught_up.is_set, timeout=60, what="history rebuilt")
        listing = client.get("/v1/models").json()
        assert listing["models"]["ctr"]["active"]["version"] == 4
        assert [h["version"] for h in listing["models"]["ctr"]["history"]] == [4, 3, 2, 1]
        assert sum(listing["rejected"].values()) == len(bad)
        assert client.post("/v1/predict", json=IMPRESSION).json()["model_version"] == 4


# -- d. hot swap under load ------------------------------------------------------------------------
def test_hot_swap_under_load_no_failed_request_no_version_backwards(topics) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    s = topics.model_copy(update={"model_hmac_key": KEY.decode()})
    data = synthetic_examples(4_000, seed=1)
    model, blobs = build("logreg"), []
    for v in range(1, 22):  # v1, then 20 swaps
        for r in data[(v - 1) * 190 : v * 190]:
            model.learn_one(features(r), r["label"] == 1)
        blobs.append(sign(model, key=KEY, model_name="ctr", kind="river:logreg", version=v))

    with TestClient(create_app(s, start_ingester=False)) as client:
        reg = client.app.state.models
        wait_for(reg.caught_up.is_set, timeout=60, what="registry caught up")
        produce(topics, topics.topics.models, blobs[:1], [b"ctr"], partition=None)
        wait_for(lambda: reg.active("ctr") is not None, timeout=60, what="v1 active")

        stop = threading.Event()
        seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]

        def hammer(out: list) -> None:
            while not stop.is_set():
                r = client.post("/v1/predict", json=[IMPRESSION, {**IMPRESSION, "device": "desktop"}])
                out.append((r.status_code, r.json().get("model_version", -1) if r.status_code == 200 else -1))

        threads = [threading.Thread(target=hammer, args=(out,)) for out in seen]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        try:
            for v, blob in enumerate(blobs[1:], start=2):
                produce(topics, topics.topics.models, [blob], [b"ctr"], partition=None)
                wait_for(lambda v=v: reg.active("ctr").version == v, timeout=30, interval=0.01, what=f"v{v} active")
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        elapsed = time.monotonic() - t0

    total = sum(len(out) for out in seen)
    statuses = Counter(code for out in seen for code, _ in out)
    assert statuses == {200: total}, statuses
    for out in seen:  # per client, in order: never backwards
        versions = [v for _, v in out]
        assert versions == sorted(versions)
    assert {v for out in seen for _, v in out} >= {1, 21}
    print(f"hot swap: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s), 20 swaps, 0 failed")
