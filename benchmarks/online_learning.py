"""Online learning benchmark: learning on the generator's stream, drift, and our loop vs river's.

Examples (``--source``):

* ``generator`` (default; the report): one seeded :class:`app.generator.EventGenerator` run with
  a drift point (``--drift-at``, a fraction of the messages), labelled by the pure twin of the
  Flink label job (:func:`benchmarks.label_examples.label_examples`: impression + click/purchase
  within the attribution window → 1, else 0; one example per impression; in ``example_time``
  order), i.e. the records the job writes to ``examples.v1`` (the integration test
  ``tests/integration/test_generator_stream_learning.py`` checks that against the real job).
  Impressions whose window had not closed when the generator stopped are left out (their click
  may never have been emitted). The generator's click model is used as it is (defaults); only
  the traffic ``--rate`` is set, so that the run spans about a day of event time (see below);
* ``synthetic``: :mod:`app.learners.synthetic` (a small stream made for a linear model), the
  earlier report, written to ``online_learning_synthetic.*``.

Measured on the generator's stream, in one run on the same examples:

* quality, per pipeline (logreg, fm): ``prequential`` log loss = the learner's own numbers
  (:meth:`trainers.online.core.LearnerCore.process` over the records in example order, as on
  ``metrics.v1``), and ``at impression time`` = delayed progressive validation: each impression
  is predicted when it happens by the model trained on the examples whose label was known by then
  (``example_time <= event_time``), which is what serving answers with; for logreg checked equal
  to river's ``progressive_val_score(moment=..., delay=...)``. Baselines: the constant base rate
  (hindsight, whole stream), the constant base rate of each regime (hindsight, knows the drift
  point), the running base rate (online), and the generator's hidden probability of the label
  (``p_click`` x P(click delay <= window): the floor no model can beat);
* drift: the learner's ADWIN detections vs the drift point (example index and event time), loss
  before/after, and when the rolling loss comes back to its pre-drift level;
* throughput (logreg): the learner's loop (orjson decode → features → predict → metrics → ADWIN
  → learn) vs river's ``progressive_val_score`` (same pipeline and metrics, rows already
  featurized), river's with log loss only, and decode + features alone; best of ``--repeats``,
  interleaved; parity learner == river;
* span check: the same measurement at the generator's default rate (2,000 events/s), where the run
  spans ~75 s of event time, with and without the event-time features (``hour_sin``/``hour_cos``).
  In example order the time features tell a label apart (a click's example arrives seconds after
  its impression, a non-click's a whole window after), so on short spans the prequential loss
  beats even the hidden model, while predictions at impression time are bad. Hence the day-long
  default span of the report.

    .venv/bin/python benchmarks/online_learning.py                      # generator (report)
    .venv/bin/python benchmarks/online_learning.py --source synthetic --n 100000
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from river import evaluate, metrics  # noqa: E402

from app.features import features  # noqa: E402
from river import drift as river_drift  # noqa: E402

from app.learners.drift import log_loss_one  # noqa: E402
from app.learners.pipelines import build  # noqa: E402
from app.learners.prequential import default_metrics  # noqa: E402
from app.learners.synthetic import synthetic_examples  # noqa: E402
from benchmarks.label_examples import label_examples, label_probabilities  # noqa: E402
from trainers.online.core import LearnerCore  # noqa: E402

BASE_MS = 1_700_000_000_000  # event time of the generator's first event (2023-11-14 22:13 UTC)
TARGET_EXAMPLES_PER_S = 20_000
MS_PER_HOUR = 3_600_000


def _timed(fn) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _entropy(rate: float) -> float:
    return 0.0 if rate in (0.0, 1.0) else -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def _rolling(xs: list[float], w: int) -> list[float]:
    out, s = [], 0.0
    for i, v in enumerate(xs):
        s += v
        if i >= w:
            s -= xs[i - w]
        out.append(s / min(i + 1, w))
    return out


def _r(v, nd: int = 6):
    if isinstance(v, float):
        return round(v, nd) if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _r(x, nd) for k, x in v.items()}
    if isinstance(v, list):
        return [_r(x, nd) for x in v]
    return v


# ---------------------------------------------------------------------------------- throughput


def throughput(pipeline: str, raw: list[dict], repeats: int) -> tuple[dict, dict]:
    records = [(0, i, orjson.dumps(r)) for i, r in enumerate(raw)]
    rows = [(features(r), bool(r["label"])) for r in raw]
    best: dict[str, float] = {}
    last: dict[str, object] = {}

    def learner():
        core = LearnerCore("bench", pipeline, metrics_every_n=10_000)
        core.process(records)
        last["learner"] = core

    def river_pvs():
        last["river"] = evaluate.progressive_val_score(rows, build(pipeline), metrics.base.Metrics(default_metrics()))

    def river_pvs_logloss():
        evaluate.progressive_val_score(rows, build(pipeline), metrics.LogLoss())

    def decode_features():
        loads = orjson.loads
        for _, _, v in records:
            features(loads(v))

    runs = {"learner": learner, "river_pvs": river_pvs, "river_pvs_logloss": river_pvs_logloss,
            "decode_features": decode_features}  # fmt: skip
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best.get(name, math.inf), _timed(fn))
    rates = {name: len(raw) / s for name, s in best.items()}
    core = last["learner"]
    ours = list(core.prequential.get().values())
    theirs = [m.get() for m in last["river"]]
    return rates, {"parity": ours == theirs, "metrics": core.prequential.get(), "core": core}


# ---------------------------------------------------------------------------------- synthetic (earlier report)


def quality_synthetic(pipeline: str, raw: list[dict], window: int) -> dict:
    """Per-example losses of the model and of the running prior, rolling means, drift events."""
    model = build(pipeline)
    core = LearnerCore("bench", pipeline, metrics_every_n=10**12)
    model_losses, prior_losses = [], []
    pos = 0
    for i, r in enumerate(raw):
        x, y = features(r), bool(r["label"])
        p = model.predict_proba_one(x)[True]
        model_losses.append(log_loss_one(y, p))
        prior_losses.append(log_loss_one(y, (pos + 1) / (i + 2)))  # Laplace-smoothed running base rate
        model.learn_one(x, y)
        pos += y
    drift = [e["index"] for e in core.process([(0, i, orjson.dumps(r)) for i, r in enumerate(raw)])]
    rate = pos / len(raw)
    entropy = _entropy(rate)
    return {
        "base_rate": rate,
        "log_loss_model": sum(model_losses) / len(raw),
        "log_loss_constant_base_rate": entropy,
        "log_loss_running_prior": sum(prior_losses) / len(raw),
        "drift_events_at": drift,
        "_model_losses": model_losses,
        "_prior_losses": prior_losses,
        "_entropy": entropy,
        "_window": window,
    }


def plot_synthetic(q: dict, drift_at: int | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = q["_window"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(_rolling(q["_model_losses"], w), label="logreg (prequential)", lw=1.2)
    ax.plot(_rolling(q["_prior_losses"], w), label="running base rate", lw=1.0)
    ax.axhline(q["_entropy"], color="gray", ls="--", lw=0.8, label="constant base rate (hindsight)")
    if drift_at is not None:
        ax.axvline(drift_at, color="red", lw=0.8, label="true drift point")
    for i, idx in enumerate(q["drift_events_at"]):
        ax.axvline(idx, color="orange", ls=":", lw=1.0, label="ADWIN drift event" if i == 0 else None)
    ax.set_xlabel("examples")
    ax.set_ylabel(f"log loss (rolling mean, {w} examples)")
    ax.set_title("Online learning on the synthetic examples stream")
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main_synthetic(args) -> dict:
    n = args.n or 100_000
    drift_at = int(n * args.drift_at) if args.drift_at > 0 else None
    raw = synthetic_examples(n, seed=args.seed, drift_at=drift_at)
    rates, check = throughput("logreg", raw, args.repeats)
    q = quality_synthetic("logreg", raw, args.window)
    png = args.out / "online_loss_synthetic.png"
    plot_synthetic(q, drift_at, png)
    result = {
        "benchmark": "online_learning",
        "source": "synthetic",
        "pipeline": "logreg",
        "n": n,
        "seed": args.seed,
        "drift_at": drift_at,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "examples_per_s": {k: round(v) for k, v in rates.items()},
        "ratio_learner_vs_river_pvs": round(rates["learner"] / rates["river_pvs"], 3),
        "ratio_learner_vs_river_pvs_logloss": round(rates["learner"] / rates["river_pvs_logloss"], 3),
        "target_examples_per_s": TARGET_EXAMPLES_PER_S,
        "parity_with_progressive_val_score": check["parity"],
        "prequential_metrics": {k: round(v, 6) for k, v in check["metrics"].items()},
        **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in q.items() if not k.startswith("_")},
        "plot": _rel(png),
    }
    eps = result["examples_per_s"]
    md = [f"Online learning, synthetic stream ({n:,} examples, drift at {drift_at}), {os.cpu_count()} cores", ""]
    md += ["| loop | examples/s | vs river_pvs |", "|---|---:|---:|"]
    md += [f"| {k} | {eps[k]:,} | {eps[k] / eps['river_pvs']:.2f} |" for k in eps]
    md += ["", "| predictor | prequential log loss |", "|---|---:|",
           f"| logreg | {result['log_loss_model']:.4f} |",
           f"| running base rate | {result['log_loss_running_prior']:.4f} |",
           f"| constant base rate (hindsight) | {result['log_loss_constant_base_rate']:.4f} |"]  # fmt: skip
    _write(args.out, "online_learning_synthetic", result, "\n".join(md))
    return result


# ---------------------------------------------------------------------------------- generator stream


def generator_stream(n: int, *, seed: int, rate: float, drift_frac: float, window_ms: int) -> dict:
    """One generator run, labelled as the label job labels it; examples in example order."""
    from app.generator import EventGenerator

    drift_at = int(n * drift_frac) if drift_frac > 0 else None
    gen = EventGenerator(seed=seed, rate=rate, start_ms=BASE_MS, drift_at=drift_at)
    t0 = time.perf_counter()
    msgs = list(gen.events(n))
    gen_s = time.perf_counter() - t0
    t_last = msgs[-1].at_ms
    stats: dict = {}
    t0 = time.perf_counter()
    labelled = label_examples([m.fields for m in msgs if m.fields is not None], window_ms, stats=stats)
    label_s = time.perf_counter() - t0
    rows = [r for r in labelled if r["event_time"] + window_ms <= t_last]  # labels final when the run stopped
    p_label = label_probabilities(gen, msgs, window_ms)
    drift_ms = msgs[drift_at].at_ms if drift_at is not None and drift_at < n else None
    drift_index = None
    if drift_ms is not None:  # first example (in example order) of an impression of the new regime
        drift_index = next((i for i, r in enumerate(rows) if r["event_time"] >= drift_ms), None)
    return {
        "rows": rows,
        "p_label": [p_label[r["event_id"]] for r in rows],
        "generator": {
            "seed": seed, "rate_events_per_s": rate, "events": n, "start_ms": BASE_MS, "last_event_ms": t_last,
            "span_hours": (t_last - BASE_MS) / MS_PER_HOUR, "counts": dict(gen.counts),
            "config": {k: getattr(gen.config, k) for k in ("n_users", "n_items", "n_bots", "base_logit",
                                                           "latent_weight", "drift_shift")},
            "generate_s": gen_s, "label_s": label_s,
        },  # fmt: skip
        "label_join": {**stats, "attribution_window_ms": window_ms, "examples_used": len(rows),
                       "left_out_window_open_at_end": len(labelled) - len(rows)},  # fmt: skip
        "drift": {"at_message": drift_at, "at_ms": drift_ms, "at_example": drift_index,
                  "at_hours": None if drift_ms is None else (drift_ms - BASE_MS) / MS_PER_HOUR},  # fmt: skip
    }


class _LossRecorder:
    """Stands in for the learner's model: records each prediction, then delegates everything."""

    def __init__(self, model) -> None:
        self.__dict__["model"] = model
        self.__dict__["probabilities"] = []

    def predict_proba_one(self, x):
        p = self.model.predict_proba_one(x)
        self.probabilities.append(p.get(True, 0.0))
        return p

    def __getattr__(self, name):
        return getattr(self.model, name)


class _TwoSidedLossAdwin:
    """The diagnostic: ADWIN on the raw per-example loss, changes in either direction."""

    def __init__(self) -> None:
        self.adwin = river_drift.ADWIN(delta=0.002, grace_period=1000)

    def update(self, y_true, p_true, index, watermark=None):
        before = self.adwin.estimation
        self.adwin.update(log_loss_one(y_true, p_true))
        if not self.adwin.drift_detected:
            return None
        return {"index": index, "watermark": watermark, "before": before, "after": self.adwin.estimation}


def learner_pass(pipeline: str, records: list, every: int = 10_000) -> dict:
    """The learner's own loop over the records: its metrics, drift records and per-example losses."""
    core = LearnerCore("bench", pipeline, metrics_every_n=every)
    rec = _LossRecorder(core.model)
    core.model = rec
    t0 = time.perf_counter()
    out = core.process(records)
    secs = time.perf_counter() - t0
    ys = [orjson.loads(v)["label"] == 1 for _, _, v in records]
    return {
        "metrics": core.prequential.get(),
        "drifts": [e for e in out if e["type"] == "drift"],
        "losses": [log_loss_one(y, p) for y, p in zip(ys, rec.probabilities)],
        "probabilities": rec.probabilities,
        "seconds": secs,
    }


def at_impression_time(pipeline: str, rows: list[dict], xs: list[dict] | None = None) -> dict:
    """Delayed progressive validation: predict each impression at its event time with the model
    trained on every example whose label was known by then (``example_time <= event_time``),
    learn each example at its ``example_time``. Losses are returned in example order."""
    n = len(rows)
    xs = xs if xs is not None else [features(r) for r in rows]
    ys = [r["label"] == 1 for r in rows]
    order = sorted(range(n), key=lambda i: (rows[i]["event_time"], rows[i]["event_id"]))
    model = build(pipeline)
    predict, learn = model.predict_proba_one, model.learn_one
    losses = [0.0] * n
    prior = [0.0] * n
    j = pos = 0
    for i in order:
        t = rows[i]["event_time"]
        while j < n and rows[j]["example_time"] <= t:
            learn(xs[j], ys[j])
            pos += ys[j]
            j += 1
        losses[i] = log_loss_one(ys[i], predict(xs[i]).get(True, 0.0))
        prior[i] = log_loss_one(ys[i], (pos + 1) / (j + 2))  # running base rate of the labels known
    return {"losses": losses, "prior_losses": prior, "order": order}


def river_delayed_log_loss(pipeline: str, rows: list[dict], xs: list[dict], order: list[int]) -> float:
    """river's own delayed progressive validation on the same rows (moment = impression time,
    delay = example_time - event_time)."""
    moment = {id(xs[i]): rows[i]["event_time"] for i in order}
    delay = {id(xs[i]): rows[i]["example_time"] - rows[i]["event_time"] for i in order}
    dataset = [(xs[i], rows[i]["label"] == 1) for i in order]
    m = evaluate.progressive_val_score(
        dataset, build(pipeline), metrics.LogLoss(), moment=lambda x: moment[id(x)], delay=lambda x, y: delay[id(x)]
    )
    return float(m.get())


def drift_report(rows: list[dict], losses: list[float], probabilities: list[float], oracle: list[float],
                 drifts: list[dict], drift: dict, window: int, tolerance: float, span: int) -> dict:  # fmt: skip
    """Detections vs the drift point, loss before/after, and recovery of the rolling loss."""
    d, d_ms = drift["at_example"], drift["at_ms"]

    def detection(e: dict) -> dict:
        # The recent part ADWIN kept vs the same number of examples before it: did the data's own
        # loss (the hidden model's) move too, or only the model's excess over it?
        i, k = e["index"] + 1, max(1, int(e["window"]))
        rec, bef = slice(max(0, i - k), i), slice(max(0, i - 2 * k), max(0, i - k))
        return {
            "index": e["index"], "watermark": e["watermark"],
            "hours": None if e["watermark"] is None else round((e["watermark"] - BASE_MS) / MS_PER_HOUR, 3),
            "signal": e["signal"], "direction": e["direction"], "adwin_before": e["before"],
            "adwin_after": e["after"], "recent_examples": k,
            "hidden_model_before": _mean(oracle[bef]), "hidden_model_recent": _mean(oracle[rec]),
            "excess_before": _mean(a - b for a, b in zip(losses[bef], oracle[bef])),
            "excess_recent": _mean(a - b for a, b in zip(losses[rec], oracle[rec])),
        }  # fmt: skip

    dets = [detection(e) for e in drifts]
    out: dict = {"detections": dets}
    # The learner's monitor watches surprise and residual; a two-sided ADWIN on the raw losses:
    two = _TwoSidedLossAdwin()
    two_sided = []
    for i, (p, r) in enumerate(zip(probabilities, rows)):
        e = two.update(r["label"] == 1, p, i, r["example_time"])
        if e is not None:
            two_sided.append({"index": i, "watermark": e["watermark"],
                              "hours": round((e["watermark"] - BASE_MS) / MS_PER_HOUR, 3),
                              "loss_before": e["before"], "loss_after": e["after"]})  # fmt: skip
    out["two_sided_adwin_detections"] = two_sided
    if d is None:
        return out

    def first_after(ds: list[dict]) -> dict | None:
        after = [e for e in ds if e["index"] >= d]
        if not after:
            return None
        e = after[0]
        minutes = None if e["watermark"] is None else round((e["watermark"] - d_ms) / 60_000, 1)
        return {**e, "examples_after_drift": e["index"] - d, "minutes_after_drift": minutes}

    out["false_alarms_before_drift"] = sum(1 for e in dets if e["index"] < d)
    out["first_detection_after_drift"] = first_after(dets)
    out["two_sided_false_alarms_before_drift"] = sum(1 for e in two_sided if e["index"] < d)
    out["two_sided_first_after_drift"] = first_after(two_sided)
    lo, hi = max(0, d - span), min(len(rows), d + span)
    roll = _rolling(losses, window)
    regret = _rolling([a - b for a, b in zip(losses, oracle)], window)
    pre_level = roll[d - 1] if d > 0 else float("nan")  # the rolling loss of the last `window` examples before
    pre_regret = regret[d - 1] if d > 0 else float("nan")
    peak_i = max(range(d, hi), key=lambda i: roll[i]) if hi > d else d
    peak_r = max(range(d, hi), key=lambda i: regret[i]) if hi > d else d
    # 'back': the first example after the peak within the tolerance (None if the peak stayed within it)
    rec = next((i for i in range(peak_i, len(rows)) if roll[i] <= pre_level + tolerance), None)
    rec_r = next((i for i in range(peak_r, len(rows)) if regret[i] <= pre_regret + tolerance), None)
    if roll[peak_i] <= pre_level + tolerance:
        rec = None
    if regret[peak_r] <= pre_regret + tolerance:
        rec_r = None

    def at(i):
        return None if i is None else {"index": i, "examples_after_drift": i - d,
                                       "hours_after_drift": round((rows[i]["example_time"] - d_ms) / MS_PER_HOUR, 2)}  # fmt: skip

    out.update({
        "log_loss_before": _mean(losses[lo:d]), "log_loss_after": _mean(losses[d:hi]),
        "hidden_model_before": _mean(oracle[lo:d]), "hidden_model_after": _mean(oracle[d:hi]),
        "base_rate_before": _mean(r["label"] for r in rows[lo:d]), "base_rate_after": _mean(r["label"] for r in rows[d:hi]),
        "span_examples": span,
        "rolling_window": window, "tolerance": tolerance,
        "rolling_before": pre_level, "rolling_peak_after": roll[peak_i], "rolling_peak": at(peak_i),
        "left_tolerance": roll[peak_i] > pre_level + tolerance, "recovered": at(rec),
        "excess_over_hidden_before": pre_regret, "excess_over_hidden_peak_after": regret[peak_r],
        "excess_peak": at(peak_r), "excess_left_tolerance": regret[peak_r] > pre_regret + tolerance,
        "excess_recovered": at(rec_r),
    })  # fmt: skip
    out["constant_base_rate_before"] = _entropy(out["base_rate_before"])
    out["constant_base_rate_after"] = _entropy(out["base_rate_after"])
    return out


def span_check(n: int, seed: int, rate: float, drift_frac: float, window_ms: int) -> dict:
    """logreg at a short event-time span: prequential vs at impression time, with and without time features."""
    s = generator_stream(n, seed=seed, rate=rate, drift_frac=drift_frac, window_ms=window_ms)
    rows = s["rows"]
    out = {"rate_events_per_s": rate, "events": n, "span_seconds": round(s["generator"]["span_hours"] * 3600, 1),
           "examples": len(rows), "hidden_model": _mean(log_loss_one(r["label"] == 1, p) for r, p in zip(rows, s["p_label"])),
           "constant_base_rate": _entropy(_mean(r["label"] for r in rows))}  # fmt: skip
    for name, strip in (("with_time_features", False), ("without_time_features", True)):
        xs = [features({k: v for k, v in r.items() if k != "event_time"} if strip else r) for r in rows]
        model, pre = build("logreg"), []
        for x, r in zip(xs, rows):
            y = r["label"] == 1
            pre.append(log_loss_one(y, model.predict_proba_one(x).get(True, 0.0)))
            model.learn_one(x, y)
        out[name] = {"prequential": _mean(pre), "at_impression_time": _mean(at_impression_time("logreg", rows, xs)["losses"])}
    return out


def plot_generator(path: Path, series: dict, excess: dict, drift: dict, detections: list, window: int,
                   title: str) -> None:  # fmt: skip
    """Top: rolling log loss over event time; bottom: rolling excess over the hidden model. Rolling
    means start once a whole window is in (the first examples of a fresh model are off the scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=[3, 2])
    hi = 0.0
    for ax, group in ((top, series), (bottom, excess)):
        for label, (times, values, style) in group.items():
            roll = _rolling(values, window)[window - 1 :]
            hours = [(t - BASE_MS) / MS_PER_HOUR for t in times[window - 1 :]]
            ax.plot(hours, roll, label=label, **style)
            if ax is top:
                hi = max(hi, max(roll, default=0.0))
    top.set_ylim(0.0, hi * 1.1)
    bottom.axhline(0.0, color="black", lw=0.6)
    for ax in (top, bottom):
        if drift.get("at_ms") is not None:
            ax.axvline((drift["at_ms"] - BASE_MS) / MS_PER_HOUR, color="red", lw=1.2, label="drift point (generator)")
        for label, style, hours in detections:
            for i, h in enumerate(hours):
                ax.axvline(h, label=label if i == 0 else None, **style)
    top.set_ylabel(f"log loss\n(rolling mean of {window:,} examples)")
    bottom.set_ylabel("excess over the hidden model\n(rolling, same window)")
    bottom.set_xlabel("event time (hours since the first event)")
    top.set_title(title, fontsize=10)
    top.legend(loc="lower left", fontsize=8, ncol=3)
    bottom.legend(loc="upper left", fontsize=8, ncol=2)
    _save(fig, path)


def main_generator(args) -> dict:
    n = args.n or 150_000
    w_ms = args.attribution_window_ms
    s = generator_stream(n, seed=args.seed, rate=args.rate, drift_frac=args.drift_at, window_ms=w_ms)
    rows, p_label, drift = s["rows"], s["p_label"], s["drift"]
    ys = [r["label"] == 1 for r in rows]
    print(f"generator: {n:,} events over {s['generator']['span_hours']:.1f} h, {len(rows):,} examples, "
          f"drift at example {drift['at_example']}", file=sys.stderr)  # fmt: skip
    records = [(0, i, orjson.dumps(r)) for i, r in enumerate(rows)]
    xs = [features(r) for r in rows]
    base_rate = _mean(ys)
    oracle = [log_loss_one(y, p) for y, p in zip(ys, p_label)]
    d = drift["at_example"]
    per_regime = None
    if d:
        r0, r1 = _mean(ys[:d]), _mean(ys[d:])
        per_regime = _mean([log_loss_one(y, r0 if i < d else r1) for i, y in enumerate(ys)])
    prior = [log_loss_one(y, (sum_ + 1) / (i + 2)) for i, (y, sum_) in enumerate(zip(ys, _prefix_sums(ys)))]

    results: dict[str, dict] = {}
    passes: dict[str, dict] = {}
    for pipeline in args.pipelines:
        print(f"{pipeline}: learner pass, then at impression time ...", file=sys.stderr)
        lp = learner_pass(pipeline, records)
        ai = at_impression_time(pipeline, rows, xs)
        passes[pipeline] = {"learner": lp, "served": ai}
        results[pipeline] = {
            "prequential": lp["metrics"],
            "prequential_examples_per_s": len(rows) / lp["seconds"],
            "log_loss_at_impression_time": _mean(ai["losses"]),
            "drift": drift_report(rows, lp["losses"], lp["probabilities"], oracle, lp["drifts"], drift, args.window,
                                  args.tolerance, args.drift_span),
        }  # fmt: skip
    served_parity = None
    if "logreg" in passes:
        theirs = river_delayed_log_loss("logreg", rows, xs, passes["logreg"]["served"]["order"])
        ours = results["logreg"]["log_loss_at_impression_time"]
        served_parity = {"river_delayed_pvs_log_loss": theirs, "equal": math.isclose(theirs, ours, rel_tol=1e-9)}

    print("throughput (logreg) ...", file=sys.stderr)
    rates, check = throughput("logreg", rows, args.repeats)
    span = None
    if args.span_check_rate > 0:
        print(f"span check at {args.span_check_rate:g} events/s ...", file=sys.stderr)
        span = span_check(n, args.seed, args.span_check_rate, args.drift_at, w_ms)

    baselines = {
        "constant_base_rate_hindsight": _entropy(base_rate),
        "constant_base_rate_per_regime_hindsight": per_regime,
        "running_base_rate_prequential": _mean(prior),
        "running_base_rate_at_impression_time": _mean(passes[args.pipelines[0]]["served"]["prior_losses"]),
        "hidden_model": _mean(oracle),
    }
    for r in results.values():
        ll = r["prequential"]["log_loss"]
        r["gain_vs_constant_base_rate"] = 1 - ll / baselines["constant_base_rate_hindsight"]
        r["share_of_gap_to_hidden_model_closed"] = (baselines["constant_base_rate_hindsight"] - ll) / (
            baselines["constant_base_rate_hindsight"] - baselines["hidden_model"])
    png = args.out / "online_loss.png"
    ex_times = [r["example_time"] for r in rows]
    series, excess = {}, {}
    for pipeline in args.pipelines:
        losses = passes[pipeline]["learner"]["losses"]
        series[f"{pipeline} (prequential)"] = (ex_times, losses, {"lw": 1.1})
        excess[f"{pipeline} (prequential) - hidden model"] = (ex_times, [a - b for a, b in zip(losses, oracle)], {"lw": 1.1})
    if "logreg" in passes:
        order = passes["logreg"]["served"]["order"]
        served = passes["logreg"]["served"]["losses"]
        series["logreg (at impression time)"] = ([rows[i]["event_time"] for i in order], [served[i] for i in order],
                                                 {"lw": 0.8, "ls": "--"})  # fmt: skip
    series["running base rate"] = (ex_times, prior, {"lw": 0.9, "color": "gray"})
    series["hidden model (floor)"] = (ex_times, oracle, {"lw": 0.9, "color": "black", "ls": ":"})
    first = args.pipelines[0]
    dets = [  # the learner's drawn last and wider: it coincides with some of the two-sided ones
        (f"two-sided ADWIN ({first}, diagnostic)", {"color": "purple", "ls": "-.", "lw": 1.0},
         [e["hours"] for e in results[first]["drift"]["two_sided_adwin_detections"]]),
        (f"ADWIN drift record ({first}, the learner's)", {"color": "orange", "ls": "-", "lw": 3.0, "alpha": 0.6},
         [e["hours"] for e in results[first]["drift"]["detections"] if e["hours"] is not None]),
    ]  # fmt: skip
    title = (f"Generator stream: {n:,} events, {len(rows):,} examples over {s['generator']['span_hours']:.1f} h of "
             f"event time" + (f", drift at {drift['at_hours']:.1f} h" if drift["at_hours"] is not None else ""))  # fmt: skip
    plot_generator(png, series, excess, drift, dets, args.window, title)

    result = {
        "benchmark": "online_learning",
        "source": "generator",
        "command": " ".join([".venv/bin/python benchmarks/online_learning.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        **{k: v for k, v in s.items() if k not in ("rows", "p_label")},
        "examples": len(rows),
        "base_rate": base_rate,
        "baselines_log_loss": baselines,
        "pipelines": results,
        "at_impression_time_parity_with_river_delayed_pvs": served_parity,
        "throughput_logreg": {
            "examples_per_s": {k: round(v) for k, v in rates.items()},
            "ratio_learner_vs_river_pvs": rates["learner"] / rates["river_pvs"],
            "ratio_learner_vs_river_pvs_logloss": rates["learner"] / rates["river_pvs_logloss"],
            "target_examples_per_s": TARGET_EXAMPLES_PER_S,
            "target_met": rates["learner"] >= TARGET_EXAMPLES_PER_S,
            "parity_with_progressive_val_score": check["parity"],
            "repeats": args.repeats,
        },
        "span_check": span,
        "plot": _rel(png),
    }
    result = _r(result)
    _write(args.out, "online_learning", result, markdown(result))
    return result


def _prefix_sums(ys):
    s = 0
    for y in ys:
        yield s
        s += y


def markdown(r: dict) -> str:
    g, b, dr = r["generator"], r["baselines_log_loss"], r["drift"]
    lines = [
        f"# Online learning on the generator's stream",
        "",
        f"`{r['command']}` — {r['cpus']} cores, load {r['load_avg_1m']}. Generator seed {g['seed']}, "
        f"{g['events']:,} events at {g['rate_events_per_s']:g}/s ({g['span_hours']:.1f} h of event time), click "
        f"model at its defaults ({g['config']}); labelled as the Flink label job does "
        f"(window {r['label_join']['attribution_window_ms']:,} ms): {r['examples']:,} examples, base rate "
        f"{r['base_rate']:.4f}. Drift at message {dr['at_message']:,} = {dr['at_hours']:.2f} h = example "
        f"{dr['at_example']:,}.",
        "",
        "## Quality (log loss, lower is better)",
        "",
        "| predictor | prequential (learner, example order) | at impression time | ROC AUC (preq.) | gain vs constant base rate | share of gap to hidden model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, p in r["pipelines"].items():
        lines.append(f"| {name} | {p['prequential']['log_loss']:.4f} | {p['log_loss_at_impression_time']:.4f} | "
                     f"{p['prequential']['roc_auc']:.4f} | {100 * p['gain_vs_constant_base_rate']:.1f} % | "
                     f"{100 * p['share_of_gap_to_hidden_model_closed']:.1f} % |")  # fmt: skip
    lines += [
        f"| running base rate (online) | {b['running_base_rate_prequential']:.4f} | {b['running_base_rate_at_impression_time']:.4f} | | | |",
        f"| constant base rate (hindsight) | {b['constant_base_rate_hindsight']:.4f} | | | 0 | 0 |",
        f"| constant base rate per regime (hindsight) | {b['constant_base_rate_per_regime_hindsight']:.4f} | | | | |",
        f"| hidden model (p_click x P(click in window)) | {b['hidden_model']:.4f} | | | | 100 % |",
        "",
    ]
    sp = r["at_impression_time_parity_with_river_delayed_pvs"]
    if sp:
        lines.append(f"At impression time, logreg == river's delayed progressive_val_score: {sp['equal']} "
                     f"(river {sp['river_delayed_pvs_log_loss']:.6f}).")  # fmt: skip
        lines.append("")
    lines += ["## Drift", "",
              "The learner's drift records (`DriftMonitor`: ADWIN on the surprise, loss minus the loss the model expects, and on the residual y - p; see `benchmarks/learning_curve.py` for the full report); each "
              "detection with the hidden model's loss and the model's excess over it, in ADWIN's recent part vs the "
              "same number of examples before (a rise of the hidden model's loss = the data got harder, e.g. the "
              "evening rise of the click rate; a rise of the excess = the model went stale). The two-sided ADWIN on "
              "the same losses is a diagnostic, not what the learner runs.", "",
              "| pipeline | learner's detections: example @ h (hidden model before → recent; excess before → recent) | first after the drift | two-sided ADWIN: before the drift / first after |",
              "|---|---|---|---|"]  # fmt: skip

    def first_s(e):
        return f"{e['index']:,} @ {e['hours']:.2f} h: +{e['examples_after_drift']:,} ex., +{e['minutes_after_drift']} min" if e else "none"

    for name, p in r["pipelines"].items():
        d = p["drift"]
        dets = "; ".join(
            f"{e['index']:,} @ {e['hours']:.2f} h ({e['hidden_model_before']:.3f} → {e['hidden_model_recent']:.3f}; "
            f"{e['excess_before']:+.3f} → {e['excess_recent']:+.3f})" for e in d["detections"]) or "none"  # fmt: skip
        lines.append(f"| {name} | {dets} | {first_s(d.get('first_detection_after_drift'))} | "
                     f"{d.get('two_sided_false_alarms_before_drift')} / {first_s(d.get('two_sided_first_after_drift'))} |")  # fmt: skip
    anyd = next(iter(r["pipelines"].values()))["drift"]
    lines += ["", f"Around the drift: {anyd['span_examples']:,} examples either side; rolling = mean of the last "
              f"{anyd['rolling_window']:,} examples; 'back' = first example after the peak within "
              f"{anyd['tolerance']} of the value just before the drift.", "",
              "| pipeline | log loss before → after | hidden model before → after | constant base rate before → after | excess over hidden (rolling): before, peak after, back | rolling log loss: before, peak after, back |",
              "|---|---|---|---|---|---|"]  # fmt: skip

    def when(x, left=True):
        if not left:
            return "never left the tolerance"
        return f"+{x['examples_after_drift']:,} ex. (+{x['hours_after_drift']} h)" if x else "not in the run"

    for name, p in r["pipelines"].items():
        d = p["drift"]
        lines.append(
            f"| {name} | {d['log_loss_before']:.4f} → {d['log_loss_after']:.4f} | {d['hidden_model_before']:.4f} → "
            f"{d['hidden_model_after']:.4f} | {d['constant_base_rate_before']:.4f} → {d['constant_base_rate_after']:.4f} | "
            f"{d['excess_over_hidden_before']:.4f}, {d['excess_over_hidden_peak_after']:.4f} at {when(d['excess_peak'])}, "
            f"{when(d['excess_recovered'], d['excess_left_tolerance'])} | {d['rolling_before']:.4f}, "
            f"{d['rolling_peak_after']:.4f} at {when(d['rolling_peak'])}, {when(d['recovered'], d['left_tolerance'])} |"
        )  # fmt: skip
    lines += ["", f"Base rate {anyd['base_rate_before']:.4f} → {anyd['base_rate_after']:.4f}. The data's own loss (the "
              "hidden model's) moves with the click rate, so the excess over it, not the raw loss, is what measures "
              "how stale the model is and when it has recovered.", ""]  # fmt: skip
    t = r["throughput_logreg"]
    eps = t["examples_per_s"]
    lines += ["## Throughput (logreg, same examples, same run)", "", "| loop | examples/s | vs river_pvs |", "|---|---:|---:|"]
    lines += [f"| {k} | {v:,} | {v / eps['river_pvs']:.2f} |" for k, v in eps.items()]
    lines += ["", f"Target ≥ {t['target_examples_per_s']:,}/s for the learner: {'met' if t['target_met'] else 'NOT met'}. "
              f"Learner metrics == river's progressive_val_score: {t['parity_with_progressive_val_score']}. "
              f"Learner loop in the quality pass (one run, per-example losses recorded): "
              + ", ".join(f"{k} {p['prequential_examples_per_s']:,.0f}/s" for k, p in r["pipelines"].items()) + ".",
              ""]  # fmt: skip
    sc = r.get("span_check")
    if sc:
        lines += [f"## Span check: logreg at {sc['rate_events_per_s']:g} events/s ({sc['span_seconds']} s of event time, "
                  f"{sc['examples']:,} examples)", "",
                  "| features | prequential | at impression time |", "|---|---:|---:|",
                  f"| with hour_sin/hour_cos (production) | {sc['with_time_features']['prequential']:.4f} | {sc['with_time_features']['at_impression_time']:.4f} |",
                  f"| without (event_time withheld) | {sc['without_time_features']['prequential']:.4f} | {sc['without_time_features']['at_impression_time']:.4f} |",
                  f"| hidden model / constant base rate | {sc['hidden_model']:.4f} / {sc['constant_base_rate']:.4f} | |", ""]  # fmt: skip
    lines.append(f"Plot: `{r['plot']}`.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _write(out: Path, name: str, data: dict, md: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text(md.rstrip() + "\n")
    print(json.dumps(data, indent=2))
    print()
    print(md)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("generator", "synthetic"), default="generator")
    ap.add_argument("--n", type=int, default=None, help="events (generator, 150,000) or examples (synthetic, 100,000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drift-at", type=float, default=0.6, help="fraction of the stream; <= 0 for no drift")
    ap.add_argument("--rate", type=float, default=2.0,
                    help="generator events per second of event time (2/s: 150,000 events span ~1 day)")
    ap.add_argument("--attribution-window-ms", type=int, default=30_000)
    ap.add_argument("--pipelines", type=lambda s: s.split(","), default=["logreg", "fm"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=int, default=2_000, help="rolling window (examples) of the plot and recovery")
    ap.add_argument("--tolerance", type=float, default=0.01, help="recovery: rolling loss within this of its pre-drift value")
    ap.add_argument("--drift-span", type=int, default=10_000, help="examples either side of the drift for before/after")
    ap.add_argument("--span-check-rate", type=float, default=2_000.0, help="events/s of the span check; 0 = skip")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    return main_generator(args) if args.source == "generator" else main_synthetic(args)


if __name__ == "__main__":
    main()
