"""Learning curve on the generator's stream: does the online model learn the hidden click model,
does it find the drift, and does it recover?

One seeded :class:`app.generator.EventGenerator` run (150,000 events at 2 events/s: 26.7 h of event
time, so the day's cycle is in it), with the drift at 60 % of the messages, labelled as the Flink
label job labels it (:func:`benchmarks.label_examples.label_examples`, in ``example_time``
order). The learner's own loop (:class:`trainers.online.core.LearnerCore`: decode → features →
predict → metrics → learn, drift detection and recovery inside the model) runs over the records
for each model:

* ``logreg`` and ``fm`` as deployed (:mod:`app.learners.pipelines`);
* ``logreg, no recovery boost`` (``boost=1.0``): detection only, to show what the recovery
  action (AdaGrad accumulators x 0.1 on a detection) is worth.

Baselines: the constant base rate (hindsight, the whole run or the segment), the running base
rate (online), and the hidden model (the generator's own probability of the label,
``p_click x P(click within the window)``: the floor, the Bayes loss).

Reported: prequential log loss overall, before the drift, after it, and over the second half
after it (recovered), each against the base rate of that same segment and the hidden model;
detections (false alarms before the drift; delay of the first after it in examples and in seconds
of event time); the rolling excess over the hidden model before, at its peak after the drift, and
when it is back within ``--tolerance`` of its pre-drift level. Writes
``benchmarks/results/learning_curve.{json,md,png}``.

    .venv/bin/python benchmarks/learning_curve.py          # ~3-4 min on 2 cores (fm is the slow one)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from app.learners.drift import log_loss_one  # noqa: E402
from benchmarks.online_learning import (  # noqa: E402
    BASE_MS, MS_PER_HOUR, _entropy, _LossRecorder, _mean, _r, _rel, _rolling, _write, generator_stream,
)  # fmt: skip
from trainers.online.core import LearnerCore  # noqa: E402

MODELS = {  # label -> (pipeline, params)
    "logreg": ("logreg", {}),
    "logreg, no recovery boost": ("logreg", {"boost": 1.0}),
    "fm": ("fm", {}),
}


def learner_run(pipeline: str, params: dict, records: list, ys: list[bool]) -> dict:
    core = LearnerCore("bench", pipeline, params, metrics_every_n=10_000)
    rec = _LossRecorder(core.model)
    core.model = rec
    t0 = time.perf_counter()
    out = core.process(records)
    secs = time.perf_counter() - t0
    return {
        "metrics": core.prequential.get(),
        "losses": [log_loss_one(y, p) for y, p in zip(ys, rec.probabilities)],
        "drifts": [e for e in out if e["type"] == "drift"],
        "boosts": getattr(rec.model, "boosts", 0),
        "examples_per_s": len(records) / secs,
    }


def segment(losses: list[float], oracle: list[float], ys: list[bool], lo: int, hi: int) -> dict:
    base = _entropy(_mean(ys[lo:hi]))
    loss, hidden = _mean(losses[lo:hi]), _mean(oracle[lo:hi])
    return {"examples": hi - lo, "log_loss": loss, "constant_base_rate": base, "hidden_model": hidden,
            "gain_vs_base_rate": 1 - loss / base, "share_of_gap_closed": (base - loss) / (base - hidden)}  # fmt: skip


def drift_summary(drifts: list[dict], rows: list[dict], d: int, d_ms: int) -> dict:
    def brief(e):
        return {"index": e["index"], "hours": round((e["watermark"] - BASE_MS) / MS_PER_HOUR, 3), "signal": e["signal"],
                "direction": e["direction"], "before": e["before"], "after": e["after"]}  # fmt: skip

    before = [brief(e) for e in drifts if e["index"] < d]
    after = [e for e in drifts if e["index"] >= d]
    first = None
    if after:
        e = after[0]
        first = {**brief(e), "examples_after_drift": e["index"] - d, "seconds_after_drift": (e["watermark"] - d_ms) / 1000}
    return {"detections": len(drifts), "false_alarms_before_drift": len(before), "false_alarms": before,
            "first_after_drift": first, "after_drift": [brief(e) for e in after]}  # fmt: skip


def recovery(losses, oracle, rows, d: int, d_ms: int, window: int, tolerance: float) -> dict:
    """Rolling excess over the hidden model: level just before the drift, peak after, back when."""
    excess = _rolling([a - b for a, b in zip(losses, oracle)], window)
    pre = excess[d - 1]
    peak = max(range(d, len(rows)), key=lambda i: excess[i])
    back = next((i for i in range(peak, len(rows)) if excess[i] <= pre + tolerance), None)

    def at(i):
        return None if i is None else {"examples_after_drift": i - d, "hours_after_drift": (rows[i]["example_time"] - d_ms) / MS_PER_HOUR}

    return {"excess_before": pre, "excess_peak": excess[peak], "peak": at(peak), "back_within_tolerance": at(back),
            "window": window, "tolerance": tolerance}  # fmt: skip


def plot(path: Path, rows, series: dict, oracle, prior, result: dict, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = [(r["example_time"] - BASE_MS) / MS_PER_HOUR for r in rows][window - 1 :]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=[3, 2])
    curves = {**{k: v["losses"] for k, v in series.items()}, "running base rate": prior, "hidden model (floor)": oracle}
    styles = {"running base rate": {"color": "gray"}, "hidden model (floor)": {"color": "black", "ls": ":"},
              "logreg, no recovery boost": {"lw": 0.8, "ls": "--"}}  # fmt: skip
    for label, losses in curves.items():
        top.plot(hours, _rolling(losses, window)[window - 1 :], label=label, lw=styles.get(label, {}).get("lw", 1.1),
                 **{k: v for k, v in styles.get(label, {}).items() if k != "lw"})  # fmt: skip
        if label in series:
            ex = _rolling([a - b for a, b in zip(losses, oracle)], window)[window - 1 :]
            bottom.plot(hours, ex, label=f"{label} - hidden model", lw=styles.get(label, {}).get("lw", 1.1),
                        **{k: v for k, v in styles.get(label, {}).items() if k != "lw"})  # fmt: skip
    bottom.axhline(0.0, color="black", lw=0.6)
    d_h = result["drift"]["at_hours"]
    dets = result["models"]["logreg"]["drift"]
    det_h = [e["hours"] for e in dets["false_alarms"] + dets["after_drift"]]
    for ax in (top, bottom):
        ax.axvline(d_h, color="red", lw=1.2, label="drift point (generator)")
        for i, h in enumerate(det_h):
            ax.axvline(h, color="orange", lw=2.5, alpha=0.6, label="drift detected (logreg)" if i == 0 else None)
    top.set_ylabel(f"log loss\n(rolling mean of {window:,} examples)")
    bottom.set_ylabel("excess over the hidden model")
    bottom.set_xlabel("event time (hours since the first event)")
    top.set_title(f"Prequential log loss on the generator's stream ({len(rows):,} examples), drift at {d_h:.1f} h", fontsize=10)
    top.legend(loc="upper left", fontsize=8, ncol=3)
    bottom.legend(loc="upper left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict) -> str:
    g, dr = r["generator"], r["drift"]
    lines = [
        "# Learning curve on the generator's stream", "",
        f"`{r['command']}` — {r['cpus']} cores, load {r['load_avg_1m']}. Generator seed {g['seed']}, {g['events']:,} events "
        f"at {g['rate_events_per_s']:g}/s ({g['span_hours']:.1f} h of event time), click model at its defaults "
        f"({g['config']}); {r['examples']:,} examples, base rate {r['base_rate']:.4f}. Drift at message "
        f"{dr['at_message']:,} = {dr['at_hours']:.2f} h = example {dr['at_example']:,}.", "",
        "## Prequential log loss (lower is better), per segment of the run", "",
        "| model | overall | gain vs base rate | before the drift | after the drift | 2nd half after (recovered) | gain vs base rate, recovered | examples/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, m in r["models"].items():
        s = m["segments"]
        lines.append(f"| {name} | {s['overall']['log_loss']:.4f} | {100 * s['overall']['gain_vs_base_rate']:.1f} % | "
                     f"{s['before_drift']['log_loss']:.4f} | {s['after_drift']['log_loss']:.4f} | {s['recovered']['log_loss']:.4f} | "
                     f"{100 * s['recovered']['gain_vs_base_rate']:.1f} % | {m['examples_per_s']:,.0f} |")  # fmt: skip
    s = next(iter(r["models"].values()))["segments"]
    lines += [
        f"| constant base rate of the segment (hindsight) | {s['overall']['constant_base_rate']:.4f} | 0 | "
        f"{s['before_drift']['constant_base_rate']:.4f} | {s['after_drift']['constant_base_rate']:.4f} | {s['recovered']['constant_base_rate']:.4f} | 0 | |",
        f"| running base rate (online) | {r['running_base_rate']:.4f} | | | | | | |",
        f"| hidden model (Bayes floor) | {s['overall']['hidden_model']:.4f} | {100 * (1 - s['overall']['hidden_model'] / s['overall']['constant_base_rate']):.1f} % | "
        f"{s['before_drift']['hidden_model']:.4f} | {s['after_drift']['hidden_model']:.4f} | {s['recovered']['hidden_model']:.4f} | "
        f"{100 * (1 - s['recovered']['hidden_model'] / s['recovered']['constant_base_rate']):.1f} % | |", "",
        "## Drift: detection and recovery", "",
        "| model | detections | false alarms before the drift | first after the drift | rolling excess over hidden: before → peak after | back within tolerance | recovery boosts |",
        "|---|---:|---:|---|---|---|---:|",
    ]  # fmt: skip
    for name, m in r["models"].items():
        d, rc = m["drift"], m["recovery"]
        f = d["first_after_drift"]
        first = (f"+{f['examples_after_drift']:,} examples, +{f['seconds_after_drift'] / 60:.1f} min of event time "
                 f"({f['signal']} {f['direction']})") if f else "none"  # fmt: skip
        back = rc["back_within_tolerance"]
        back_s = f"+{back['examples_after_drift']:,} ex. (+{back['hours_after_drift']:.2f} h)" if back else "not in the run"
        lines.append(f"| {name} | {d['detections']} | {d['false_alarms_before_drift']} | {first} | {rc['excess_before']:.4f} → "
                     f"{rc['excess_peak']:.4f} (+{rc['peak']['hours_after_drift']:.2f} h) | {back_s} | {m['boosts']} |")  # fmt: skip
    rc = next(iter(r["models"].values()))["recovery"]
    lines += ["", f"Rolling = mean of the last {rc['window']:,} examples; 'back' = first example after the peak with the "
              f"rolling excess within {rc['tolerance']} of its value just before the drift. 'Recovered' = the second half "
              "of the examples after the drift.", "", f"Plot: `{r['plot']}`."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150_000, help="generator events")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=float, default=2.0, help="events per second of event time")
    ap.add_argument("--drift-at", type=float, default=0.6, help="fraction of the messages")
    ap.add_argument("--attribution-window-ms", type=int, default=30_000)
    ap.add_argument("--models", type=lambda s: s.split(";"), default=list(MODELS))
    ap.add_argument("--window", type=int, default=2_000)
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    s = generator_stream(args.n, seed=args.seed, rate=args.rate, drift_frac=args.drift_at, window_ms=args.attribution_window_ms)
    rows, drift = s["rows"], s["drift"]
    d, d_ms = drift["at_example"], drift["at_ms"]
    ys = [r["label"] == 1 for r in rows]
    oracle = [log_loss_one(y, p) for y, p in zip(ys, s["p_label"])]
    pos, prior = 0, []
    for i, y in enumerate(ys):
        prior.append(log_loss_one(y, (pos + 1) / (i + 2)))
        pos += y
    records = [(0, i, orjson.dumps(r)) for i, r in enumerate(rows)]
    n = len(rows)
    bounds = {"overall": (0, n), "before_drift": (0, d), "after_drift": (d, n), "recovered": (d + (n - d) // 2, n)}
    runs, models = {}, {}
    for name in args.models:
        pipeline, params = MODELS[name]
        print(f"{name} ...", file=sys.stderr)
        run = runs[name] = learner_run(pipeline, params, records, ys)
        models[name] = {
            "pipeline": pipeline, "params": params, "prequential": run["metrics"], "examples_per_s": run["examples_per_s"],
            "boosts": run["boosts"], "segments": {k: segment(run["losses"], oracle, ys, *b) for k, b in bounds.items()},
            "drift": drift_summary(run["drifts"], rows, d, d_ms),
            "recovery": recovery(run["losses"], oracle, rows, d, d_ms, args.window, args.tolerance),
        }  # fmt: skip
    result = {
        "benchmark": "learning_curve",
        "command": " ".join([".venv/bin/python benchmarks/learning_curve.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        **{k: v for k, v in s.items() if k not in ("rows", "p_label")},
        "examples": n, "base_rate": _mean(ys), "running_base_rate": _mean(prior),
        "segments": {k: list(b) for k, b in bounds.items()}, "models": models,
        "plot": _rel(args.out / "learning_curve.png"),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot(args.out / "learning_curve.png", rows, runs, oracle, prior, result, args.window)
    result = _r(result)
    _write(args.out, "learning_curve", result, markdown(result))
    return result


if __name__ == "__main__":
    main()
