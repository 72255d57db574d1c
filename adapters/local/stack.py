"""The whole local stack, in start order, with health waits and clear failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.config import Settings
from adapters.local.flink import FlinkJobManager, FlinkTaskManager
from adapters.local.parts import KafkaPart, Part, PythonServicePart, RedisPart
from adapters.local.process import StartError, port_in_use

START_TIMEOUT_S = {"kafka": 90, "redis": 20, "flink-jobmanager": 90, "flink-taskmanager": 90, "serving": 60}


@dataclass
class PartStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    url: str
    log: str


def infrastructure(s: Settings) -> list[Part]:
    """Kafka, Redis and Flink: what the tests need before our own code runs."""
    return [KafkaPart(s), RedisPart(s), FlinkJobManager(s), FlinkTaskManager(s)]


def serving_part(s: Settings) -> Part:
    return PythonServicePart(
        s, "serving", ["serving"], s.serving_url, ports=(s.serving_port,), health_url=s.serving_url + "/healthz"
    )


def generator_part(s: Settings, rate: int) -> Part:
    args = ["app.cli.main", "generate", "--rate", str(rate), "--duration", "0"]
    return PythonServicePart(s, "generator", args, f"-> {s.topics.events}")


def learner_part(
    s: Settings,
    *,
    model_name: str = "ctr-online",
    pipeline: str = "logreg",
    snapshot_every_s: float = 5.0,
    snapshot_every_n: int = 100_000,
    metrics_every_n: int = 10_000,
) -> Part:
    """The online learner (``python -m trainers.online``): ``examples.v1`` -> ``models.v1`` + ``metrics.v1``.

    Its settings, the signing key included (``TRIBUTARY_MODEL_HMAC_KEY``, from
    ``s.model_hmac_key``), reach it through the environment, never the command line; without a
    key of at least 16 bytes it exits at once and ``start_part`` reports its log. Healthy = running.
    """
    args = [
        "trainers.online", "--model-name", model_name, "--pipeline", pipeline,
        "--snapshot-every-s", str(snapshot_every_s), "--snapshot-every-n", str(snapshot_every_n),
        "--metrics-every-n", str(metrics_every_n),
    ]  # fmt: skip
    return PythonServicePart(s, "learner", args, f"{s.topics.examples} -> {s.topics.models} ({model_name}, {pipeline})")


def local_secrets(s: Settings) -> Settings:
    """Settings with the model-signing key and admin token filled in for a local stack.

    Unset ones are made once (random, 32 bytes) and kept under var/secrets with mode 0600, so
    the learner, serving and the admin (``cat var/secrets/admin_token``) share them across restarts.
    """
    import secrets

    folder = s.var_dir / "secrets"
    updates = {}
    for field in ("model_hmac_key", "admin_token"):
        if getattr(s, field):
            continue
        path = folder / field
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        updates[field] = path.read_text().strip()
    return s.model_copy(update=updates) if updates else s


def all_parts(s: Settings, *, generator_rate: int | None = None) -> list[Part]:
    parts = [*infrastructure(s), serving_part(s), learner_part(s)]
    if generator_rate:
        parts.append(generator_part(s, generator_rate))
    return parts


def start_part(part: Part, on_wait: Callable[[str], None] = lambda _: None) -> None:
    """Start one part (if not already healthy) and wait until it is; raise StartError otherwise."""
    if part.process.is_running():
        if _wait_healthy(part, timeout=START_TIMEOUT_S.get(part.name, 60)):
            return
        raise StartError(f"{part.name}: running (pid {part.process.pid()}) but not healthy; see {part.process.log_file}")
    for port in part.ports:
        if port_in_use("127.0.0.1", port):
            raise StartError(
                f"{part.name}: port {port} is already taken by another process; free it or set the "
                f"TRIBUTARY_* port variable (log: {part.process.log_file})"
            )
    part.prepare()
    part.process.start()
    on_wait(part.name)
    if not _wait_healthy(part, timeout=START_TIMEOUT_S.get(part.name, 60)):
        tail = part.process.log_tail(15)
        state = "exited" if not part.process.is_running() else "did not become healthy"
        raise StartError(f"{part.name}: {state}; log: {part.process.log_file}\n--- last lines ---\n{tail}")


def _wait_healthy(part: Part, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.healthy():
            return True
        if not part.process.is_running() and part.process.exited_early():
            return False
        time.sleep(0.5)
    return False


def status(parts: list[Part]) -> list[PartStatus]:
    return [
        PartStatus(p.name, p.process.is_running(), p.healthy(), p.process.pid(), p.url, str(p.process.log_file))
        for p in parts
    ]


def stop_all(parts: list[Part]) -> list[str]:
    """Stop in reverse start order; return the names that were running."""
    stopped = []
    for part in reversed(parts):
        if part.process.stop():
            stopped.append(part.name)
    return stopped
