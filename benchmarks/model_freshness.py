"""Model freshness: from the examples that trained a snapshot to that snapshot serving requests.

On a real local stack: Kafka (the test stack on its own ports, ``TRIBUTARY_TEST_PORT_OFFSET``
respected, or ``--running-stack`` for the stack of your ``TRIBUTARY_*`` settings), the online
learner as ``tributary up`` starts it (:func:`adapters.local.stack.learner_part`, a separate
process), and a serving :class:`serving.models.ModelRegistry` (the code ``POST /v1/predict``
reads from) in this process. A producer writes synthetic examples to ``examples.v1`` at a steady
rate; the topic keeps **LogAppendTime**, so every example carries its broker append time.

For every snapshot the registry activates (verified, warmed up, swapped in):

* ``last_example_to_active``: activation time minus the append time of the newest example in
  the snapshot (its header's Kafka offsets: offset - 1 per partition). **Target p99 <= 15 s.**
* ``first_example_to_active``: the same from the *oldest* example not in the previous snapshot:
  the worst case of any example (bounded by the snapshot interval).
* stages: ``learn_and_snapshot`` (newest example appended -> snapshot created by the learner),
  ``kafka_delivery`` (created -> read by serving), ``verify_warmup_swap`` (read -> active).
* baseline, same run: ``models_v1_delivery``, the raw Kafka end-to-end latency of the
  ``models.v1`` records (producer timestamp -> consumed), and ``examples_v1_delivery``
  (the producer's send -> broker append of the examples).

    .venv/bin/python benchmarks/model_freshness.py --snapshots 24 --snapshot-every-s 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

KEY = "freshness-benchmark-key-0123456789"


def now_ms() -> int:
    return int(time.time() * 1000)


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs, dtype=float), q)) if xs else None


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99), "max_ms": max(xs) if xs else None}


class ExampleProducer(threading.Thread):
    """Synthetic examples at ``rate``/s; remembers each one's broker append time by (partition, offset)."""

    def __init__(self, s, topic: str, rate: int) -> None:
        super().__init__(daemon=True, name="example-producer")
        from adapters.kafka_io import producer
        from app.learners.synthetic import synthetic_examples

        self.topic, self.rate = topic, rate
        self.rows = [orjson.dumps(r) for r in synthetic_examples(50_000, seed=11)]
        self.p = producer(s.kafka_bootstrap, **{"linger.ms": 5})
        self.appended: dict[tuple[int, int], int] = {}  # (partition, offset) -> LogAppendTime ms
        self.delivery_ms: list[float] = []
        self.failed = 0
        self.stop = threading.Event()

    def _on_delivery(self, err, msg, sent_ms: int) -> None:
        if err is not None:
            self.failed += 1
            return
        _, ts = msg.timestamp()
        self.appended[(msg.partition(), msg.offset())] = ts
        self.delivery_ms.append(ts - sent_ms)

    def run(self) -> None:
        i, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while i < due:
                v = self.rows[i % len(self.rows)]
                sent = now_ms()
                self.p.produce(self.topic, value=v, key=str(i).encode(),
                               on_delivery=lambda e, m, sent=sent: self._on_delivery(e, m, sent))  # fmt: skip
                i += 1
            self.p.poll(0.005)
        self.p.flush(30)
        self.produced = i


def create_topics(s) -> None:
    from confluent_kafka.admin import NewTopic

    from adapters.kafka_io import admin

    t = s.topics
    specs = [
        NewTopic(t.examples, num_partitions=s.kafka_partitions, replication_factor=1,
                 config={"message.timestamp.type": "LogAppendTime"}),
        NewTopic(t.models, num_partitions=1, replication_factor=1,
                 config={"cleanup.policy": "compact", "max.message.bytes": str(32 * 1024 * 1024)}),
        NewTopic(t.metrics, num_partitions=1, replication_factor=1),
    ]  # fmt: skip
    client = admin(s.kafka_bootstrap)  # keep the handle alive until the futures resolve
    for fut in client.create_topics(specs, operation_timeout=30).values():
        fut.result()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshots", type=int, default=24, help="measure at least this many activations")
    ap.add_argument("--snapshot-every-s", type=float, default=5.0, help="the learner's time trigger (its default)")
    ap.add_argument("--rate", type=int, default=1_000, help="examples per second")
    ap.add_argument("--running-stack", action="store_true", help="use the Kafka of your TRIBUTARY_* settings")
    ap.add_argument("--stop-stack", action="store_true", help="stop the test Kafka afterwards")
    ap.add_argument("--timeout-s", type=float, default=600.0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    from adapters.kafka_io import delete_topics
    from adapters.local import stack
    from adapters.local.parts import KafkaPart
    from app.config import Settings
    from serving.models import ModelRegistry
    from tests.support.stack import test_settings

    prefix = f"bench-fresh-{uuid.uuid4().hex[:6]}."
    overrides = {"topic_prefix": prefix, "model_hmac_key": KEY}
    s = Settings(**overrides) if args.running_stack else test_settings(**overrides)
    kafka = KafkaPart(s)
    started_kafka = not kafka.healthy()
    if not args.running_stack:
        stack.start_part(kafka)
    create_topics(s)
    learner = stack.learner_part(s, model_name="ctr-online", snapshot_every_s=args.snapshot_every_s)
    registry = ModelRegistry(s)  # key from s.model_hmac_key, the learner's too
    prod = ExampleProducer(s, s.topics.examples, args.rate)
    t_start = time.monotonic()
    try:
        registry.start()
        stack.start_part(learner)
        if not registry.caught_up.wait(60):
            raise SystemExit("the registry did not read models.v1 within 60 s")
        prod.start()
        deadline = time.monotonic() + args.timeout_s
        while len(registry.activations) < args.snapshots + 1:  # the first one is discarded (learner start-up)
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(registry.activations)} activations in {args.timeout_s} s")
            if not learner.process.is_running():
                raise SystemExit(f"the learner exited; see {learner.process.log_file}\n{learner.process.log_tail(20)}")
            time.sleep(0.5)
        prod.stop.set()
        prod.join(60)
    finally:
        prod.stop.set()
        learner.process.stop()
        registry.stop()
    wall_s = time.monotonic() - t_start

    acts = [a for a in registry.activations if a["cause"] == "stream"]
    rows, prev_offsets = [], None
    for a in acts:
        offs = {int(p): o for p, o in a["kafka_offsets"].items()}
        last = [prod.appended.get((p, o - 1)) for p, o in offs.items() if o > 0]
        if prev_offsets is not None:
            firsts = [prod.appended.get((p, prev_offsets.get(p, 0))) for p, o in offs.items() if o > prev_offsets.get(p, 0)]
        else:
            firsts = []
        prev_offsets = offs
        last = [x for x in last if x is not None]
        firsts = [x for x in firsts if x is not None]
        if not last:
            continue
        newest = max(last)
        rows.append({
            "version": a["version"],
            "last_example_to_active": a["activated_at"] - newest,
            "first_example_to_active": a["activated_at"] - min(firsts) if firsts else None,
            "learn_and_snapshot": a["created_at"] - newest,
            "kafka_delivery": a["received_at"] - a["message_timestamp"] if a["message_timestamp"] else None,
            "verify_warmup_swap": a["activated_at"] - a["received_at"],
        })  # fmt: skip
    measured = rows[1:]  # the first snapshot also carries the learner's start-up
    col = lambda k: [r[k] for r in measured if r[k] is not None]  # noqa: E731
    result = {
        "benchmark": "model_freshness",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": f"{os.cpu_count()} cores",
        "config": {"snapshot_every_s": args.snapshot_every_s, "rate_examples_per_s": args.rate,
                   "partitions": s.kafka_partitions, "kafka": s.kafka_bootstrap, "snapshots": len(measured)},
        "wall_s": round(wall_s, 1),
        "examples_produced": getattr(prod, "produced", None),
        "produce_failures": prod.failed,
        "rejected_artifacts": dict(registry.rejected),
        "last_example_to_active": summary(col("last_example_to_active")),
        "first_example_to_active": summary(col("first_example_to_active")),
        "stages": {k: summary(col(k)) for k in ("learn_and_snapshot", "kafka_delivery", "verify_warmup_swap")},
        "baseline": {
            "models_v1_delivery": summary(col("kafka_delivery")),
            "examples_v1_delivery": summary(prod.delivery_ms),
        },
        "target": {"last_example_to_active_p99_ms": 15_000},
        "per_snapshot": measured,
    }  # fmt: skip
    p99 = result["last_example_to_active"]["p99_ms"]
    result["target"]["met"] = p99 is not None and p99 <= 15_000 and len(measured) >= 20

    delete_topics(s.kafka_bootstrap, [s.topics.examples, s.topics.models, s.topics.metrics])
    if args.stop_stack and started_kafka and not args.running_stack:
        kafka.process.stop()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_freshness.json").write_text(json.dumps(result, indent=2))
    md = markdown(result)
    (args.out / "model_freshness.md").write_text(md)
    print(json.dumps({k: v for k, v in result.items() if k != "per_snapshot"}, indent=2))
    print()
    print(md)
    return result


def markdown(r: dict) -> str:
    def row(name: str, s: dict) -> str:
        f = lambda x: "–" if x is None else f"{x / 1000:.3f}"  # noqa: E731
        return f"| {name} | {s['n']} | {f(s['p50_ms'])} | {f(s['p99_ms'])} | {f(s['max_ms'])} |"

    c = r["config"]
    lines = [
        f"Model freshness ({r['machine']}; learner snapshot every {c['snapshot_every_s']} s, "
        f"{c['rate_examples_per_s']} examples/s over {c['partitions']} partitions, {c['snapshots']} snapshots)",
        "",
        "| latency (s) | n | p50 | p99 | max |",
        "|---|---|---|---|---|",
        row("**newest example appended → snapshot active in serving**", r["last_example_to_active"]),
        row("oldest new example appended → snapshot active", r["first_example_to_active"]),
        row("  stage: newest example → snapshot created (learner)", r["stages"]["learn_and_snapshot"]),
        row("  stage: snapshot created → read by serving (Kafka)", r["stages"]["kafka_delivery"]),
        row("  stage: read → verified, warmed up, swapped in", r["stages"]["verify_warmup_swap"]),
        row("baseline: models.v1 Kafka end-to-end delivery", r["baseline"]["models_v1_delivery"]),
        row("baseline: examples.v1 produce → broker append", r["baseline"]["examples_v1_delivery"]),
        "",
        f"Target p99 ≤ 15 s (newest example → active): {'met' if r['target']['met'] else 'NOT met'}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
