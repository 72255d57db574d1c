"""Answers to aggregate queries: merge the stored windows of a range and report estimate, bounds, freshness.

Framework-free (routes stay thin). Two in-process caches keep per-request work small: answers per
query, keyed by the cover and validated by a fingerprint of every window's header (so a re-emitted
or newly rolled-up window changes the answer at once), and decoded window sketches (read-only; a
merge always accumulates into a freshly decoded copy).
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

from adapters.redis_store import AggregateStore, StoredWindow, WindowSet
from app.sketches import ReservoirSample, decode_sketch
from app.windows import Window, plan_cover, steps

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
        sketch_cache_bytes: int = 64 << 20,
    ) -> None:
        self.store = store
        self.clock = clock
        self._cache: OrderedDict[tuple, tuple[tuple, dict]] = OrderedDict()  # query -> answer
        self._cache_size = cache_size
        self._sketches: OrderedDict[tuple, Any] = OrderedDict()  # window -> decoded sketch (read-only)
        self._sizes: dict[tuple, int] = {}
        self._sketch_bytes, self._sketch_budget = 0, sketch_cache_bytes
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

    def _merged(self, kind: str, field: str, rq: RangeQuery, params: tuple, answer: Callable[[Any], dict],
                accumulator: Callable[[], Any] | None = None) -> dict:
        """Fetch the cover's headers, and compute (or reuse) ``answer(merged sketch)`` plus the common fields."""
        self.check_range(rq)
        try:
            ws = self.store.windows(kind, field, rq.dim, rq.dim_value, rq.start, rq.end, sketches=False,
                                    max_windows=MAX_WINDOWS)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        fingerprint = tuple(_header(w) for w in ws.windows)
        key = (kind, field, rq.dim, rq.dim_value, ws.start, ws.end, params)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == fingerprint:
                self._cache.move_to_end(key)
        if hit is not None and hit[0] == fingerprint:
            body = hit[1]
        else:
            sketch = self._merge("|".join((kind, field, rq.dim, rq.dim_value)), ws.windows, accumulator)
            body = answer(sketch)
            body["sketch"] = {"type": kind, "params": sketch.params if sketch is not None else {}}
            body.update(self._common(ws))
            with self._lock:
                self._cache[key] = (fingerprint, body)
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return self._finish(body, field, rq, ws)

    def _merge(self, series: str, windows: Sequence[StoredWindow], accumulator: Callable[[], Any] | None):
        """Merge into a fresh sketch (``accumulator()``, else a new decode of the first window); the
        other windows come from the decoded-sketch cache, and only the missing ones from Redis."""
        keys = [(series, w.start, w.end, _header(w)) for w in windows]
        with self._lock:
            parts = [self._sketches.get(k) for k in keys]
            for k, p in zip(keys, parts):
                if p is not None:
                    self._sketches.move_to_end(k)
        fetch = [i for i, p in enumerate(parts) if p is None or (i == 0 and accumulator is None)]
        acc = accumulator() if accumulator is not None else None
        for i, blob in zip(fetch, self.store.sketches(series, [windows[i] for i in fetch])):
            if not blob:
                continue
            try:
                if acc is None and i == 0:
                    acc = decode_sketch(blob)  # the accumulator is mutated: never a cached object
                if parts[i] is None:
                    parts[i] = self._remember(keys[i], decode_sketch(blob), len(blob))
            except ValueError as exc:
                log.warning("skipping an undecodable window %s@%s: %s", series, windows[i].start, exc)
        for i, part in enumerate(parts):
            if part is None or (i == 0 and accumulator is None):
                continue
            try:
                if acc is None:
                    acc = decode_sketch(part.to_bytes())
                else:
                    acc.merge(part)
            except Exception as exc:  # noqa: BLE001 - one bad window must not break the answer
                log.warning("skipping an unmergeable window %s@%s: %s", series, windows[i].start, exc)
        return acc

    def _remember(self, key: tuple, sketch: Any, size: int) -> Any:
        with self._lock:
            if key not in self._sketches:
                self._sketches[key] = sketch
                self._sizes[key] = size
                self._sketch_bytes += size
            while self._sketch_bytes > self._sketch_budget and self._sketches:
                old, _ = self._sketches.popitem(last=False)
                self._sketch_bytes -= self._sizes.pop(old)
        return sketch

    def _common(self, ws: WindowSet) -> dict:
        widths: dict[str, int] = {}
        for w in ws.windows:
            k = str((w.end - w.start) // 1000)
            widths[k] = widths.get(k, 0) + 1
        return {
            "windows": len(ws.windows),
            "windows_planned": ws.planned,
            "base_windows": sum(w.base_windows for w in ws.windows),
            "resolutions": widths,
            "window_seconds": self.window_seconds,
            "events": sum(w.events for w in ws.windows),
            "late_events": sum(w.late_events for w in ws.windows),
            "covered": {"start": ws.start, "end": ws.end},
            "_newest": max((w.newest_end for w in ws.windows), default=None),
        }

    def _late_events(self, start: int, end: int) -> int:
        """Late events are counted per window for all events (one extra header fetch)."""
        try:
            late = self.store.windows(*LATE_SERIES, start, end, sketches=False, max_windows=MAX_WINDOWS)
        except ValueError:
            return 0
        return sum(w.late_events for w in late.windows)

    def _finish(self, body: dict, field: str, rq: RangeQuery, ws: WindowSet) -> dict:
        out = {k: v for k, v in body.items() if k != "_newest"}
        out["late_events"] = out.get("late_events", 0) + self._late_events(ws.start, ws.end)
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

        # An empty k=n reservoir as the accumulator: each merge then draws only n items.
        return self._merged(*SAMPLE_SERIES, rq, ("s", n), answer, accumulator=lambda: ReservoirSample(k=n))

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
            c = plan_cover(p.start, p.end, self.store.widths, avail)
            plans.append((p, c.windows if (c.start, c.end) == (p.start, p.end) else None))
        wanted = [w for _, ws in plans if ws for w in ws]
        if len(wanted) > MAX_WINDOWS * 4:
            raise QueryError("range needs too many windows at this step; use a larger step")
        series = "|".join(LATE_SERIES if metric == "late_events" else (*COUNT_SERIES, rq.dim, rq.dim_value))
        found = dict(zip(wanted, self.store.fetch(series, wanted)))
        out_points, present = [], []
        for p, ws in plans:
            got = [found[w] for w in ws or () if found[w] is not None]
            present += got
            value = None if ws is None else sum(getattr(g, metric) for g in got)
            out_points.append({"t": p.start, "value": value})
        newest = max((w.newest_end for w in present), default=None)
        vals = [pt["value"] for pt in out_points]
        return {
            "metric": metric, "step": step_s, "points": out_points, "estimate": vals, "lower_bound": vals,
            "upper_bound": vals, "confidence": 1.0, "windows": len(present), "window_seconds": base,
            "events": sum(w.events for w in present), "late_events": sum(w.late_events for w in present),
            "freshness_ms": None if newest is None else max(0, self.now_ms() - newest),
            "sketch": {"type": "count", "params": {}}, "start": rq.start, "end": rq.end,
            "filter": None if rq.dim == "all" else {"dim": rq.dim, "value": rq.dim_value},
        }


def _point(value: float, lower: float, upper: float, confidence: float) -> dict:
    return {"estimate": value, "lower_bound": lower, "upper_bound": upper, "confidence": confidence}


def _header(w: StoredWindow) -> tuple:
    return (w.start, w.end, w.revision, w.events, w.late_events, w.newest_end, w.emitted_at, w.mask)


def _jsonish(item: bytes | str) -> Any:
    """A sampled event as JSON when it is JSON, else as text."""
    try:
        return orjson.loads(item)
    except orjson.JSONDecodeError:
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else item
