"""The seeded event generator: sessions of impressions, delayed clicks and purchases, bots, faults.

One clock drives everything: arrivals are a Poisson process whose rate starts at ``rate`` and
follows the diurnal curve (and bot bursts), and each arrival emits the oldest due follow-up (a click or a
purchase whose delay has elapsed) or else a new impression. So messages come out in
event-time order (except late ones), at ``rate`` messages per second of event time.

>>> g = EventGenerator(seed=7, rate=1000, start_ms=1_700_000_000_000, n_users=2000, n_items=500)
>>> msgs = list(g.events(3000))
>>> len(msgs), msgs[0].kind, msgs[0].key == msgs[0].event.user_id.encode()
(3000, 'valid', True)
>>> [m.value for m in msgs[:50]] == [m.value for m in EventGenerator(g.config).events(50)]
True
>>> g.counts["click"] > 0
True
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import orjson

from app.contracts.events import Event
from app.generator.catalog import CATEGORIES, Catalog, ItemSampler
from app.generator.click_model import BOT_CLICK_PROBABILITY, MAX_POSITION, ClickModel
from app.generator.config import GeneratorConfig
from app.generator.faults import corrupt, late_event_time
from app.generator.population import DEVICES, SEGMENTS, Population
from app.generator.timeline import BurstSchedule, diurnal_factor, hour_of_day

VALID, MALFORMED, LATE = "valid", "malformed", "late"
#: Event time that must pass after the start before any event is sent late.
LATE_WARMUP_MS = 10_000
_CLICK, _PURCHASE = "click", "purchase"
_HOME_DEVICE_SHARE = 0.85  # sessions usually happen on the user's usual device
# P(position k) proportional to 0.8**k: people mostly look at the top results. A lookup table
# of 1000 entries turns one uniform draw into a position without a search.
_POSITION_WEIGHTS = [0.8**k for k in range(1, MAX_POSITION + 1)]
_POSITIONS = [
    k for k, w in enumerate(_POSITION_WEIGHTS, start=1) for _ in range(round(1000 * w / sum(_POSITION_WEIGHTS)))
]
_DWELL_MU, _DWELL_SIGMA = 0.5, 0.8  # log-normal seconds spent on the result list
# Dwell is drawn from a large pre-drawn log-normal sample (with its logs): one uniform per event
# instead of a Gaussian, which is the generator's hottest path.
_DWELL_TABLE_SIZE = 1 << 16
_PAGE_DWELL_MU, _PAGE_DWELL_SIGMA = 3.0, 0.9  # seconds on the item page after a click
_CLOCK_REFRESH_MS = 1000.0  # diurnal factor and hour term are recomputed once per second


class GeneratedMessage:
    """One Kafka message: ``key`` (user id), ``value`` (raw bytes) and what the generator knows of it.

    ``kind`` is ``valid``, ``malformed`` or ``late``; ``reason`` is the rejection the contract must
    give a malformed one; ``at_ms`` is the simulated time it was sent (for pacing); ``p_click`` is the
    hidden click probability of an impression (for measuring how close a model gets to it).
    """

    __slots__ = ("key", "value", "kind", "at_ms", "reason", "fields", "p_click")

    def __init__(self, key, value, kind, at_ms, reason=None, fields=None, p_click=None) -> None:
        self.key: bytes = key
        self.value: bytes = value
        self.kind: str = kind
        self.at_ms: int = at_ms
        self.reason: str | None = reason
        self.fields: dict[str, Any] | None = fields  # the event as sent (Event's fields); None when malformed
        self.p_click: float | None = p_click

    @property
    def event(self) -> Event | None:
        """The event as :func:`~app.contracts.events.parse_event` will read it (built on demand)."""
        return None if self.fields is None else Event(**self.fields)

    def __repr__(self) -> str:
        return f"GeneratedMessage(kind={self.kind!r}, at_ms={self.at_ms}, value={self.value[:60]!r}...)"


class EventGenerator:
    """A deterministic stream for a seed and config; call :meth:`events` repeatedly to continue it."""

    def __init__(self, config: GeneratorConfig | None = None, **overrides: Any) -> None:
        cfg = replace(config or GeneratorConfig(), **overrides)
        if cfg.start_ms is None:
            cfg = replace(cfg, start_ms=int(time.time() * 1000))
        self.config = cfg
        world_seed, sampler_seed, loop_seed = np.random.SeedSequence(cfg.seed).spawn(3)
        world = np.random.default_rng(world_seed)
        self.catalog = Catalog.build(world, cfg.n_items, cfg.zipf_s)
        self.population = Population.build(world, cfg.n_users, cfg.n_bots, cfg.latent_dim)
        self.click_model = ClickModel(
            world, self.catalog, self.population,
            base_logit=cfg.base_logit, latent_weight=cfg.latent_weight, drift_shift=cfg.drift_shift,
        )  # fmt: skip
        # What each segment is shown: popularity tilted by the segment's interests (a recommender).
        exposure = np.exp(0.6 * world.standard_normal((len(SEGMENTS), len(CATEGORIES))))[:, self.catalog.category_index]
        sampler_rng = np.random.default_rng(sampler_seed)
        dwell = np.maximum(np.round(sampler_rng.lognormal(_DWELL_MU, _DWELL_SIGMA, _DWELL_TABLE_SIZE), 3), 0.001)
        self._dwell_table = list(zip(dwell.tolist(), np.log(dwell).tolist()))
        self._samplers = [ItemSampler(self.catalog.popularity * exposure[k], sampler_rng) for k in range(len(SEGMENTS))]
        self._rng = random.Random(int(loop_seed.generate_state(1)[0]))
        self._prefix = cfg.id_prefix_or_default()
        pop, cat = self.population, self.catalog
        self._tables = (cat.item_ids, cat.categories, cat.prices, pop.user_ids, pop.countries, pop.user_keys)
        self._t = float(cfg.start_ms)
        self._index = 0  # messages emitted so far
        self._next_id = 0
        self._pending: list[tuple] = []  # heap of (due_ms, seq, type, user, session, device, item, impression_id)
        self._sessions: list[list | None] = [None] * cfg.concurrent_sessions()
        self._n_sessions = 0
        self._bursts = BurstSchedule(
            self._rng, cfg.start_ms, cfg.bot_burst_every_s if cfg.n_bots else 0.0,
            cfg.bot_burst_duration_s, cfg.bot_burst_intensity,
        )  # fmt: skip
        self._burst_seen = 0
        self._bot: tuple[int, str] | None = None  # (user, session) of the current burst's bot
        self._clock_until = -math.inf
        self._diurnal_at_start = max(0.01, diurnal_factor(cfg.start_ms, cfg.diurnal_amplitude))
        self._diurnal = self._hour_term = 0.0
        self._click_mu = math.log(cfg.click_delay_median_s)
        self._purchase_mu = math.log(cfg.purchase_delay_median_s)
        self._drift_index = cfg.drift_at if cfg.drift_at is not None else math.inf
        self._drift_ms = cfg.drift_at_ms if cfg.drift_at_ms is not None else math.inf
        self.counts = dict.fromkeys(
            (VALID, MALFORMED, LATE, "impression", _CLICK, _PURCHASE, "bot_events", "sessions", "bursts"), 0
        )

    # ------------------------------------------------------------------ the stream

    @property
    def now_ms(self) -> int:
        """The simulated clock: the time of the last message sent."""
        return int(self._t)

    def events(self, n: int | None = None, *, until_ms: int | None = None) -> Iterator[GeneratedMessage]:
        """The next ``n`` messages, or those before event time ``until_ms``; forever if neither."""
        cfg, rng = self.config, self._rng
        rand, log = rng.random, math.log
        limit = math.inf if n is None else n
        until = math.inf if until_ms is None else until_ms
        pending, bursts = self._pending, self._bursts
        ms_per_event = 1000.0 / cfg.rate
        emitted = 0
        while emitted < limit:
            t = self._t
            if t >= self._clock_until:
                self._refresh_clock(t)
            mult = bursts.multiplier(t)
            # Exponential gap by inversion: cheaper than random.expovariate on this hot path.
            t -= log(1.0 - rand()) * ms_per_event / (self._diurnal * mult)
            if t >= until:
                return
            self._t = t
            regime = 1 if (self._index >= self._drift_index or t >= self._drift_ms) else 0
            if pending and pending[0][0] <= t:
                msg = self._follow_up(heapq.heappop(pending), regime)
            elif mult > 1.0 and rand() < bursts.bot_share():
                msg = self._bot_impression()
            else:
                msg = self._impression(regime)
            self._index += 1
            emitted += 1
            yield msg

    # ------------------------------------------------------------------ sources of messages

    def _impression(self, regime: int) -> GeneratedMessage:
        rng = self._rng
        rand = rng.random
        sessions = self._sessions
        slot = int(rand() * len(sessions))
        s = sessions[slot]
        if s is None or s[3] <= 0:
            s = sessions[slot] = self._new_session()
        s[3] -= 1
        session_id, user, device = s[0], s[1], s[2]
        item = self._samplers[self.population.segments[user]].take()
        position = _POSITIONS[int(rand() * len(_POSITIONS))]
        dwell, log_dwell = self._dwell_table[int(rand() * _DWELL_TABLE_SIZE)]
        z = self.click_model.logit(regime, user, item, position, device, log_dwell, self._hour_term)
        p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return self._send("impression", user, session_id, device, item, None,
                          {"position": float(position), "dwell": dwell}, p)  # fmt: skip

    def _bot_impression(self) -> GeneratedMessage:
        rng = self._rng
        if self._bot is None or self._burst_seen != self._bursts.bursts:
            # A new burst: one bot, one long session, scraping the whole catalog evenly.
            self._burst_seen = self._bursts.bursts
            self.counts["bursts"] += 1
            self._bot = (rng.choice(self.population.bot_indices), self._new_id("b"))
        user, session_id = self._bot
        item = rng.randrange(len(self.catalog))
        position = rng.randint(1, MAX_POSITION)
        self.counts["bot_events"] += 1
        return self._send("impression", user, session_id, self.population.devices[user], item, None,
                          {"position": float(position), "dwell": 0.05}, BOT_CLICK_PROBABILITY, bot=True)  # fmt: skip

    def _follow_up(self, entry: tuple, regime: int) -> GeneratedMessage:
        _, _, kind, user, session_id, device, item, impression_id = entry
        rng = self._rng
        if kind == _CLICK:
            features = {"dwell": round(rng.lognormvariate(_PAGE_DWELL_MU, _PAGE_DWELL_SIGMA), 3)}
            p_buy = self.click_model.purchase_probability(regime, user, item)
            return self._send(_CLICK, user, session_id, device, item, impression_id, features, p_buy)
        features = {"quantity": float(1 + int(rng.expovariate(2.0)))}
        return self._send(_PURCHASE, user, session_id, device, item, impression_id, features, 0.0)

    # ------------------------------------------------------------------ common path

    def _send(
        self, event_type: str, user: int, session_id: str, device: int, item: int, impression_id: str | None,
        features: dict[str, float], p_next: float, bot: bool = False,
    ) -> GeneratedMessage:  # fmt: skip
        """Serialize one event, maybe corrupt it or make it late, and schedule what follows it.

        ``p_next`` is the chance of a follow-up: a click after an impression, a purchase after a click.
        """
        cfg, rng, counts = self.config, self._rng, self.counts
        item_ids, categories, prices, user_ids, countries, user_keys = self._tables
        rand = rng.random
        now = int(self._t)
        self._next_id += 1
        event_id = f"{self._prefix}e{self._next_id:x}"
        fields = {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": now,
            "user_id": user_ids[user],
            "session_id": session_id,
            "item_id": item_ids[item],
            "category": categories[item],
            "country": countries[user],
            "device": DEVICES[device],
            "price": prices[item],
        }
        if impression_id is not None:  # absent on impressions, as on the wire
            fields["impression_id"] = impression_id
        fields["features"] = features
        counts[event_type] += 1
        p_click = p_next if event_type == "impression" else None
        if cfg.malformed_rate and rand() < cfg.malformed_rate:
            counts[MALFORMED] += 1
            value, reason = corrupt(fields, rng.choice(cfg.malformed_kinds), rng)
            # A malformed event never reaches the pipeline, so nothing follows from it.
            return GeneratedMessage(user_keys[user], value, MALFORMED, now, reason, None, p_click)
        kind = VALID
        # Late only once the stream is under way: before every partition has carried events the
        # pipeline has no watermark yet, and "late" would not mean late to anyone downstream.
        if cfg.late_rate and now >= cfg.start_ms + 2 * cfg.late_by_ms + LATE_WARMUP_MS and rand() < cfg.late_rate:
            fields["event_time"] = late_event_time(now, cfg.late_by_ms, rng)
            kind = LATE
        counts[kind] += 1
        if p_next > 0.0 and rand() < p_next:
            if event_type != "impression":
                delay_s = min(rng.lognormvariate(self._purchase_mu, cfg.purchase_delay_sigma), cfg.max_purchase_delay_s)
                self._schedule(now + delay_s * 1000.0, _PURCHASE, user, session_id, device, item, impression_id)
            else:
                if bot:  # bots click within a second
                    delay_s = rng.uniform(0.2, 1.0)
                else:
                    delay_s = min(rng.lognormvariate(self._click_mu, cfg.click_delay_sigma), cfg.max_click_delay_s)
                self._schedule(now + delay_s * 1000.0, _CLICK, user, session_id, device, item, event_id)
        return GeneratedMessage(user_keys[user], orjson.dumps(fields), kind, now, None, fields, p_click)

    def _schedule(self, due_ms: float, kind: str, user, session_id, device, item, impression_id) -> None:
        heapq.heappush(self._pending, (due_ms, self._next_id, kind, user, session_id, device, item, impression_id))

    def _new_id(self, tag: str) -> str:
        self._next_id += 1
        return f"{self._prefix}{tag}{self._next_id:x}"

    def _new_session(self) -> list:
        rng = self._rng
        pop = self.population
        user = pop.pick_user(rng.random())
        device = pop.devices[user] if rng.random() < _HOME_DEVICE_SHARE else rng.randrange(len(DEVICES))
        length = 1 + int(rng.expovariate(1.0 / max(1e-9, self.config.mean_session_events - 1)))
        self.counts["sessions"] += 1
        return [self._new_id("s"), user, device, length]

    def _refresh_clock(self, t: float) -> None:
        # Relative to the start, so ``rate`` is what a run gets at first (a benchmark's --rate holds),
        # and the daily curve shows over hours.
        self._diurnal = max(0.01, diurnal_factor(t, self.config.diurnal_amplitude) / self._diurnal_at_start)
        self._hour_term = self.click_model.hour_term(hour_of_day(t))
        self._clock_until = t + _CLOCK_REFRESH_MS

