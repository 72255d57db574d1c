"""Answers to aggregate queries: merge the stored windows of a range and report estimate, bounds, freshness.

Framework-free (routes stay thin). One Redis round trip reads the heads of the cover's windows
and of the late-event series (re-merging dirty roll-ups first, see ``AggregateStore.heads``);
then two in-process caches keep the work small: answers per query, valid while every window's
head is unchanged (so a re-emitted or re-merged window changes the answer at once), and decoded
window sketches keyed by their heads (:mod:`serving.reads`; read-only: a merge always
accumulates into a fresh copy). Only sketches not cached are fetched, in one MGET.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from adapters.redis_store import AggregateStore, series_id
from app.sketches import ReservoirSample, decode_sketch
from app.windows import Cover, Window, steps
from serving.reads import (Changed, Covers, Found, SketchCache, merge_blocks, merge_parts, parse_heads,
                           reservoir_bytes, window_sketches)

log = logging.getLogger(__name__)

#: The fields each sketch kind is kept for (DESIGN.md, issue 3); kll also takes ``features.<name>``.
FIELDS: dict[str, tuple[str, ...]] = {
    "hll": ("user_id", "session_id", "item_id"),
    "frequent": ("item_id", "category", "user_id"),
    "kll": ("price",),
    "cms": ("item_id", "user_id"),
}
COUNT_SERIES = ("count", "*")  # exact event counts per window (timeseries)
LATE_SERIES = ("late", "*", "all", "")  # events that arrived after their window fired (all dimensions)
SAMPLE_SERIES = ("reservoir", "*")  # uniform sample of whole events
MAX_WINDOWS = 2_000  # per query, whatever the resolutions configured
MAX_POINTS = 2_000  # per timeseries


class QueryError(ValueError):
    """A bad parameter: answered with ``status`` and the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RangeQuery:
    start: int
    end: int
    dim: str = "all"
    dim_value: str = ""


def check_field(kind: str, field: str) -> None:
    if field in FIELDS[kind]:
        return
    if kind == "kll" and field.startswith("features.") and 0 < len(field) - 9 <= 128:
        return
    allowed = ", ".join(FIELDS[kind]) + (", features.<name>" if kind == "kll" else "")
    raise QueryError(f"unknown field {field!r} for {kind}; known: {allowed}", status=404)


class QueryService:
    def __init__(
        self,
        store: AggregateStore,
        *,
        clock: Callable[[], float] = time.time,
        cache_size: int = 512,
        sketch_cache_bytes: int = 128 << 20,
    ) -> None:
        self.store = store
        self.clock = clock
        self._cache: OrderedDict[tuple, tuple[tuple, dict]] = OrderedDict()  # query -> (heads, answer)
        self._cache_size = cache_size
        self.sketches = SketchCache(sketch_cache_bytes)  # (series, window, head) -> decoded sketch
        self.covers = Covers(store)
        self._late_id = series_id(*LATE_SERIES)
        self._lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def window_seconds(self) -> int:
        return self.store.base_ms // 1000

    @property
    def max_range_ms(self) -> int:
        return self.store.resolutions[-1].retention_ms

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def check_range(self, rq: RangeQuery) -> None:
        if rq.start >= rq.end:
            raise QueryError("start must be before end")
        if rq.end - rq.start > self.max_range_ms:
            raise QueryError(f"range longer than the retention ({self.max_range_ms // 86_400_000} days)")

    def _cover(self, rq: RangeQuery) -> Cover:
        self.check_range(rq)
        cover = self.covers(rq.start, rq.end)
        if len(cover.windows) > MAX_WINDOWS:
            raise QueryError(f"the range needs {len(cover.windows)} windows (at most {MAX_WINDOWS}); narrow it")
        return cover

    def _merged(self, kind: str, field: str, rq: RangeQuery, params: tuple, answer: Callable[[Any], dict],
                merge_all: Callable[[list], Any] | None = None, decode: Callable[[bytes], Any] = decode_sketch) -> dict:
        """Read the cover's heads, and compute (or reuse) ``answer(merged sketch)`` plus the common fields."""
        cover = self._cover(rq)
        series = series_id(kind, field, rq.dim, rq.dim_value)
        key = (series, cover.start, cover.end, params)
        for attempt in range(3):
            heads, late = self.store.heads([series, self._late_id], cover.windows)
            fingerprint = tuple(heads)
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and hit[0] == fingerprint:
                    self._cache.move_to_end(key)
            if hit is not None and hit[0] == fingerprint:
                body = hit[1]
                break
            try:
                found = parse_heads(cover.windows, heads)
            except ValueError as exc:
                raise QueryError(str(exc)) from None
            try:  # the first two attempts insist that every sketch is the one its head described
                parts = window_sketches(self.store, self.sketches, series, found, strict=attempt < 2, decode=decode)
            except Changed:
                continue
            sketch = merge_parts(parts, series, merge_all) if merge_all else merge_blocks(self.sketches, series, found, parts)
            body = answer(sketch)
            body["sketch"] = {"type": kind, "params": sketch.params if sketch is not None else {}}
            body.update(self._common(cover, found))
            if attempt < 2:
                with self._lock:
                    self._cache[key] = (fingerprint, body)
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            break
        return self._finish(body, field, rq, self._late_events(cover.windows, late))

    def _common(self, cover: Cover, found: Sequence[Found]) -> dict:
        widths: dict[str, int] = {}
        for f in found:
            k = str(f.window.width // 1000)
            widths[k] = widths.get(k, 0) + 1
        return {
            "windows": len(found),
            "windows_planned": len(cover.windows),
            "base_windows": sum(f.base_windows for f in found),
            "resolutions": widths,
            "window_seconds": self.window_seconds,
            "events": sum(f.events for f in found),
            "late_events": sum(f.late_events for f in found),
            "covered": {"start": cover.start, "end": cover.end},
            "_newest": max((f.newest_end for f in found), default=None),
        }

    @staticmethod
    def _late_events(wins: Sequence[Window], heads: Sequence[bytes]) -> int:
        """Late events are counted per window for all events (read with the cover's heads)."""
        try:
            return sum(f.late_events for f in parse_heads(wins, heads))
        except ValueError:
            return 0

    def _finish(self, body: dict, field: str, rq: RangeQuery, late: int) -> dict:
        out = {k: v for k, v in body.items() if k != "_newest"}
        out["late_events"] = out.get("late_events", 0) + late
        newest = body["_newest"]
        out["freshness_ms"] = None if newest is None else max(0, self.now_ms() - newest)
        out.update(field=field, start=rq.start, end=rq.end,
                   filter=None if rq.dim == "all" else {"dim": rq.dim, "value": rq.dim_value})
        return out

    # -- routes -------------------------------------------------------------------------------
    def distinct(self, field: str, rq: RangeQuery, confidence: float = 0.95) -> dict:
        check_field("hll", field)

        def answer(sk) -> dict:
            if sk is None:
                return _point(0.0, 0.0, 0.0, confidence)
            e = sk.estimate(confidence)
            return _point(e.value, e.lower_bound, e.upper_bound, e.confidence)

        return self._merged("hll", field, rq, ("d", confidence), answer)

    def top(self, field: str, rq: RangeQuery, k: int = 10) -> dict:
        check_field("frequent", field)

        def answer(sk) -> dict:
            items = [] if sk is None else sk.top(k)
            rows = [{"item": i.item, "estimate": i.estimate, "lower_bound": i.lower_bound,
                     "upper_bound": i.upper_bound} for i in items]
            return {"estimate": rows, "lower_bound": [r["lower_bound"] for r in rows],
                    "upper_bound": [r["upper_bound"] for r in rows], "confidence": 1.0,
                    "threshold": 0 if sk is None else sk.threshold(), "k": k}

        return self._merged("frequent", field, rq, ("t", k), answer)

    def quantiles(self, field: str, rq: RangeQuery, qs: Sequence[float]) -> dict:
        check_field("kll", field)

        def answer(sk) -> dict:
            if sk is None or sk.is_empty:
                rows = [{"q": q, "estimate": None, "lower_bound": None, "upper_bound": None} for q in qs]
                conf, extra = None, {"rank_error": None, "min": None, "max": None}
            else:
                ests = sk.quantiles(qs)
                rows = [{"q": q, "estimate": e.value, "lower_bound": e.lower_bound, "upper_bound": e.upper_bound}
                        for q, e in zip(qs, ests)]
                conf = ests[0].confidence if ests else None
                extra = {"rank_error": sk.rank_error, "min": sk.min, "max": sk.max}
            return {"estimate": rows, "lower_bound": [r["lower_bound"] for r in rows],
                    "upper_bound": [r["upper_bound"] for r in rows], "confidence": conf, **extra}

        return self._merged("kll", field, rq, ("q", tuple(qs)), answer)

    def frequency(self, field: str, value: str, rq: RangeQuery, confidence: float = 0.95) -> dict:
        check_field("cms", field)

        def answer(sk) -> dict:
            if sk is None:
                return {**_point(0.0, 0.0, 0.0, confidence), "value": value}
            e = sk.frequency(value, confidence)
            return {**_point(e.value, e.lower_bound, e.upper_bound, e.confidence), "value": value}

        return self._merged("cms", field, rq, ("f", value, confidence), answer)

    def samples(self, n: int, rq: RangeQuery) -> dict:
        def answer(sk) -> dict:
            items = [] if sk is None or sk.is_empty else [_jsonish(x) for x in sk.sample(n)]
            return {"estimate": items, "lower_bound": None, "upper_bound": None, "confidence": None,
                    "sample_size": len(items), "population": 0 if sk is None else sk.n_seen}

        def merge_all(blobs: list) -> ReservoirSample:
            # An empty k=n reservoir first: the union keeps n items, drawn in one multivariate
            # hypergeometric step over all windows (the same distribution as merging one by one),
            # decoding only the items drawn.
            return ReservoirSample.merge_many([ReservoirSample(k=n), *blobs])

        return self._merged(*SAMPLE_SERIES, rq, ("s", n), answer, merge_all=merge_all, decode=reservoir_bytes)

    def timeseries(self, metric: str, step_s: int, rq: RangeQuery) -> dict:
        """Exact events (or late events) per step; a step whose windows have expired is null."""
        if metric not in ("events", "late_events"):
            raise QueryError("metric must be 'events' or 'late_events'")
        base = self.window_seconds
        if step_s < base or step_s % base:
            raise QueryError(f"step must be a positive multiple of the window ({base} s)")
        self.check_range(rq)
        points = steps(rq.start, rq.end, step_s * 1000)
        if len(points) > MAX_POINTS:
            raise QueryError(f"more than {MAX_POINTS} points; use a larger step")
        avail = self.store.available_from(self.store.reference_ms())
        plans: list[tuple[Window, Sequence[Window] | None]] = []
        for p in points:
            c = self.covers(p.start, p.end, avail)
            plans.append((p, c.windows if (c.start, c.end) == (p.start, p.end) else None))
        wanted = [w for _, ws in plans if ws for w in ws]
        if len(wanted) > MAX_WINDOWS * 4:
            raise QueryError("range needs too many windows at this step; use a larger step")
        series = series_id(*LATE_SERIES) if metric == "late_events" else series_id(*COUNT_SERIES, rq.dim, rq.dim_value)
        try:  # heads only: counts need no sketch
            found = {f.window: f for f in parse_heads(wanted, self.store.heads([series], wanted)[0])}
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        out_points, present = [], []
        for p, ws in plans:
            got = [found[w] for w in ws or () if w in found]
            present += got
            value = None if ws is None else sum(getattr(g, metric) for g in got)
            out_points.append({"t": p.start, "value": value})
        newest = max((f.newest_end for f in present), default=None)
        vals = [pt["value"] for pt in out_points]
        return {
            "metric": metric, "step": step_s, "points": out_points, "estimate": vals, "lower_bound": vals,
            "upper_bound": vals, "confidence": 1.0, "windows": len(present), "window_seconds": base,
            "events": sum(f.events for f in present), "late_events": sum(f.late_events for f in present),
            "freshness_ms": None if newest is None else max(0, self.now_ms() - newest),
            "sketch": {"type": "count", "params": {}}, "start": rq.start, "end": rq.end,
            "filter": None if rq.dim == "all" else {"dim": rq.dim, "value": rq.dim_value},
        }


def _point(value: float, lower: float, upper: float, confidence: float) -> dict:
    return {"estimate": value, "lower_bound": lower, "upper_bound": upper, "confidence": confidence}


def _jsonish(item: bytes | str) -> Any:
    """A sampled event as JSON when it is JSON (embedded as it is stored, not re-built: a cached
    answer would otherwise hold ~300 dicts and lists per 100 events, and every pass of the garbage
    collector walks them), else as text."""
    raw = item if isinstance(item, bytes) else item.encode("utf-8")
    try:
        orjson.loads(raw)  # only to check it
    except orjson.JSONDecodeError:
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else item
    return orjson.Fragment(raw)
