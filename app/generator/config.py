"""Every knob of the synthetic generator, with defaults that give a realistic shop.

>>> c = GeneratorConfig(seed=1, rate=1000, start_ms=0)
>>> c.concurrent_sessions()
7500
>>> c.id_prefix_or_default()
'1-0-'
>>> GeneratorConfig(malformed_rate=1.5)
Traceback (most recent call last):
...
ValueError: malformed_rate must be in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

from app.generator.faults import MALFORMED_KINDS


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    rate: float = 2_000.0  # events per second of event time at start_ms; the diurnal curve scales it from there
    start_ms: int | None = None  # event time of the first event; None = now
    # World
    n_users: int = 100_000
    n_items: int = 10_000
    n_bots: int = 20
    zipf_s: float = 1.1  # item popularity exponent
    latent_dim: int = 8
    # Sessions
    mean_session_events: float = 8.0
    session_seconds: float = 60.0  # typical event-time length of a session: sets how many run at once
    # Traffic shape
    diurnal_amplitude: float = 0.4  # traffic swings between 1 - a and 1 + a times the daily mean
    bot_burst_every_s: float = 900.0  # mean gap between bot bursts; 0 = no bots
    bot_burst_duration_s: float = 30.0
    bot_burst_intensity: float = 0.5  # a burst adds this fraction of the rate, all from one bot
    # Clicks and purchases (delays are log-normal: median, sigma of the log, cap)
    click_delay_median_s: float = 4.0
    click_delay_sigma: float = 1.0
    max_click_delay_s: float = 600.0
    purchase_delay_median_s: float = 60.0
    purchase_delay_sigma: float = 1.0
    max_purchase_delay_s: float = 1_200.0
    # The hidden click model
    base_logit: float = -2.9
    latent_weight: float = 2.5  # weight of the user x item taste match: the deep model's edge
    drift_at: int | None = None  # message index from which the second regime applies
    drift_at_ms: int | None = None  # or event time (ms) from which it applies
    drift_shift: float = 0.4  # change of the base logit at the drift point (tastes flip there too)
    # Faults
    malformed_rate: float = 0.0  # fraction of messages replaced by a malformed one
    malformed_kinds: tuple[str, ...] = MALFORMED_KINDS
    late_rate: float = 0.0  # fraction of valid events sent late
    late_by_ms: int = 30_000  # a late event's time is more than this before the clock
    id_prefix: str | None = None  # event/session id prefix; None = "<seed>-<start_ms hex>-"

    def __post_init__(self) -> None:
        for name in ("malformed_rate", "late_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.n_users < 1 or self.n_items < 1:
            raise ValueError("n_users and n_items must be >= 1")
        if self.mean_session_events < 1:
            raise ValueError("mean_session_events must be >= 1")
        if self.late_by_ms < 0:
            raise ValueError("late_by_ms must be >= 0")
        unknown = set(self.malformed_kinds) - set(MALFORMED_KINDS)
        if unknown or not self.malformed_kinds:
            raise ValueError(f"malformed_kinds must be a non-empty subset of {MALFORMED_KINDS}")

    def concurrent_sessions(self) -> int:
        """Sessions open at once, so that one lasts about ``session_seconds`` of event time.

        Capped at a quarter of the users: a small world cannot have everyone online at once.
        """
        wanted = self.rate * self.session_seconds / self.mean_session_events
        return int(max(1, min(wanted, max(1, self.n_users // 4))))

    def id_prefix_or_default(self) -> str:
        # Ids differ between runs with different start times, so two runs into one topic do not
        # collide in downstream de-duplication; the same seed and start give the same ids.
        if self.id_prefix is not None:
            return self.id_prefix
        return f"{self.seed:x}-{self.start_ms or 0:x}-"
