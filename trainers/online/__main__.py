"""``python -m trainers.online``: run one online learner.

The HMAC key comes from the environment (``TRIBUTARY_MODEL_HMAC_KEY``), never the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

KEY_ENV = "TRIBUTARY_MODEL_HMAC_KEY"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.online", description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", default="ctr-online")
    parser.add_argument("--pipeline", default="logreg", help="app.learners.pipelines name: logreg | fm")
    parser.add_argument("--snapshot-every-n", type=int, default=100_000)
    parser.add_argument("--snapshot-every-s", type=float, default=5.0)
    parser.add_argument("--metrics-every-n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--no-create-topics", action="store_true", help="do not create missing topics")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app.config import Settings
    from trainers.online.service import OnlineLearner

    settings = Settings()
    key = os.environ.get(KEY_ENV, "").encode()
    if len(key) < 16:
        print(f"set {KEY_ENV} to a shared secret of at least 16 bytes", file=sys.stderr)
        return 2
    if not args.no_create_topics:
        from adapters.kafka_io import ensure_topics

        t = settings.topics
        ensure_topics(
            settings.kafka_bootstrap, [t.examples, t.models, t.metrics],
            partitions=settings.kafka_partitions, compacted=t.compacted(),
        )
    learner = OnlineLearner(
        settings, args.model_name, args.pipeline, args.snapshot_every_n, args.snapshot_every_s, key,
        metrics_every_n=args.metrics_every_n, batch_size=args.batch_size,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    learner.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
