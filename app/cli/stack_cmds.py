"""``tributary up | down | status``: the embedded local stack."""

from __future__ import annotations

import time
from typing import Annotated

import typer

SKETCH_JOB = "tributary-sketches"


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(topics)


def topics() -> None:
    """Create Tributary's topics on the configured cluster (idempotent)."""
    from adapters import kafka_io
    from app.config import Settings

    s = Settings()
    created = kafka_io.ensure_topics(s.kafka_bootstrap, s.topics.all(), partitions=s.kafka_partitions, compacted=s.topics.compacted())
    print(f"created: {', '.join(created) or 'none (all exist)'}")


def up(
    generator: Annotated[bool, typer.Option(help="also start the synthetic event generator")] = True,
    rate: Annotated[int, typer.Option(help="generator events per second")] = 0,
) -> None:
    """Start Kafka (KRaft), Redis, Flink, the sketch and label jobs, serving (and the generator); wait until healthy."""
    from rich.console import Console

    from adapters import kafka_io
    from adapters.local import jobs, stack
    from adapters.local.process import StartError
    from app.config import Settings

    console = Console()
    s = stack.local_secrets(Settings())
    t0 = time.monotonic()
    try:
        for part in stack.infrastructure(s):
            with console.status(f"starting {part.name} …"):
                stack.start_part(part)
            console.print(f"[green]✓[/] {part.name:<18} {part.url}")
        with console.status("creating topics …"):
            kafka_io.ensure_topics(
                s.kafka_bootstrap, s.topics.all(), partitions=s.kafka_partitions, compacted=s.topics.compacted()
            )
        console.print(f"[green]✓[/] {'topics':<18} {', '.join(s.topics.all())}")
        with console.status("submitting the Flink sketch job …"):
            jid = jobs.submit(s, "sketch_job", SKETCH_JOB, sketch_job_args(s))
        console.print(f"[green]✓[/] {'flink job':<18} {SKETCH_JOB} ({jid})")
        with console.status("submitting the Flink label job …"):
            jid = jobs.submit_label_job(s)
        console.print(f"[green]✓[/] {'flink job':<18} {jobs.LABEL_JOB} ({jid})")
        with console.status("starting serving …"):
            stack.start_part(stack.serving_part(s))
        console.print(f"[green]✓[/] {'serving':<18} {s.serving_url}  (docs: {s.serving_url}/docs)")
        with console.status("starting the online learner …"):
            learner = stack.learner_part(s)
            stack.start_part(learner)
        console.print(f"[green]✓[/] {'learner':<18} {learner.url}")
        if generator:
            part = stack.generator_part(s, rate or s.generator_rate)
            stack.start_part(part)
            console.print(f"[green]✓[/] {'generator':<18} {part.url}")
    except StartError as exc:
        console.print(f"[red]✗ {exc}[/]")
        raise typer.Exit(1) from None
    console.print(
        f"\n[bold]Tributary is up[/] in {time.monotonic() - t0:.0f} s.\n"
        f"  produce:   kcat -P -b {s.kafka_bootstrap} -t {s.topics.events} FILE.jsonl\n"
        f"  query:     curl '{s.serving_url}/v1/aggregates/distinct?field=user_id'\n"
        f"  dashboard: {s.serving_url}/dashboard    Flink UI: {s.flink_rest_url}\n"
        f"  admin:     token in {s.var_dir / 'secrets' / 'admin_token'}\n"
        f"  stop:      tributary down"
    )


def sketch_job_args(s) -> list[str]:
    t = s.topics
    return [
        "--bootstrap", s.kafka_bootstrap, "--events-topic", t.events, "--dlq-topic", t.dlq,
        "--aggregates-topic", t.aggregates, "--late-topic", t.late, "--group-id", f"{s.topic_prefix}tributary-sketches",
        "--transactional-id-prefix", f"{s.topic_prefix}tributary-sketches",
        "--window-seconds", str(s.window_seconds), "--out-of-orderness-ms", str(s.out_of_orderness_ms),
        "--idle-timeout-ms", str(s.idle_timeout_ms), "--allowed-lateness-ms", str(s.allowed_lateness_ms),
    ]  # fmt: skip


def down() -> None:
    """Stop every process `tributary up` started (by its recorded pid, nothing else)."""
    from rich.console import Console

    from adapters.local import stack
    from app.config import Settings

    s = Settings()
    parts = stack.all_parts(s, generator_rate=1)
    stopped = stack.stop_all(parts)
    Console().print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


def status() -> None:
    """Show each part: running, healthy, pid, URL and log file."""
    from rich.console import Console
    from rich.table import Table

    from adapters.local import jobs, stack
    from app.config import Settings

    s = Settings()
    table = Table("part", "state", "pid", "url", "log")
    any_down = False
    for st in stack.status(stack.all_parts(s, generator_rate=1)):
        state = "[green]healthy[/]" if st.healthy else ("[yellow]unhealthy[/]" if st.running else "[red]stopped[/]")
        any_down |= not st.healthy and st.name != "generator"
        table.add_row(st.name, state, str(st.pid or "-"), st.url, st.log)
    job = jobs.job_state(s, SKETCH_JOB) if stack.infrastructure(s)[2].healthy() else None
    table.add_row("flink job", f"[green]{job}[/]" if job == "RUNNING" else f"[red]{job or 'absent'}[/]", "-", SKETCH_JOB, str(s.log_dir / f"submit-{SKETCH_JOB}.log"))
    label = jobs.job_state(s, jobs.LABEL_JOB) if stack.infrastructure(s)[2].healthy() else None
    table.add_row("flink job", f"[green]{label}[/]" if label == "RUNNING" else f"[red]{label or 'absent'}[/]", "-", jobs.LABEL_JOB, str(s.log_dir / f"submit-{jobs.LABEL_JOB}.log"))
    Console().print(table)
    if any_down or job != "RUNNING" or label != "RUNNING":
        raise typer.Exit(1)
