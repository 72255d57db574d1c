"""The interface every Tributary sketch follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

#: Confidence of every interval Tributary reports unless a caller asks otherwise.
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """An approximate answer with the interval that holds the truth at ``confidence``.

    >>> e = Estimate(value=100.0, lower_bound=95.0, upper_bound=105.0, confidence=0.95)
    >>> e.contains(99)
    True
    """

    value: float
    lower_bound: float
    upper_bound: float
    confidence: float

    def contains(self, truth: float) -> bool:
        return self.lower_bound <= truth <= self.upper_bound


class Sketch(ABC):
    """A mergeable summary of a stream. The constructor is the configuration."""

    #: Short stable name, also the tag in the serialized envelope.
    kind: ClassVar[str]

    @abstractmethod
    def update(self, value: Any) -> None:
        """Add one value."""

    def update_many(self, values: Iterable[Any]) -> None:
        """Add many values (subclasses override with a faster path where the library has one)."""
        for v in values:
            self.update(v)

    def update_counts(self, values: Iterable[Any], counts: Iterable[int]) -> None:
        """Add each of ``values`` as often as its count says: the same sketch as :meth:`update_many`
        over the repeated values, up to the library's (bounded) ordering effects. Pre-counting a
        window's values (most repeat) lets sketches with weighted or idempotent updates do one
        library call per distinct value instead of one per event."""
        for v, n in zip(values, counts, strict=True):
            for _ in range(int(n)):
                self.update(v)

    @abstractmethod
    def merge(self, other: Self) -> None:
        """Fold ``other`` into this sketch (in place)."""

    @abstractmethod
    def payload(self) -> bytes:
        """The library's own serialized form (wrapped by :meth:`to_bytes`)."""

    @classmethod
    @abstractmethod
    def from_payload(cls, payload: bytes) -> Self:
        """Inverse of :meth:`payload`."""

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The parameters that fix the sketch's accuracy and size (reported on every answer)."""

    @property
    @abstractmethod
    def is_empty(self) -> bool: ...

    def to_bytes(self) -> bytes:
        from app.sketches.codec import encode

        return encode(self.kind, self.payload())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        from app.sketches.codec import decode

        kind, payload = decode(data)
        if kind != cls.kind:
            raise ValueError(f"expected a {cls.kind!r} sketch, got {kind!r}")
        return cls.from_payload(payload)

    def size_bytes(self) -> int:
        return len(self.payload())


def call_each(function, *columns) -> None:
    """``function(*row)`` for every row of ``columns``, looped in C (``map``), not in Python
    bytecode: sketch libraries are called once per distinct value per group, 10+ times per event
    in the sketch job, and the interpreter's loop cost about a quarter of each call.

    >>> seen = []
    >>> call_each(lambda v, n: seen.append((v, n)), ["a", "b"], [2, 1])
    >>> seen
    [('a', 2), ('b', 1)]
    """
    deque(map(function, *columns), maxlen=0)


def as_texts(values: Iterable[Any]) -> list[str]:
    """``values`` as a list of ``str`` (non-strings converted), without copying a list that already is.

    >>> as_texts(["a", 1])
    ['a', '1']
    """
    values = values if isinstance(values, list) else list(values)
    if set(map(type, values)) <= {str}:
        return values
    return [v if isinstance(v, str) else str(v) for v in values]
