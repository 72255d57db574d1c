"""Learners: prequential parity with river, learning, drift, calibration and AUC metrics."""

from __future__ import annotations

import math
import pickle

import numpy as np
import orjson
import pytest
from river import datasets, evaluate, metrics

from app.features import features
from app.learners.auc import BinnedROCAUC
from app.learners.calibration import ExpectedCalibrationError
from app.learners.adaptive import DriftAdaptive
from app.learners.drift import DriftMonitor
from app.learners.pipelines import PIPELINES, build
from app.learners.prequential import Prequential, default_metrics
from app.learners.synthetic import synthetic_examples
from trainers.online.core import LearnerCore


def _synthetic_xy(n, seed=11, **kw):
    return [(features(r), bool(r["label"])) for r in synthetic_examples(n, seed=seed, **kw)]


def _river_values(rows, model, metric_list):
    result = evaluate.progressive_val_score(rows, model, metrics.base.Metrics(metric_list))
    return [m.get() for m in result]


def _all_metrics():
    # ours (O(1)) and river's own, side by side
    return [*default_metrics(), metrics.ROCAUC(), metrics.F1(), metrics.Precision()]


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_parity_with_progressive_val_score_on_phishing(pipeline):
    rows = list(datasets.Phishing())
    ours = Prequential(_all_metrics()).run(build(pipeline), rows)
    theirs = _river_values(rows, build(pipeline), _all_metrics())
    assert ours.n == len(rows) == 1250
    assert list(ours.get().values()) == theirs  # exactly equal, not approximately


def test_parity_with_progressive_val_score_on_a_synthetic_stream():
    rows = _synthetic_xy(4_000)
    ours = Prequential(_all_metrics()).run(build("logreg"), rows)
    assert list(ours.get().values()) == _river_values(rows, build("logreg"), _all_metrics())


def test_learner_loop_from_json_bytes_equals_river_on_the_same_rows():
    """The service's hot loop (decode → features → predict → score → learn) is prequential too."""
    raw = synthetic_examples(4_000, seed=12)
    core = LearnerCore("m", "logreg", metrics_every_n=10**9)
    core.process([(0, i, orjson.dumps(r)) for i, r in enumerate(raw)])
    rows = [(features(r), bool(r["label"])) for r in raw]
    assert list(core.prequential.get().values()) == _river_values(rows, build("logreg"), default_metrics())


def test_prequential_state_survives_pickling_exactly():
    rows = _synthetic_xy(3_000, seed=13)
    straight = Prequential().run(build("logreg"), rows)
    model, preq = build("logreg"), Prequential()
    preq.run(model, rows[:1_234])
    model, preq = pickle.loads(pickle.dumps((model, preq)))
    preq.run(model, rows[1_234:])
    assert preq.get() == straight.get() and preq.n == straight.n


def test_logreg_beats_the_constant_base_rate_predictor():
    rows = _synthetic_xy(20_000, seed=14)
    base_rate = sum(y for _, y in rows) / len(rows)
    entropy = -(base_rate * math.log(base_rate) + (1 - base_rate) * math.log(1 - base_rate))
    preq = Prequential().run(build("logreg"), rows)
    result = preq.get()
    assert result["log_loss"] < 0.85 * entropy  # hindsight constant: a stricter baseline than a running one
    assert result["roc_auc"] > 0.75
    assert result["ece"] < 0.05


def test_fm_learns_too():
    rows = _synthetic_xy(2_000, seed=15)
    base_rate = sum(y for _, y in rows) / len(rows)
    entropy = -(base_rate * math.log(base_rate) + (1 - base_rate) * math.log(1 - base_rate))
    assert Prequential().run(build("fm"), rows).get()["log_loss"] < entropy


@pytest.mark.parametrize("seed", [0, 1])
def test_drift_detected_after_an_abrupt_change_and_not_without_one(seed):
    def drift_indices(drift_at):
        raw = synthetic_examples(20_000, seed=seed, drift_at=drift_at)
        core = LearnerCore("m", "logreg", metrics_every_n=10**9)
        events = core.process([(0, i, orjson.dumps(r)) for i, r in enumerate(raw)])
        assert all(e["type"] == "drift" for e in events)
        assert all(e["watermark"] >= raw[e["index"]]["example_time"] for e in events)
        return [e["index"] for e in events]

    detected = drift_indices(10_000)
    assert detected and 10_000 <= detected[0] < 11_000, detected
    assert drift_indices(None) == []


def _monitor_events(monitor, rates, p, n_each=4_000, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k, q in enumerate(rates):
        for i in range(n_each):
            e = monitor.update(bool(rng.random() < q), p, k * n_each + i)
            if e is not None:
                out.append(e)
    return out


@pytest.mark.parametrize(("after", "direction"), [(0.2, "up"), (0.05, "down")])
def test_drift_monitor_finds_a_click_rate_change_in_either_direction(after, direction):
    """The model says 0.1 throughout; the true rate moves to ``after`` at 4,000."""
    events = _monitor_events(DriftMonitor(warmup=500), [0.1, after], 0.1)
    assert events, "no detection"
    first = events[0]
    assert 4_000 <= first.index < 6_000, first
    assert first.direction == direction
    assert first.signal in (("residual", "surprise") if direction == "up" else ("residual",))
    assert all(e.index >= 4_000 for e in events)  # nothing before the change


def test_drift_monitor_quiet_on_a_calibrated_model_and_during_warmup():
    # Calibrated predictions at a constant rate: no detection in 20,000 examples.
    assert _monitor_events(DriftMonitor(warmup=500), [0.1] * 5, 0.1, seed=3) == []
    # A change inside the warm-up is not reported.
    assert _monitor_events(DriftMonitor(warmup=20_000), [0.1, 0.4], 0.1) == []


def test_drift_monitor_reports_a_stale_model_when_the_loss_falls():
    """The concept flips and the click rate falls at once: the raw loss falls (fewer clicks),
    yet the model is confidently wrong, and the surprise (loss minus the loss the model expects)
    rises. A loss-only detector watching for increases cannot see this."""
    rng = np.random.default_rng(5)
    monitor, events, losses = DriftMonitor(warmup=500), [], []
    for i in range(12_000):
        a = bool(rng.random() < 0.5)  # a binary feature
        p = 0.3 if a else 0.05  # what the model learned
        q = (0.3 if a else 0.05) if i < 6_000 else (0.0 if a else 0.08)  # after: the feature flips, fewer clicks
        y = bool(rng.random() < q)
        losses.append(-math.log(p if y else 1 - p))
        e = monitor.update(y, p, i)
        if e is not None:
            events.append(e)
    assert np.mean(losses[6_000:]) < np.mean(losses[:6_000])  # the loss fell ...
    assert events and 6_000 <= events[0].index < 7_500  # ... and the drift is found
    assert events[0].signal in ("surprise", "residual")


def test_drift_adaptive_is_reproduced_by_river_progressive_val_score():
    """Detection and the recovery boost happen inside learn_one: river's own loop over the same
    model gives the same metrics as our Prequential, and the same detections."""
    raw = synthetic_examples(20_000, seed=1, drift_at=10_000)
    rows = [(features(r), bool(r["label"])) for r in raw]
    ours_model, theirs_model = build("logreg"), build("logreg")
    ours = Prequential().run(ours_model, rows)
    theirs = _river_values(rows, theirs_model, default_metrics())
    assert list(ours.get().values()) == theirs
    assert ours_model.boosts >= 1 and ours_model.boosts == theirs_model.boosts
    assert ours_model.monitor.detections == theirs_model.monitor.detections
    # ... and the boost is a real action: without it the weights differ.
    plain = build("logreg", boost=1.0)
    Prequential().run(plain, rows)
    assert plain.monitor.detections >= 1
    assert plain["LogisticRegression"].weights != ours_model["LogisticRegression"].weights


def test_drift_boost_scales_adagrad_accumulators():
    model = build("logreg", drift_warmup=0)
    x = {"a=1": 1.0}
    for _ in range(5):
        model.learn_one(x, True)
    g2 = model["LogisticRegression"].optimizer.g2["a=1"]
    model._boost()
    assert model["LogisticRegression"].optimizer.g2["a=1"] == pytest.approx(0.1 * g2)


def test_binned_auc_close_to_exact_auc():
    rng = np.random.default_rng(3)
    y = rng.random(20_000) < 0.3
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, y.size) + 1.2 * y)))
    auc = BinnedROCAUC()
    for yi, pi in zip(y, p):
        auc.update(bool(yi), {True: float(pi), False: 1 - float(pi)})
    order = np.argsort(p)
    ranks = np.empty(y.size)
    ranks[order] = np.arange(1, y.size + 1)
    n_pos, n_neg = y.sum(), (~y).sum()
    exact = (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    assert abs(auc.get() - exact) < 2e-3


def test_ece_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(4)
    good, bad = ExpectedCalibrationError(), ExpectedCalibrationError()
    for _ in range(50_000):
        p = float(rng.random())
        y = bool(rng.random() < p)
        good.update(y, p)
        bad.update(y, min(1.0, p + 0.3))
    assert good.get() < 0.01
    assert 0.15 < bad.get() < 0.3
