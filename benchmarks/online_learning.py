"""Online learning benchmark: the learner's loop vs river's own, and learning vs a base rate.

Throughput, in one run on the same examples (best of ``--repeats``, interleaved):

* ``learner``: the service's hot loop, :meth:`trainers.online.core.LearnerCore.process` on JSON
  bytes: orjson decode → :func:`app.features.features` → predict_proba_one → prequential metrics
  → ADWIN drift check → learn_one;
* ``river_pvs``: ``river.evaluate.progressive_val_score`` with the same pipeline and the same
  metrics on the already-featurized rows (river's own loop, no decoding, no features);
* ``river_pvs_logloss``: the same with log loss only (river's leanest evaluated loop);
* ``decode_features``: orjson decode + features alone.

Quality: prequential log loss of the model vs the constant base-rate predictor (the hindsight
base rate of the whole stream, a strict baseline) and vs a running prior (the online base rate),
plus the parity check (learner metrics == river's). Writes a PNG of the rolling log loss.

    .venv/bin/python benchmarks/online_learning.py --n 100000
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
from app.learners.drift import log_loss_one  # noqa: E402
from app.learners.pipelines import build  # noqa: E402
from app.learners.prequential import default_metrics  # noqa: E402
from app.learners.synthetic import synthetic_examples  # noqa: E402
from trainers.online.core import LearnerCore  # noqa: E402


def _timed(fn) -> float:
    gc.collect()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


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


def quality(pipeline: str, raw: list[dict], window: int) -> dict:
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
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
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


def _rolling(xs: list[float], w: int) -> list[float]:
    out, s = [], 0.0
    for i, v in enumerate(xs):
        s += v
        if i >= w:
            s -= xs[i - w]
        out.append(s / min(i + 1, w))
    return out


def plot(q: dict, drift_at: int | None, path: Path) -> None:
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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drift-at", type=float, default=0.6, help="fraction of the stream; <= 0 for no drift")
    ap.add_argument("--pipeline", default="logreg")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=int, default=2_000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    drift_at = int(args.n * args.drift_at) if args.drift_at > 0 else None
    raw = synthetic_examples(args.n, seed=args.seed, drift_at=drift_at)
    rates, check = throughput(args.pipeline, raw, args.repeats)
    q = quality(args.pipeline, raw, args.window)
    png = args.out / "online_loss.png"
    plot(q, drift_at, png)
    result = {
        "benchmark": "online_learning",
        "pipeline": args.pipeline,
        "n": args.n,
        "seed": args.seed,
        "drift_at": drift_at,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "examples_per_s": {k: round(v) for k, v in rates.items()},
        "ratio_learner_vs_river_pvs": round(rates["learner"] / rates["river_pvs"], 3),
        "ratio_learner_vs_river_pvs_logloss": round(rates["learner"] / rates["river_pvs_logloss"], 3),
        "target_examples_per_s": 20_000,
        "parity_with_progressive_val_score": check["parity"],
        "prequential_metrics": {k: round(v, 6) for k, v in check["metrics"].items()},
        **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in q.items() if not k.startswith("_")},
        "plot": str(png.relative_to(ROOT)) if png.is_relative_to(ROOT) else str(png),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "online_learning.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    eps = result["examples_per_s"]
    print()
    print("| loop | examples/s | vs river_pvs |")
    print("|---|---:|---:|")
    for k in ("learner", "river_pvs", "river_pvs_logloss", "decode_features"):
        print(f"| {k} | {eps[k]:,} | {eps[k] / eps['river_pvs']:.2f} |")
    print()
    print("| predictor | prequential log loss |")
    print("|---|---:|")
    print(f"| {args.pipeline} | {result['log_loss_model']:.4f} |")
    print(f"| running base rate | {result['log_loss_running_prior']:.4f} |")
    print(f"| constant base rate (hindsight) | {result['log_loss_constant_base_rate']:.4f} |")
    return result


if __name__ == "__main__":
    main()
