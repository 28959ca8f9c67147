"""Transactions (issue 16): what a transaction of 100 records costs against the same
records produced idempotently, through pylog-server and through the embedded API.

    python -m bench.bench_transactions                     # 200,000 × 100 B, 3 rounds
    python -m bench.bench_transactions --records 5000 --rounds 1 --json   # CI-sized

Rows (each run on a fresh one-partition topic, records of ``--size`` bytes):

    server, idempotent          confluent-kafka, enable.idempotence, linger.ms=5,
                                produce() in a loop and one flush() at the end
    server, idempotent, flush/100   the same with a flush() after every 100 records:
                                the transactional row's waits without its protocol
    server, transactional       transactional.id, begin / 100 × produce / commit
                                (AddPartitionsToTxn, Produce, EndTxn, the markers)
    embedded, append_batch      ``partition.append_batch`` of 100
    embedded, transaction       ``with log.transaction(id) as tx: tx.append_batch`` of 100

The rows run round-robin (the order rotates each round); a figure is the median of the
rounds and a ratio the median of the per-round ratios (transactional ÷ its plain row),
which cancels most of a shared machine's drift.  ``--out`` writes the Markdown table
(default bench/results/transactions.md) with the command and a machine line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pylog
from bench import report
from bench.clients_kafka import create_topic
from pylog.testing import PylogServer

PER_TXN = 100
_PRODUCER = {"linger.ms": 5, "compression.type": "none",
             "queue.buffering.max.messages": 1_000_000}


def _value(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def _producer(bootstrap: str, **extra):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": bootstrap, **_PRODUCER, **extra})


def server_idempotent(bootstrap: str, records: int, size: int, flush_every: int = 0) -> float:
    """records/s of an idempotent producer; ``flush_every``: flush() after so many."""
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    p = _producer(bootstrap, **{"enable.idempotence": True})
    v = _value(size)
    p.produce(topic, v, partition=0)          # warm-up (not timed): metadata, producer id
    p.flush(30)
    t0 = time.perf_counter()
    for i in range(1, records + 1):
        p.produce(topic, v, partition=0)
        if flush_every and i % flush_every == 0:
            p.flush(30)
        elif i % 10_000 == 0:
            p.poll(0)
    if p.flush(60):
        raise RuntimeError("idempotent produce did not finish")
    return records / (time.perf_counter() - t0)


def server_transactional(bootstrap: str, records: int, size: int) -> float:
    """records/s of a transactional producer committing every PER_TXN records."""
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    p = _producer(bootstrap, **{"transactional.id": f"bench-{topic}"})
    p.init_transactions(30)
    v = _value(size)
    p.begin_transaction()                     # warm-up (not timed): metadata, coordinator
    p.produce(topic, v, partition=0)
    p.commit_transaction(30)
    t0 = time.perf_counter()
    for start in range(0, records, PER_TXN):
        p.begin_transaction()
        for _ in range(min(PER_TXN, records - start)):
            p.produce(topic, v, partition=0)
        p.commit_transaction(30)
    return records / (time.perf_counter() - t0)


def embedded_plain(log, records: int, size: int) -> float:
    part = log.create_topic(f"plain-{uuid.uuid4().hex[:8]}").partition(0)
    values = [_value(size)] * PER_TXN
    t0 = time.perf_counter()
    for start in range(0, records, PER_TXN):
        part.append_batch(values[:records - start])
    return records / (time.perf_counter() - t0)


def embedded_transactional(log, records: int, size: int) -> float:
    topic = f"etxn-{uuid.uuid4().hex[:8]}"
    log.create_topic(topic)
    values = [_value(size)] * PER_TXN
    t0 = time.perf_counter()
    for start in range(0, records, PER_TXN):
        with log.transaction(f"bench-{topic}") as tx:
            tx.append_batch(topic, values[:records - start], partition=0)
    return records / (time.perf_counter() - t0)


ROWS = [  # (name, the plain rows it is paired with)
    ("server, idempotent", ()),
    ("server, idempotent, flush/100", ()),
    ("server, transactional, 100/txn", ("server, idempotent", "server, idempotent, flush/100")),
    ("embedded, append_batch(100)", ()),
    ("embedded, transaction of append_batch(100)", ("embedded, append_batch(100)",)),
]


def measure(records: int, size: int, rounds: int, work: Path) -> dict:
    """{row name: [records/s per round]}."""
    srv = PylogServer(work / "server").start()
    log = pylog.open(work / "embedded")
    runs = {
        ROWS[0][0]: lambda: server_idempotent(srv.bootstrap, records, size),
        ROWS[1][0]: lambda: server_idempotent(srv.bootstrap, records, size, PER_TXN),
        ROWS[2][0]: lambda: server_transactional(srv.bootstrap, records, size),
        ROWS[3][0]: lambda: embedded_plain(log, records, size),
        ROWS[4][0]: lambda: embedded_transactional(log, records, size),
    }
    names = list(runs)
    rates: dict[str, list[float]] = {n: [] for n in names}
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                rates[name].append(runs[name]())
    finally:
        log.close()
        if srv.stop() != 0:
            print(srv.log_text()[-2000:], file=sys.stderr)
    return rates


def summarize(rates: dict[str, list[float]]) -> list[dict]:
    rows = []
    for name, paired in ROWS:
        row = {"name": name, "records_per_s": statistics.median(rates[name]), "ratios": {
            plain: statistics.median(a / b for a, b in zip(rates[name], rates[plain]))
            for plain in paired}}
        rows.append(row)
    return rows


def markdown(rows: list[dict], command: str, records: int, size: int, rounds: int,
             meta: dict) -> str:
    mc = meta["machine"]
    lines = [f"Measured {meta['date']} with `{command}` ({records:,} records of {size} B "
             f"per row, rounds: {rounds}, medians; commit {meta['git_commit']}) on "
             f"{mc['cpu']}, {mc['cores']} cores, Linux {mc['kernel']}, Python "
             f"{mc['python']}, data on {mc['data_fs']} (load average "
             f"{mc['load_avg'][0]:.1f}).", "",
             "| row | records/s | transactional ÷ plain |", "|---|--:|--:|"]
    for r in rows:
        ratio = "; ".join(f"{v:.2f} (÷ {k})" for k, v in r["ratios"].items())
        lines.append(f"| {r['name']} | {r['records_per_s']:,.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                    "transactions.md", help="the Markdown table ('-': none)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-txn-") as d:
        rows = summarize(measure(a.records, a.size, a.rounds, Path(d)))
        meta = report.meta("full", a.rounds, None, time.monotonic() - t0, Path(d) / "x", {},
                           {})
    if a.json:
        print(json.dumps({"records": a.records, "size": a.size, "rounds": a.rounds,
                          "rows": rows}))
    else:
        for r in rows:
            ratio = "".join(f"  {v:.2f}× of {k}" for k, v in r["ratios"].items())
            print(f"{r['name']:45} {r['records_per_s']:>12,.0f} rec/s{ratio}")
    if str(a.out) != "-":
        command = "python -m bench.bench_transactions" + "".join(
            f" --{k} {v}" for k, v, default in (("records", a.records, 200_000),
                                                  ("size", a.size, 100),
                                                  ("rounds", a.rounds, 3)) if v != default)
        a.out.write_text(markdown(rows, command, a.records, a.size, a.rounds, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
