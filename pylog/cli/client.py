"""The CLI's text-protocol client (docs/text-protocol.md) and shared helpers."""
from __future__ import annotations

import argparse
import datetime as _dt
import socket
import ssl

__all__ = ["TextClient", "ServerError", "ConnectionLost", "Usage", "Refused", "Record",
           "DEFAULT_SERVER", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_CONNECTION",
           "EXIT_INTERRUPTED", "parse_time", "parse_config", "parse_header", "nonnegative",
           "positive", "partition_arg"]

DEFAULT_SERVER = "127.0.0.1:3000"
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


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


class Refused(Exception):
    """The request cannot be done, found by the CLI itself (exit 1, message on stderr)."""


class Record:
    """One record as CONSUMEX returns it."""

    __slots__ = ("partition", "offset", "timestamp", "key", "value", "headers")

    def __init__(self, partition, offset, timestamp, key, value, headers) -> None:
        self.partition, self.offset, self.timestamp = partition, offset, timestamp
        self.key, self.value, self.headers = key, value, headers


class TextClient:
    """A blocking text-protocol client: one socket, answers read in order."""

    def __init__(self, server: str, timeout: float | None = 30.0, *, tls=None,
                 user: str | None = None, password: str | None = None) -> None:
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
        if tls is not None:                  # an ssl.SSLContext (credentials.py)
            try:
                self.sock = tls.wrap_socket(self.sock, server_hostname=host.strip("[]")
                                            or "127.0.0.1")
            except (ssl.SSLError, OSError) as exc:
                self.sock.close()
                raise ConnectionLost(f"TLS to {server} failed: {exc}") from None
        self.sock.settimeout(timeout)
        self.rfile = self.sock.makefile("rb")
        if user is not None:
            self.send(f"AUTH {user} {password}\n".encode())
            self.line()                      # OK User:...; ERR raises ServerError

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
    def produce_frame(topic: str, partition: int, value: bytes | None, key: bytes | None = None,
                      headers=(), timestamp: int | None = None) -> bytes:
        """A PRODUCEX request; partition -1 = routed by key on the server."""
        fields, blobs = [], []
        for blob in (key, value):
            fields.append(-1 if blob is None else len(blob))
            blobs.append(blob or b"")
        for name, hvalue in headers:
            fields += [len(name), -1 if hvalue is None else len(hvalue)]
            blobs += [name, hvalue or b""]
        ts = "now" if timestamp is None else str(timestamp)
        head = f"PRODUCEX {topic} {partition} {ts} {' '.join(map(str, fields))}\n"
        return head.encode() + b"".join(blobs)

    @staticmethod
    def produced(line: str) -> tuple[int, int]:
        _, partition, offset = line.split()
        return int(partition), int(offset)

    def consume(self, topic: str, partition: int, offset, max_records: int = 500):
        """(records [Record], next offset, log end offset) via CONSUMEX."""
        self.send(f"CONSUMEX {topic} {partition} {offset} {max_records}\n".encode())
        records = []
        while True:
            head = self.line().split()
            if head[0] == "END":
                return records, int(head[1]), int(head[2])
            lengths = [int(x) for x in head[3:]]
            data = self.exactly(sum(max(0, n) for n in lengths) + 1)[:-1]
            blobs, pos = [], 0
            for n in lengths:
                blobs.append(None if n < 0 else data[pos:pos + n])
                pos += max(0, n)
            headers = [(blobs[i].decode("utf-8", "replace"), blobs[i + 1])
                       for i in range(2, len(blobs), 2)]
            records.append(Record(partition, int(head[1]), int(head[2]), blobs[0], blobs[1],
                                  headers))

    def partitions(self, topic: str) -> list[tuple[int, int, int, int]]:
        """(partition, log start, log end, bytes) per partition (DESCRIBE)."""
        return [tuple(int(x) for x in row.split()[1:5])
                for row in self.listing(f"DESCRIBE {topic}")]

    def time_offset(self, topic: str, partition: int, ts_ms: int) -> int:
        return int(self.request(f"TIMEOFFSET {topic} {partition} {ts_ms}").split()[1])

    def committed(self, group: str, topic: str, partition: int) -> int:
        return int(self.request(f"OFFSET {group} {topic} {partition}").split()[1])

    def group_state(self, group: str) -> tuple[str, int, list[tuple[str, int, int, int, int]]]:
        """(state, members, [(topic, partition, committed, log end, lag)]) from GROUP."""
        rows = self.listing(f"GROUP {group}")
        _, state, members = rows[0].split()
        committed = []
        for row in rows[1:]:
            _, topic, *nums = row.split()
            committed.append((topic, *(int(n) for n in nums)))
        return state, int(members), committed


# -- argument types --------------------------------------------------------------------
def parse_time(text: str) -> int:
    """Milliseconds since the epoch, or ISO 8601 (no zone given: UTC) → ms."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (milliseconds since the epoch, or ISO 8601 such as "
            f"2026-12-07T09:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (when - epoch) // _dt.timedelta(milliseconds=1)      # exact, no float


def parse_config(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name or " " in text:
        raise argparse.ArgumentTypeError(f"--config must be NAME=VALUE (no spaces), got {text!r}")
    return name, value


def parse_header(text: str) -> tuple[bytes, bytes]:
    name, eq, value = text.partition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"--header must be NAME=VALUE, got {text!r}")
    return name.encode(), value.encode()


def nonnegative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def positive(text: str) -> int:
    value = nonnegative(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def partition_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"partition must be an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("partition must be 0 or more")
    return value
