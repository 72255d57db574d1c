"""``tributary generate | produce | schema``: put events on ``events.v1``, publish the event schema.

Settings are built inside each command and Kafka is imported there too, so importing this
module (``tributary --help``) needs neither a broker nor confluent-kafka.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

_POLL_EVERY = 1_000  # serve delivery reports every this many messages
_MAX_AHEAD_S = 0.005  # sleep only when more than this ahead of schedule (sleep granularity)


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command()(produce)
    app.command()(schema)


def generate(
    rate: Annotated[
        float,
        typer.Option(help="events per second, paced to the wall clock unless --as-fast-as-possible; "
                     "default TRIBUTARY_GENERATOR_RATE"),
    ] = 0,
    duration: Annotated[float, typer.Option(help="seconds of event time to generate; 0 = until stopped")] = 0,
    count: Annotated[int, typer.Option(help="number of messages instead of a duration")] = 0,
    seed: Annotated[int, typer.Option(help="same seed (and --start-ms) = same events")] = 42,
    truth: Annotated[Path | None, typer.Option(help="write the exact ground truth here (JSON + .events.parquet)")] = None,
    malformed_rate: Annotated[float, typer.Option(help="fraction of messages sent malformed")] = 0.0,
    late_rate: Annotated[float, typer.Option(help="fraction of valid events sent late")] = 0.0,
    late_by_ms: Annotated[
        int,
        typer.Option(help="how late a late event is, at least; default: past the window, "
                     "the out-of-orderness and the allowed lateness"),
    ] = 0,
    drift_at: Annotated[int | None, typer.Option(help="message index from which the hidden click model changes")] = None,
    n_users: Annotated[int, typer.Option(help="users in the synthetic world")] = 100_000,
    n_items: Annotated[int, typer.Option(help="items in the catalog")] = 10_000,
    start_ms: Annotated[int | None, typer.Option(help="event time of the first event (ms); default now")] = None,
    bots: Annotated[bool, typer.Option(help="bot bursts (brief traffic spikes from one bot)")] = True,
    diurnal_amplitude: Annotated[float, typer.Option(help="daily traffic swing (0 = flat rate)")] = 0.4,
    topic_prefix: Annotated[str | None, typer.Option(help="topic prefix; default TRIBUTARY_TOPIC_PREFIX")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers; default from settings")] = None,
    as_fast_as_possible: Annotated[bool, typer.Option("--as-fast-as-possible", help="do not pace to the wall clock")] = False,
) -> None:
    """Produce synthetic events (Zipf items, sessions, delayed clicks, bots, drift, faults) to events.v1."""
    from app.config import Settings
    from app.generator import EventGenerator, GeneratorConfig, Truth

    s = Settings()
    if topic_prefix is not None:
        s = s.model_copy(update={"topic_prefix": topic_prefix})
    rate = rate or s.generator_rate
    if not late_by_ms:
        # Late enough that its window has fired and its allowed lateness has passed.
        late_by_ms = s.window_seconds * 1000 + s.out_of_orderness_ms + s.allowed_lateness_ms + 1000
    try:
        config = GeneratorConfig(
            seed=seed, rate=rate, start_ms=start_ms, n_users=n_users, n_items=n_items, drift_at=drift_at,
            malformed_rate=malformed_rate, late_rate=late_rate, late_by_ms=late_by_ms,
            n_bots=20 if bots else 0, diurnal_amplitude=diurnal_amplitude,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    gen = EventGenerator(config)
    until_ms = gen.config.start_ms + int(duration * 1000) if duration and not count else None
    expected = count or (int(rate * duration) if duration else None)
    messages = gen.events(count or None, until_ms=until_ms)
    record = Truth(window_seconds=s.window_seconds) if truth else None
    pacer = _Pacer(gen.config.start_ms) if not as_fast_as_possible else None

    def paced() -> Iterator[tuple[bytes | None, bytes, Any]]:
        for m in messages:
            if pacer:
                pacer.wait_until(m.at_ms)
            if record is not None:
                record.add(m)
            yield m.key, m.value, m

    stats = _produce_all(s, bootstrap or s.kafka_bootstrap, s.topics.events, paced(), expected, "generate")
    stats["malformed"] = gen.counts["malformed"]
    stats["late"] = gen.counts["late"]
    if record is not None:
        stats["truth"] = str(record.save(truth))
    _finish(stats)


def produce(
    file: Annotated[
        Path,
        typer.Argument(help="events as JSON lines (.jsonl/.ndjson/.json), CSV or Parquet", exists=True, dir_okay=False),
    ],
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, csv or parquet; default from the file name")] = None,
    rate: Annotated[float, typer.Option(help="messages per second (wall clock); 0 = as fast as possible")] = 0,
    truth: Annotated[Path | None, typer.Option(help="write the exact ground truth of the file here")] = None,
    topic_prefix: Annotated[str | None, typer.Option(help="topic prefix; default TRIBUTARY_TOPIC_PREFIX")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers; default from settings")] = None,
) -> None:
    """Send a file's events to events.v1 (JSON lines as-is, so malformed lines reach the dead-letter topic)."""
    from app.config import Settings
    from app.contracts.events import Rejection, parse_event
    from app.generator import Truth
    from app.generator.replay import read_messages

    s = Settings()
    if topic_prefix is not None:
        s = s.model_copy(update={"topic_prefix": topic_prefix})
    record = Truth(window_seconds=s.window_seconds) if truth else None
    invalid = 0
    try:
        source = read_messages(file, fmt)
        start = time.monotonic()

        def checked() -> Iterator[tuple[bytes | None, bytes, Any]]:
            nonlocal invalid
            for n, (key, value) in enumerate(source):
                if rate:
                    _sleep_until(start + n / rate)
                # Checked here only to report it: the pipeline decides, and dead-letters them itself.
                if isinstance(parse_event(value), Rejection):
                    invalid += 1
                if record is not None:
                    record.add_raw(value)
                yield key, value, None

        stats = _produce_all(s, bootstrap or s.kafka_bootstrap, s.topics.events, checked(), None, "produce")
    except ValueError as exc:  # unknown format
        raise typer.BadParameter(str(exc)) from None
    stats["invalid (to DLQ)"] = invalid
    if record is not None:
        stats["truth"] = str(record.save(truth))
    _finish(stats)


def schema(
    out: Annotated[Path | None, typer.Option(help="where to write it; default docs/event.schema.json")] = None,
    check: Annotated[bool, typer.Option("--check", help="only check that the file is up to date")] = False,
) -> None:
    """Write the JSON Schema of events.v1, generated from the code (docs/event.schema.json)."""
    from app.contracts import schema as event_schema

    target = out or event_schema.SCHEMA_PATH
    if check:
        if not event_schema.is_fresh(target):
            typer.echo(f"{target} is stale: run tributary schema", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} is up to date")
        return
    typer.echo(f"wrote {event_schema.write(target)}")


# ---------------------------------------------------------------------- shared plumbing


class _Pacer:
    """Sends each message when the wall clock reaches its simulated time, relative to the start."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.t0 = time.monotonic()

    def wait_until(self, at_ms: int) -> None:
        _sleep_until(self.t0 + (at_ms - self.start_ms) / 1000.0)


def _sleep_until(deadline: float) -> None:
    ahead = deadline - time.monotonic()
    if ahead > _MAX_AHEAD_S:
        time.sleep(ahead)


def _produce_all(
    s: Any, bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes, Any]], total: int | None, label: str
) -> dict[str, Any]:
    """Produce everything with delivery reports, a progress bar and a final flush; stop cleanly on a signal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from adapters import kafka_io

    kafka_io.ensure_topics(bootstrap, [topic], partitions=s.kafka_partitions)
    producer = kafka_io.producer(bootstrap)
    tracker = kafka_io.DeliveryTracker()
    stopping = False

    def stop(signum, frame) -> None:  # SIGTERM from `tributary down`, or Ctrl-C: finish cleanly
        nonlocal stopping
        stopping = True

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, stop)
        except ValueError:  # not the main thread (embedded use): no clean stop on signals
            pass
    produced = 0
    t0 = time.monotonic()
    columns = [TextColumn(f"{label} → {topic}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(label, total=total)
            for key, value, _ in messages:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, on_delivery=tracker)
                        break
                    except BufferError:  # the local queue is full: let librdkafka send some first
                        producer.poll(0.05)
                produced += 1
                if produced % _POLL_EVERY == 0:
                    producer.poll(0)
                    progress.update(task, completed=produced)
                if stopping:
                    break
            progress.update(task, completed=produced)
            remaining = producer.flush(60.0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    elapsed = time.monotonic() - t0
    return {
        "topic": topic,
        "produced": produced,
        "delivered": tracker.delivered,
        "failed": tracker.failed + remaining,  # still queued after the flush timeout = not delivered
        "last_error": tracker.last_error,
        "seconds": round(elapsed, 2),
        "rate (msg/s)": round(produced / elapsed) if elapsed > 0 else None,
    }


def _finish(stats: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="summary", show_header=False)
    for k, v in stats.items():
        if v is not None:
            table.add_row(k, str(v))
    Console().print(table)
    if stats["failed"] or stats["delivered"] != stats["produced"]:
        raise typer.Exit(1)
