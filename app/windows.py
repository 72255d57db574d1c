"""Pure time-window arithmetic for serving: resolutions, the multi-resolution cover planner, time parsing.

Windows are tumbling and aligned to the epoch; every resolution divides the next one
(10 s → 1 min → 1 h → 1 day), so a coarser bucket is exactly the union of its children and any
range decomposes into a few coarse buckets in the middle and finer ones at the edges.
All times are integer milliseconds since the epoch (UTC). Nothing here does I/O.

>>> [w.width // 1000 for w in plan_cover(0, 3_600_000 + 70_000, (10_000, 60_000, 3_600_000)).windows]
[3600, 60, 10]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

MINUTE_S, HOUR_S, DAY_S = 60, 3600, 86_400
#: Roll-up resolutions above the base window, and how long each is kept (seconds).
DEFAULT_ROLLUPS_S = (MINUTE_S, HOUR_S, DAY_S)
#: Sized so a 7-day range ending now stays a few hundred windows while the finest (and most
#: numerous) levels stay small: per series about 720 + 1440 + 336 + 400 windows.
DEFAULT_RETENTION_S = {10: 2 * HOUR_S, MINUTE_S: DAY_S, HOUR_S: 14 * DAY_S, DAY_S: 400 * DAY_S}
#: Largest epoch-ms accepted from users (9999-12-31T23:59:59.999Z).
MAX_EPOCH_MS = 253_402_300_799_999


@dataclass(frozen=True)
class Resolution:
    """One level of the roll-up ladder: its window length and how long it is kept."""

    seconds: int
    retention_s: int

    @property
    def ms(self) -> int:
        return self.seconds * 1000

    @property
    def retention_ms(self) -> int:
        return self.retention_s * 1000


def resolution_ladder(
    base_seconds: int,
    rollups_s: Sequence[int] = DEFAULT_ROLLUPS_S,
    retention_s: dict[int, int] | None = None,
) -> tuple[Resolution, ...]:
    """The base window plus every roll-up coarser than it that it divides, finest first.

    A level's retention defaults to the table above (the base gets the 10 s figure, at least
    one hour); a coarser level is never kept for less time than a finer one.

    >>> [(r.seconds, r.retention_s // 3600) for r in resolution_ladder(10)]
    [(10, 2), (60, 24), (3600, 336), (86400, 9600)]
    >>> [r.seconds for r in resolution_ladder(30, (60, 90, 3600))]
    [30, 60, 3600]
    >>> resolution_ladder(0)
    Traceback (most recent call last):
    ...
    ValueError: base window must be a positive number of seconds
    """
    if base_seconds <= 0:
        raise ValueError("base window must be a positive number of seconds")
    table = {**DEFAULT_RETENTION_S, **(retention_s or {})}
    widths = [base_seconds]
    for r in sorted(set(rollups_s)):
        if r > widths[-1] and r % widths[-1] == 0:
            widths.append(r)
    out: list[Resolution] = []
    for i, w in enumerate(widths):
        default = table.get(10, 2 * HOUR_S) if i == 0 else 30 * w
        keep = max(table.get(w, default), w, HOUR_S if i == 0 else w)
        if out:
            keep = max(keep, out[-1].retention_s)
        out.append(Resolution(w, keep))
    return tuple(out)


@dataclass(frozen=True, order=True)
class Window:
    """``[start, start + width)`` in ms."""

    start: int
    width: int

    @property
    def end(self) -> int:
        return self.start + self.width


@dataclass(frozen=True)
class Cover:
    """The windows that exactly tile ``[start, end)``: the asked range widened to whole windows."""

    start: int
    end: int
    windows: tuple[Window, ...]


def floor_to(t: int, width: int) -> int:
    """Largest multiple of ``width`` at or below ``t``.

    >>> floor_to(-1, 10), floor_to(25, 10)
    (-10, 20)
    """
    return t - t % width


def ceil_to(t: int, width: int) -> int:
    """Smallest multiple of ``width`` at or above ``t``.

    >>> ceil_to(21, 10), ceil_to(20, 10)
    (30, 20)
    """
    return -floor_to(-t, width)


def check_ladder(widths: Sequence[int]) -> None:
    """Each width must be positive and divide the next.

    >>> check_ladder((10, 60, 90))
    Traceback (most recent call last):
    ...
    ValueError: every resolution must divide the next: (10, 60, 90)
    """
    if not widths or widths[0] <= 0 or any(b <= a or b % a for a, b in zip(widths, widths[1:])):
        raise ValueError(f"every resolution must divide the next: {tuple(widths)}")


def canonical_cover(start: int, end: int, widths: Sequence[int]) -> list[Window]:
    """Fewest aligned windows tiling ``[start, end)`` (both aligned to ``widths[0]``), in time order.

    >>> [(w.start, w.width) for w in canonical_cover(50, 200, (10, 60))]
    [(50, 10), (60, 60), (120, 60), (180, 10), (190, 10)]
    >>> canonical_cover(0, 0, (10,))
    []
    """
    out: list[Window] = []

    def fill(s: int, e: int, level: int) -> None:
        if s >= e:
            return
        w = widths[level]
        if level == 0:
            out.extend(Window(t, w) for t in range(s, e, w))
            return
        a, b = ceil_to(s, w), floor_to(e, w)
        if a >= b:
            fill(s, e, level - 1)
            return
        fill(s, a, level - 1)
        out.extend(Window(t, w) for t in range(a, b, w))
        fill(b, e, level - 1)

    fill(start, end, len(widths) - 1)
    return out


def plan_cover(
    start: int,
    end: int,
    widths: Sequence[int],
    available_from: Sequence[int | None] | None = None,
) -> Cover:
    """Minimal cover of ``[start, end)`` by whole windows of the coarsest resolutions that fit.

    ``widths`` (ms) are finest first, each dividing the next. ``available_from[i]`` is the
    earliest window start still kept at level ``i`` (``None``: no limit; the coarsest level is
    always usable). Where a finer level has expired, the range widens outward to the next
    coarser boundary, so the cover never contains a window that retention has dropped.
    The returned ``Cover.start``/``end`` say exactly what the windows span.

    >>> W = (10, 60, 3600)
    >>> c = plan_cover(55, 7265, W)
    >>> c.start, c.end, len(c.windows), [w.width for w in c.windows if w.width != 60]
    (50, 7270, 63, [10, 3600, 10])

    With the finest level kept only from 7000 on, the left edge widens to a whole 60:

    >>> c = plan_cover(55, 7265, W, available_from=(7000, None, None))
    >>> c.start, c.windows
    (0, (Window(start=0, width=3600), Window(start=3600, width=3600), Window(start=7200, width=60), Window(start=7260, width=10)))
    >>> plan_cover(10, 10, W)
    Traceback (most recent call last):
    ...
    ValueError: start must be before end
    """
    if end <= start:
        raise ValueError("start must be before end")
    check_ladder(widths)
    avail = list(available_from) if available_from is not None else [None] * len(widths)
    if len(avail) != len(widths):
        raise ValueError("available_from needs one entry per resolution")
    avail[-1] = None
    level_of = {w: i for i, w in enumerate(widths)}
    s, e = floor_to(start, widths[0]), ceil_to(end, widths[0])
    while True:
        windows = canonical_cover(s, e, widths)
        bad = [
            w for w in windows if avail[level_of[w.width]] is not None and w.start < avail[level_of[w.width]]
        ]
        if not bad:
            return Cover(s, e, tuple(windows))
        finest = min(bad, key=lambda w: w.width)
        coarser = widths[level_of[finest.width] + 1]
        if finest.start < ceil_to(s, coarser):
            s = floor_to(s, coarser)
        else:
            e = ceil_to(e, coarser)


def parents(window: Window, widths: Sequence[int]) -> list[Window]:
    """The coarser buckets containing ``window`` (one per coarser level), finest first.

    >>> parents(Window(130, 10), (10, 60, 3600))
    [Window(start=120, width=60), Window(start=0, width=3600)]
    """
    return [Window(floor_to(window.start, w), w) for w in widths if w > window.width]


def children(bucket: Window, child_width: int) -> list[Window]:
    """The windows of ``child_width`` that tile ``bucket``.

    >>> [c.start for c in children(Window(60, 60), 10)]
    [60, 70, 80, 90, 100, 110]
    """
    return [Window(t, child_width) for t in range(bucket.start, bucket.end, child_width)]


def steps(start: int, end: int, step: int) -> list[Window]:
    """Step-aligned windows covering ``[start, end)`` (for charts).

    >>> [(w.start, w.end) for w in steps(15, 40, 10)]
    [(10, 20), (20, 30), (30, 40)]
    """
    return [Window(t, step) for t in range(floor_to(start, step), ceil_to(end, step), step)]


def parse_time(value: str | int) -> int:
    """RFC 3339 date-time or integer epoch milliseconds → epoch ms.

    >>> parse_time("1700000000000"), parse_time("2023-11-14T22:13:20Z")
    (1700000000000, 1700000000000)
    >>> parse_time("2023-11-14T23:13:20.5+01:00")
    1700000000500
    >>> parse_time("2023-11-14T22:13:20")
    Traceback (most recent call last):
    ...
    ValueError: time needs a UTC offset ('Z' or ±hh:mm): '2023-11-14T22:13:20'
    >>> parse_time("yesterday")
    Traceback (most recent call last):
    ...
    ValueError: not epoch milliseconds or an RFC 3339 date-time: 'yesterday'
    """
    if isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit() and text.isascii():
            if len(text) > 16:
                raise ValueError(f"time out of range: {value!r}")
            ms = int(text)
        else:
            ms = _parse_rfc3339(text, value)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"time out of range: {value!r}")
    return ms


def _parse_rfc3339(text: str, original: object) -> int:
    if len(text) > 40 or "T" not in text.upper() or not text.isascii():
        raise ValueError(f"not epoch milliseconds or an RFC 3339 date-time: {original!r}")
    iso = text[:-1] + "+00:00" if text[-1] in "zZ" else text
    try:
        dt = datetime.fromisoformat(iso.replace("t", "T"))
    except ValueError:
        raise ValueError(f"not epoch milliseconds or an RFC 3339 date-time: {original!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"time needs a UTC offset ('Z' or ±hh:mm): {original!r}")
    delta = dt.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
