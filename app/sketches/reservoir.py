"""A uniform random sample of a stream that stays uniform when windows are merged.

Why not DataSketches ``var_opt``: its generator cannot be seeded from Python (so neither the
sample nor a statistical test of it is reproducible), and its stock ``PyStringsSerDe``
reads 3 of the 4 length bytes and encodes with ``ord`` (fails on non-Latin-1 text). The
uniform case needs far less machinery: Algorithm R within a window, and an exact
hypergeometric merge across windows.

Merge argument: let A and B hold uniform samples of sizes ``min(k, n_a)`` and
``min(k, n_b)`` of disjoint streams. A uniform ``m``-subset of the union contains ``x``
items of A where ``x`` is hypergeometric(``n_a`` of ``n_a + n_b``, ``m`` draws), and given
``x`` those items are a uniform ``x``-subset of A's stream; a uniform ``x``-subset of A's
uniform sample is exactly that. So: draw ``x``, then ``x`` items from A's sample and
``m - x`` from B's. ``x <= min(m, n_a)`` never exceeds what A holds. Many windows at once
(:meth:`ReservoirSample.merge_many`) is the same with a multivariate hypergeometric draw,
and decodes only the items it keeps: a query over hundreds of windows stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Self

import numpy as np

from app.sketches.base import Sketch
from app.sketches.codec import decode
from app.sketches.defaults import RESERVOIR_K

Item = bytes | str

_FORMAT = 1
_HEAD = struct.Struct("<BIQI")  # format, k, n_seen, items held
# Body: items-held uint32 lengths, then one type tag per item (0 bytes, 1 UTF-8 str), then
# the items back to back: decoding is a few numpy calls plus one slice per item.
_MAX_K = 1 << 20
_CHUNK = 1 << 16  # update_many draws random numbers this many at a time (bounded memory)


def _normalize(item: Any) -> Item:
    """Store bytes and str as they are, anything else as compact JSON text."""
    if isinstance(item, (bytes, str)):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _counts(rng: np.random.Generator, ns: list[int], m: int) -> list[int]:
    """How many of ``m`` uniform draws without replacement from ``sum(ns)`` fall in each part."""
    positions = rng.choice(sum(ns), m, replace=False)
    part = np.searchsorted(np.cumsum(ns), positions, side="right")
    return np.bincount(part, minlength=len(ns)).tolist()


class _Packed:
    """A serialized sample read lazily: header and lengths now, items only when picked."""

    def __init__(self, payload: bytes) -> None:
        try:
            fmt, self.k, self.n, count = _HEAD.unpack_from(payload, 0)
        except struct.error:
            raise ValueError("truncated reservoir sample") from None
        if fmt != _FORMAT:
            raise ValueError(f"unsupported reservoir format {fmt}")
        if not 1 <= self.k <= _MAX_K or count != min(self.k, self.n):
            raise ValueError("corrupt reservoir sample header")
        pos = _HEAD.size
        if len(payload) < pos + 5 * count:
            raise ValueError("truncated reservoir sample")
        body = pos + 5 * count
        # Kept as an array: a merge reads only the few offsets it picks.
        self.ends = np.cumsum(np.frombuffer(payload, "<u4", count, pos), dtype=np.int64) + body
        self.tags = payload[pos + 4 * count : body]
        if (int(self.ends[-1]) if count else body) != len(payload) or self.tags.strip(b"\x00\x01"):
            raise ValueError("corrupt reservoir sample body")
        self.payload, self.body, self.count = payload, body, count

    def items(self) -> list[Item]:
        ends = self.ends.tolist()
        raw = [self.payload[a:b] for a, b in zip([self.body, *ends[:-1]], ends)]
        try:
            return [d if t == 0 else d.decode("utf-8") for d, t in zip(raw, self.tags)]
        except UnicodeDecodeError:
            raise ValueError("corrupt reservoir item (bad UTF-8)") from None

    def item(self, i: int) -> Item:
        start = int(self.ends[i - 1]) if i else self.body
        data = self.payload[start : int(self.ends[i])]
        if self.tags[i] == 0:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("corrupt reservoir item (bad UTF-8)") from None


class ReservoirSample(Sketch):
    """``k`` items drawn uniformly without replacement from everything seen (or all, if fewer).

    Items are bytes (e.g. a raw Kafka message), str, or anything JSON-serializable, which is
    kept as its compact JSON text; :meth:`sample` returns the stored bytes/str.

    Parameters
    ----------
    k
        Largest number of items kept.
    seed
        Seed of the sampling decisions; None draws one from the OS. A sketch rebuilt by
        :meth:`from_bytes` seeds itself from its bytes, so equal bytes behave identically.

    Examples
    --------

    >>> r = ReservoirSample(k=5, seed=1)
    >>> r.update_many(range(100))
    >>> r.n_seen, len(r.sample())
    (100, 5)
    >>> all(0 <= int(x) < 100 for x in r.sample())
    True
    >>> r.update({"event_id": "e1", "price": 2.5}); r.n_seen
    101

    Windows of different sizes merge into one uniform sample of the union:

    >>> small = ReservoirSample(k=5, seed=2); small.update_many([b"a", b"b"])
    >>> r.merge(small); r.n_seen, len(r.sample(3))
    (103, 3)
    >>> blob = r.to_bytes()
    >>> a, b = ReservoirSample.from_bytes(blob), ReservoirSample.from_bytes(blob)
    >>> a.sample(2) == b.sample(2), set(a.sample()) == set(r.sample()), a.n_seen
    (True, True, 103)
    >>> ReservoirSample.merge_many([blob, small.to_bytes()]).n_seen
    105

    """

    kind = "reservoir"

    def __init__(self, k: int = RESERVOIR_K, seed: int | None = None) -> None:
        if not 1 <= k <= _MAX_K:
            raise ValueError(f"k must be in [1, {_MAX_K}], got {k}")
        self.k = k
        self._n = 0
        self._items: list[Item] = []
        self._seed = seed
        # Built on first use: decoding a window for a merge never pays for generators.
        self._np_rng: np.random.Generator | None = None
        self._py_rng: random.Random | None = None

    @property
    def _np(self) -> np.random.Generator:
        """numpy generator for the vectorized paths (update_many, merges, sample)."""
        if self._np_rng is None:
            self._np_rng = np.random.default_rng(self._seed)
        return self._np_rng

    @property
    def _py(self) -> random.Random:
        """stdlib generator for single updates: a numpy scalar draw costs ten times more."""
        if self._py_rng is None:
            self._py_rng = random.Random(int(self._np.integers(1 << 62)))
        return self._py_rng

    @property
    def n_seen(self) -> int:
        """Exact number of items offered, merges included."""
        return self._n

    def update(self, value: Any) -> None:
        # Algorithm R: item number n replaces a random slot with probability k / n.
        self._n += 1
        if len(self._items) < self.k:
            self._items.append(_normalize(value))
            return
        j = int(self._py.random() * self._n)
        if j < self.k:
            self._items[j] = _normalize(value)  # encode only the items actually kept

    def update_many(self, values: Iterable[Any]) -> None:
        """Algorithm R vectorized: one uniform draw per item in numpy, Python only for hits."""
        # A Sequence is indexed, not copied: a lazy one (a window's raw events) decodes only hits.
        vals = values if isinstance(values, Sequence) else list(values)
        items, k = self._items, self.k
        start = max(0, min(len(vals), k - len(items)))
        items.extend(_normalize(v) for v in vals[:start])  # filling phase: keep everything
        self._n += start
        for lo in range(start, len(vals), _CHUNK):
            hi = min(lo + _CHUNK, len(vals))
            # Item at 1-based stream position p lands in slot floor(u * p) if that is < k.
            pos = np.arange(self._n + 1, self._n + 1 + hi - lo, dtype=np.float64)
            slots = (self._np.random(hi - lo) * pos).astype(np.int64)
            hits = np.flatnonzero(slots < k)
            for h, slot in zip(hits.tolist(), slots[hits].tolist()):  # in stream order
                items[slot] = _normalize(vals[lo + h])
            self._n += hi - lo

    @classmethod
    def from_priorities(
        cls, items: Sequence[Any], priorities: Sequence[int] | np.ndarray, n_seen: int, k: int = RESERVOIR_K,
        seed: int | None = None,
    ) -> Self:
        """The sample of a stream of ``n_seen`` items in which each item had an independent uniform
        priority: its ``k`` smallest are a uniform ``k``-subset (bottom-k sampling), the same
        distribution as Algorithm R. ``items`` need only be the candidates, any subset of the
        stream that holds its ``k`` smallest priorities (the sketch job's JVM drops the others
        before the window reaches Python); ties go to the earlier candidate.

        >>> r = ReservoirSample.from_priorities(["a", "b", "c", "d"], [40, 10, 30, 20], n_seen=1_000, k=2)
        >>> r.n_seen, sorted(r.sample())
        (1000, ['b', 'd'])
        >>> ReservoirSample.from_priorities(["a"], [5], n_seen=3, k=2)
        Traceback (most recent call last):
        ...
        ValueError: 1 candidates cannot hold the 2 smallest priorities of 3 items
        """
        if len(items) != len(priorities):
            raise ValueError(f"{len(items)} items but {len(priorities)} priorities")
        need = min(k, n_seen)
        if len(items) < need or len(items) > n_seen:
            raise ValueError(f"{len(items)} candidates cannot hold the {need} smallest priorities of {n_seen} items")
        keep = np.argsort(np.asarray(priorities, dtype=np.int64), kind="stable")[:need]
        out = cls(k=k, seed=seed)
        out._n, out._items = n_seen, [_normalize(items[i]) for i in keep.tolist()]
        return out

    def merge(self, other: Self) -> None:
        """Fold ``other`` in; the result keeps ``min(self.k, other.k)`` items at most."""
        merged = self._merge([self, other], self._np)
        self.k, self._n, self._items = merged.k, merged._n, merged._items

    @classmethod
    def merge_many(cls, parts: Iterable[bytes | ReservoirSample], seed: int | None = None) -> Self:
        """One uniform sample of the union of many windows, given as sketches or their bytes.

        Equivalent to merging them one by one, but only the items kept are decoded.
        """
        views = []
        for p in parts:
            if isinstance(p, ReservoirSample):
                views.append(p)
                continue
            kind, payload = decode(p)
            if kind != cls.kind:
                raise ValueError(f"expected a {cls.kind!r} sketch, got {kind!r}")
            views.append(_Packed(payload))
        if not views:
            return cls(seed=seed)
        return cls._merge(views, np.random.default_rng(seed), seed)

    @classmethod
    def _merge(cls, parts: list, rng: np.random.Generator, seed: int | None = None) -> Self:
        k = min(p.k for p in parts)
        ns = [p._n if isinstance(p, ReservoirSample) else p.n for p in parts]
        total = sum(ns)
        # Every part holds min(k_i, n_i) >= min(k, n_i) items, so each count below is
        # available: when total <= k every part is complete and is taken whole.
        counts = ns if total <= k else _counts(rng, ns, k)
        items: list[Item] = []
        for p, c in zip(parts, counts):
            held = len(p._items) if isinstance(p, ReservoirSample) else p.count
            picked = range(held) if c == held else rng.choice(held, c, replace=False).tolist()
            get = p._items.__getitem__ if isinstance(p, ReservoirSample) else p.item
            items.extend(get(i) for i in picked)
        out = cls(k=k, seed=seed)
        out._np_rng = rng
        out._n, out._items = total, items
        return out

    def sample(self, n: int | None = None) -> list[Item]:
        """``n`` items (all held if None) in random order: any prefix is a uniform sample too."""
        held = len(self._items)
        n = held if n is None else n
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return [self._items[i] for i in self._np.choice(held, min(n, held), replace=False).tolist()]

    def payload(self) -> bytes:
        data = [x if isinstance(x, bytes) else x.encode("utf-8") for x in self._items]
        lens = np.fromiter(map(len, data), dtype="<u4", count=len(data))
        tags = bytes(0 if isinstance(x, bytes) else 1 for x in self._items)
        return b"".join([_HEAD.pack(_FORMAT, self.k, self._n, len(data)), lens.tobytes(), tags, *data])

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        packed = _Packed(payload)
        # Seed from the content: reproducible, and different windows get different streams.
        seed = int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little")
        out = cls(k=packed.k, seed=seed)
        out._n, out._items = packed.n, packed.items()
        return out

    @property
    def params(self) -> dict[str, Any]:
        return {"k": self.k, "method": "algorithm R + hypergeometric merge"}

    @property
    def is_empty(self) -> bool:
        return self._n == 0
