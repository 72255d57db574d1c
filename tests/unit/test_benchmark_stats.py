"""The statistics the throughput benchmark reports (median of runs, steady-state rate, CPU probe)."""

from __future__ import annotations

import sys

import pytest

from tests.support.stack import repo_path

sys.path.insert(0, str(repo_path("benchmarks")))
stats = pytest.importorskip("_throughput_stats")
from _cpu_probe import cpu_probe  # noqa: E402


def _timeline(rates: list[tuple[float, int]]) -> list[dict]:
    return [{"t_s": t, "committed": c} for t, c in rates]


def test_steady_rate_ignores_the_warm_up_and_the_tail():
    # 10 s of slow warm-up (10 events/s), then 100 events/s, then a 30 s wait for the last window
    points = [(t, 10 * t) for t in range(11)] + [(10 + t, 100 + 100 * t) for t in range(1, 10)] + [(50, 1000)]
    assert stats.steady_rate(_timeline(points), 1000) == 100
    assert stats.steady_rate(_timeline([(0, 0), (5, 100)]), 1000) is None  # never reached 80 %


def test_summary_takes_the_median_run_per_dimension_set():
    runs = [{"dims": "a", "events_per_s": v, "steady_events_per_s": v + 1} for v in (40_000, 70_000, 55_000)]
    runs += [{"dims": "b", "events_per_s": None}]  # a failed run counts in no statistic
    a, b = stats.summarize(runs, baseline_median=100_000)
    assert (a["runs"], a["median_events_per_s"], a["min_events_per_s"], a["max_events_per_s"]) == (3, 55_000, 40_000, 70_000)
    assert a["median_ratio"] == 0.55 and a["meets_floor"] and a["meets_ratio_goal"]
    assert a["median_steady_events_per_s"] == 55_001
    assert b == {"dims": "b", "runs": 0}


def test_cpu_probe_measures_cpu_time_of_fixed_work():
    small, large = cpu_probe(repeats=3, work=20_000), cpu_probe(repeats=3, work=2_000_000)
    assert len(small["samples_ms"]) == 3
    assert large["median_ms"] > small["median_ms"]  # 100x the work takes more CPU time
