"""A real Redis for the integration tests.

If ``TRIBUTARY_REDIS_PORT`` is set (CI starts its own services), that server is used as it is
(host from ``TRIBUTARY_REDIS_HOST``, default localhost). Otherwise a throw-away
``redis-server`` is started on port 6390 (never 6379) unless one already answers there, and
stopped at the end if this session started it. Every test gets its own key prefix, deleted after.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

redis = pytest.importorskip("redis")

TEST_PORT = 6390


def _ping(host: str, port: int) -> bool:
    try:
        return bool(redis.Redis(host=host, port=port, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    if os.environ.get("TRIBUTARY_REDIS_PORT"):
        host, port = os.environ.get("TRIBUTARY_REDIS_HOST", "localhost"), int(os.environ["TRIBUTARY_REDIS_PORT"])
        if not _ping(host, port):
            pytest.fail(f"TRIBUTARY_REDIS_PORT={port} is set but no Redis answers at {host}:{port}")
        yield host, port
        return
    host, port = "127.0.0.1", TEST_PORT
    if _ping(host, port):
        yield host, port
        return
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed (apt-get install -y redis-server) and TRIBUTARY_REDIS_PORT unset")
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _ping(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"could not start redis-server on port {port}")
        time.sleep(0.05)
    try:
        yield host, port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_client(redis_address: tuple[str, int]):
    host, port = redis_address
    client = redis.Redis(host=host, port=port, protocol=2)
    yield client
    client.close()


@pytest.fixture
def key_prefix(redis_client) -> Iterator[str]:
    prefix = f"trbtest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        redis_client.unlink(*keys[i : i + 500])
