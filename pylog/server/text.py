"""The text protocol: a line-oriented listener you can type at with ``nc``.

Default ``127.0.0.1:3000``.  One command per line (``\\n``, an optional ``\\r``
before it is dropped), answered in order; a client may pipeline any number of
commands without waiting.  Command names are case-insensitive; arguments are
separated by single spaces.  docs/text-protocol.md is the reference; in short:

    PRODUCE <topic> <partition> <message...>   -> OK <offset>     (message = rest of line)
    PRODUCEB <topic> <partition> <nbytes>\\n<nbytes bytes>  -> OK <offset>   (binary-safe)
    CONSUME <topic> <partition> [<offset>|earliest|latest [<max>]]
        -> RECORD <offset> <timestamp> <length>\\n<length bytes>\\n ... END <next offset> <log end>
    TOPICS [internal]           -> TOPIC <name> <partitions> ... END <count>  (__* only if asked)
    CREATE <topic> [<partitions>] [<config>=<value>...] -> OK <partitions>
    DELETE <topic> -> OK
    DESCRIBE <topic>            -> PARTITION <p> <log start> <log end> <bytes> ... END <count>
    COMMIT <group> <topic> <partition> <offset> -> OK
    OFFSET <group> <topic> <partition> -> OK <offset>   (-1: none committed)
    GROUPS                      -> GROUP <id> ... END <count>
    GROUP <id>                  -> STATE <kafka group state> <members>,
                                   COMMITTED <topic> <p> <offset> <log end> <lag> ... END <count>
    PING -> PONG      HELP -> lines, END      QUIT -> BYE, then the server closes
    PRODUCEX, CONSUMEX (keys, headers, timestamps), TIMEOFFSET, CONFIGS, ALTER,
    PARTITIONS, MEMBERS, DELETEGROUP: text_admin.py
    RECEIVE, ACK, RELEASE, REJECT, QUEUE, DLQ, REQUEUE (queues): text_queue.py
    any error                   -> ERR <KAFKA_ERROR_NAME> <message>

Error handling.  A bad command is answered with one ``ERR`` line and the
connection goes on; nothing is written.  Three cases close the connection after
the ``ERR`` line, because the server can no longer tell where the next command
starts: a line longer than ``max_line`` (1 MiB) without a newline, a PRODUCEB
whose length is missing or not a number, and a PRODUCEB length above
``DISCARD_LIMIT`` (100 MiB, Kafka's socket.request.max.bytes).  A PRODUCEB
length above ``max_payload`` (1 MiB) but within DISCARD_LIMIT is read and thrown
away in 64 KiB chunks, answered ``ERR MESSAGE_TOO_LARGE``, and the connection
goes on.  Memory per connection is bounded by about twice ``max_line`` (the
StreamReader stops reading the socket at that point) plus one payload.

COMMIT and OFFSET use the group coordinator's committed offsets (``log.groups``,
durable in ``__consumer_offsets``), the ones Kafka consumers of the same group
id see.  COMMIT is a non-member commit: as in Kafka, it is refused
(``ERR ILLEGAL_GENERATION``) while the group has active Kafka members.

What runs where: everything on the event-loop thread, one task per connection.
PRODUCE appends with ``append_raw(wait=False)`` (a memcpy into the mmap) and,
when the topic's flush policy needs a barrier, awaits ``durable_future`` so
the loop never blocks on fsync: ``OK`` means acknowledged as a Kafka acks=all
produce would be.
"""
from __future__ import annotations

import asyncio
import logging

from pylog.config import MAX_PARTITIONS
from pylog.errors import (InvalidGroupIdError, InvalidPartitionsError, InvalidRequestError,
                          OffsetOutOfRangeError, PylogError, RecordTooLargeError,
                          RequestTimedOutError, UnknownTopicError)
from pylog.records import encode_batch

from .kafka.context import validate_topic_name
from .listener import Listener, sweep_deadlines
from .metrics import Metrics
from .text_admin import EXTENDED, HELP_EXTENDED, parse_configs, record_head
from .text_auth import TextAuth, auth_command
from .text_auth import check as text_auth_check
from .text_queue import HELP_QUEUE, QUEUE_COMMANDS, leave_queues

__all__ = ["TextServer", "TextConnection", "MAX_LINE", "MAX_PAYLOAD", "DISCARD_LIMIT"]

log = logging.getLogger("pylog.server.text")

MAX_LINE = 1 << 20              # longest command line (1 MiB)
MAX_PAYLOAD = 1 << 20           # largest PRODUCEB payload (the topic's max.message.bytes too)
DISCARD_LIMIT = 104_857_600     # PRODUCEB lengths up to this are skipped, not fatal
DEFAULT_CONSUME = 100           # records per CONSUME when <max> is not given
MAX_CONSUME = 10_000
CONSUME_MAX_BYTES = 1 << 20     # per CONSUME answer; at least one record is always sent
MAX_GROUP_ID = 255
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1      # Kafka's partition and offset fields

HELP = [
    "PRODUCE <topic> <partition> <message...>",
    "PRODUCEB <topic> <partition> <nbytes>  (then exactly nbytes bytes)",
    "CONSUME <topic> <partition> [<offset>|earliest|latest [<max>]]",
    "TOPICS [internal]", "CREATE <topic> [<partitions>] [<config>=<value>...]",
    "DELETE <topic>", "DESCRIBE <topic>",
    "COMMIT <group> <topic> <partition> <offset>", "OFFSET <group> <topic> <partition>",
    "GROUPS", "GROUP <group>", "PING", "HELP", "QUIT", *HELP_EXTENDED, *HELP_QUEUE,
    "AUTH <user> <password>  (on a SASL_* text listener, before anything else)",
]


class _Fatal(Exception):
    """An error after which the byte stream cannot be resynchronised: ERR, then close."""

    def __init__(self, error: PylogError) -> None:
        super().__init__(str(error))
        self.error = error


def _err_line(exc: PylogError) -> bytes:
    text = " ".join(str(exc).split())       # one line, whatever the message held
    return f"ERR {exc.name} {text}\n".encode("utf-8", "replace")


def _int(token: str, what: str, low: int | None = 0, high: int | None = None) -> int:
    try:
        value = int(token, 10)
    except ValueError:
        raise InvalidRequestError(f"{what} must be an integer, got {_shown(token)}") from None
    if low is not None and value < low:
        raise InvalidRequestError(f"{what} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise InvalidRequestError(f"{what} must be at most {high}, got {value}")
    return value


def _shown(token: str) -> str:
    return repr(token if len(token) <= 40 else token[:40] + "...")


def _tokens(raw: bytes) -> list[str]:
    try:
        return raw.decode("utf-8").split()
    except UnicodeDecodeError:
        raise InvalidRequestError("command arguments must be UTF-8 text; "
                                  "use PRODUCEB for binary payloads") from None


def _arity(args: list, low: int, high: int, usage: str) -> None:
    if not low <= len(args) <= high:
        raise InvalidRequestError(f"wrong number of arguments; usage: {usage}")


class TextServer:
    """The text-protocol listener: accepts connections, runs one task each."""

    kind = "text"

    def __init__(self, broker, host: str = "127.0.0.1", port: int = 3000, *, offsets,
                 max_line: int = MAX_LINE, max_payload: int = MAX_PAYLOAD,
                 idle_s: float = 600.0, request_timeout_s: float = 30.0,
                 cap=None, security_protocol: str = "PLAINTEXT") -> None:
        self.broker = broker
        self.security_protocol = security_protocol   # text_auth.py: PLAINTEXT ... SASL_SSL
        self.offsets = offsets          # CommittedOffsets (metrics.py)
        self.metrics: Metrics = broker.metrics
        self.host, self.port = host, port
        self.max_line, self.max_payload = max_line, max_payload
        self.idle_s = idle_s                        # between commands
        self.request_timeout_s = request_timeout_s  # from a command's first byte to its end
        self.cap = cap                              # max.connections (listener.ConnectionCap)
        self.stopping = False
        self.connections: set[TextConnection] = set()
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, sock=None) -> None:
        loop = asyncio.get_running_loop()

        def stream():                   # what asyncio.start_server builds per connection
            reader = asyncio.StreamReader(limit=self.max_line, loop=loop)
            return asyncio.StreamReaderProtocol(reader, self._accept, loop=loop)

        limit = self.cap.limit if self.cap is not None else 0
        refusal = (f"ERR TOO_MANY_CONNECTIONS the server has {limit} connections open "
                   f"(max.connections); try again later\n").encode()
        tls = getattr(self.broker, "security", None)
        ssl_ctx = tls.tls.context if self.security_protocol in ("SSL", "SASL_SSL") and \
            tls is not None and tls.tls is not None else None
        self._listener = Listener("text", self.host, self.port, stream, cap=self.cap,
                                  refusal=refusal, ssl=ssl_ctx)
        await self._listener.start(sock)
        self.port = self._listener.port
        self._sweeper = asyncio.ensure_future(self._sweep())
        log.info("text listener on %s", self.address)

    async def _sweep(self) -> None:
        """Cut off connections whose command is not complete request_timeout_s after
        its first byte (a half line, a PRODUCEB payload still arriving)."""
        await sweep_deadlines(lambda: self.connections, self.request_timeout_s,
                              lambda conn, _now: conn.cut_off(self.request_timeout_s))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = TextConnection(self, reader, writer)
        conn.task = asyncio.current_task()
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Shutdown cancelled it (run() closed the socket).  Not re-raised: asyncio's
            # stream callback would log a cancelled connection task as an error.
            pass
        finally:
            self.connections.discard(conn)

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting; let commands in progress finish (bounded); close the rest."""
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            # Cancel every connection waiting for a command (nothing is lost), again on
            # each round: Python 3.11's wait_for swallows a cancel that lands as the
            # read it waits on completes, and the task then waits for the rest of a
            # half-sent line with the deadline sweeper already stopped.
            for conn in list(self.connections):
                if not conn.busy and conn.task is not None:
                    conn.task.cancel()
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            if conn.task is not None:
                conn.task.cancel()
        await asyncio.sleep(0)
        log.info("text listener on %s stopped", self.address)


class TextConnection:
    """One client (event-loop thread only): read a line, answer it, repeat."""

    def __init__(self, server: TextServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        # Shared by all connections.
        self.server = server
        self.broker = server.broker
        self.metrics = server.metrics
        # Per connection.
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer = f"{peer[0]}:{peer[1]}"
        self.task: asyncio.Task | None = None
        self.busy = False               # a command is being answered
        self.request_started: float | None = None   # first byte of the command being read
        self.auth = TextAuth(server.security_protocol, writer.get_extra_info("peercert"),
                             str(peer[0]))
        self.close_after = False        # a failed AUTH: answer, then close

    async def run(self) -> None:
        self.metrics.connection_opened("text")
        try:
            await self._serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.TimeoutError:
            log.info("text connection from %s idle for %.0f s: closed", self.peer,
                     self.server.idle_s)
        finally:
            self.metrics.connection_closed("text")
            self.writer.close()
            if getattr(self, "queue_members", None):    # RECEIVE joined share groups
                await leave_queues(self)

    def cut_off(self, timeout_s: float) -> None:
        """The command being read missed its deadline: ERR, count, log, close."""
        self.request_started = None
        self.metrics.request_timed_out("text")
        log.warning("text connection from %s: command not complete %g s after its first "
                    "byte (request_timeout_ms): closed", self.peer, timeout_s)
        self.writer.write(_err_line(RequestTimedOutError(
            f"command not complete {timeout_s:g} s after its first byte; closing")))
        if self.task is not None:
            self.task.cancel()          # run() closes the socket (the ERR line goes first)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.server.stopping:
            line = b""
            try:
                # The idle timeout runs until a command's first byte, the request
                # deadline from there (TextServer._sweep) to the end of the command.
                line = await asyncio.wait_for(self.reader.readexactly(1), self.server.idle_s)
                self.request_started = loop.time()
                if line != b"\n":
                    line += await self.reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                await self._fatal(InvalidRequestError(
                    f"line longer than {self.server.max_line} bytes without a newline; "
                    f"closing the connection"))
                return
            except asyncio.IncompleteReadError as exc:
                line += exc.partial         # last command without a newline, then EOF
                if not line.strip():
                    return
            if line.endswith(b"\n"):
                line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
            self.busy = True                # until the answer is handed to the socket
            try:
                keep_open = await self._execute(line)
                await self.writer.drain()
            except _Fatal as exc:
                await self._fatal(exc.error)
                return
            finally:
                self.busy = False
            if not keep_open or self.reader.at_eof():
                return

    async def _fatal(self, exc: PylogError) -> None:
        """ERR, then a lingering close: stop writing, discard what the client still
        sends for a moment (bounded), so the ERR line is not lost to a TCP reset."""
        self.request_started = None
        log.info("text connection from %s: %s", self.peer, exc)
        self.writer.write(_err_line(exc))
        try:
            await self.writer.drain()
            if self.writer.can_write_eof():
                self.writer.write_eof()
            loop = asyncio.get_running_loop()
            deadline, discarded = loop.time() + 2.0, 0
            while discarded < 4 * DISCARD_LIMIT and loop.time() < deadline:
                chunk = await asyncio.wait_for(self.reader.read(1 << 16),
                                               max(0.0, deadline - loop.time()))
                if not chunk:
                    break
                discarded += len(chunk)
        except (ConnectionError, asyncio.TimeoutError):
            pass

    # -- dispatch -----------------------------------------------------------------
    async def _execute(self, line: bytes) -> bool:
        """Answer one command line; False when the connection should close."""
        if not line.strip():
            self.request_started = None
            return True                      # empty line (e.g. after a PRODUCEB payload)
        name_raw, _, rest = line.lstrip().partition(b" ")
        name = name_raw.decode("ascii", "replace").upper()
        if name != "PRODUCEB":              # whose payload is part of the request
            self.request_started = None
        handler = _COMMANDS.get(name)
        self.metrics.request(name if handler else "UNKNOWN", "text")
        if handler is None:
            self.writer.write(_err_line(InvalidRequestError(
                f"unknown command {_shown(name_raw.decode('utf-8', 'replace'))}; "
                f"try HELP")))
            return True
        try:
            text_auth_check(self, name, rest)
        except PylogError as exc:
            if name in ("PRODUCEB", "PRODUCEX"):      # a payload follows: cannot resync
                raise _Fatal(exc) from None
            self.writer.write(_err_line(exc))
            return True
        try:
            answer = handler(self, rest)
            if asyncio.iscoroutine(answer):
                answer = await answer
        except (_Fatal, asyncio.IncompleteReadError, ConnectionError):
            raise                           # the stream itself failed: run() closes it
        except PylogError as exc:
            self.writer.write(_err_line(exc))
            return not self.close_after
        except Exception as exc:            # noqa: BLE001 -- a bug answers ERR, keeps the loop
            log.exception("text command %s from %s failed", name, self.peer)
            self.writer.write(_err_line(PylogError(f"internal error: {type(exc).__name__}")))
            return True
        if isinstance(answer, list):
            self.writer.writelines(answer)
        else:
            self.writer.write(answer)
        return name != "QUIT"

    # -- producing ------------------------------------------------------------------
    async def _produce(self, rest: bytes) -> bytes:
        parts = rest.split(b" ", 2)
        if len(parts) < 3:
            raise InvalidRequestError("wrong number of arguments; usage: "
                                      "PRODUCE <topic> <partition> <message...>")
        topic, partition = _tokens(parts[0]), _tokens(parts[1])
        if len(topic) != 1 or len(partition) != 1:
            raise InvalidRequestError("usage: PRODUCE <topic> <partition> <message...> "
                                      "(one space between the arguments)")
        p = self._partition(topic[0], partition[0])
        return await self._append(p, parts[2])

    async def _produce_binary(self, rest: bytes) -> bytes:
        try:
            args = _tokens(rest)
            _arity(args, 3, 3, "PRODUCEB <topic> <partition> <nbytes>")
            nbytes = _int(args[2], "nbytes")
        except PylogError as exc:           # the payload's end is unknown: cannot go on
            raise _Fatal(InvalidRequestError(f"{exc}; closing the connection because the "
                                             f"payload length is unknown")) from None
        if nbytes > self.server.max_payload:
            too_large = (f"payload of {nbytes} bytes is over the {self.server.max_payload}-byte "
                         f"limit; nothing written")
            if nbytes > DISCARD_LIMIT:
                raise _Fatal(RecordTooLargeError(f"{too_large}; closing the connection rather "
                                                 f"than reading {nbytes} bytes"))
            await self._discard(nbytes)
            self.request_started = None
            raise RecordTooLargeError(too_large)
        payload = await self.reader.readexactly(nbytes)
        self.request_started = None         # the whole request is in: the deadline is met
        p = self._partition(args[0], args[1])
        return await self._append(p, payload)

    async def _discard(self, nbytes: int) -> None:
        while nbytes > 0:
            chunk = await self.reader.read(min(nbytes, 1 << 16))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", nbytes)
            nbytes -= len(chunk)

    async def _append(self, p, value: bytes) -> bytes:
        return f"OK {await self._append_batch(p, encode_batch([value]))}\n".encode()

    async def _append_batch(self, p, batch: bytes) -> int:
        """Append one single-record batch; its offset once acknowledged."""
        result = p.append_raw(batch, wait=False)
        durable = p.durable_future(result.last_offset)
        if not durable.done():
            await asyncio.wrap_future(durable)
        elif durable.exception() is not None:
            raise durable.exception()
        self.metrics.records_in(1)
        return result.base_offset

    def _partition(self, topic: str, partition: str):
        validate_topic_name(topic)
        index = _int(partition, "partition", 0, INT32_MAX)
        if not self.broker.log.has_topic(topic):
            raise UnknownTopicError(f"unknown topic {topic!r}; CREATE it first")
        return self.broker.partition(topic, index)

    # -- consuming ------------------------------------------------------------------
    def _consume_extended(self, rest: bytes) -> list[bytes]:
        return self._consume(rest, full=True)

    def _consume(self, rest: bytes, full: bool = False) -> list[bytes]:
        args = _tokens(rest)
        _arity(args, 2, 4, f"CONSUME{'X' if full else ''} <topic> <partition> "
                           f"[<offset>|earliest|latest [<max>]]")
        p = self._partition(args[0], args[1])
        start, end = p.log_start_offset, p.log_end_offset
        where = args[2] if len(args) > 2 else "earliest"
        offset = {"earliest": start, "latest": end}.get(where.lower())
        if offset is None:
            offset = _int(where, "offset", 0, INT64_MAX)
        limit = _int(args[3], "max", 1, MAX_CONSUME) if len(args) > 3 else DEFAULT_CONSUME
        if not start <= offset <= end:
            raise OffsetOutOfRangeError(f"offset {offset} is outside {args[0]}-{args[1]}'s "
                                        f"range [{start}, {end}]")
        out: list[bytes] = []
        next_offset, size = offset, 0
        if offset < end:
            for r in p.read(offset, max_records=limit, max_bytes=CONSUME_MAX_BYTES):
                if r.offset < offset:
                    continue
                if full:
                    head, value = record_head(r)
                else:
                    value = b"" if r.value is None else bytes(r.value)
                    head = f"{r.offset} {r.timestamp} {-1 if r.value is None else len(value)}"
                if out and size + len(value) > CONSUME_MAX_BYTES:
                    break
                out.append(f"RECORD {head}\n".encode())
                out.append(value + b"\n")
                size += len(value)
                next_offset = r.offset + 1
                if len(out) >= 2 * limit:
                    break
        self.metrics.records_out(len(out) // 2)
        out.append(f"END {next_offset} {p.log_end_offset}\n".encode())
        return out

    # -- topics -----------------------------------------------------------------------
    def _topics(self, rest: bytes) -> list[bytes]:
        args = _tokens(rest)
        _arity(args, 0, 1, "TOPICS [internal]")
        if args and args[0].lower() != "internal":
            raise InvalidRequestError("usage: TOPICS [internal]")
        names = sorted(n for n in self.broker.log.topics() if args or not n.startswith("__"))
        out = [f"TOPIC {n} {self.broker.log.topic(n).num_partitions}\n".encode()
               for n in names]
        return out + [f"END {len(names)}\n".encode()]

    def _create(self, rest: bytes) -> bytes:
        args = _tokens(rest)
        if not args:
            raise InvalidRequestError("wrong number of arguments; usage: "
                                      "CREATE <topic> [<partitions>] [<config>=<value>...]")
        validate_topic_name(args[0])
        n, extra = self.broker.settings.num_partitions, args[1:]
        if extra and "=" not in extra[0]:
            try:
                n = _int(extra[0], "partitions", 1, MAX_PARTITIONS)
            except InvalidRequestError:
                raise InvalidPartitionsError(f"partitions must be an integer from 1 to "
                                             f"{MAX_PARTITIONS}, got {extra[0]!r}") from None
            extra = extra[1:]
        topic = self.broker.create_topic(args[0], n, parse_configs(extra))
        return f"OK {topic.num_partitions}\n".encode()

    def _delete(self, rest: bytes) -> bytes:
        args = _tokens(rest)
        _arity(args, 1, 1, "DELETE <topic>")
        validate_topic_name(args[0])
        self.broker.log.delete_topic(args[0])
        return b"OK\n"

    def _describe(self, rest: bytes) -> list[bytes]:
        args = _tokens(rest)
        _arity(args, 1, 1, "DESCRIBE <topic>")
        topic = self.broker.topic(args[0])
        out = []
        for i in range(topic.num_partitions):
            p = topic.partition(i)
            out.append(f"PARTITION {i} {p.log_start_offset} {p.log_end_offset} "
                       f"{int(getattr(p, 'size_bytes', 0))}\n".encode())
        return out + [f"END {topic.num_partitions}\n".encode()]

    # -- groups -----------------------------------------------------------------------
    def _group_partition(self, group: str, topic: str, partition: str):
        if not group or len(group) > MAX_GROUP_ID:
            raise InvalidGroupIdError(f"group id must be 1-{MAX_GROUP_ID} characters")
        return self._partition(topic, partition)

    def _commit(self, rest: bytes) -> bytes:
        args = _tokens(rest)
        _arity(args, 4, 4, "COMMIT <group> <topic> <partition> <offset>")
        self._group_partition(*args[:3])
        offset = _int(args[3], "offset", 0, INT64_MAX)
        self.server.offsets.commit(args[0], args[1], int(args[2]), offset)
        return b"OK\n"

    def _offset(self, rest: bytes) -> bytes:
        args = _tokens(rest)
        _arity(args, 3, 3, "OFFSET <group> <topic> <partition>")
        self._group_partition(*args)
        return f"OK {self.server.offsets.fetch(args[0], args[1], int(args[2]))}\n".encode()

    def _groups(self, rest: bytes) -> list[bytes]:
        _arity(_tokens(rest), 0, 0, "GROUPS")
        names = sorted(self.server.offsets.groups())
        return [f"GROUP {g}\n".encode() for g in names] + [f"END {len(names)}\n".encode()]

    def _group(self, rest: bytes) -> list[bytes]:
        args = _tokens(rest)
        _arity(args, 1, 1, "GROUP <group>")
        state, members = self.server.offsets.state(args[0])
        committed = self.server.offsets.committed(args[0])
        out = [f"STATE {state} {members}\n".encode()]
        for (topic, i), offset in sorted(committed.items()):
            try:
                end = self.broker.partition(topic, i).log_end_offset
            except PylogError:
                continue                     # topic deleted since the commit
            out.append(f"COMMITTED {topic} {i} {offset} {end} {max(0, end - offset)}\n"
                       .encode())
        return out + [f"END {len(out) - 1}\n".encode()]

    # -- the rest ---------------------------------------------------------------------
    def _ping(self, rest: bytes) -> bytes:
        return b"PONG\n"

    def _help(self, rest: bytes) -> list[bytes]:
        return [f"{line}\n".encode() for line in HELP] + [f"END {len(HELP)}\n".encode()]

    def _quit(self, rest: bytes) -> bytes:
        return b"BYE\n"


_COMMANDS = {
    "PRODUCE": TextConnection._produce, "PRODUCEB": TextConnection._produce_binary,
    "CONSUME": TextConnection._consume, "TOPICS": TextConnection._topics,
    "CREATE": TextConnection._create, "DELETE": TextConnection._delete,
    "DESCRIBE": TextConnection._describe, "COMMIT": TextConnection._commit,
    "OFFSET": TextConnection._offset, "GROUPS": TextConnection._groups,
    "GROUP": TextConnection._group, "PING": TextConnection._ping,
    "HELP": TextConnection._help, "QUIT": TextConnection._quit,
    "CONSUMEX": TextConnection._consume_extended, **EXTENDED, **QUEUE_COMMANDS,
    "AUTH": auth_command,
}
