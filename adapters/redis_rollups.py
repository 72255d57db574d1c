"""Roll-up maintenance of :class:`adapters.redis_store.AggregateStore` (see there for the layout):
re-merging dirty buckets from their children, by compaction or lazily on read."""

from __future__ import annotations

from adapters.redis_layout import StoredWindow, merge_sketches
from app.windows import Window, children


class Rollups:
    """Mixed into AggregateStore: uses its client, keys, levels and scripts."""

    # -- roll-ups -----------------------------------------------------------------------------
    def _parse_member(self, member: bytes | str) -> tuple[str, Window]:
        m = member.decode() if isinstance(member, bytes) else member
        res, rest = m.split("|", 1)
        series, start = rest.rsplit("|", 1)
        return series, Window(int(start), int(res) * 1000)

    def compact(self, upto: int | None = None, budget: int | None = None) -> int:
        """Re-merge dirty buckets: every dirty finest roll-up, and coarser ones that ended by ``upto``
        (default: the newest window end written), finest and oldest first. ``budget`` caps the
        children merged in one call (the rest waits for the next), so an hour boundary does not
        stall readers. Returns how many buckets were rewritten."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(self.dirty_key, 0, -1, withscores=True)
        pipe.hget(self.meta_key, "hw")
        dirty, hw = pipe.execute()
        upto = int(hw or 0) if upto is None else upto
        todo = []
        for member, version in dirty:
            series, win = self._parse_member(member)
            if win.width in self.level and (self.level[win.width] == 1 or win.end <= upto):
                todo.append((series, win, version))
        todo.sort(key=lambda t: (t[1].width, t[1].start))
        if budget is not None:
            cost, cut = 0, 0
            for cut, (_, win, _) in enumerate(todo, 1):
                cost += win.width // self.widths[self.level[win.width] - 1]
                if cost >= budget:
                    break
            todo = todo[:cut]
        return self._refresh(todo)

    def _refresh(self, todo: list[tuple[str, Window, float]]) -> int:
        """Re-merge buckets level by level, finest first, so coarser ones read fresh children."""
        ref, written = self.reference_ms(), 0
        for lvl in range(1, len(self.widths)):
            batch = [t for t in todo if self.level.get(t[1].width) == lvl]
            if not batch:
                continue
            cw = self.widths[lvl - 1]
            pipe = self.r.pipeline(transaction=False)
            for series, win, _ in batch:
                pipe.mget([self.key(win.width, series, win.start)]
                          + [self.key(cw, series, c.start) for c in children(win, cw)])
            fetched = pipe.execute()
            pipe = self.r.pipeline(transaction=False)
            for (series, win, version), values in zip(batch, fetched):
                blob = self._remerge(win, cw, values, int(version))
                ttl, trim, idx_ttl = self._ttl_args(win.width, win.end, ref)
                self._refresh_script(
                    keys=[self.key(win.width, series, win.start), self.dirty_key, self.index_key(win.width, series),
                          self.head_key(win.width, series, win.start)],
                    args=[f"{win.width // 1000}|{series}|{win.start}", repr(version), blob, ttl, win.start,
                          trim, idx_ttl],
                    client=pipe,
                )
            written += sum(1 for x in pipe.execute() if x)
        return written

    def _remerge(self, win: Window, cw: int, values: list[bytes | None], revision: int = 0) -> bytes:
        """The bucket re-merged from its children; its revision is the number of the dirty mark it
        answers, so every re-merge after a change gets a new header (readers cache by header)."""
        old = StoredWindow.from_bytes(values[0], win) if values[0] else None
        kids = {i: StoredWindow.from_bytes(v, Window(win.start + i * cw, cw))
                for i, v in enumerate(values[1:]) if v}
        mask = sum(1 << i for i in kids)
        if old is not None and mask & old.mask != old.mask:  # some children expired: only add new ones
            self.stale_rollups += 1
            new = [kids[i] for i in kids if not (old.mask >> i) & 1]
            if not new:
                return b""
            parts, mask = [old, *new], old.mask | mask
        else:
            parts = list(kids.values())
        if not parts:
            return b""
        merged = merge_sketches(p.sketch for p in parts)
        return StoredWindow(
            win.start, win.end, revision, sum(p.events for p in parts), sum(p.late_events for p in parts),
            max(p.newest_end for p in parts), max(p.emitted_at for p in parts),
            sum(p.base_windows for p in parts), mask, merged.to_bytes() if merged is not None else b"",
        ).to_bytes()

    def _with_dirty_children(self, dirty: list[tuple[str, Window, float]]) -> list[tuple[str, Window, float]]:
        todo, frontier = list(dirty), [d for d in dirty if self.level[d[1].width] >= 2]
        while frontier:
            cands = [(s, c) for s, w, _ in frontier for c in children(w, self.widths[self.level[w.width] - 1])]
            scores = self.r.zmscore(self.dirty_key, [f"{c.width // 1000}|{s}|{c.start}" for s, c in cands])
            found = [(s, c, v) for (s, c), v in zip(cands, scores) if v is not None]
            todo += found
            frontier = [f for f in found if self.level[f[1].width] >= 2]
        return todo

