"""How fast this machine's CPUs are right now: the CPU time a fixed piece of work takes.

This VM's cores do not run at one speed. On an idle machine (nothing of ours running) the same
pure-Python loop took 0.18 to 0.32 CPU-seconds from one second to the next (host contention or
frequency scaling; the guest sees no steal time). Pipeline runs of identical code spread as much,
so the benchmarks report this probe next to each run instead of pretending runs are comparable.

>>> probe = cpu_probe(repeats=2, work=20_000)
>>> probe["median_ms"] > 0 and len(probe["samples_ms"]) == 2
True
"""

from __future__ import annotations

import statistics
import time


def _work(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i
    return s


def cpu_probe(repeats: int = 5, work: int = 1_000_000) -> dict:
    """CPU milliseconds of ``work`` loop iterations, ``repeats`` times (~60 ms each here)."""
    samples = []
    for _ in range(repeats):
        t = time.process_time()
        _work(work)
        samples.append(round((time.process_time() - t) * 1000, 1))
    return {"samples_ms": samples, "median_ms": statistics.median(samples)}
