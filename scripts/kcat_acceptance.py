"""The foundation's acceptance, by hand, with a client we did not write (kcat).

1. writes N generated events (with malformed ones) to a JSON-lines file, and the exact truth;
2. `kcat -P` sends them to events.v1, then one event 10 minutes later in event time;
3. asks serving (curl-equivalent) for the distinct users over the range and checks the truth
   lies inside the bounds, and counts dlq.v1 (read_committed) against the malformed lines.

    .venv/bin/tributary up --no-generator   # on a fresh stack: no other events in that range
    .venv/bin/python scripts/kcat_acceptance.py --events 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from app.config import Settings
from app.generator import EventGenerator
from app.generator.truth import Truth


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--malformed-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    s = Settings()
    start_ms = (int(time.time() * 1000) // 3_600_000 - 24) * 3_600_000  # yesterday, on the hour
    gen = EventGenerator(seed=args.seed, rate=1000, start_ms=start_ms, malformed_rate=args.malformed_rate, n_bots=0)
    truth = Truth(window_seconds=s.window_seconds)
    work = Path(tempfile.mkdtemp(prefix="tributary-kcat-"))
    events = work / "events.jsonl"
    last = start_ms
    with open(events, "wb") as fh:
        for msg in gen.events(args.events):
            truth.add(msg)
            fh.write(msg.value.replace(b"\n", b" ") + b"\n")
            last = max(last, msg.at_ms)
    closer = {"event_id": "closer", "event_type": "impression", "event_time": last + 600_000, "user_id": "closer",
              "session_id": "closer", "item_id": "closer", "category": "closer", "country": "US", "device": "mobile", "price": 0}  # fmt: skip
    summary = truth.summary()
    print(f"file: {events} ({summary['valid']} valid, {summary['malformed']} malformed)")
    t0 = time.monotonic()
    subprocess.run(["kcat", "-P", "-b", s.kafka_bootstrap, "-t", s.topics.events, "-l", str(events)], check=True)
    subprocess.run(["kcat", "-P", "-b", s.kafka_bootstrap, "-t", s.topics.events], input=orjson.dumps(closer), check=True)
    print(f"kcat produced {args.events + 1} messages in {time.monotonic() - t0:.1f} s")

    params = {"field": "user_id", "start": start_ms, "end": last + 1}
    deadline, body = time.monotonic() + args.timeout, {}
    while time.monotonic() < deadline:
        r = httpx.get(f"{s.serving_url}/v1/aggregates/distinct", params=params, timeout=10)
        body = r.json()
        if r.status_code == 200 and body.get("events") == summary["valid"]:
            break
        time.sleep(2)
    true_users = truth.distinct_users(start_ms, last + 1)
    print(json.dumps({k: body.get(k) for k in ("estimate", "lower_bound", "upper_bound", "confidence", "windows", "events", "freshness_ms")}))
    ok_distinct = body.get("events") == summary["valid"] and body["lower_bound"] <= true_users <= body["upper_bound"]
    print(f"distinct users: true {true_users}, answered {body.get('estimate')} in [{body.get('lower_bound')}, {body.get('upper_bound')}] -> {'OK' if ok_distinct else 'FAIL'}")

    out = subprocess.run(["kcat", "-C", "-b", s.kafka_bootstrap, "-t", s.topics.dlq, "-e", "-q", "-X", "isolation.level=read_committed"],
                         capture_output=True, check=True)  # fmt: skip
    dlq = [line for line in out.stdout.splitlines() if line.strip()]
    ok_dlq = len(dlq) == summary["malformed"]
    print(f"dlq.v1: {len(dlq)} messages, {summary['malformed']} malformed sent -> {'OK' if ok_dlq else 'FAIL'}")
    return 0 if ok_distinct and ok_dlq else 1


if __name__ == "__main__":
    sys.exit(main())
