"""``pylog``: produce, consume, and manage topics and groups over the text protocol.

    pylog produce orders 0 "hello world"          # prints the offset
    printf 'a\\nb\\n' | pylog produce orders 0      # one record per stdin line
    pylog consume orders 0 --from 0 [--follow] [--group billing]
    pylog topics [list] | topics create orders --partitions 3 | topics delete orders
    pylog topics describe orders
    pylog groups [list] | groups describe billing
    pylog --server host:3000 ...                  # default $PYLOG_SERVER or 127.0.0.1:3000

Records go as PRODUCEB (length-prefixed), so any bytes a line holds arrive
unchanged; stdin lines are sent pipelined (up to ``PIPELINE`` unanswered).
``consume`` writes one value per line; without ``--follow`` it stops at the
log end it saw, with ``--follow`` it polls for more (``--timeout`` ends it after
that many idle seconds).  With ``--group`` it starts at the group's committed
offset (``--from`` overrides) and commits after every batch written.

Exit status: 0 done; 1 the server refused a request (its ``ERR`` line is
printed); 2 usage error; 3 cannot connect or the connection was lost;
130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time

__all__ = ["main", "TextClient", "ServerError"]

DEFAULT_SERVER = "127.0.0.1:3000"
PIPELINE = 512                 # produce requests sent before reading their answers
POLL_S = 0.2                   # --follow: wait between empty polls
CONNECT_TIMEOUT_S = 5.0
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONNECTION, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class ServerError(Exception):
    """The server answered ``ERR <NAME> <message>``."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        parts = line.split(" ", 2)
        self.name = parts[1] if len(parts) > 1 else "UNKNOWN"
        self.text = parts[2] if len(parts) > 2 else ""


class ConnectionLost(Exception):
    """Cannot connect, or the server closed the connection mid-answer."""


class TextClient:
    """A blocking text-protocol client: one socket, answers read in order."""

    def __init__(self, server: str, timeout: float | None = 30.0) -> None:
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"--server must be HOST:PORT, got {server!r}")
        self.address = server
        try:
            self.sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)),
                                                 timeout=CONNECT_TIMEOUT_S)
        except ConnectionRefusedError:
            raise ConnectionLost(f"cannot connect to {server}: connection refused "
                                 f"(is pylog-server running with its text listener? "
                                 f"use --server HOST:PORT)") from None
        except (socket.timeout, OSError) as exc:
            reason = "timed out" if isinstance(exc, socket.timeout) else \
                (exc.strerror or str(exc))
            raise ConnectionLost(f"cannot connect to {server}: {reason}") from None
        self.sock.settimeout(timeout)
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass

    # -- wire -----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionLost(f"connection to {self.address} lost: "
                                 f"{exc.strerror or exc}") from None

    def line(self) -> str:
        try:
            raw = self.rfile.readline()
        except socket.timeout:
            raise ConnectionLost(f"no answer from {self.address}") from None
        except OSError as exc:
            raise ConnectionLost(f"connection to {self.address} lost: "
                                 f"{exc.strerror or exc}") from None
        if not raw.endswith(b"\n"):
            raise ConnectionLost(f"connection closed by {self.address}")
        text = raw[:-1].decode("utf-8", "replace")
        if text.startswith("ERR "):
            raise ServerError(text)
        return text

    def exactly(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if data is None or len(data) != n:
            raise ConnectionLost(f"connection closed by {self.address}")
        return data

    def request(self, command: str) -> str:
        self.send(command.encode() + b"\n")
        return self.line()

    def listing(self, command: str) -> list[str]:
        """Lines of a multi-line answer, up to (not including) its END line."""
        self.send(command.encode() + b"\n")
        rows = []
        while True:
            text = self.line()
            if text.startswith("END"):
                return rows
            rows.append(text)

    # -- commands -------------------------------------------------------------------
    @staticmethod
    def produce_frame(topic: str, partition: int, value: bytes) -> bytes:
        return f"PRODUCEB {topic} {partition} {len(value)}\n".encode() + value

    def produce(self, topic: str, partition: int, value: bytes) -> int:
        self.send(self.produce_frame(topic, partition, value))
        return int(self.line().split()[1])

    def consume(self, topic: str, partition: int, offset, max_records: int = 500):
        """(records [(offset, timestamp, value|None)], next offset, log end offset)."""
        self.send(f"CONSUME {topic} {partition} {offset} {max_records}\n".encode())
        records = []
        while True:
            head = self.line().split()
            if head[0] == "END":
                return records, int(head[1]), int(head[2])
            off, ts, length = int(head[1]), int(head[2]), int(head[3])
            value = self.exactly(max(0, length) + 1)[:-1]
            records.append((off, ts, None if length < 0 else value))


# -- subcommands ---------------------------------------------------------------------
def _produce(client: TextClient, args) -> int:
    if args.message:
        offset = client.produce(args.topic, args.partition, " ".join(args.message).encode())
        print(offset)
        return EXIT_OK
    failures, sent, answered = [], 0, 0
    stdin = sys.stdin.buffer

    def read_answers(upto: int) -> None:
        nonlocal answered
        while answered < upto:
            try:
                print(client.line().split()[1])
            except ServerError as exc:
                failures.append(str(exc))
            answered += 1

    for raw in stdin:
        value = raw[:-1] if raw.endswith(b"\n") else raw
        if value.endswith(b"\r"):
            value = value[:-1]
        client.send(client.produce_frame(args.topic, args.partition, value))
        sent += 1
        if sent - answered >= PIPELINE:
            read_answers(sent - PIPELINE // 2)
    read_answers(sent)
    if failures:
        print(f"pylog: {len(failures)} of {sent} records refused; first: {failures[0]}",
              file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _consume(client: TextClient, args) -> int:
    out = sys.stdout.buffer
    position = args.start
    if args.group and position is None:
        committed = int(client.request(f"OFFSET {args.group} {args.topic} {args.partition}")
                        .split()[1])
        position = committed if committed >= 0 else None
    position = "earliest" if position is None else position
    shown, idle_since = 0, time.monotonic()
    while True:
        want = args.max_batch if args.limit is None else min(args.max_batch, args.limit - shown)
        records, next_offset, end = client.consume(args.topic, args.partition, position, want)
        for offset, _ts, value in records:
            if args.show_offsets:
                out.write(f"{offset}\t".encode())
            out.write((value or b"") + b"\n")
        out.flush()
        shown += len(records)
        if records and args.group:
            client.request(f"COMMIT {args.group} {args.topic} {args.partition} {next_offset}")
        position = next_offset
        if args.limit is not None and shown >= args.limit:
            return EXIT_OK
        if records:
            idle_since = time.monotonic()
            continue
        if not args.follow and next_offset >= end:
            return EXIT_OK
        if args.timeout is not None and time.monotonic() - idle_since >= args.timeout:
            return EXIT_OK
        time.sleep(POLL_S)


def _topics(client: TextClient, args) -> int:
    action = args.action or "list"
    if action == "list":
        for row in client.listing("TOPICS"):
            _, name, partitions = row.split()
            print(f"{name}\t{partitions}")
    elif action == "create":
        n = f" {args.partitions}" if args.partitions is not None else ""
        count = client.request(f"CREATE {_need(args.name, 'topics create')}{n}").split()[1]
        print(f"created topic {args.name} with {count} partition(s)")
    elif action == "delete":
        client.request(f"DELETE {_need(args.name, 'topics delete')}")
        print(f"deleted topic {args.name}")
    else:
        rows = client.listing(f"DESCRIBE {_need(args.name, 'topics describe')}")
        print("partition\tlog_start\tlog_end\tbytes")
        for row in rows:
            print("\t".join(row.split()[1:]))
    return EXIT_OK


def _groups(client: TextClient, args) -> int:
    if (args.action or "list") == "list":
        for row in client.listing("GROUPS"):
            print(row.split(" ", 1)[1])
        return EXIT_OK
    rows = client.listing(f"GROUP {_need(args.name, 'groups describe')}")
    _, state, members = rows[0].split()
    print(f"group {args.name}: {state}, {members} member(s)")
    print("topic\tpartition\tcommitted\tlog_end\tlag")
    for row in rows[1:]:
        print("\t".join(row.split()[1:]))
    return EXIT_OK


class _Usage(Exception):
    pass


def _need(name: str | None, what: str) -> str:
    if not name:
        raise _Usage(f"{what} needs a name")
    return name


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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _partition(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"partition must be an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("partition must be 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylog", description="pylog client over the text protocol "
                                "(exit: 0 ok, 1 refused by the server, 2 usage, "
                                "3 connection failed)")
    p.add_argument("--server", default=os.environ.get("PYLOG_SERVER", DEFAULT_SERVER),
                   help="HOST:PORT of the text listener (env PYLOG_SERVER; "
                        f"default {DEFAULT_SERVER})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pr = sub.add_parser("produce", help="append a message, or one record per stdin line")
    pr.add_argument("topic")
    pr.add_argument("partition", type=_partition)
    pr.add_argument("message", nargs="*", help="the value (words joined by spaces); "
                    "none: read lines from stdin")
    co = sub.add_parser("consume", help="print records, one value per line")
    co.add_argument("topic")
    co.add_argument("partition", type=_partition)
    co.add_argument("--from", dest="start", type=_offset, default=None,
                    help="offset, earliest or latest (default: the group's committed "
                         "offset, else earliest)")
    co.add_argument("--follow", "-f", action="store_true", help="keep polling for new records")
    co.add_argument("--timeout", type=float, default=None,
                    help="with --follow: stop after this many seconds without a record")
    co.add_argument("--group", "-g", help="start at this group's committed offset and "
                    "commit as records are written")
    co.add_argument("--max-records", "-n", dest="limit", type=_positive, default=None,
                    help="stop after this many records")
    co.add_argument("--max-batch", type=_positive, default=500, help=argparse.SUPPRESS)
    co.add_argument("--show-offsets", action="store_true",
                    help="prefix each value with its offset and a tab")
    to = sub.add_parser("topics", help="list, create, delete or describe topics")
    to.add_argument("action", nargs="?", choices=["list", "create", "delete", "describe"])
    to.add_argument("name", nargs="?")
    to.add_argument("--partitions", "-p", type=_positive, default=None,
                    help="create: number of partitions (default: the server's num.partitions)")
    gr = sub.add_parser("groups", help="list groups or describe one (committed offsets, lag)")
    gr.add_argument("action", nargs="?", choices=["list", "describe"])
    gr.add_argument("name", nargs="?")
    return p


_COMMANDS = {"produce": _produce, "consume": _consume, "topics": _topics, "groups": _groups}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)     # `pylog consume ... | head` ends quietly
    try:
        client = TextClient(args.server)
    except ValueError as exc:
        parser.error(str(exc))
    except ConnectionLost as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    try:
        return _COMMANDS[args.command](client, args)
    except _Usage as exc:
        parser.error(str(exc))
    except ServerError as exc:
        print(f"pylog: {exc.name}: {exc.text}", file=sys.stderr)
        return EXIT_REFUSED
    except ConnectionLost as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        client.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
