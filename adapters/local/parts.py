"""The parts of the local stack: how each is configured, started and probed for health."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from adapters.local.process import ManagedProcess, StartError

KAFKA_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: org.apache.kafka.clients
        level: WARN
      - name: kafka.coordinator
        level: WARN
"""


@dataclass
class Part:
    """A named part with its process and how to tell it is healthy."""

    name: str
    process: ManagedProcess
    url: str
    ports: tuple[int, ...]

    def prepare(self) -> None:
        """Write configuration, format storage: whatever must exist before start."""

    def healthy(self) -> bool:  # pragma: no cover - overridden
        return self.process.is_running()


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise StartError("kafka/flink: no `java` on PATH; install OpenJDK 17 (make setup does: apt-get install openjdk-17-jre-headless)")
    return java


class KafkaPart(Part):
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.data_dir = s.var_dir / "kafka" / "data"
        self.conf = s.var_dir / "kafka" / "server.properties"
        jars = s.jars_dir / "kafka"
        argv = [
            "java", f"-Xmx{s.kafka_heap}", f"-Xms{s.kafka_heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={s.var_dir / 'kafka' / 'log4j2.yaml'}",
            "-cp", f"{jars}/*", "kafka.Kafka", str(self.conf),
        ]  # fmt: skip
        proc = ManagedProcess("kafka", argv, s.run_dir, s.log_dir, marker="kafka.Kafka")
        super().__init__("kafka", proc, f"{s.kafka_host}:{s.kafka_port}", (s.kafka_port, s.kafka_controller_port))

    def prepare(self) -> None:
        _java()
        jars = self.s.jars_dir / "kafka"
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise StartError(f"kafka: broker jars missing in {jars}; run `make setup` (mvn -f docker/pom.xml package)")
        s = self.s
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        (self.conf.parent / "log4j2.yaml").write_text(KAFKA_LOG4J)
        self.conf.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={s.kafka_host}:{s.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{s.kafka_host}:{s.kafka_port},CONTROLLER://{s.kafka_host}:{s.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{s.kafka_host}:{s.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    f"num.partitions={s.kafka_partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=4",
                    "group.initial.rebalance.delay.ms=0",
                    # Flink's transactional sink keeps transactions open up to a checkpoint interval
                    # and longer after a failure; the broker must allow at least its timeout.
                    "transaction.max.timeout.ms=900000",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = uuid.uuid4().hex[:22]
            out = subprocess.run(  # noqa: S603
                ["java", "-cp", f"{jars}/*", f"-Dlog4j2.configurationFile={self.conf.parent / 'log4j2.yaml'}",
                 "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.conf), "--standalone"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if out.returncode != 0:
                raise StartError(f"kafka: formatting storage failed: {out.stdout[-500:]}{out.stderr[-500:]}")

    def healthy(self) -> bool:
        if not self.process.is_running():
            return False
        from confluent_kafka.admin import AdminClient

        from adapters.local.process import port_in_use

        if not port_in_use(self.s.kafka_host, self.s.kafka_port):
            return False  # not listening yet: don't let librdkafka log connection refusals
        try:
            AdminClient({"bootstrap.servers": self.s.kafka_bootstrap, "log_level": 0}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False


class RedisPart(Part):
    def __init__(self, s: Settings) -> None:
        self.s = s
        server = shutil.which("redis-server") or "redis-server"
        self.dir = s.var_dir / "redis"
        argv = [
            server, "--port", str(s.redis_port), "--bind", s.redis_host if s.redis_host != "localhost" else "127.0.0.1",
            "--protected-mode", "yes", "--dir", str(self.dir), "--save", "", "--appendonly", "no",
            "--maxmemory", "2gb", "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        proc = ManagedProcess("redis", argv, s.run_dir, s.log_dir, marker="redis-server")
        super().__init__("redis", proc, f"redis://{s.redis_host}:{s.redis_port}", (s.redis_port,))

    def prepare(self) -> None:
        if not shutil.which("redis-server"):
            raise StartError("redis: `redis-server` not found; run `make setup` (apt-get install redis-server)")
        self.dir.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        if not self.process.is_running():
            return False
        import redis

        try:
            return bool(redis.Redis(host=self.s.redis_host, port=self.s.redis_port, socket_timeout=1).ping())
        except Exception:  # noqa: BLE001
            return False


def settings_env(s: Settings) -> dict[str, str]:
    """The settings as TRIBUTARY_* variables, so a child process rebuilds exactly these."""
    out = {}
    for name, value in s.model_dump().items():
        out[f"TRIBUTARY_{name.upper()}"] = str(value)
    return out


class PythonServicePart(Part):
    """Serving, the generator, the online learner: our own Python entry points."""

    def __init__(self, s: Settings, name: str, module_args: list[str], url: str, ports=(), health_url: str | None = None):
        self.s = s
        self.health_url = health_url
        argv = [sys.executable, "-m", *module_args]
        proc = ManagedProcess(name, argv, s.run_dir, s.log_dir, marker=module_args[0], cwd=s.home, env=settings_env(s))
        super().__init__(name, proc, url, tuple(ports))

    def healthy(self) -> bool:
        if not self.process.is_running():
            return False
        if not self.health_url:
            return True
        import httpx

        try:
            return httpx.get(self.health_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


def flink_python(s: Settings) -> Path:
    return s.home / ".venv-flink" / "bin" / "python"


def flink_home(s: Settings) -> Path:
    """The Flink distribution shipped inside the PyFlink wheel of the Flink venv."""
    found = sorted((s.home / ".venv-flink" / "lib").glob("python3*/site-packages/pyflink"))
    if not found:
        raise StartError("flink: the Flink venv (.venv-flink with apache-flink) is missing; run `make setup`")
    return found[0]
