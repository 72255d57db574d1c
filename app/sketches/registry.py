"""Kind tag → sketch class, for :func:`app.sketches.codec.decode_sketch`.

>>> sorted(SKETCH_TYPES)
['cms', 'frequent', 'hll', 'kll', 'kll_map', 'reservoir']
"""

from __future__ import annotations

from app.sketches.base import Sketch
from app.sketches.countmin import CountMinSketch
from app.sketches.frequent import FrequentItemsSketch
from app.sketches.hll import HllSketch
from app.sketches.keyed import KeyedKll
from app.sketches.kll import KllSketch
from app.sketches.reservoir import ReservoirSample

SKETCH_TYPES: dict[str, type[Sketch]] = {
    cls.kind: cls for cls in (HllSketch, FrequentItemsSketch, KllSketch, CountMinSketch, ReservoirSample, KeyedKll)
}
