"""HyperLogLog distinct counts (DataSketches ``hll_sketch``, HLL_8, ``lg_k`` configurable)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

import datasketches as ds
import numpy as np

from app.sketches.base import DEFAULT_CONFIDENCE, Estimate, Sketch, call_each
from app.sketches.dictionary import StringDictionary
from app.sketches.from_counts import hll8_state, hll_coupons, hll_promotes

# DataSketches gives HLL bounds at 1, 2 or 3 standard deviations; these are the two-sided
# normal coverages, and we answer with the smallest one at or above what was asked.
_STD_DEV_COVERAGE = ((1, 0.6827), (2, 0.9545), (3, 0.9973))


def std_devs_for(confidence: float) -> tuple[int, float]:
    """The number of standard deviations whose coverage is at least ``confidence``.

    >>> std_devs_for(0.95)
    (2, 0.9545)
    """
    for k, coverage in _STD_DEV_COVERAGE:
        if coverage >= confidence:
            return k, coverage
    return _STD_DEV_COVERAGE[-1]


class HllSketch(Sketch):
    """Distinct count with relative standard error about ``1.04 / sqrt(2**lg_k)``.

    >>> s = HllSketch(lg_k=12)
    >>> s.update_many(f"user-{i}" for i in range(1000))
    >>> e = s.estimate()
    >>> e.contains(1000)
    True
    >>> other = HllSketch(lg_k=12); other.update_many(f"user-{i}" for i in range(500, 1500))
    >>> s.merge(other); s.estimate().contains(1500)
    True
    >>> HllSketch.from_bytes(s.to_bytes()).estimate() == s.estimate()
    True
    """

    kind = "hll"

    def __init__(self, lg_k: int = 12) -> None:
        self.lg_k = lg_k
        self._union = ds.hll_union(lg_k)
        self._sketch = ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_8)

    def update(self, value: Any) -> None:
        self._sketch.update(value)

    def update_many(self, values: Iterable[Any]) -> None:
        call_each(self._sketch.update, values)

    def update_counts(self, values: Iterable[Any], counts: Iterable[int]) -> None:
        # A distinct count ignores repeats: one update per distinct value is the same sketch.
        self.update_many(values)

    def update_dictionary(self, dictionary: StringDictionary, codes: np.ndarray, counts: np.ndarray) -> None:
        """The distinct values ``dictionary[codes]`` (counts do not matter), hashed once per window.
        As many coupons as the library would keep as registers are built as registers in one
        pass (:func:`~app.sketches.from_counts.hll8_state`); fewer go to the library."""
        coupons = hll_coupons(dictionary)[codes]
        coupons = coupons[coupons >= 0]
        if not hll_promotes(self.lg_k, len(coupons) // 2):  # near the threshold, count exactly
            coupons = np.unique(coupons)  # (distinct values share a coupon once in ~2**26 pairs)
        if not hll_promotes(self.lg_k, len(coupons)):
            self.update_many(dictionary.values[codes][dictionary.non_empty[codes]].tolist())
            return
        self._union.update(ds.hll_sketch.deserialize(hll8_state(self.lg_k, coupons)))

    def _current(self) -> ds.hll_sketch:
        """Fold pending updates into the union and return one sketch of everything."""
        if not self._sketch.is_empty():
            self._union.update(self._sketch)
            self._sketch = ds.hll_sketch(self.lg_k, ds.tgt_hll_type.HLL_8)
        return self._union.get_result(ds.tgt_hll_type.HLL_8)

    def merge(self, other: Self) -> None:
        self._union.update(other._current())

    def estimate(self, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
        sketch = self._current()
        k, coverage = std_devs_for(confidence)
        return Estimate(
            value=sketch.get_estimate(),
            lower_bound=sketch.get_lower_bound(k),
            upper_bound=sketch.get_upper_bound(k),
            confidence=coverage,
        )

    def payload(self) -> bytes:
        return self._current().serialize_compact()

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        try:
            sketch = ds.hll_sketch.deserialize(payload)
        except Exception as exc:  # the binding raises IndexError/RuntimeError on bad bytes
            raise ValueError(f"corrupt HLL sketch: {exc}") from exc
        out = cls(lg_k=sketch.lg_config_k)
        out._union.update(sketch)
        return out

    @property
    def params(self) -> dict[str, Any]:
        return {"lg_k": self.lg_k, "type": "HLL_8", "rse": round(1.04 / (2 ** self.lg_k) ** 0.5, 6)}

    @property
    def is_empty(self) -> bool:
        return self._sketch.is_empty() and self._union.get_result().is_empty()
