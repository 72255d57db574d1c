"""Point frequency of any string (DataSketches ``count_min_sketch``).

Why our own bounds: count-min only ever over-counts (collisions add, never subtract), so the
truth lies in ``[estimate - error, estimate]``. The 5.2.0 binding's ``get_lower_bound``
returns the estimate itself and ``get_upper_bound`` returns ``estimate + error``: an interval
that holds the truth only when there was no collision at all (checked in
``tests/unit/test_sketch_accuracy.py``). We keep the library's error size and put it on the
correct side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Self

import datasketches as ds
import numpy as np

from app.sketches.base import DEFAULT_CONFIDENCE, Estimate, Sketch
from app.sketches.dictionary import StringDictionary
from app.sketches.from_counts import count_min_state
from app.sketches.defaults import CMS_CONFIDENCE, CMS_RELATIVE_ERROR

_SEED = 9001  # the library default; sketches merge only when their seeds match


class CountMinSketch(Sketch):
    """Frequency of a given item, over-counted by at most ``relative_error * total_weight``.

    Built with ``w = ceil(e / relative_error)`` buckets and ``d = ceil(ln(1 / (1 - confidence)))``
    rows (the library's ``suggest_num_buckets`` / ``suggest_num_hashes``). Row ``i``'s
    over-count has mean at most ``N / w``, so by Markov's inequality on ``d`` independent
    rows ``P(min over-count > t) <= (N / (w t))**d``. Setting that to ``1 - c`` gives the
    error at any confidence ``c``: ``t = (N / w) * (1 - c) ** (-1 / d)``, which at the
    built confidence equals the library's ``get_relative_error() * total_weight``.

    Parameters
    ----------
    relative_error
        Largest over-count as a fraction of all updates, at ``confidence``.
    confidence
        Probability that the over-count stays below that error (1 - delta).
    seed
        Hash seed; only sketches with the same seed (and shape) merge.

    Examples
    --------

    >>> s = CountMinSketch(relative_error=0.01, confidence=0.95)
    >>> s.params["num_buckets"], s.params["num_hashes"]
    (272, 3)
    >>> s.update_many(["a"] * 500 + [f"x{i}" for i in range(2000)])
    >>> e = s.frequency("a")
    >>> e.contains(500), e.upper_bound == e.value, e.confidence
    (True, True, 0.95)
    >>> s.frequency("never-seen").contains(0)
    True
    >>> s.total_weight
    2500

    Windows merge exactly (counters add), and the bytes round-trip:

    >>> w2 = CountMinSketch(0.01, 0.95); w2.update("a", weight=100)
    >>> s.merge(w2); s.frequency("a").contains(600)
    True
    >>> CountMinSketch.from_bytes(s.to_bytes()).frequency("a") == s.frequency("a")
    True

    """

    kind = "cms"

    def __init__(
        self,
        relative_error: float = CMS_RELATIVE_ERROR,
        confidence: float = CMS_CONFIDENCE,
        seed: int = _SEED,
    ) -> None:
        if not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must be in (0, 1), got {relative_error}")
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        buckets = ds.count_min_sketch.suggest_num_buckets(relative_error)
        hashes = ds.count_min_sketch.suggest_num_hashes(confidence)
        self._sketch = ds.count_min_sketch(hashes, buckets, seed)

    def update(self, value: Any, weight: int = 1) -> None:
        # Negative weights would break the "never under-counts" argument behind the bounds.
        if weight < 0:
            raise ValueError("count-min weights must be >= 0")
        self._sketch.update(value if isinstance(value, str) else str(value), float(weight))

    def update_many(self, values: Iterable[Any]) -> None:
        upd = self._sketch.update
        for v in values:
            upd(v if isinstance(v, str) else str(v))

    def update_counts(self, values: Iterable[Any], counts: Iterable[int]) -> None:
        # Count-min is linear: one update of weight n equals n updates of weight 1, bit for bit.
        upd = self._sketch.update
        for v, n in zip(values, counts, strict=True):
            if n < 0:
                raise ValueError("count-min weights must be >= 0")
            upd(v if isinstance(v, str) else str(v), float(n))

    def update_dictionary(self, dictionary: StringDictionary, codes: np.ndarray, counts: np.ndarray) -> None:
        """``update(dictionary[c], n)`` for each code ``c`` and count ``n``, as array operations
        over hashes computed once per window (:func:`~app.sketches.from_counts.count_min_state`);
        the same counters to the bit. Missing values are skipped, like empty strings."""
        if np.any(np.asarray(counts) < 0):
            raise ValueError("count-min weights must be >= 0")
        sk = self._sketch
        state = count_min_state(sk.num_hashes, sk.num_buckets, sk.seed, dictionary, codes, counts)
        sk.merge(ds.count_min_sketch.deserialize(state))

    def merge(self, other: Self) -> None:
        sk, o = self._sketch, other._sketch
        if (sk.num_hashes, sk.num_buckets, sk.seed) != (o.num_hashes, o.num_buckets, o.seed):
            raise ValueError(f"cannot merge count-min sketches with different shapes: {self.params} vs {other.params}")
        sk.merge(o)

    @property
    def total_weight(self) -> int:
        """Exact total weight of all updates (merges included)."""
        return int(self._sketch.total_weight)

    @property
    def confidence(self) -> float:
        """The confidence the sketch was built for: ``1 - exp(-num_hashes)`` (>= what was asked)."""
        return 1.0 - math.exp(-self._sketch.num_hashes)

    @property
    def relative_error(self) -> float:
        """Error at :attr:`confidence` as a fraction of the total weight: ``e / num_buckets``."""
        return float(self._sketch.get_relative_error())

    def error(self, confidence: float | None = None) -> float:
        """Largest over-count at ``confidence`` (the built one if None), in counts."""
        c = self.confidence if confidence is None else confidence
        if not 0.0 < c <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {c}")
        sk = self._sketch
        if c == 1.0:  # certain only that the over-count is at most everything else seen
            return float(sk.total_weight)
        # The built confidence is 1 - e**-d, for which the Markov error is exactly e * N / w.
        return float(sk.total_weight) / sk.num_buckets * (1.0 - c) ** (-1.0 / sk.num_hashes)

    def frequency(self, item: str, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
        """Estimated count of ``item``; the truth is in the bounds with probability ``confidence``."""
        if not isinstance(item, str):
            item = str(item)
        est = float(self._sketch.get_estimate(item))
        return Estimate(
            value=est,
            lower_bound=max(0.0, est - self.error(confidence)),
            upper_bound=est,  # deterministic: count-min never under-counts
            confidence=confidence,
        )

    def payload(self) -> bytes:
        return self._sketch.serialize()

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        try:
            sketch = ds.count_min_sketch.deserialize(payload)
        except Exception as exc:
            raise ValueError(f"corrupt count-min sketch: {exc}") from exc
        if sketch.get_serialized_size_bytes() != len(payload):  # the binding ignores extra bytes
            raise ValueError("corrupt count-min sketch: trailing bytes")
        out = cls.__new__(cls)
        out._sketch = sketch
        return out

    @property
    def params(self) -> dict[str, Any]:
        sk = self._sketch
        return {
            "relative_error": round(self.relative_error, 8),
            "confidence": round(self.confidence, 6),
            "num_buckets": int(sk.num_buckets),
            "num_hashes": int(sk.num_hashes),
            "seed": int(sk.seed),
        }

    @property
    def is_empty(self) -> bool:
        return self._sketch.is_empty()
