"""Default sketch parameters, chosen from the accuracy/memory trade-off in ``docs/sketches.md``.

The numbers behind each choice come from ``benchmarks/sketch_tradeoff.py`` (1 M events,
~100 k distinct keys). The rule: the most accurate setting whose serialized size stays
within 1 % of the exact state at 1 M events, and small enough that a query merging a few
hundred 10-second windows stays inside its latency budget.

>>> sorted(DEFAULTS)
['cms', 'frequent', 'hll', 'kll', 'reservoir']
>>> new_sketch("kll").params["k"] == KLL_K
True
>>> new_sketch("cms", relative_error=0.01).params["num_buckets"]
272
"""

from __future__ import annotations

from typing import Any

#: HLL: 2**12 registers. RSE 1.1 % one stream / 1.5 % merged (theory 1.6 %), 4.1 KB,
#: 0.49 % of the exact state at 1 M events. lg_k=13 (8.2 KB) sits at 0.98 %: no margin.
HLL_LG_K = 12
#: KLL: library rank error 1.33 % (99 %); measured single-query p99 0.75 %. 5 KB at 1 M
#: values (0.06 %), 300 windows merge in ~2.5 ms. Larger k buys accuracy nobody asked for.
KLL_K = 200
#: Frequent items: 2**9 map (384 counters). Threshold measured 0.19 % of N (a priori 0.68 %),
#: top-10 exact. lg 10 halves the threshold but 300 windows then take ~35 ms to merge,
#: over the 25 ms query budget on its own.
FREQUENT_LG_MAX_K = 9
#: Count-min: over-count <= 0.5 % of N at 95 % (544 x 3 counters, 13 KB = 0.59 % of the exact
#: table). 0.3 % would be 0.99 %: no margin for shorter keys.
CMS_RELATIVE_ERROR = 0.005
CMS_CONFIDENCE = 0.95
#: Reservoir: 100 items answers the default ``/v1/samples?n=100``; its size is k raw events
#: (~25 KB per window at ~250 B/event; k=1000 would be ~250 KB per 10 s window, 2 GB a day).
RESERVOIR_K = 100

DEFAULTS: dict[str, dict[str, Any]] = {
    "hll": {"lg_k": HLL_LG_K},
    "kll": {"k": KLL_K},
    "frequent": {"lg_max_k": FREQUENT_LG_MAX_K},
    "cms": {"relative_error": CMS_RELATIVE_ERROR, "confidence": CMS_CONFIDENCE},
    "reservoir": {"k": RESERVOIR_K},
}


def new_sketch(kind: str, **overrides: Any):
    """An empty sketch of ``kind`` with the default parameters, updated by ``overrides``."""
    from app.sketches.registry import SKETCH_TYPES

    try:
        cls = SKETCH_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown sketch kind {kind!r}") from None
    return cls(**{**DEFAULTS[kind], **overrides})
