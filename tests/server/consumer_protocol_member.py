"""A consumer-protocol (KIP-848) group member as a subprocess, for the tests of
test_consumer_protocol.py: confluent-kafka with ``group.protocol=consumer``.

    python consumer_protocol_member.py BOOTSTRAP GROUP TOPIC ASSIGNOR COMMIT

Prints {"assigned": [...]} on every change of its assignment and
{"record": [partition, offset]} per record; with COMMIT=1 it commits each record
synchronously after printing it.  SIGTERM closes the consumer (leaves the group)."""
from __future__ import annotations

import json
import signal
import sys


def main(bootstrap: str, group: str, topic: str, assignor: str, commit: str) -> None:
    import confluent_kafka as ck
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "fetch.wait.max.ms": 100}
    if assignor != "-":
        conf["group.remote.assignor"] = assignor
    c = ck.Consumer(conf)
    c.subscribe([topic])
    last = None
    while not stop:
        m = c.poll(0.1)
        if m is not None and not m.error():
            print(json.dumps({"record": [m.partition(), m.offset()]}), flush=True)
            if commit == "1":
                c.commit(m, asynchronous=False)
        parts = sorted(tp.partition for tp in c.assignment())
        if parts != last:
            last = parts
            print(json.dumps({"assigned": parts}), flush=True)
    c.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
