"""Dependencies point one way: the pure core (app/, except the app.cli composition root)
imports no service client and nothing from the outer layers."""

from __future__ import annotations

import ast

from app.config import PROJECT_ROOT

FORBIDDEN = {
    "confluent_kafka", "redis", "pyflink", "fastapi", "starlette", "uvicorn", "torch", "deepspeed",
    "adapters", "serving", "flink_jobs", "trainers",
}  # fmt: skip


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_pure_core_imports_no_clients_or_outer_layers():
    offenders = []
    for path in sorted((PROJECT_ROOT / "app").rglob("*.py")):
        if "cli" in path.relative_to(PROJECT_ROOT / "app").parts:
            continue
        bad = sorted(set(_imports(path)) & FORBIDDEN)
        if bad:
            offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {bad}")
    assert not offenders, "pure core imports:\n" + "\n".join(offenders)


def test_adapters_do_not_import_the_outer_layers():
    offenders = []
    for path in sorted((PROJECT_ROOT / "adapters").rglob("*.py")):
        bad = sorted(set(_imports(path)) & {"serving", "flink_jobs", "trainers"})
        if bad:
            offenders.append(f"{path.relative_to(PROJECT_ROOT)}: {bad}")
    assert not offenders, "\n".join(offenders)


def test_modules_stay_readable():
    """About 300 lines a module: past 400 it should be split."""
    long = []
    for pkg in ("app", "adapters", "flink_jobs", "trainers", "serving"):
        for path in (PROJECT_ROOT / pkg).rglob("*.py"):
            n = len(path.read_text().splitlines())
            if n > 400:
                long.append(f"{path.relative_to(PROJECT_ROOT)}: {n} lines")
    assert not long, "\n".join(long)
