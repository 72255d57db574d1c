"""One KLL sketch per key: quantiles of every numeric entry of an event's ``features``.

Feature names are open-ended, so a window carries one :class:`KeyedKll` for the field
``features`` and a query for ``features.dwell`` reads the ``dwell`` entry.

>>> s = KeyedKll(k=200)
>>> s.update_map({"dwell": 1.0, "rank": 3})
>>> s.update_map({"dwell": 3.0})
>>> sorted(s.keys()), s.get("dwell").n
(['dwell', 'rank'], 2)
>>> t = KeyedKll.from_bytes(s.to_bytes()); t.merge(s); t.get("dwell").n
4
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any, Self

from app.sketches.base import Sketch
from app.sketches.defaults import KLL_K
from app.sketches.kll import KllSketch

#: A window may not carry more feature names than an event may (DESIGN.md: <= 64 entries)
#: times a safety factor; past this, new names are dropped and counted.
MAX_KEYS = 256


class KeyedKll(Sketch):
    kind = "kll_map"

    def __init__(self, k: int = KLL_K) -> None:
        self.k = k
        self._sketches: dict[str, KllSketch] = {}
        self.dropped_keys = 0

    def _sketch(self, key: str) -> KllSketch | None:
        s = self._sketches.get(key)
        if s is None:
            if len(self._sketches) >= MAX_KEYS:
                self.dropped_keys += 1
                return None
            s = self._sketches[key] = KllSketch(k=self.k)
        return s

    def update(self, value: tuple[str, float]) -> None:
        key, x = value
        s = self._sketch(key)
        if s is not None:
            s.update(float(x))

    def update_map(self, features: Mapping[str, float]) -> None:
        for key, x in features.items():
            self.update((key, x))

    def update_columns(self, columns: Mapping[str, Iterable[float]]) -> None:
        """Fast path: all values of one key at once (numpy arrays welcome)."""
        for key, xs in columns.items():
            s = self._sketch(key)
            if s is not None:
                s.update_many(xs)

    def merge(self, other: Self) -> None:
        for key, s in other._sketches.items():
            mine = self._sketch(key)
            if mine is not None:
                mine.merge(s)

    def keys(self) -> list[str]:
        return list(self._sketches)

    def get(self, key: str) -> KllSketch | None:
        return self._sketches.get(key)

    def payload(self) -> bytes:
        parts = [struct.pack("<II", self.k, len(self._sketches))]
        for key, s in sorted(self._sketches.items()):
            kb, sb = key.encode("utf-8"), s.payload()
            parts.append(struct.pack("<HI", len(kb), len(sb)) + kb + sb)
        return b"".join(parts)

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        try:
            k, count = struct.unpack_from("<II", payload, 0)
            out, pos = cls(k=k), 8
            for _ in range(count):
                klen, slen = struct.unpack_from("<HI", payload, pos)
                pos += 6
                key = payload[pos : pos + klen].decode("utf-8")
                pos += klen
                if pos + slen > len(payload):
                    raise ValueError("truncated")
                out._sketches[key] = KllSketch.from_payload(payload[pos : pos + slen])
                pos += slen
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"corrupt kll_map sketch: {exc}") from None
        return out

    @property
    def params(self) -> dict[str, Any]:
        return {"k": self.k, "keys": len(self._sketches)}

    @property
    def is_empty(self) -> bool:
        return not self._sketches
