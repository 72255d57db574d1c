"""The distinct strings of one column of a window: UTF-8 once, hashed once per seed.

A window's sketches are updated per group from ``codes`` into this dictionary and their
``counts`` (:meth:`app.sketches.HllSketch.update_dictionary` and the like), so each distinct
string is encoded and hashed once per window, not once per group and sketch.

>>> d = StringDictionary.from_values(["ab", None, "", "é"])
>>> d.values.tolist(), d.lengths.tolist()
(['ab', None, '', 'é'], [2, 0, 0, 2])
>>> d.present.tolist(), d.non_empty.tolist()
([True, False, True, True], [True, False, False, True])
>>> h1, _ = d.hashes(9001); h1 is d.hashes(9001)[0]
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.sketches.murmur import murmur3_x64_128, padded_words


class StringDictionary:
    """``n`` strings as one UTF-8 buffer and ``n + 1`` offsets; ``null_code``: the entry that
    stands for a missing value (-1: none). ``values``: the decoded strings, if already at hand."""

    def __init__(self, data: bytes | memoryview, offsets: np.ndarray, null_code: int = -1, values: np.ndarray | None = None) -> None:
        self.data = data
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.null_code = null_code
        self.lengths = np.diff(self.offsets)
        self._values = values
        self._hashes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cache: dict[Any, Any] = {}

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> StringDictionary:
        """From distinct values (None: missing; other non-strings as ``str``)."""
        encoded = [b"" if v is None else (v if isinstance(v, str) else str(v)).encode() for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        nulls = [i for i, v in enumerate(values) if v is None]
        decoded = np.array([v if v is None or isinstance(v, str) else str(v) for v in values], dtype=object)
        return cls(b"".join(encoded), offsets, nulls[0] if nulls else -1, decoded)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def values(self) -> np.ndarray:
        """The strings (object array; None at ``null_code``)."""
        if self._values is None:
            self._values = np.array(
                [bytes(self.data[a:b]).decode() for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist())],
                dtype=object,
            )
            if self.null_code >= 0:
                self._values[self.null_code] = None
        return self._values

    @property
    def present(self) -> np.ndarray:
        """Entries that are a value (not the missing one)."""
        mask = np.ones(len(self), dtype=bool)
        if self.null_code >= 0:
            mask[self.null_code] = False
        return mask

    @property
    def non_empty(self) -> np.ndarray:
        """Entries a hashing sketch takes: DataSketches skips empty strings in HLL and count-min."""
        return self.present & (self.lengths > 0)

    def hashes(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """MurmurHash3_x64_128 of every entry with ``seed`` (computed once per seed)."""
        if seed not in self._hashes:
            padded = self.cached("padded", lambda: padded_words(self.data, self.offsets))
            self._hashes[seed] = murmur3_x64_128(self.data, self.offsets, seed, padded)
        return self._hashes[seed]

    def cached(self, key: Any, compute):
        """``compute()`` once per ``key`` for this dictionary (derived per-entry arrays)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def encoded_items(self, codes: np.ndarray) -> bytes:
        """``codes``' strings as DataSketches serializes strings: u32 length, then the bytes."""
        codes = np.asarray(codes, dtype=np.int64)
        lengths = self.lengths[codes]
        sizes = lengths + 4
        starts = np.cumsum(sizes) - sizes
        out = np.zeros(int(sizes.sum()), dtype=np.uint8)
        heads = (starts[:, None] + np.arange(4)).ravel()
        out[heads] = lengths.astype("<u4").view(np.uint8)
        text_at = _ranges(starts + 4, lengths)
        out[text_at] = np.frombuffer(self.data, dtype=np.uint8)[_ranges(self.offsets[codes], lengths)]
        return out.tobytes()


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without the loop.

    >>> _ranges(np.array([5, 0]), np.array([2, 3])).tolist()
    [5, 6, 0, 1, 2]
    """
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total)
