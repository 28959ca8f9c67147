#!/usr/bin/env python3
"""kill -9 of pylog-server under confluent-kafka ShareConsumers, in a loop.

    python tools/share_crashloop.py --cycles 50          # the long tier
    python tools/share_crashloop.py --cycles 3 --json    # what CI runs (tests/server)

One data directory lives through every cycle.  The first cycle creates topic ``jobs``
and produces ``--records`` records once a share group member has joined.  Each cycle
starts the server, starts ``--consumers`` consumer processes (explicit acknowledgement;
each ACCEPTs every record it gets and prints ``A <offset>`` only after commit_sync()
reported that partition without error), SIGKILLs the server at a random moment, then
the consumers.  After the last cycle the server is started once more and the rest is
drained.

Checked:
  * no record whose acceptance was confirmed is delivered again in a later cycle
    (``redelivered_after_ack``);
  * every record is finally accepted (``lost``: neither confirmed nor delivered in the
    drain) — records held at a crash come back;
  * delivery counts never go down for one offset (``count_went_down``).
Output: a short table or one JSON line; exit 1 on any violation.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pylog.testing import PylogServer  # noqa: E402

TOPIC, GROUP = "jobs", "jobs-workers"

CONSUMER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import AcknowledgeType, ShareConsumer
    c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                       "share.acknowledgement.mode": "explicit",
                       "socket.timeout.ms": 3000})
    c.subscribe([sys.argv[3]])
    print("J", flush=True)
    while True:
        msgs = [m for m in c.poll(0.2) if m.error() is None]
        if not msgs:
            continue
        for m in msgs:
            print("D", m.offset(), m.delivery_count(), flush=True)
            time.sleep(float(sys.argv[4]))       # the work
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        try:
            result = c.commit_sync(5)
        except Exception:
            continue
        bad = {tp.partition for tp, err in result.items() if err is not None}
        print("\\n".join(f"A {m.offset()}" for m in msgs if m.partition() not in bad),
              flush=True)
""")


def _create_topic(bootstrap: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1)])[TOPIC].result(30)


def _produce(bootstrap: str, n: int) -> None:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                  "enable.idempotence": True})
    for i in range(n):
        p.produce(TOPIC, value=b"job-%d" % i)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(30):
        raise RuntimeError("produce did not finish")


class _Consumers:
    """Consumer processes and a thread per process reading its lines as they come."""

    def __init__(self, bootstrap: str, n: int, script: Path, work_s: float) -> None:
        self.delivered: list[tuple[int, int]] = []
        self.accepted: set[int] = set()
        self._lock = threading.Lock()
        self.procs = [subprocess.Popen([sys.executable, str(script), bootstrap, GROUP, TOPIC,
                                        str(work_s)],
                                       stdout=subprocess.PIPE, text=True) for _ in range(n)]
        for p in self.procs:
            if p.stdout.readline().strip() != "J":
                raise RuntimeError("a consumer did not start")
        self.threads = [threading.Thread(target=self._read, args=(p,), daemon=True)
                        for p in self.procs]
        for t in self.threads:
            t.start()

    def _read(self, p) -> None:
        for line in p.stdout:
            parts = line.split()
            with self._lock:
                if len(parts) == 3 and parts[0] == "D":
                    self.delivered.append((int(parts[1]), int(parts[2])))
                elif len(parts) == 2 and parts[0] == "A":
                    self.accepted.add(int(parts[1]))

    def kill(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(30)
        for t in self.threads:
            t.join(30)


def run(cycles: int, records: int, consumers: int, seed: int, workdir: Path,
        work_ms: float = 1.0) -> dict:
    rng = random.Random(seed)
    script = workdir / "consumer.py"
    script.write_text(CONSUMER)
    args = ["--group-share-record-lock-duration-ms", "3000",
            "--group-share-delivery-count-limit", "10"]
    srv = PylogServer(workdir / "data", args=args)
    accepted: set[int] = set()
    last_count: dict[int, int] = {}
    report = {"cycles": 0, "records": records, "delivered": 0, "redelivered": 0,
              "redelivered_after_ack": 0, "count_went_down": 0, "lost": 0}

    def note(cs: _Consumers) -> None:
        before = set(accepted)
        for offset, count in cs.delivered:
            report["delivered"] += 1
            report["redelivered_after_ack"] += offset in before
            report["count_went_down"] += count < last_count.get(offset, 0)
            report["redelivered"] += count > 1
            last_count[offset] = max(count, last_count.get(offset, 0))
        accepted.update(cs.accepted)

    for cycle in range(cycles):
        srv.start()
        if cycle == 0:
            _create_topic(srv.bootstrap)
        cs = _Consumers(srv.bootstrap, consumers, script, work_ms / 1000)
        if cycle == 0:
            time.sleep(1.0)                  # members joined: the group starts at 0
            _produce(srv.bootstrap, records)
        time.sleep(rng.uniform(0.3, 2.5))
        srv.kill()
        time.sleep(rng.uniform(0.0, 0.5))
        cs.kill()
        note(cs)
        report["cycles"] += 1
    # Drain: every record not accepted yet must come back.
    srv.start()
    cs = _Consumers(srv.bootstrap, consumers, script, work_ms / 1000)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(accepted | cs.accepted) < records:
        time.sleep(0.2)
    time.sleep(1.0)                          # anything delivered twice shows now
    cs.kill()
    note(cs)
    code = srv.stop()
    report["lost"] = records - len(accepted & set(range(records)))
    report["clean_stop"] = code == 0
    report["ok"] = (report["redelivered_after_ack"] == 0 and report["count_went_down"] == 0
                    and report["lost"] == 0 and code == 0)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--work-ms", type=float, default=1.0, help="per-record work")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="pylog-share-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    report = run(a.cycles, a.records, a.consumers, seed, workdir, a.work_ms)
    report["seed"], report["seconds"] = seed, round(time.monotonic() - t0, 1)
    if a.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:24} {v}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
