"""Fixtures for integration and end-to-end tests: the real Kafka, Flink and Redis.

Unit tests use none of these. The services start once per session, on test ports
(tests/support/stack.py), the first time a test asks for them, and stop at the end.
"""

from __future__ import annotations

import os

import pytest

from tests.support import stack as support


@pytest.fixture(scope="session")
def infra():
    s = support.test_settings()
    support.start_infrastructure(s)
    # Fixtures written against "an existing Redis" (tests/integration/conftest.py) use this one.
    os.environ["TRIBUTARY_REDIS_PORT"] = str(s.redis_port)
    yield s
    if os.environ.get("TRIBUTARY_TEST_KEEP_STACK") != "1":
        support.stop_infrastructure(s)


@pytest.fixture
def topics(infra, request):
    """A fresh set of topics (and Settings pointing at them) for one test."""
    from adapters import kafka_io

    prefix = support.unique_prefix(request.node.name)
    s = support.test_settings(topic_prefix=prefix)
    kafka_io.ensure_topics(s.kafka_bootstrap, s.topics.all(), partitions=4, compacted=s.topics.compacted())
    yield s
    kafka_io.delete_topics(s.kafka_bootstrap, s.topics.all())


@pytest.fixture
def sketch_job(topics):
    """The Flink sketch job running against this test's topics; cancelled afterwards."""
    from adapters.local import jobs
    from app.cli.stack_cmds import sketch_job_args

    name = f"sketches-{topics.topic_prefix.rstrip('.')}"
    jobs.submit(topics, "sketch_job", name, sketch_job_args(topics))
    support.wait_for(lambda: jobs.tasks_running(topics, name), timeout=180, what=f"every task of {name} running")
    yield name
    jobs.cancel(topics, name)
