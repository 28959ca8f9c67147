"""kill -9 test helper: produce TOTAL records to "orders" and consume them from a queue.

    python share_worker.py DATA_DIR TOTAL

A producer thread appends until the topic holds TOTAL records (resuming after a restart);
the main thread receives from share group "workers" and acks each message.  Lines on
stdout, each batch flushed: "R <partition> <offset> <delivery count>" once a message is
received, "A <partition> <offset>" only after its ack() returned.  The parent kills this
process with SIGKILL at a random moment and checks the lines against the reopened state.
"""
from __future__ import annotations

import sys
import threading
import time

import pylog


def produce(t, total: int) -> None:
    parts = t.partitions
    while True:
        have = sum(p.log_end_offset for p in parts)
        if have >= total:
            return
        n = min(100, total - have)
        p = parts[(have // 100) % len(parts)]
        p.append_batch([b"v%d" % (have + i) for i in range(n)])


def main() -> None:
    data, total = sys.argv[1], int(sys.argv[2])
    log = pylog.open(data)
    t = log.topic("orders") if log.has_topic("orders") else log.create_topic("orders", 2)
    q = log.queue("workers", "orders", **{"share.auto.offset.reset": "earliest"})
    threading.Thread(target=produce, args=(t, total), daemon=True).start()
    out = sys.stdout
    while True:
        msgs = q.receive(max_records=50, wait_ms=200)
        out.write("".join(f"R {m.partition} {m.offset} {m.delivery_count}\n" for m in msgs))
        out.flush()
        time.sleep(0.005)        # "work": most kills land while records are held
        done = []
        for m in msgs:
            m.ack()
            done.append(f"A {m.partition} {m.offset}\n")
        out.write("".join(done))
        out.flush()


if __name__ == "__main__":
    main()
