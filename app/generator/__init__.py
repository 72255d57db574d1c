"""Synthetic, seeded, realistic events (and their exact ground truth), or a replay of a real file.

>>> from app.generator import EventGenerator, Truth
>>> g = EventGenerator(seed=1, rate=100, start_ms=0, n_users=50, n_items=20)
>>> truth = Truth()
>>> for m in g.events(100):
...     truth.add(m)
>>> truth.summary()["valid"]
100
"""

from app.generator.config import GeneratorConfig
from app.generator.event_table import EventTable
from app.generator.faults import MALFORMED_KINDS
from app.generator.generator import LATE, MALFORMED, VALID, EventGenerator, GeneratedMessage
from app.generator.replay import read_messages, read_raw
from app.generator.truth import Truth

__all__ = [
    "LATE",
    "MALFORMED",
    "MALFORMED_KINDS",
    "VALID",
    "EventGenerator",
    "EventTable",
    "GeneratedMessage",
    "GeneratorConfig",
    "Truth",
    "read_messages",
    "read_raw",
]
