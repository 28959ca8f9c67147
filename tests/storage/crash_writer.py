"""kill -9 test helper: append forever, printing each acknowledged record.

    python crash_writer.py DATA_DIR FLUSH_POLICY

Each line on stdout is "<partition> <offset> <value hex>", written and flushed only after
the append returned (the ack).  The parent kills this process with SIGKILL at a random
moment, reopens the directory and checks that every printed record is there, identical.
"""
from __future__ import annotations

import os
import sys

import pylog

POLICIES = {"durable": {"flush.messages": 1}, "interval": {"flush.ms": 5},
            "never": {"flush.ms": None}}


def main() -> None:
    data, policy = sys.argv[1], sys.argv[2]
    log = pylog.open(data)
    t = (log.topic("crash") if log.has_topic("crash") else
         log.create_topic("crash", partitions=2,
                          config=dict(POLICIES[policy], **{"segment.bytes": 64 * 1024})))
    out = sys.stdout
    i = 0
    pid = os.getpid()
    while True:
        value = b"%d-%d-" % (pid, i) + os.urandom(1 + i % 200)
        if i % 7 == 0:
            base = t.partition(i % 2).append_batch([value, value + b"!"])
            out.write(f"{i % 2} {base} {value.hex()}\n{i % 2} {base + 1} "
                      f"{(value + b'!').hex()}\n")
        else:
            md = t.append(value, key=b"k%d" % (i % 5))
            out.write(f"{md.partition} {md.offset} {value.hex()}\n")
        out.flush()
        i += 1


if __name__ == "__main__":
    main()
