"""Topic names of DESIGN.md, with a configurable prefix so every test can use its own."""

from __future__ import annotations

from dataclasses import dataclass

BASE_NAMES = ("events.v1", "dlq.v1", "aggregates.v1", "late.v1", "examples.v1", "models.v1", "metrics.v1")


@dataclass(frozen=True)
class Topics:
    """All topic names for one deployment (or one test).

    >>> Topics().events
    'events.v1'
    >>> Topics(prefix="t42.").dlq
    't42.dlq.v1'
    """

    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def events(self) -> str:
        return self._name("events.v1")

    @property
    def dlq(self) -> str:
        return self._name("dlq.v1")

    @property
    def aggregates(self) -> str:
        return self._name("aggregates.v1")

    @property
    def late(self) -> str:
        """Events later than the allowed lateness: kept here, and counted per window."""
        return self._name("late.v1")

    @property
    def examples(self) -> str:
        return self._name("examples.v1")

    @property
    def models(self) -> str:
        """Compacted, key = model name."""
        return self._name("models.v1")

    @property
    def metrics(self) -> str:
        return self._name("metrics.v1")

    def all(self) -> list[str]:
        return [self._name(b) for b in BASE_NAMES]

    def compacted(self) -> set[str]:
        return {self.models}
