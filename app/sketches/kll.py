"""Quantiles of a numeric field (DataSketches ``kll_doubles_sketch``).

Confidence, honestly: the library gives one error figure, ``normalized_rank_error(False)``,
documented as the best fit to the 99th percentile of the maximum rank error measured over
thousands of trials (``docs/sketches.md`` has our own measurements). We therefore
report intervals at confidence 0.99 whatever lower confidence is asked (0.95 by default):
the interval is wider than a 95 % one would need to be, never narrower. A caller asking for
more than 0.99 gets the 0.99 interval, labelled 0.99.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Self

import datasketches as ds
import numpy as np

from app.sketches.base import DEFAULT_CONFIDENCE, Estimate, Sketch
from app.sketches.defaults import KLL_K

#: The coverage the library's rank-error constant was fitted to.
LIBRARY_CONFIDENCE = 0.99


class KllSketch(Sketch):
    """Approximate quantiles with rank-error bounds, about ``2.3 / k**0.97`` of the stream.

    ``quantile(q)`` answers the value at normalized rank ``q``; its bounds are the sketch's
    values at ranks ``q - eps`` and ``q + eps`` where ``eps`` is :attr:`rank_error` (plus one
    value, ``1/n``, for the quantile definitions that interpolate), so the true
    ``q``-quantile lies between them with the library's 99 % confidence. While the sketch
    still holds every value (fewer than about ``k`` updates) ``eps`` is 0 and the bounds
    are certain (confidence 1.0).

    Parameters
    ----------
    k
        Accuracy/size knob (8 .. 65535). Rank error ~ ``2.3 / k**0.97``; size ~ ``3 k`` values.

    Examples
    --------

    >>> import numpy as np
    >>> values = np.random.default_rng(7).exponential(10.0, 100_000)
    >>> s = KllSketch(k=200)
    >>> s.update_many(values)
    >>> s.n, round(s.rank_error, 4)
    (100000, 0.0133)
    >>> e = s.quantile(0.5)
    >>> e.contains(float(np.quantile(values, 0.5))), e.confidence
    (True, 0.99)
    >>> (s.min, s.max) == (float(values.min()), float(values.max()))
    True

    Windows merge, and the bytes round-trip to the same answers:

    >>> w2 = KllSketch(k=200); w2.update_many(values + 5.0)
    >>> s.merge(w2); s.n
    200000
    >>> s.quantile(0.99).contains(float(np.quantile(np.concatenate([values, values + 5.0]), 0.99)))
    True
    >>> KllSketch.from_bytes(s.to_bytes()).quantiles([0.1, 0.9]) == s.quantiles([0.1, 0.9])
    True

    """

    kind = "kll"

    def __init__(self, k: int = KLL_K) -> None:
        if not 8 <= k <= 65535:
            raise ValueError(f"k must be in [8, 65535], got {k}")
        self._sketch = ds.kll_doubles_sketch(k)

    @property
    def k(self) -> int:
        return int(self._sketch.k)

    def update(self, value: Any) -> None:
        self._sketch.update(float(value))

    def update_many(self, values: Iterable[Any]) -> None:
        # The binding takes a float64 array in one call: ~3x faster than a Python loop.
        if isinstance(values, np.ndarray):
            arr = values.astype(np.float64, copy=False).ravel()
        elif isinstance(values, Sequence):
            arr = np.asarray(values, dtype=np.float64).ravel()
        else:
            arr = np.fromiter((float(v) for v in values), dtype=np.float64)
        if arr.size:
            # The binding only takes a writable, contiguous array; columns handed over from
            # Arrow (Flink's pandas UDAFs) are read-only views.
            self._sketch.update(np.require(arr, dtype=np.float64, requirements=["C", "W"]))

    def merge(self, other: Self) -> None:
        self._sketch.merge(other._sketch)

    @property
    def n(self) -> int:
        """Exact number of values summarized."""
        return int(self._sketch.n)

    @property
    def min(self) -> float | None:
        return None if self._sketch.is_empty() else float(self._sketch.get_min_value())

    @property
    def max(self) -> float | None:
        return None if self._sketch.is_empty() else float(self._sketch.get_max_value())

    @property
    def rank_error(self) -> float:
        """Normalized rank error of one quantile/rank query (0 while the sketch is exact)."""
        if not self._sketch.is_estimation_mode():
            return 0.0
        return float(self._sketch.normalized_rank_error(False))

    def quantile(self, q: float, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
        """The value at normalized rank ``q`` in [0, 1], with rank-error bounds.

        Raises ValueError on an empty sketch (there is no quantile to report).
        """
        return self.quantiles([q], confidence)[0]

    def quantiles(self, qs: Iterable[float], confidence: float = DEFAULT_CONFIDENCE) -> list[Estimate]:
        """:meth:`quantile` for each ``q``; each interval holds at 0.99 on its own, not jointly."""
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {confidence}")
        qs = [float(q) for q in qs]
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile rank must be in [0, 1], got {q}")
        if self._sketch.is_empty():
            raise ValueError("quantile of an empty sketch")
        eps = self.rank_error
        sk = self._sketch
        # The value uses the inverted-CDF definition (numpy method="inverted_cdf": the
        # smallest value whose CDF reaches q). Textbook definitions disagree by up to one
        # order statistic (numpy's default interpolates at rank (n-1)q), so the bounds reach
        # one value further than the rank error: any of them is covered, even when exact.
        half = eps + 1.0 / sk.n
        values = sk.get_quantiles(qs, True)
        lows = sk.get_quantiles([max(0.0, q - half) for q in qs], True)
        highs = sk.get_quantiles([min(1.0, q + half) for q in qs], False)
        conf = LIBRARY_CONFIDENCE if eps else 1.0  # exact mode: no sampling error at all
        return [
            Estimate(value=float(v), lower_bound=float(lo), upper_bound=float(hi), confidence=conf)
            for v, lo, hi in zip(values, lows, highs)
        ]

    def rank(self, value: float) -> float:
        """Approximate fraction of values ``<= value`` (error: :attr:`rank_error`)."""
        if self._sketch.is_empty():
            raise ValueError("rank in an empty sketch")
        return float(self._sketch.get_rank(float(value), True))

    def payload(self) -> bytes:
        return self._sketch.serialize()

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        try:
            sketch = ds.kll_doubles_sketch.deserialize(payload)
        except Exception as exc:
            raise ValueError(f"corrupt KLL sketch: {exc}") from exc
        out = cls.__new__(cls)
        out._sketch = sketch
        return out

    @property
    def params(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "rank_error": round(ds.kll_doubles_sketch.get_normalized_rank_error(self.k, False), 6),
            "rank_error_confidence": LIBRARY_CONFIDENCE,
        }

    @property
    def is_empty(self) -> bool:
        return self._sketch.is_empty()
