"""compose.yaml gives Docker users the same stack as `tributary up` (no engine runs here, so
the file is parsed and checked against the CLI's defaults and the pinned versions)."""

from __future__ import annotations

import re

import yaml

from app.config import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def _published(service: str) -> set[tuple[str, int, int]]:
    out = set()
    for spec in SERVICES[service].get("ports", []):
        host, published, target = spec.split(":")
        out.add((host, int(published), int(target)))
    return out


def test_same_parts_as_the_cli():
    for name in ("kafka", "redis", "flink-jobmanager", "flink-taskmanager", "sketch-job", "serving", "generator"):
        assert name in SERVICES, name


def test_ports_are_the_cli_defaults_on_loopback_only():
    # the defaults themselves, whatever TRIBUTARY_* variables this process has
    s = Settings.model_construct(**{name: f.default for name, f in Settings.model_fields.items()})
    assert _published("kafka") == {("127.0.0.1", s.kafka_port, 9092)}
    assert _published("redis") == {("127.0.0.1", s.redis_port, 6379)}
    assert _published("flink-jobmanager") == {("127.0.0.1", s.flink_rest_port, 8081)}
    assert _published("serving") == {("127.0.0.1", s.serving_port, 8000)}


def test_long_running_services_have_healthchecks_and_dependents_wait_for_them():
    for name in ("kafka", "redis", "flink-jobmanager", "flink-taskmanager", "serving"):
        assert "healthcheck" in SERVICES[name], name
    for name, svc in SERVICES.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, (name, dep)
            expected = "service_completed_successfully" if dep in ("topics",) else "service_healthy"
            assert cond == {"condition": expected}, (name, dep, cond)


def test_environment_names_real_settings():
    fields = set(Settings.model_fields)
    for name, svc in SERVICES.items():
        for key in svc.get("environment") or {}:
            if key.startswith("TRIBUTARY_"):
                assert key.removeprefix("TRIBUTARY_").lower() in fields, (name, key)


def test_images_match_the_pinned_versions():
    pom = (PROJECT_ROOT / "docker" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)<", pom).group(1)
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    pyflink = re.search(r"apache-flink==(\S+)", (PROJECT_ROOT / "requirements-flink.txt").read_text()).group(1)
    assert f"FROM flink:{pyflink}-" in (PROJECT_ROOT / "docker" / "Dockerfile.flink").read_text()
    for name in ("serving", "generator", "topics"):
        assert SERVICES[name]["build"]["dockerfile"] == "docker/Dockerfile"
