"""Settings for every Tributary process, read from ``TRIBUTARY_*`` environment variables.

Built by each process's ``main()`` (never at import), so tests construct their own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.topics import Topics

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob has a safe local default: services bind to localhost only.

    >>> Settings(kafka_port=19092).kafka_bootstrap
    'localhost:19092'
    >>> Settings(kafka_bootstrap_servers="broker-1:9092,broker-2:9092").kafka_bootstrap
    'broker-1:9092,broker-2:9092'
    """

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_", extra="ignore")

    # Where things live
    home: Path = Field(default=PROJECT_ROOT, description="project root (jars cache, venvs)")
    var_dir: Path = Field(default=PROJECT_ROOT / "var", description="data, logs and pid files")

    # Kafka
    kafka_bootstrap_servers: str = Field(default="", description="external cluster; empty = the local broker")
    kafka_host: str = "localhost"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_partitions: int = 4
    kafka_heap: str = "768m"
    topic_prefix: str = ""

    # Flink
    flink_host: str = "localhost"
    flink_rest_port: int = 8081
    flink_rpc_port: int = 6123
    flink_jobmanager_memory: str = "1024m"
    flink_taskmanager_memory: str = "2560m"
    flink_slots: int = 4
    #: TaskManager JVM options (adapters/local/flink.py says why these: ParallelGC, shallow C2 inlining).
    flink_taskmanager_java_opts: str = "-XX:+UseParallelGC -XX:MaxInlineLevel=9 -XX:InlineSmallCode=1500"
    flink_parallelism: int = 1

    # Redis
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_key_prefix: str = Field(default="trb:", description="namespace of every key in Redis (one per deployment or test)")

    # Serving
    serving_host: str = "127.0.0.1"
    serving_port: int = 8000
    admin_token: str = Field(default="", description="required by admin routes; empty = admin routes disabled")
    max_body_bytes: int = 1_000_000

    # Online learning
    model_hmac_key: str = Field(default="", description="shared key that signs model artifacts; >= 16 bytes")

    # Windows and time
    window_seconds: int = 10
    out_of_orderness_ms: int = 5_000
    # A partition without records for this long stops holding the watermark back. Too short and a
    # partition that is merely slow to be fetched (a busy machine, a backlog after recovery) is
    # declared idle and its events turn late; too long and the last windows close late when
    # traffic stops on some partitions. 30 s was measured safe on 2 loaded cores.
    idle_timeout_ms: int = 30_000
    # > 0: an event arriving after its window fired, but within this, re-emits the window with a
    # higher revision (flink_jobs/late_revisions.py); later events go to late.v1 and are counted.
    # Off by default: it keeps every window's records in join state for lateness + 10 minutes.
    allowed_lateness_ms: int = 0
    attribution_window_ms: int = 30_000

    # Generator defaults
    generator_rate: int = 2_000

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.flink_host}:{self.flink_rest_port}"

    @property
    def serving_url(self) -> str:
        return f"http://{self.serving_host}:{self.serving_port}"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    @property
    def log_dir(self) -> Path:
        return self.var_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.var_dir / "run"

    @property
    def jars_dir(self) -> Path:
        return self.home / ".cache" / "jars"
