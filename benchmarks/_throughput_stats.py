"""The statistics of the throughput benchmark (pure: unit-tested in tests/unit/test_benchmark_stats.py)."""

from __future__ import annotations

#: The issue's targets: events/s through Kafka -> Flink -> aggregates.v1, and the ratio to a plain consumer.
FLOOR = 50_000
RATIO_GOAL = 0.5


def steady_rate(timeline: list[dict], n: int, lo: float = 0.2, hi: float = 0.8) -> int | None:
    """Events/s while the job's committed offsets went from ``lo`` to ``hi`` of ``n``: the rate
    once the JIT has warmed up and before the last windows wait for the closing watermark.

    >>> steady_rate([{"t_s": 0, "committed": 0}, {"t_s": 10, "committed": 200}, {"t_s": 20, "committed": 800},
    ...              {"t_s": 30, "committed": 1000}], 1000)
    60
    """
    first = next((p for p in timeline if p["committed"] >= lo * n), None)
    last = next((p for p in timeline if p["committed"] >= hi * n), None)
    if not first or not last or last["t_s"] <= first["t_s"]:
        return None
    return round((last["committed"] - first["committed"]) / (last["t_s"] - first["t_s"]))


def summarize(runs: list[dict], baseline_median: int) -> list[dict]:
    """Per dimension set: median and range of events/s over its runs, and the median's ratio."""
    out = []
    for dims in dict.fromkeys(r["dims"] for r in runs):
        rates = sorted(r["events_per_s"] for r in runs if r["dims"] == dims and r["events_per_s"])
        steady = sorted(r["steady_events_per_s"] for r in runs if r["dims"] == dims and r.get("steady_events_per_s"))
        if not rates:
            out.append({"dims": dims, "runs": 0})
            continue
        med = rates[len(rates) // 2] if len(rates) % 2 else round((rates[len(rates) // 2 - 1] + rates[len(rates) // 2]) / 2)
        out.append({
            "dims": dims, "runs": len(rates), "median_events_per_s": med, "min_events_per_s": rates[0],
            "max_events_per_s": rates[-1], "median_ratio": round(med / baseline_median, 4),
            "median_steady_events_per_s": steady[len(steady) // 2] if steady else None,
            "meets_floor": med >= FLOOR, "meets_ratio_goal": med / baseline_median >= RATIO_GOAL,
        })  # fmt: skip
    return out
