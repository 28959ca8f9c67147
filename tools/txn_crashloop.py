#!/usr/bin/env python3
"""kill -9 of pylog-server and of a consume-transform-produce app, in a loop.

    python tools/txn_crashloop.py --cycles 50          # the long tier
    python tools/txn_crashloop.py --cycles 3 --json    # what CI runs (tests/server)

One data directory and one port live through every cycle.  The first cycle creates
topics ``in`` and ``out`` (``--partitions`` each) and produces ``--records`` records to
``in`` once, non-transactionally.  The app is a child process: a read_committed
``Consumer`` of ``in`` (group ``txn-app``, static member ``app-0``) and a ``Producer``
with ``transactional.id`` ``txn-app-0``; per transaction it turns up to ``--batch``
input records into one output record each, value ``in:<partition>:<offset>``, sends
its consumer's positions with ``send_offsets_to_transaction`` and commits.  An
abortable error aborts and rewinds to the committed offsets; any other error ends the
process (and the next cycle starts a new one).  Its clients run with
``metadata.recovery.strategy=none``: with re-bootstrap, a restart of the only broker
decommissions it and librdkafka 2.16's ``send_offsets_to_transaction`` then blocks
for ever (confluentinc/librdkafka#5511); a 45 s watchdog ends an app that still hangs.

Each cycle starts whatever is not running, waits a random moment and then SIGKILLs
the server, the app or both (in a random order); a killed server is started again
after a random pause while a surviving app carries on.  Every new app re-uses the
transactional id: its ``init_transactions`` bumps the producer epoch, fencing the
killed instance and aborting the transaction it left open.  After the last cycle
the server is started once more and a fresh app runs until the group's committed
offsets reach the end of ``in``.

Checked, reading ``out`` with read_committed:
  * every input record's output exactly once (``duplicates``, ``missing``), per output
    partition in input-offset order (``out_of_order``);
  * the group's committed offsets equal the end of ``in`` (``offsets_short``).
read_uncommitted also sees the records of aborted transactions: their duplicates are
counted (``uncommitted_duplicates``), not a violation.
Output: a short table ending with the checks that failed, or one JSON line
(``violations``); exit 1 on any.
"""
from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pylog.testing import PylogServer  # noqa: E402

IN, OUT, GROUP = "in", "out", "txn-app"            # APP below spells them too

# argv: bootstrap, partitions, batch, work ms per transaction, "drain" (exit once the
# group is at the end) or "run"
APP = textwrap.dedent("""
    import faulthandler, sys, time
    from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaException, Producer,
                                 TopicPartition)
    bootstrap, parts, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    work_s, mode = float(sys.argv[4]) / 1000, sys.argv[5]
    IN, OUT = "in", "out"
    common = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000,
              "reconnect.backoff.max.ms": 500, "retry.backoff.max.ms": 500,
              "metadata.recovery.strategy": "none"}
    p = Producer({**common, "transactional.id": "txn-app-0", "linger.ms": 2,
                  "transaction.timeout.ms": 10000})
    p.init_transactions(30)               # fences the killed instance, aborts its txn
    c = Consumer({**common, "group.id": "txn-app", "group.instance.id": "app-0",
                  "session.timeout.ms": 6000, "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([IN])
    print("I", flush=True)
    tps = [TopicPartition(IN, i) for i in range(parts)]
    ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]

    def at_end():
        got = c.committed(tps, timeout=10)
        return all(tp.offset == end for tp, end in zip(got, ends))

    def rewind():
        for tp in c.committed(c.assignment(), timeout=10):
            tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            c.seek(tp)

    def transact(msgs):
        # one transaction of msgs' outputs and the positions after them: "C" when
        # committed, "A" when aborted (and rewound); exits on any other error
        p.begin_transaction()
        try:
            for m in msgs:
                p.produce(OUT, value=b"in:%d:%d" % (m.partition(), m.offset()),
                          partition=m.partition())
            time.sleep(work_s)            # the work, inside the open transaction
            p.send_offsets_to_transaction(c.position(c.assignment()),
                                          c.consumer_group_metadata(), 10)
            p.commit_transaction(15)
            return "C"
        except KafkaException as e:
            err = e.args[0]
            if not err.txn_requires_abort():
                print("X", err.name(), flush=True)
                sys.exit(3)
            p.abort_transaction(15)
            rewind()
            return "A"

    while True:
        msgs = [m for m in c.consume(batch, 0.3) if m.error() is None]
        if not msgs:
            if mode == "drain" and at_end():
                print("E", flush=True)
                sys.exit(0)
            continue
        # librdkafka 2.16 can block in send_offsets_to_transaction past its timeout
        # (confluentinc/librdkafka#5511): a watchdog ends such an app (exit 1)
        faulthandler.dump_traceback_later(45, exit=True)
        outcome = transact(msgs)
        faulthandler.cancel_dump_traceback_later()
        print(outcome, len(msgs), flush=True)
""")


def _setup(bootstrap: str, partitions: int, records: int) -> list[int]:
    """Topics ``in`` and ``out``; ``records`` non-transactional records to ``in``,
    round-robin over its partitions.  Returns the end offset of each."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, partitions) for t in (IN, OUT)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for i in range(records):
        while True:
            try:
                p.produce(IN, value=b"rec-%d" % i, partition=i % partitions)
                break
            except BufferError:           # the client's queue is full: let it drain
                p.poll(0.1)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(30):
        raise RuntimeError("produce did not finish")
    return [len(range(i, records, partitions)) for i in range(partitions)]


class _App:
    """One app process and a thread counting what it prints (I: initialised, C n:
    committed n, A n: aborted n, X name: gave up, E: at the end)."""

    def __init__(self, bootstrap: str, partitions: int, batch: int, work_ms: float,
                 script: Path, mode: str = "run") -> None:
        self.counts: Counter = Counter()
        self.finished = threading.Event()
        with open(script.with_suffix(".log"), "ab") as log:      # librdkafka's lines
            self.proc = subprocess.Popen([sys.executable, str(script), bootstrap,
                                          str(partitions), str(batch), str(work_ms), mode],
                                         stdout=subprocess.PIPE, stderr=log, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            kind, _, arg = line.strip().partition(" ")
            self.counts[kind] += 1
            if kind in ("C", "A"):
                self.counts[kind + "_records"] += int(arg)
            elif kind == "X":
                self.counts["X:" + arg] += 1
        self.finished.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> Counter:
        """SIGKILL (if still running); returns the counts, with ``exit <code>`` when
        the app had ended by itself."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        elif self.proc.returncode != 0 or not self.counts["E"]:
            self.counts[f"exit {self.proc.returncode}"] += 1
        self.proc.wait(30)
        self.thread.join(30)
        return self.counts


def read_out(bootstrap: str, partitions: int, isolation: str, expect: int,
             timeout: float = 120.0) -> list[bytes]:
    """Every value of ``out`` under ``isolation``, per partition in offset order
    (partition after partition), read until each reaches the end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{isolation}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "enable.partition.eof": True})
    tps = [TopicPartition(OUT, i, OFFSET_BEGINNING) for i in range(partitions)]
    c.assign(tps)
    values: dict[int, list[bytes]] = {i: [] for i in range(partitions)}
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(eof) < partitions:
        for m in c.consume(1000, 0.5):
            if m.error() is None:
                values[m.partition()].append(m.value())
                eof.discard(m.partition())
            elif m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
    c.close()
    if len(eof) < partitions:
        raise RuntimeError(f"reading {OUT} ({isolation}) did not reach the end")
    return [v for i in range(partitions) for v in values[i]]


def _committed(bootstrap: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(IN, i) for i in range(partitions)], timeout=30)
        return [tp.offset for tp in got]
    finally:
        c.close()


def check(values: list[bytes], ends: list[int]) -> dict:
    """duplicates, missing and out-of-order outputs of ``values`` for inputs ``ends``."""
    ids = [tuple(int(x) for x in v.split(b":")[1:]) for v in values]
    seen = Counter(ids)
    want = {(p, o) for p, end in enumerate(ends) for o in range(end)}
    last: dict[int, int] = {}
    out_of_order = 0
    for p, o in ids:
        out_of_order += o <= last.get(p, -1)
        last[p] = o
    return {"outputs": len(values), "duplicates": sum(n - 1 for n in seen.values()),
            "missing": len(want - seen.keys()), "unexpected": len(seen.keys() - want),
            "out_of_order": out_of_order}


def run(cycles: int, records: int, partitions: int, seed: int, workdir: Path,
        batch: int = 50, work_ms: float = 20.0, verbose: bool = False) -> dict:
    rng = random.Random(seed)
    script = workdir / "app.py"
    script.write_text(APP)
    srv = PylogServer(workdir / "data", args=["--transaction-abort-check-interval-ms", "500"])
    totals: Counter = Counter()
    report = {"cycles": 0, "records": records, "partitions": partitions, "server_kills": 0,
              "app_kills": 0, "app_starts": 0, "cycles_mid_input": 0}
    app: _App | None = None
    ends: list[int] = []

    def new_app(mode: str = "run") -> _App:
        report["app_starts"] += 1
        return _App(srv.bootstrap, partitions, batch, work_ms, script, mode)

    def retire(a: _App) -> None:
        counts = a.kill()
        totals.update(counts)

    for cycle in range(cycles):
        if srv.process is None or srv.process.poll() is not None:
            srv.start()
            srv.requested_port = srv.port          # the app reconnects to the same port
        if cycle == 0:
            ends = _setup(srv.bootstrap, partitions, records)
        if app is not None and not app.alive():
            retire(app)
            app = None
        app = app or new_app()
        time.sleep(rng.uniform(0.5, 3.0))
        victims = rng.choice([["server"], ["app"], ["server", "app"], ["app", "server"]])
        for i, victim in enumerate(victims):
            if i:
                time.sleep(rng.uniform(0.0, 0.5))
            if victim == "server":
                srv.kill()
                report["server_kills"] += 1
            else:
                retire(app)
                app = None
                report["app_kills"] += 1
        if victims == ["server"]:
            time.sleep(rng.uniform(0.0, 1.0))      # the app sees the server gone a while
        report["cycles"] += 1
        done = totals["C_records"] + (app.counts["C_records"] if app else 0)
        report["cycles_mid_input"] += done < records     # input left at this kill
        if verbose:
            print(f"cycle {cycle}: killed {'+'.join(victims)}; committed so far {done}",
                  file=sys.stderr)
    # Drain: the server back, a fresh app until the group's offsets are at the end.
    if srv.process is None or srv.process.poll() is not None:
        srv.start()
    if app is not None:
        retire(app)
        report["app_kills"] += 1
    deadline = time.monotonic() + 180
    finished = False
    while not finished and time.monotonic() < deadline:
        app = new_app("drain")
        finished = app.finished.wait(max(1.0, deadline - time.monotonic())) and \
            app.counts["E"] == 1
        retire(app)
    committed = _committed(srv.bootstrap, partitions)
    report.update(check(read_out(srv.bootstrap, partitions, "read_committed", records), ends))
    unc = check(read_out(srv.bootstrap, partitions, "read_uncommitted", records), ends)
    code = srv.stop()
    # the app's own ends: "exit 3" after an error it gives up on (app_errors names
    # them), "exit 1" from the watchdog or an exception
    report["app_exits"] = {k[5:]: v for k, v in totals.items() if k.startswith("exit ")}
    report["app_errors"] = {k[2:]: v for k, v in totals.items() if k.startswith("X:")}
    report.update(committed_txns=totals["C"], committed_records=totals["C_records"],
                  aborted_by_app=totals["A"], drain_finished=finished,
                  offsets_short=sum(max(0, e - c) for e, c in zip(ends, committed)),
                  uncommitted_outputs=unc["outputs"],
                  uncommitted_duplicates=unc["duplicates"],
                  uncommitted_missing=unc["missing"], clean_stop=code == 0)
    failed = {"drain_finished": not finished, "committed offsets": committed != ends,
              "uncommitted_missing": unc["missing"] > 0, "clean_stop": code != 0,
              **{k: report[k] > 0 for k in ("duplicates", "missing", "unexpected",
                                            "out_of_order")}}
    report["violations"] = [k for k, bad in failed.items() if bad]
    report["ok"] = not report["violations"]
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--records", type=int, default=None,
                    help="input records (default 3,000 per cycle)")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50, help="input records per transaction")
    ap.add_argument("--work-ms", type=float, default=20.0,
                    help="pause inside each transaction (the work)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="a line per cycle on stderr")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    records = a.records if a.records is not None else 3000 * a.cycles
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="pylog-txn-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    report = run(a.cycles, records, a.partitions, seed, workdir, a.batch, a.work_ms,
                 a.verbose)
    report["seed"], report["seconds"] = seed, round(time.monotonic() - t0, 1)
    if a.json:
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    for k, v in report.items():
        if k not in ("ok", "violations"):
            print(f"{k:24} {v}")
    print("violations: " + (", ".join(report["violations"]) or "none") +
          f"  (--seed {seed} replays the kill schedule)")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
