"""``pylog consume``: print records of one partition or all, in three formats."""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time

from .client import (EXIT_OK, TextClient, Usage, nonnegative, parse_time, partition_arg,
                     positive)

POLL_S = 0.2                   # --follow: wait between empty polls
FORMATS = ("value", "key:value", "json")


def _offset(text: str):
    if text in ("earliest", "latest"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an offset: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("offsets are 0 or more (or earliest/latest)")
    return value


def add_parser(sub, common) -> None:
    co = sub.add_parser(
        "consume", parents=[common], help="print records of a partition, or of all",
        description="Print records up to the log end seen (or keep polling with "
        "--follow). Without PARTITION every partition is read, each in offset order. "
        "Formats: value (default; raw bytes, one per line), key:value (raw bytes, a null "
        "key as nothing), json (one object per line: topic, partition, offset, "
        "timestamp, key, value, headers; a value that is not UTF-8 appears as "
        '{"base64": "..."}, a null as null).')
    co.add_argument("topic")
    co.add_argument("partition", type=partition_arg, nargs="?", default=None)
    where = co.add_mutually_exclusive_group()
    where.add_argument("--from", dest="start", type=_offset, default=None,
                       help="offset, earliest or latest (default: the group's committed "
                            "offset, else earliest); across all partitions an offset is "
                            "kept within each partition's range")
    where.add_argument("--from-time", type=parse_time, default=None, metavar="MS|ISO8601",
                       help="start at the first record with a timestamp at or after this "
                            "(ms since the epoch, or ISO 8601; no zone: UTC)")
    where.add_argument("--last", type=nonnegative, default=None, metavar="N",
                       help="start N records before the log end (per partition)")
    co.add_argument("-f", "--format", choices=FORMATS, default="value",
                    help="output format (default: value)")
    co.add_argument("--follow", "-F", action="store_true", help="keep polling for new records")
    co.add_argument("--timeout", type=float, default=None,
                    help="with --follow: stop after this many seconds without a record")
    co.add_argument("--group", "-g", help="start at this group's committed offset and "
                    "commit as records are written")
    co.add_argument("--max-records", "-n", dest="limit", type=positive, default=None,
                    help="stop after this many records")
    co.add_argument("--max-batch", type=positive, default=500, help=argparse.SUPPRESS)
    co.add_argument("--show-offsets", action="store_true",
                    help="value format: prefix each value with its offset and a tab "
                         "(all partitions: partition, tab, offset, tab)")
    co.set_defaults(run=run)


def _text(blob: bytes | None):
    if blob is None:
        return None
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(blob).decode("ascii")}


def _writer(args, out):
    many = args.partition is None

    def write(r) -> None:
        if args.format == "json":
            row = {"topic": args.topic, "partition": r.partition, "offset": r.offset,
                   "timestamp": r.timestamp, "key": _text(r.key), "value": _text(r.value),
                   "headers": [[name, _text(v)] for name, v in r.headers]}
            out.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
            return
        if args.format == "key:value":
            out.write((r.key or b"") + b":" + (r.value or b"") + b"\n")
            return
        if args.show_offsets:
            out.write((f"{r.partition}\t" if many else "").encode() + f"{r.offset}\t".encode())
        out.write((r.value or b"") + b"\n")
    return write


def _starts(client: TextClient, args) -> dict[int, object]:
    """Where each partition's reading starts."""
    if args.partition is not None:
        parts = [(args.partition, None, None)]
        if args.last is not None or args.start not in (None, "earliest", "latest"):
            parts = [row[:3] for row in client.partitions(args.topic)
                     if row[0] == args.partition] or parts
    else:
        parts = [row[:3] for row in client.partitions(args.topic)]
    starts = {}
    for p, log_start, log_end in parts:
        if args.from_time is not None:
            starts[p] = client.time_offset(args.topic, p, args.from_time)
        elif args.last is not None and log_end is not None:
            starts[p] = max(log_start, log_end - args.last)
        elif isinstance(args.start, int) and args.partition is None:
            starts[p] = min(max(args.start, log_start), log_end)
        elif args.start is not None:
            starts[p] = args.start
        elif args.group:
            committed = client.committed(args.group, args.topic, p)
            starts[p] = committed if committed >= 0 else "earliest"
        else:
            starts[p] = "earliest"
    return starts


def run(client: TextClient, args) -> int:
    if args.format != "value" and args.show_offsets:
        raise Usage("--show-offsets is for the value format (json lines carry the offset)")
    out = sys.stdout.buffer
    write = _writer(args, out)
    positions = _starts(client, args)
    done: set[int] = set()
    shown, idle_since = 0, time.monotonic()
    while True:
        got_any = False
        for p in sorted(positions):
            if p in done:
                continue
            want = args.max_batch if args.limit is None else \
                min(args.max_batch, args.limit - shown)
            records, next_offset, end = client.consume(args.topic, p, positions[p], want)
            for r in records:
                write(r)
            out.flush()
            shown += len(records)
            if records and args.group:
                client.request(f"COMMIT {args.group} {args.topic} {p} {next_offset}")
            positions[p] = next_offset
            if args.limit is not None and shown >= args.limit:
                return EXIT_OK
            got_any = got_any or bool(records)
            if not records and not args.follow and next_offset >= end:
                done.add(p)
        if len(done) == len(positions):
            return EXIT_OK
        if got_any:
            idle_since = time.monotonic()
            continue
        if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
            return EXIT_OK
        time.sleep(POLL_S)
