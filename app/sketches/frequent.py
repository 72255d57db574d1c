"""Heavy hitters over strings (DataSketches ``frequent_strings_sketch``, Misra-Gries style).

The bounds here are deterministic: ``lower_bound <= true count <= upper_bound`` always holds,
for one window or for any merge of windows, so every answer reports confidence 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self

import datasketches as ds
import numpy as np

from app.sketches.base import DEFAULT_CONFIDENCE, Sketch, as_texts, call_each
from app.sketches.dictionary import StringDictionary
from app.sketches.from_counts import frequent_capacity, frequent_strings_state
from app.sketches.defaults import FREQUENT_LG_MAX_K

_NO_FALSE_NEGATIVES = ds.frequent_items_error_type.NO_FALSE_NEGATIVES


@dataclass(frozen=True)
class ItemEstimate:
    """One heavy hitter: its estimated count and the interval that surely holds the true count.

    >>> ItemEstimate("i1", 12, 10, 12).contains(11)
    True
    """

    item: str
    estimate: int
    lower_bound: int
    upper_bound: int
    #: The bounds are guaranteed, not probabilistic.
    confidence: float = 1.0

    def contains(self, truth: float) -> bool:
        return self.lower_bound <= truth <= self.upper_bound


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], got {confidence}")


class FrequentItemsSketch(Sketch):
    """The most frequent strings of a stream, with guaranteed error bounds.

    The sketch keeps at most ``0.75 * 2**lg_max_k`` counters. Every item whose true count
    exceeds :meth:`threshold` is reported by :meth:`top` (no false negatives); the threshold
    is at most ``epsilon * total_weight`` with ``epsilon = 3.5 / 2**lg_max_k``.

    Parameters
    ----------
    lg_max_k
        Base-2 logarithm of the largest internal hash map. Memory and accuracy both grow
        with ``2**lg_max_k``.

    Examples
    --------

    >>> s = FrequentItemsSketch(lg_max_k=4)   # 12 counters, on purpose too few
    >>> stream = ["a"] * 50 + ["b"] * 30 + [f"rare-{i}" for i in range(40)]
    >>> s.update_many(stream)
    >>> s.total_weight
    120
    >>> [(e.item, e.lower_bound <= true <= e.upper_bound)
    ...  for e, true in zip(s.top(2), (50, 30))]
    [('a', True), ('b', True)]
    >>> s.threshold() <= s.apriori_error()
    True

    Merging two windows keeps the guarantee, and the bytes round-trip:

    >>> w2 = FrequentItemsSketch(lg_max_k=4); w2.update_many(["b"] * 40)
    >>> s.merge(w2)
    >>> top = s.top(1)[0]; top.item, top.contains(70), top.confidence
    ('b', True, 1.0)
    >>> FrequentItemsSketch.from_bytes(s.to_bytes()).top(3) == s.top(3)
    True

    """

    kind = "frequent"

    def __init__(self, lg_max_k: int = FREQUENT_LG_MAX_K) -> None:
        if not 3 <= lg_max_k <= 21:
            raise ValueError(f"lg_max_k must be in [3, 21], got {lg_max_k}")
        self.lg_max_k = lg_max_k
        self._sketch = ds.frequent_strings_sketch(lg_max_k)

    def update(self, value: Any, weight: int = 1) -> None:
        self._sketch.update(value if isinstance(value, str) else str(value), weight)

    def update_many(self, values: Iterable[Any]) -> None:
        call_each(self._sketch.update, as_texts(values))

    def update_counts(self, values: Iterable[Any], counts: Iterable[int]) -> None:
        # Weighted updates are native to the algorithm (the error bound is over total weight).
        texts, weights = as_texts(values), list(map(int, counts))
        if len(texts) != len(weights):
            raise ValueError(f"{len(texts)} values but {len(weights)} counts")
        call_each(self._sketch.update, texts, weights)

    def update_dictionary(self, dictionary: StringDictionary, codes: np.ndarray, counts: np.ndarray) -> None:
        """``update(dictionary[c], n)`` for distinct codes ``c`` with counts ``n``. More distinct
        values than counters: the largest kept exactly, the offset set to the largest left out
        (:func:`~app.sketches.from_counts.frequent_strings_state`); else the library's own updates."""
        present = dictionary.present[codes]
        codes, counts = np.asarray(codes)[present], np.asarray(counts)[present]
        if len(codes) <= frequent_capacity(self.lg_max_k):
            self.update_counts(dictionary.values[codes].tolist(), counts.tolist())
            return
        built = ds.frequent_strings_sketch.deserialize(frequent_strings_state(self.lg_max_k, dictionary, codes, counts))
        if self._sketch.is_empty():
            self._sketch = built
        else:
            self._sketch.merge(built)

    def merge(self, other: Self) -> None:
        self._sketch.merge(other._sketch)

    @property
    def total_weight(self) -> int:
        """Exact number (total weight) of updates seen, merges included."""
        return int(self._sketch.total_weight)

    def threshold(self) -> int:
        """The sketch's maximum error: every item whose true count exceeds it is reported.

        The library bounds every item by ``[counter, counter + offset]``, so the width of any
        item's interval, tracked or not, is that offset; it is often well below
        :meth:`apriori_error`.
        """
        probe = ""  # any key works: upper - lower is the same offset for every item
        return int(self._sketch.get_upper_bound(probe) - self._sketch.get_lower_bound(probe))

    def apriori_error(self) -> float:
        """The worst case of :meth:`threshold` for this ``lg_max_k`` and weight, known up front."""
        return float(ds.frequent_strings_sketch.get_apriori_error(self.lg_max_k, self.total_weight))

    def top(self, k: int | None = 10, confidence: float = DEFAULT_CONFIDENCE) -> list[ItemEstimate]:
        """Up to ``k`` heavy hitters (all of them if ``k`` is None), largest estimate first.

        Uses the library's NO_FALSE_NEGATIVES rule: an item is listed when its upper bound
        exceeds :meth:`threshold`, so none above the threshold is missed (some listed ones may
        truly be below it). ``confidence`` is accepted for a uniform API; the bounds hold with
        certainty, and each answer says ``confidence=1.0``.
        """
        _check_confidence(confidence)
        if k is not None and k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        rows = self._sketch.get_frequent_items(_NO_FALSE_NEGATIVES)
        # The library sorts by estimate; break ties by item so answers are reproducible.
        rows.sort(key=lambda r: (-r[1], r[0]))
        return [ItemEstimate(item, int(est), int(lb), int(ub)) for item, est, lb, ub in rows[:k]]

    def bounds(self, item: str) -> ItemEstimate:
        """Estimate and guaranteed bounds for one item, tracked or not."""
        s = self._sketch
        return ItemEstimate(item, int(s.get_estimate(item)), int(s.get_lower_bound(item)), int(s.get_upper_bound(item)))

    def payload(self) -> bytes:
        return self._sketch.serialize()

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        try:
            sketch = ds.frequent_strings_sketch.deserialize(payload)
        except Exception as exc:  # the binding raises RuntimeError/ValueError variously
            raise ValueError(f"corrupt frequent-items sketch: {exc}") from exc
        if sketch.get_serialized_size_bytes() != len(payload):  # the binding ignores extra bytes
            raise ValueError("corrupt frequent-items sketch: trailing bytes")
        out = cls.__new__(cls)
        # lg_max_k is not exposed by the binding; recover it from epsilon = 3.5 / 2**lg_max_k.
        out.lg_max_k = _lg_from_epsilon(sketch.epsilon)
        out._sketch = sketch
        return out

    @property
    def params(self) -> dict[str, Any]:
        return {"lg_max_k": self.lg_max_k, "epsilon": round(self._sketch.epsilon, 8), "bounds": "deterministic"}

    @property
    def is_empty(self) -> bool:
        return self._sketch.is_empty()


def _lg_from_epsilon(epsilon: float) -> int:
    """Invert ``epsilon = get_epsilon_for_lg_size(lg)``.

    >>> _lg_from_epsilon(ds.frequent_strings_sketch.get_epsilon_for_lg_size(10))
    10
    """
    for lg in range(3, 27):
        if abs(ds.frequent_strings_sketch.get_epsilon_for_lg_size(lg) - epsilon) <= 1e-12 * epsilon:
            return lg
    raise ValueError(f"frequent-items sketch with unexpected epsilon {epsilon}")
