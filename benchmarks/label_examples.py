"""The label join of ``flink_jobs/label_job.py`` as a pure function, for benchmarks and tests,
and the generator's hidden probability of each label.

Same semantics as the Flink job (``flink_jobs/label_sql.py``), on events given in arrival order:

* an event already behind the watermark when it arrives is dropped (counted as
  ``behind_watermark``); here the watermark is the largest event time seen so far minus
  ``out_of_orderness_ms``, one for the whole stream (Flink's is per source partition and
  periodic, so the two agree on streams that are in order up to the bound, as the generator's
  are without ``late_rate``);
* duplicates of an ``event_id`` are dropped, keeping the earliest in event time;
* one example per impression: ``label`` = 1 iff a click or purchase with
  ``impression_id`` = the impression's ``event_id`` has ``t <= answer time <= t + window``;
  ``example_time`` = the first such answer's time, else ``t + window``;
* the example carries the impression's fields (``features`` included), ``v`` = 1, no ``context``,
  exactly as the job writes it to ``examples.v1``;
* examples come out ordered by ``example_time`` (ties: impression time, then ``event_id``), the
  order in which a label becomes known.

>>> ev = lambda i, typ, t, imp=None: {"event_id": i, "event_type": typ, "event_time": t, "user_id": "u",
...     "session_id": "s", "item_id": "x", "category": "c", "country": "DE", "device": "mobile", "price": 1.0,
...     "features": {}, **({"impression_id": imp} if imp else {})}
>>> rows = label_examples([ev("a", "impression", 0), ev("b", "impression", 1_000),
...                        ev("c", "click", 5_000, "b"), ev("d", "click", 40_000, "a")])
>>> [(r["event_id"], r["label"], r["example_time"]) for r in rows]
[('b', 1, 5000), ('a', 0, 30000)]
>>> sorted(rows[0])[:4], rows[0]["v"]
(['category', 'country', 'device', 'event_id'], 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["IMPRESSION_FIELDS", "label_examples", "label_probabilities"]

#: The impression's fields an example carries (``examples_sink`` of flink_jobs/label_sql.py).
IMPRESSION_FIELDS = (
    "event_id", "event_time", "user_id", "session_id", "item_id", "category", "country", "device", "price",
)  # fmt: skip
_ANSWERS = frozenset({"click", "purchase"})


def label_examples(
    events: Iterable[Mapping[str, Any]],
    attribution_window_ms: int = 30_000,
    out_of_orderness_ms: int | None = 5_000,
    stats: dict | None = None,
) -> list[dict]:
    """Labelled examples (dicts in the ``examples.v1`` shape) from events in arrival order.

    ``out_of_orderness_ms=None`` keeps every event (no watermark). ``stats``, if given, receives
    counts: ``events``, ``behind_watermark``, ``duplicates``, ``impressions``, ``positives``,
    ``answers_unmatched`` (clicks/purchases that labelled nothing).
    """
    w = attribution_window_ms
    seen: dict[str, Mapping[str, Any]] = {}  # event_id -> the copy kept (earliest event time)
    behind = duplicates = n = 0
    max_t = None
    for e in events:
        n += 1
        t = e["event_time"]
        if out_of_orderness_ms is not None:
            if max_t is not None and t < max_t - out_of_orderness_ms:
                behind += 1
                continue
            if max_t is None or t > max_t:
                max_t = t
        kept = seen.get(e["event_id"])
        if kept is not None:
            duplicates += 1
            if t < kept["event_time"]:
                seen[e["event_id"]] = e
            continue
        seen[e["event_id"]] = e
    impressions = {k: e for k, e in seen.items() if e["event_type"] == "impression"}
    first_answer: dict[str, int] = {}
    unmatched = 0
    for e in seen.values():
        if e["event_type"] not in _ANSWERS:
            continue
        imp = impressions.get(e.get("impression_id"))  # type: ignore[arg-type]
        t = e["event_time"]
        if imp is None or not imp["event_time"] <= t <= imp["event_time"] + w:
            unmatched += 1
            continue
        iid = imp["event_id"]
        if iid not in first_answer or t < first_answer[iid]:
            first_answer[iid] = t
    out = []
    for iid, imp in impressions.items():
        row = {f: imp[f] for f in IMPRESSION_FIELDS}
        answer = first_answer.get(iid)
        row["label"] = 0 if answer is None else 1
        row["example_time"] = imp["event_time"] + w if answer is None else answer
        row["features"] = dict(imp.get("features") or {})
        row["v"] = 1
        out.append(row)
    out.sort(key=lambda r: (r["example_time"], r["event_time"], r["event_id"]))
    if stats is not None:
        stats.update(
            events=n, behind_watermark=behind, duplicates=duplicates, impressions=len(out),
            positives=len(first_answer), answers_unmatched=unmatched,
        )  # fmt: skip
    return out


def label_probabilities(generator: Any, messages: Iterable[Any], attribution_window_ms: int = 30_000) -> dict[str, float]:
    """The generator's hidden chance that each impression gets ``label`` = 1 from the label job.

    ``p_click`` (the hidden click model) times the chance that the click comes within the window:
    a human's click delay is log-normal (``click_delay_median_s``, ``click_delay_sigma``, capped at
    ``max_click_delay_s``); a bot clicks within a second. (The generator emits a click at the first
    arrival after its due time, a few ms at usual rates: ignored.) Keys: impression ``event_id``.
    """
    cfg = generator.config
    w_s = attribution_window_ms / 1000.0
    if w_s >= cfg.max_click_delay_s:
        human = 1.0
    elif w_s <= 0:
        human = 0.0
    else:
        z = (math.log(w_s) - math.log(cfg.click_delay_median_s)) / cfg.click_delay_sigma
        human = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pop = generator.population
    bots = {pop.user_ids[i] for i in pop.bot_indices}
    bot = 1.0 if w_s >= 1.0 else 0.0
    out = {}
    for m in messages:
        f = m.fields
        if f is not None and f["event_type"] == "impression" and m.p_click is not None:
            out[f["event_id"]] = m.p_click * (bot if f["user_id"] in bots else human)
    return out
