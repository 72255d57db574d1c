"""Windowed sketches in Redis, with multi-resolution roll-ups. Redis is a cache of ``aggregates.v1``.

Key layout (``P`` = ``key_prefix``; series ``S`` = ``kind|field|dim|dim_value``; ``R`` = seconds):

- ``P w{R}|S|{start}`` — one window (base) or roll-up bucket: ``T1|rev|events|late|newest|emitted|nbase|mask|``
  followed by the sketch envelope bytes. For the base level the suffix ``S|{start}`` is ``record.key()``.
  TTL = the level's retention counted from the window's end (at least ``min_ttl_s``), "now" being
  the newest window end written (capped by the clock), so a replay of history keeps its roll-ups.
- ``P h{R}|S|{start}`` — that window's header alone (``T1|rev|…|mask|``), written with it, same expiry:
  serving reads a whole cover's headers with one MGET. ``meta.layout = 2`` says every window has one
  (a store written before them is read from the values until :meth:`AggregateStore.backfill_heads`).
  A re-merged bucket's ``rev`` is the number of the dirty mark it cleared: equal headers, equal values.
- ``P i{R}|S`` — sorted set of window starts per series and resolution (trimmed to retention).
- ``P dirty`` — sorted set of roll-up buckets to re-merge, member ``{R}|S|{start}``, score = a
  marking number from ``P ver`` (INCR), so a re-merge clears the mark only if nothing newer came.
- ``P series`` — set of series ids; ``P meta`` — hash: ``hw`` (newest window end), ``last_write``.

A base window is written by a Lua script that keeps the higher ``revision`` (a re-emitted window
replaces, never adds) and marks its coarser buckets dirty. Buckets are re-merged from their children
by :meth:`AggregateStore.compact` (the ingester calls it) or lazily on read (:mod:`adapters.redis_rollups`);
``mask`` records which children a bucket holds, so a re-merge never drops children that have already expired.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from redis.exceptions import NoScriptError

from adapters.redis_layout import (
    BACKFILL_HEADS,
    HEADER_MAX,
    HEADERS,
    HEADS,
    PUT,
    REFRESH,
    StoredWindow,
    WindowSet,
    merge_sketches,
    series_id,
)
from adapters.redis_rollups import Rollups
from app.contracts.aggregates import DIMENSIONS, AggregateRecord
from app.sketches.codec import kind_of
from app.windows import Resolution, Window, parents, plan_cover, resolution_ladder

log = logging.getLogger(__name__)
__all__ = ["AggregateStore", "StoredWindow", "WindowSet", "merge_sketches", "series_id"]


#: Record kinds that carry exact counts only (no sketch): per-window events, and late events
#: (upserted by the sketch job as they arrive after their window fired).
COUNT_KINDS = ("count", "late")


class AggregateStore(Rollups):
    def __init__(
        self,
        redis_client,
        resolutions: Sequence[Resolution] | None = None,
        *,
        base_seconds: int = 10,
        key_prefix: str = "trb:",
        min_ttl_s: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.r = redis_client  # must return bytes (decode_responses=False)
        self.resolutions = tuple(resolutions or resolution_ladder(base_seconds))
        self.widths = [res.ms for res in self.resolutions]
        self.level = {w: i for i, w in enumerate(self.widths)}
        self.p = key_prefix
        self.min_ttl_ms = min_ttl_s * 1000
        self.clock = clock
        self.dirty_key, self.ver_key = f"{key_prefix}dirty", f"{key_prefix}ver"
        self.series_key, self.meta_key = f"{key_prefix}series", f"{key_prefix}meta"
        self._put = redis_client.register_script(PUT)
        self._refresh_script = redis_client.register_script(REFRESH)
        self._headers = redis_client.register_script(HEADERS)
        self._heads = redis_client.register_script(HEADS)
        self._backfill = redis_client.register_script(BACKFILL_HEADS)
        self._layout = 0  # 2: every window has its header key (see heads()); read with hw
        self.stale_rollups = 0  # re-merges that could not see every child (expired) and only added
        self._hw: tuple[int, float] = (0, float("-inf"))  # newest window end, when last read

    # -- keys -------------------------------------------------------------------------------
    @property
    def base_ms(self) -> int:
        return self.widths[0]

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def key(self, width: int, series: str, start: int) -> str:
        return f"{self.p}w{width // 1000}|{series}|{start}"

    def head_key(self, width: int, series: str, start: int) -> str:
        """The window's header alone (``T1|rev|events|late|newest|emitted|nbase|mask|``), same expiry."""
        return f"{self.p}h{width // 1000}|{series}|{start}"

    def index_key(self, width: int, series: str) -> str:
        return f"{self.p}i{width // 1000}|{series}"

    def reference_ms(self) -> int:
        """"Now" for retention: the newest window end written (re-read at most once a second), capped
        by the wall clock. Live, that is about now; replaying history, retention follows the data."""
        hw, at = self._hw
        if time.monotonic() - at > 1.0:
            stored, layout = self.r.hmget(self.meta_key, ["hw", "layout"])
            hw, self._layout = max(hw, int(stored or 0)), int(layout or 0)
            self._hw = (hw, time.monotonic())
        now = self.now_ms()
        return min(now, hw) if hw else now

    def _ttl_args(self, width: int, end: int, ref: int) -> tuple[int, int, int]:
        """PX for a window (its level's retention from its end, at least ``min_ttl``: a window older
        than that still lives long enough to be rolled up), the index trim point, the index PX."""
        res = self.resolutions[self.level[width]]
        ref = max(ref, end)
        ttl = max(self.min_ttl_ms, res.retention_ms - (ref - end))
        return ttl, ref - res.retention_ms - width, res.retention_ms + width

    def available_from(self, ref: int) -> list[int | None]:
        """Earliest window start each level still keeps, as of ``ref`` (:meth:`reference_ms`)."""
        return [ref - res.retention_ms for res in self.resolutions[:-1]] + [None]

    # -- writes -----------------------------------------------------------------------------
    def put(self, record: AggregateRecord) -> str:
        """Store one window: ``written``, ``unchanged`` (same bytes) or ``stale`` (older revision)."""
        return self.put_many([record])[0]

    def put_many(self, records: Sequence[AggregateRecord]) -> list[str]:
        """:meth:`put` for a batch, in one round trip. An invalid record raises ValueError and
        nothing of the batch is written (validate first with :meth:`validate`)."""
        now, ref = self.now_ms(), self.reference_ms()
        pipe = self.r.pipeline(transaction=False)
        for rec in records:
            self.validate(rec)
            series = series_id(rec.kind, rec.field, rec.dim, rec.dim_value)
            win = Window(rec.window_start, self.base_ms)
            value = StoredWindow(win.start, win.end, rec.revision, rec.events, rec.late_events, win.end,
                                 rec.emitted_at, 1, 1, rec.sketch).to_bytes()
            ttl, trim, idx_ttl = self._ttl_args(win.width, win.end, ref)
            marks = [f"{w.width // 1000}|{series}|{w.start}" for w in parents(win, self.widths)]
            self._put(
                keys=[self.key(win.width, series, win.start), self.index_key(win.width, series), self.dirty_key,
                      self.series_key, self.meta_key, self.ver_key, self.head_key(win.width, series, win.start)],
                args=[rec.revision, value, ttl, win.start, series, trim, idx_ttl, win.end, now, *marks],
                client=pipe,
            )
        out = [("stale", "written", "unchanged")[int(x)] for x in pipe.execute()]
        if records:
            self._hw = (max(self._hw[0], *(r.window_end for r in records)), self._hw[1])
        return out

    def validate(self, rec: AggregateRecord) -> None:
        """Raise ValueError unless ``rec`` is an aligned base window with a sane dimension and sketch."""
        if rec.window_start > self.now_ms() + 86_400_000:
            raise ValueError(f"window start {rec.window_start} is more than a day in the future")
        if rec.window_end - rec.window_start != self.base_ms or rec.window_start % self.base_ms:
            raise ValueError(f"window [{rec.window_start}, {rec.window_end}) is not an aligned "
                             f"{self.base_ms // 1000} s window")
        if rec.dim not in DIMENSIONS or (rec.dim == "all") != (rec.dim_value == ""):
            raise ValueError(f"bad dimension {rec.dim!r}={rec.dim_value!r}")
        if not isinstance(rec.revision, int) or rec.revision < 0 or rec.events < 0 or rec.late_events < 0:
            raise ValueError("revision, events and late_events must be integers >= 0")
        if not all(isinstance(x, str) and x for x in (rec.kind, rec.field)) or not isinstance(rec.dim_value, str):
            raise ValueError("kind, field and dim_value must be strings")
        if rec.kind in COUNT_KINDS:
            return
        if not rec.sketch or kind_of(rec.sketch) != rec.kind:
            raise ValueError(f"a {rec.kind!r} record needs a {rec.kind!r} sketch")

    # -- reads -------------------------------------------------------------------------------
    def windows(self, kind: str, field: str, dim: str, dim_value: str, start: int, end: int,
                *, sketches: bool = True, max_windows: int | None = None) -> WindowSet:
        """The stored windows of the minimal cover of ``[start, end)`` (coarsest resolutions that fit);
        with ``sketches=False`` only their headers (sketch left empty; see :meth:`sketches`).
        Raises ValueError if the cover needs more than ``max_windows``."""
        cover = plan_cover(start, end, self.widths, self.available_from(self.reference_ms()))
        if max_windows is not None and len(cover.windows) > max_windows:
            raise ValueError(f"the range needs {len(cover.windows)} windows (at most {max_windows}); narrow it")
        found = self.fetch(series_id(kind, field, dim, dim_value), cover.windows, sketches=sketches)
        return WindowSet(cover.start, cover.end, len(cover.windows), [w for w in found if w is not None])

    def fetch(self, series: str, wins: Sequence[Window], *, sketches: bool = True) -> list[StoredWindow | None]:
        """Read windows in one round trip; re-merge any dirty roll-up bucket among them first."""
        keys = [self.key(w.width, series, w.start) for w in wins]
        coarse = [w for w in wins if w.width != self.base_ms]
        values: list = [None] * len(keys)
        for _ in range(3):
            pipe = self.r.pipeline(transaction=False)
            if sketches:
                pipe.mget(keys) if keys else pipe.ping()
            else:  # one command for all headers: far cheaper than a GETRANGE each
                pipe.evalsha(self._headers.sha, len(keys), *keys, HEADER_MAX)
            if coarse:
                pipe.zmscore(self.dirty_key, [f"{w.width // 1000}|{series}|{w.start}" for w in coarse])
            try:
                out = pipe.execute()
            except NoScriptError:  # Redis restarted or flushed its scripts: load and read again
                self.r.script_load(HEADERS)
                continue
            values = out[0] if keys else []
            dirty = [(series, w, v) for w, v in zip(coarse, out[-1]) if v is not None] if coarse else []
            if not dirty:
                break
            self._refresh(self._with_dirty_children(dirty))
            coarse = []  # read again, without re-checking
        return [StoredWindow.from_bytes(v, w, header_only=not sketches) if v else None for w, v in zip(wins, values)]

    def heads(self, series: Sequence[str], wins: Sequence[Window]) -> list[list[bytes]]:
        """Per series, the header of each of ``wins`` (``b""`` where missing), in one round trip
        (an MGET of the header keys and a ZMSCORE of the roll-ups' dirty marks); dirty buckets
        among them are re-merged first. Windows without a header key (written before header keys
        existed, or missing) are read from their values (``HEADS``, one more round trip). Equal
        headers mean equal values: a re-emitted window has a higher revision, a re-merged bucket
        the number of the dirty mark it cleared."""
        pairs = [(s, w) for s in series for w in wins]
        if not pairs:
            return [[] for _ in series]
        coarse = [(s, w, f"{w.width // 1000}|{s}|{w.start}") for s, w in pairs if w.width != self.base_ms]
        for attempt in range(3):
            pipe = self.r.pipeline(transaction=False)
            pipe.mget([self.head_key(w.width, s, w.start) for s, w in pairs])
            if coarse and attempt < 2:
                pipe.zmscore(self.dirty_key, [m for _, _, m in coarse])
            out = pipe.execute()
            dirty = [(s, w, v) for (s, w, _), v in zip(coarse, out[1]) if v is not None] if len(out) > 1 else []
            if not dirty:
                break
            self._refresh(self._with_dirty_children(dirty))
        heads = [h or b"" for h in out[0]]
        self.reference_ms()  # keeps the layout flag fresh (once a second)
        missing = [i for i, h in enumerate(heads) if not h] if self._layout < 2 else []
        if missing:
            got, _ = self._heads(keys=[self.dirty_key, *(self.key(pairs[i][1].width, pairs[i][0], pairs[i][1].start)
                                                          for i in missing)], args=[len(self.p) + 2, "", "0", HEADER_MAX])
            for i, h in zip(missing, got.split(b"\n")):
                heads[i] = h
        n = len(wins)
        return [heads[i * n:(i + 1) * n] for i in range(len(series))]

    @property
    def layout(self) -> int:
        """2 once every window has its header key (as of the last :meth:`reference_ms` read)."""
        return self._layout

    def backfill_heads(self, batch: int = 500) -> int:
        """Give every stored window its header key (a store written before they existed), then mark
        the layout so readers take a missing header key for a missing window. Returns keys done."""
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.p) + "w*"
        n = 0
        for keys in _chunks(self.r.scan_iter(match=pattern, count=1000), batch):
            n += int(self._backfill(keys=keys, args=[len(self.p) + 1]))
        self.r.hset(self.meta_key, "layout", "2")
        self._layout, self._hw = 2, (self._hw[0], float("-inf"))
        return n

    def values(self, series: str, wins: Sequence[Window]) -> list[bytes | None]:
        """The whole stored values (header and sketch) of windows, in one MGET."""
        return self.r.mget([self.key(w.width, series, w.start) for w in wins]) if wins else []

    def freshness(self) -> dict[str, int | None]:
        """Newest window end written, wall-clock time of the last write, and roll-ups pending."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self.meta_key, ["hw", "last_write"])
        pipe.zcard(self.dirty_key)
        (hw, last), dirty = pipe.execute()
        now = self.now_ms()
        return {"newest_window_end": int(hw) if hw else None, "last_write_ms": int(last) if last else None,
                "lag_ms": now - int(hw) if hw else None, "dirty_rollups": dirty}

    def series(self, kind: str | None = None) -> list[str]:
        names = sorted(m.decode() for m in self.r.smembers(self.series_key))
        return [n for n in names if kind is None or n.startswith(kind + "|")]

    def ping(self) -> bool:
        return bool(self.r.ping())

    def clear(self) -> int:
        """Delete every key under the prefix (before a rebuild)."""
        n = 0
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.p) + "*"
        for batch in _chunks(self.r.scan_iter(match=pattern, count=1000), 500):
            n += self.r.unlink(*batch)
        return n


def _chunks(it: Iterable, size: int):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf
