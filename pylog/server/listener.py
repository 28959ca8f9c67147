"""Listening sockets with pylog's own accept loop: back-off at the fd limit, a connection cap.

Why not ``loop.create_server``: at the open-files limit, asyncio's accept loop
(CPython 3.11 ``selector_events._accept_connection``) logs the EMFILE, unregisters
the socket and schedules a retry -- and then goes on calling ``accept()`` up to
``backlog`` times, each failing, logging and scheduling one more retry.  With
RLIMIT_NOFILE 256 and 400 clients that was 9,092 ``Too many open files`` lines in
4 s at 35 % of a core (issue 18).  ``Listener`` does instead:

- accept until the kernel says EAGAIN (at most ``ACCEPT_BATCH`` per wake-up, so
  one listener cannot starve the loop's other work);
- on EMFILE, ENFILE, ENOBUFS or ENOMEM: stop watching the socket and try again
  after a pause that doubles from ``PAUSE_MIN`` (0.1 s) to ``PAUSE_MAX`` (1 s),
  back to the minimum after the next successful accept.  Clients wait in the
  kernel's backlog meanwhile.  One WARNING per ``LOG_INTERVAL`` (10 s) says how
  many accepts failed since the last one;
- ``max.connections`` (``ConnectionCap``, shared by every listener of the server):
  a connection accepted beyond it is refused the listener's way (``refusal``
  bytes, e.g. ``ERR TOO_MANY_CONNECTIONS`` or an HTTP 503, then close; Kafka
  gets a plain close, as Kafka's own broker does) and counted.  The default cap
  is the soft open-files limit minus a reserve for segment files and the rest of
  the process (``default_max_connections``), so the limit is met by a clear
  refusal rather than by EMFILE.

Accepted sockets become connections through ``loop.connect_accepted_socket``
with the listener's protocol factory: the protocols are the same as under
``create_server``.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import socket
from typing import Callable, Iterable

__all__ = ["Listener", "ConnectionCap", "Wrapped", "default_max_connections",
           "sweep_deadlines", "sweep_interval"]

log = logging.getLogger("pylog.server")

ACCEPT_BATCH = 64                 # accepts per wake-up of one listening socket
PAUSE_MIN, PAUSE_MAX = 0.1, 1.0   # accept back-off at the fd limit (seconds, doubling)
LOG_INTERVAL = 10.0               # at most one warning per listener and cause this often
FD_RESERVE_MIN = 64               # fds kept for segment files, the data dir lock, logging...


def default_max_connections() -> int:
    """The soft RLIMIT_NOFILE minus a reserve of a quarter of it (at least 64 fds):
    256 -> 192, 1024 -> 768, 65536 -> 49152.  Each partition keeps 3 files open
    (.log, .index, .timeindex), so a server with many partitions needs a larger
    limit (``ulimit -n``) or an explicit ``max.connections``."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1 << 24:
        soft = 1 << 24
    return max(1, soft - max(FD_RESERVE_MIN, soft // 4))


def sweep_interval(request_timeout_s: float) -> float:
    """How often a listener checks request deadlines: a quarter of the deadline,
    between 10 ms and 1 s (so a deadline is enforced within 25 % late at most)."""
    return min(1.0, max(0.01, request_timeout_s / 4))


async def sweep_deadlines(connections: Callable[[], Iterable], timeout_s: float,
                          late: Callable[[object, float], None]) -> None:
    """The text and HTTP listeners' request-deadline loop (until cancelled; the Kafka
    listener's own also closes idle connections): each
    sweep_interval, call ``late(conn, now)`` for each connection whose
    ``request_started`` is more than ``timeout_s`` ago."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(sweep_interval(timeout_s))
        now = loop.time()
        for conn in list(connections()):
            started = conn.request_started
            if started is not None and now - started > timeout_s:
                late(conn, now)


class ConnectionCap:
    """``max.connections`` over all listeners of one server (event-loop thread only).

    ``open`` counts every connection from its accept to its ``connection_lost``
    (``_Counted``), so a burst of accepts is counted before any protocol starts."""

    def __init__(self, limit: int, metrics, per_ip: int | None = None) -> None:
        self.limit = limit
        self.metrics = metrics          # for the refused counter
        self.open = 0
        self.per_ip = per_ip            # max.connections.per.ip (None: no limit)
        self.by_ip: dict[str, int] = {}

    def admit(self, ip: str | None = None) -> bool:
        if self.per_ip is not None and ip is not None and \
                self.by_ip.get(ip, 0) >= self.per_ip:
            return False
        return self.open < self.limit

    def opened(self, ip: str | None) -> None:
        self.open += 1
        if ip is not None and self.per_ip is not None:
            self.by_ip[ip] = self.by_ip.get(ip, 0) + 1

    def closed(self, ip: str | None) -> None:
        self.open -= 1
        if ip is not None and ip in self.by_ip:
            self.by_ip[ip] -= 1
            if not self.by_ip[ip]:
                del self.by_ip[ip]


class Wrapped(asyncio.Protocol):
    """A protocol in front of another: every callback passes through to ``inner``;
    subclasses add what they watch (connection counts, request deadlines)."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner

    def connection_made(self, transport) -> None:
        self.inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Counted(Wrapped):
    """The listener's protocol, with the connection counted in its ConnectionCap until
    the transport is gone."""

    def __init__(self, inner: asyncio.Protocol, cap: ConnectionCap,
                 ip: str | None = None) -> None:
        super().__init__(inner)
        self.cap = cap
        self.ip = ip
        self.made = False

    def connection_made(self, transport) -> None:
        self.made = True
        self.inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        self.cap.closed(self.ip)
        self.inner.connection_lost(exc)


class _Throttled:
    """One log line per LOG_INTERVAL, with the count of events since the last line."""

    def __init__(self) -> None:
        self.count = 0
        self.last = float("-inf")

    def event(self, now: float) -> int:
        """Count one event; the number to report if a line is due now, else 0."""
        self.count += 1
        if now - self.last < LOG_INTERVAL:
            return 0
        n, self.count, self.last = self.count, 0, now
        return n


def bind_socket(host: str, port: int, backlog: int = 512) -> socket.socket:
    """A listening non-blocking socket on the first address ``host`` resolves to
    (OSError if the port is taken)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, type_, proto, _name, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """One listening TCP socket and its accept loop (event-loop thread only)."""

    def __init__(self, kind: str, host: str, port: int,
                 factory: Callable[[], asyncio.BaseProtocol], *,
                 cap: ConnectionCap | None = None, refusal: bytes = b"",
                 backlog: int = 512, ssl=None) -> None:
        self.kind = kind
        self.ssl = ssl                       # an ssl.SSLContext: TLS on every connection
        self.host, self.port = host, port
        self.factory = factory
        self.cap = cap
        self.refusal = refusal
        self.backlog = backlog
        self.sock: socket.socket | None = None
        self.paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pause = 0.0
        self._resume: asyncio.TimerHandle | None = None
        self._accept_failed = _Throttled()
        self._refused = _Throttled()
        self._setup_failed = _Throttled()

    async def start(self, sock: socket.socket | None = None) -> None:
        """Start accepting on ``sock`` (bound by ``bind_socket`` before the data
        directory was opened), or bind one now."""
        self._loop = asyncio.get_running_loop()
        if sock is None:
            sock = bind_socket(self.host, self.port, self.backlog)
        self.sock = sock
        self.port = sock.getsockname()[1]
        self._loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting and close the listening socket (connections stay open)."""
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.sock is not None:
            if not self.paused:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    # -- the accept loop --------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue                     # the client gave up while in the backlog
            except OSError as exc:
                # Out of fds or kernel memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), or anything
                # else that would fail again at once: the socket stays readable, so pause.
                self._back_off(exc)
                return
            self._pause = 0.0
            ip = addr[0] if isinstance(addr, tuple) else None
            if self.cap is not None and not self.cap.admit(ip):
                self._refuse(conn)
                continue
            self._connect(conn, ip)

    def _connect(self, conn: socket.socket, ip: str | None = None) -> None:
        conn.setblocking(False)
        cap, counted = self.cap, []         # counted: the _Counted made for this socket
        if cap is None:
            factory = self.factory
        else:
            cap.opened(ip)

            def factory() -> _Counted:
                counted.append(_Counted(self.factory(), cap, ip))
                return counted[0]
        task = self._loop.create_task(self._loop.connect_accepted_socket(
            factory, conn, **({"ssl": self.ssl} if self.ssl is not None else {})))

        def done(t: asyncio.Task) -> None:
            failed = t.cancelled() or t.exception() is not None
            if failed and cap is not None and not (counted and counted[0].made):
                cap.closed(ip)               # no protocol started: no connection_lost
            if failed:
                if not t.cancelled():
                    # A failed TLS handshake (garbage, plaintext on a TLS port) is the
                    # client's problem: counted and logged at most every LOG_INTERVAL.
                    n = self._setup_failed.event(self._loop.time())
                    if n:
                        log.warning("%s: %d connection(s) not set up, last: %s",
                                    self.kind, n, t.exception())
                conn.close()

        task.add_done_callback(done)

    def _back_off(self, exc: OSError) -> None:
        """Out of fds (or kernel memory): stop accepting for a while."""
        self._pause = min(PAUSE_MAX, max(PAUSE_MIN, self._pause * 2))
        self._loop.remove_reader(self.sock.fileno())
        self.paused = True
        self._resume = self._loop.call_later(self._pause, self._resume_accepting)
        n = self._accept_failed.event(self._loop.time())
        if n:
            log.warning("%s listener on %s:%d: accept failed: %s (%d time%s in %.0f s); "
                        "pausing accepts up to %.1f s at a time; close connections, lower "
                        "max.connections or raise the open-files limit (ulimit -n)",
                        self.kind, self.host, self.port, exc.strerror or exc, n,
                        "" if n == 1 else "s", LOG_INTERVAL, PAUSE_MAX)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self.sock is not None:
            self.paused = False
            self._loop.add_reader(self.sock.fileno(), self._accept)
            self._accept()

    def _refuse(self, conn: socket.socket) -> None:
        """Over max.connections: send the refusal (if any) and close at once.  What the
        client already sent is read first, so closing does not reset the connection
        before the refusal is read."""
        self.cap.metrics.connection_refused(self.kind)
        try:
            conn.setblocking(False)
            try:
                while conn.recv(65536):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            if self.refusal:
                conn.send(self.refusal)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            conn.close()
        n = self._refused.event(self._loop.time())
        if n:
            log.warning("%s listener on %s:%d: refused %d connection%s over max.connections=%d "
                        "(in %.0f s)", self.kind, self.host, self.port, n,
                        "" if n == 1 else "s", self.cap.limit, LOG_INTERVAL)
