"""``pylog produce``: one message, or one record per stdin line (PRODUCEX, pipelined)."""
from __future__ import annotations

import sys

from .client import (EXIT_OK, EXIT_REFUSED, ServerError, TextClient, Usage, nonnegative,
                     parse_header)

PIPELINE = 512                 # produce requests sent before reading their answers


def add_parser(sub, common) -> None:
    pr = sub.add_parser(
        "produce", parents=[common], help="append a message, or one record per stdin line",
        description="Append the message given, or one record per stdin line. With a "
        "partition (positional or -p) prints each record's offset; without one the "
        "server routes by key as Kafka's default partitioner does (murmur2; null keys "
        "spread round-robin) and prints 'PARTITION<TAB>OFFSET'.")
    pr.add_argument("topic")
    pr.add_argument("words", nargs="*", metavar="[PARTITION] MESSAGE",
                    help="an optional partition number, then the value (words joined by "
                         "spaces); no message: read lines from stdin")
    pr.add_argument("-p", "--partition", type=int, default=None,
                    help="partition; -1 routes by key (also when omitted)")
    pr.add_argument("-k", "--key", help="the key of every record (UTF-8)")
    pr.add_argument("-K", "--key-delimiter", metavar="SEP",
                    help="split each line (or the message) at the first SEP into "
                         "key and value, like kcat -K; a line without SEP has a null key")
    pr.add_argument("-H", "--header", action="append", type=parse_header, default=[],
                    metavar="NAME=VALUE", help="a record header (repeatable)")
    pr.add_argument("--timestamp", type=nonnegative, default=None, metavar="MS",
                    help="record timestamp in ms since the epoch (default: now; topics "
                         "with message.timestamp.type=LogAppendTime use the broker's clock)")
    pr.set_defaults(run=run)


def _target(args) -> tuple[int, list[str]]:
    """(partition or -1, message words) from -p or a leading integer word."""
    words = list(args.words)
    if args.partition is not None:
        if args.partition < -1:
            raise Usage("--partition must be -1 (by key) or 0 or more")
        return args.partition, words
    if words and words[0].isdigit():
        return int(words[0]), words[1:]
    return -1, words


def _split(args, value: bytes) -> tuple[bytes | None, bytes]:
    if args.key_delimiter:
        sep = args.key_delimiter.encode()
        key, found, rest = value.partition(sep)
        return (key, rest) if found else (None, value)
    return (None if args.key is None else args.key.encode()), value


def run(client: TextClient, args) -> int:
    partition, words = _target(args)
    routed = partition < 0

    def frame(value: bytes) -> bytes:
        key, value = _split(args, value)
        return client.produce_frame(args.topic, partition, value, key, args.header,
                                    args.timestamp)

    def show(line: str) -> None:
        p, offset = client.produced(line)
        print(f"{p}\t{offset}" if routed else offset)

    if words:
        client.send(frame(" ".join(words).encode()))
        show(client.line())
        return EXIT_OK
    failures, sent, answered = [], 0, 0

    def read_answers(upto: int) -> None:
        nonlocal answered
        while answered < upto:
            try:
                show(client.line())
            except ServerError as exc:
                failures.append(str(exc))
            answered += 1

    for raw in sys.stdin.buffer:
        value = raw[:-1] if raw.endswith(b"\n") else raw
        if value.endswith(b"\r"):
            value = value[:-1]
        client.send(frame(value))
        sent += 1
        if sent - answered >= PIPELINE:
            read_answers(sent - PIPELINE // 2)
    read_answers(sent)
    sys.stdout.flush()
    if failures:
        print(f"pylog: {len(failures)} of {sent} records refused; first: {failures[0]}",
              file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
