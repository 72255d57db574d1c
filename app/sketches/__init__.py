"""Mergeable sketches behind one interface: ``update``, ``merge``, ``to_bytes``/``from_bytes``, bounds.

Each wraps an Apache DataSketches sketch (the reservoir sample is our own, see its module);
the bytes carry a small versioned envelope (:mod:`app.sketches.codec`) so a reader rejects
what it does not understand. Default parameters live in :mod:`app.sketches.defaults`.
"""

from app.sketches.base import Estimate, Sketch
from app.sketches.codec import decode_sketch
from app.sketches.countmin import CountMinSketch
from app.sketches.defaults import DEFAULTS, new_sketch
from app.sketches.frequent import FrequentItemsSketch, ItemEstimate
from app.sketches.hll import HllSketch
from app.sketches.keyed import KeyedKll
from app.sketches.kll import KllSketch
from app.sketches.reservoir import ReservoirSample

__all__ = [
    "Estimate",
    "Sketch",
    "HllSketch",
    "FrequentItemsSketch",
    "ItemEstimate",
    "KllSketch",
    "KeyedKll",
    "CountMinSketch",
    "ReservoirSample",
    "DEFAULTS",
    "new_sketch",
    "decode_sketch",
]
