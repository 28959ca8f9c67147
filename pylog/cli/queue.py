"""``pylog queue``: receive from a share group, settle, stats, dead letters.

Over the text protocol's RECEIVE / ACK / RELEASE / REJECT / QUEUE / DLQ / REQUEUE
(server/text_queue.py).  One process is one member of the share group for as long as
it runs, so the useful form is ``receive --ack`` (print, then acknowledge: at least
once), ``--reject`` (to the dead-letter topic when the group has one) or
``--release``; plain ``receive`` prints the records and leaves the group on exit, so
they become available again at once (their delivery count raised).  ``queue ack``
/ ``release`` / ``reject`` from a separate process are refused by the server:
UNKNOWN_MEMBER_ID (this process never received from the group), as a Kafka broker
refuses an acknowledgement from a member that does not hold the record.
"""
from __future__ import annotations

import json
import sys

from .client import (EXIT_OK, Refused, ServerError, TextClient, Usage, nonnegative,
                     positive)

SETTLE = ("ack", "release", "reject")


def add_parser(sub, common) -> None:
    q = sub.add_parser("queue", parents=[common],
                       help="receive from share groups (queues), settle, dead letters",
                       description="Queues (share groups): receive GROUP TOPIC "
                       "[-n N] [--wait MS] [--ack|--release|--reject]; ack|release|reject "
                       "GROUP TOPIC PARTITION OFFSET[-LAST]; stats GROUP TOPIC; dlq list "
                       "TOPIC; dlq requeue DLQ-TOPIC PARTITION OFFSET | --all. "
                       "Reference: docs/cli.md")
    qs = q.add_subparsers(dest="queue_action", required=True, metavar="ACTION")
    r = qs.add_parser("receive", parents=[common], help="receive records (one member)")
    r.add_argument("group")
    r.add_argument("topic")
    r.add_argument("-n", "--max", type=positive, default=100, help="at most N records")
    r.add_argument("--wait", type=nonnegative, default=0, metavar="MS",
                   help="wait up to MS for a first record")
    r.add_argument("-f", "--format", choices=("value", "json"), default="value")
    how = r.add_mutually_exclusive_group()
    for kind in SETTLE:
        how.add_argument(f"--{kind}", dest="settle", action="store_const", const=kind,
                         help=f"{kind} each record after printing it")
    how.add_argument("--no-ack", dest="settle", action="store_const", const=None,
                     help="print only: the records come back when this process exits")
    r.set_defaults(run=_receive, settle=None)
    for kind in SETTLE:
        s = qs.add_parser(kind, parents=[common],
                          help=f"{kind} a held record (only the member holding it may)")
        s.add_argument("group")
        s.add_argument("topic")
        s.add_argument("partition", type=nonnegative)
        s.add_argument("offset", help="OFFSET or FIRST-LAST")
        s.set_defaults(run=_settle_one, kind=kind)
    st = qs.add_parser("stats", parents=[common], help="per partition counts")
    st.add_argument("group")
    st.add_argument("topic")
    st.set_defaults(run=_stats)
    d = qs.add_parser("dlq", parents=[common], help="list or requeue dead letters")
    d.add_argument("dlq_action", choices=("list", "requeue"))
    d.add_argument("topic", help="the dead-letter topic (list: TOPIC or TOPIC.dlq)")
    d.add_argument("partition", nargs="?", type=nonnegative)
    d.add_argument("offset", nargs="?", type=nonnegative)
    d.add_argument("--all", action="store_true", help="requeue: every dead letter")
    d.add_argument("-n", "--max", type=positive, default=100)
    d.set_defaults(run=_dlq)


def _receive(client: TextClient, args) -> int:
    client.send(f"RECEIVE {args.group} {args.topic} {args.max} {args.wait}\n".encode())
    got = []
    while True:
        head = client.line().split()
        if head[0] == "END":
            break
        lengths = [int(x) for x in head[5:]]
        data = client.exactly(sum(max(0, n) for n in lengths) + 1)[:-1]
        blobs, pos = [], 0
        for n in lengths:
            blobs.append(None if n < 0 else data[pos:pos + n])
            pos += max(0, n)
        got.append((int(head[1]), int(head[2]), int(head[3]), int(head[4]), blobs))
    out = sys.stdout.buffer
    for partition, offset, count, ts, blobs in got:
        if args.format == "json":
            key, value = blobs[0], blobs[1]
            row = {"topic": args.topic, "partition": partition, "offset": offset,
                   "delivery_count": count, "timestamp": ts,
                   "key": None if key is None else key.decode("utf-8", "replace"),
                   "value": None if value is None else value.decode("utf-8", "replace"),
                   "headers": {blobs[i].decode("utf-8", "replace"):
                               None if blobs[i + 1] is None
                               else blobs[i + 1].decode("utf-8", "replace")
                               for i in range(2, len(blobs), 2)}}
            out.write(json.dumps(row).encode() + b"\n")
        else:
            out.write((blobs[1] or b"") + b"\n")
        out.flush()
        if args.settle:
            client.request(f"{args.settle.upper()} {args.group} {args.topic} "
                           f"{partition} {offset}")
    return EXIT_OK


def _settle_one(client: TextClient, args) -> int:
    print(client.request(f"{args.kind.upper()} {args.group} {args.topic} "
                         f"{args.partition} {args.offset}"))
    return EXIT_OK


def _stats(client: TextClient, args) -> int:
    rows = client.listing(f"QUEUE {args.group} {args.topic}")
    parsed = [dict(kv.split("=", 1) for kv in row.split()[2:]) for row in rows]
    keys = list(parsed[0]) if parsed else []
    print("\t".join(["partition", *keys]))
    for row, fields in zip(rows, parsed):
        print("\t".join([row.split()[1], *(fields.get(k, "") for k in keys)]))
    return EXIT_OK


def _dead_letters(client: TextClient, topic: str, partition, offset, n: int) -> list:
    """[(DEAD line fields 1-9, value)]; partition None = every partition."""
    p = -1 if partition is None else partition
    cmd = f"DLQ {topic} {p} {offset or 0} {n}"
    client.send(cmd.encode() + b"\n")
    out = []
    while True:
        head = client.line().split()
        if head[0] == "END":
            return out
        klen, vlen = int(head[10]), int(head[11])
        data = client.exactly(max(0, klen) + max(0, vlen) + 1)[:-1]
        out.append((head[1:10], data[max(0, klen):]))


def _dlq_topic(client: TextClient, topic: str) -> str:
    """TOPIC's dead-letter topic ``TOPIC.dlq`` when that exists, else TOPIC itself
    (a dead-letter topic named by the group's errors.deadletterqueue.topic.name)."""
    if topic.endswith(".dlq"):
        return topic
    names = {row.split()[1] for row in client.listing("TOPICS")}
    return topic + ".dlq" if topic + ".dlq" in names else topic


def _dlq(client: TextClient, args) -> int:
    topic = _dlq_topic(client, args.topic)
    if args.dlq_action == "list":
        print("partition\toffset\tgroup\ttopic\torigin_partition\torigin_offset\t"
              "delivery_count\treason\ttime_ms\tvalue")
        for fields, value in _dead_letters(client, topic, args.partition, args.offset,
                                           args.max):
            print("\t".join(fields + [value.decode("utf-8", "replace")]))
        return EXIT_OK
    if args.all:
        if args.partition is not None:
            raise Usage("dlq requeue --all takes no partition or offset")
        targets = [(int(f[0]), int(f[1])) for f, _ in
                   _dead_letters(client, topic, None, None, 10_000)]
    elif args.partition is None or args.offset is None:
        raise Usage("dlq requeue needs DLQ-TOPIC PARTITION OFFSET, or --all")
    else:
        targets = [(args.partition, args.offset)]
    failed = 0
    for partition, offset in targets:
        try:
            _, t, p, new = client.request(f"REQUEUE {topic} {partition} {offset}").split()
            print(f"{topic} {partition} {offset} -> {t} {p} {new}")
        except ServerError as exc:
            if len(targets) == 1:
                raise
            failed += 1
            print(f"pylog: {topic} {partition} {offset}: {exc.name}: {exc.text}",
                  file=sys.stderr)
    if failed:
        raise Refused(f"{failed} of {len(targets)} dead letters not requeued")
    return EXIT_OK
