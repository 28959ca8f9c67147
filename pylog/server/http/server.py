"""The HTTP listener: aiohttp behind pylog's own ``Listener`` (connection cap, deadlines).

Default ``127.0.0.1:8081``.  The routes live in one module per area, each with a
``routes(ctx)`` table (``routing.Route``): metrics_routes (``/metrics``, ``/healthz``),
rest_v2 and rest_consumers (Confluent REST Proxy v2), queue_routes (``/produce``,
``/consume``, ``/ack``, ``/dashboard``), admin_routes (the dashboard's ``/api/``), live
(Server-Sent Events), dashboard (``/`` and static files) and openapi (``/openapi.json``,
``/routes``, built from the same tables).

Connections: accepted by ``listener.Listener`` (back-off at the fd limit, a 503
over ``max.connections``); idle ones closed after ``idle_ms`` (aiohttp's
keep-alive timeout), and a request whose headers are not complete
``request_timeout_ms`` after its first byte gets a 408 and is closed
(``_TimedHandler``; aiohttp has no such deadline of its own).  Long polls and
event streams are in their handler, so the deadline does not cut them.

Everything runs on the event-loop thread; calls that may wait for a disk write
(share-group acquire/acknowledge, group commits) go to the default executor.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..listener import Listener, Wrapped, sweep_deadlines
from ..metrics import CommittedOffsets
from .context import HttpContext
from .routing import build_app

__all__ = ["HttpServer"]

log = logging.getLogger("pylog.server.http")


_REFUSAL_BODY = b'{"status": "too many connections (max.connections)"}\n'
_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
            % len(_REFUSAL_BODY)) + _REFUSAL_BODY
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")


class _TimedHandler(Wrapped):
    """aiohttp's RequestHandler with a request deadline in front (event-loop thread).

    The clock starts at the first byte received while no request is being handled
    and stops when the request reaches its handler (``HttpServer._arrived``):
    unfinished headers and unfinished bodies of a request are both bounded."""

    def __init__(self, inner, timed: dict) -> None:
        super().__init__(inner)         # aiohttp.web_protocol.RequestHandler
        self.timed = timed              # inner -> self, for the middleware and the sweep
        self.transport: asyncio.Transport | None = None
        self.request_started: float | None = None
        self.in_handler = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.timed[self.inner] = self
        self.inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        self.timed.pop(self.inner, None)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.request_started is None and not self.in_handler and data:
            self.request_started = asyncio.get_running_loop().time()
        self.inner.data_received(data)


class HttpServer:
    """The aiohttp listener, started and stopped with the other listeners."""

    kind = "http"

    def __init__(self, broker, host: str = "127.0.0.1", port: int = 8081, *,
                 offsets: CommittedOffsets, idle_s: float = 600.0,
                 request_timeout_s: float = 30.0, cap=None,
                 security_protocol: str = "PLAINTEXT") -> None:
        self.broker = broker
        self.security_protocol = security_protocol     # auth.py: PLAINTEXT ... SASL_SSL
        self.offsets = offsets
        self.host, self.port = host, port
        self.idle_s, self.request_timeout_s = idle_s, request_timeout_s
        self.cap = cap                  # max.connections (listener.ConnectionCap)
        self.stopping = False
        self.ready = False              # set by main once every listener is serving
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._sweeper: asyncio.Task | None = None
        self._timed: dict = {}          # RequestHandler -> _TimedHandler
        self.ctx: HttpContext | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application: every area's route table (routing.build_app)."""
        self.ctx = HttpContext(self.broker, self.offsets, self)
        return build_app(self.ctx, [self._arrived])

    async def start(self, sock=None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0, keepalive_timeout=self.idle_s)
        await self._runner.setup()
        runner = self._runner
        sec = getattr(self.broker, "security", None)
        ssl_ctx = sec.tls.context if self.security_protocol in ("SSL", "SASL_SSL") and \
            sec is not None and sec.tls is not None else None
        self._listener = Listener("http", self.host, self.port,
                                  lambda: _TimedHandler(runner.server(), self._timed),
                                  cap=self.cap, refusal=_REFUSAL, ssl=ssl_ctx)
        await self._listener.start(sock)
        self.port = self._listener.port
        self.broker.metrics.connections_gauge(
            "http", lambda: len(runner.server.connections) if runner.server else 0)
        self._sweeper = asyncio.ensure_future(self._sweep())
        self.ctx.start()
        log.info("http listener on %s", self.address)

    @web.middleware
    async def _arrived(self, request: web.Request, handler):
        """The request reached its handler: its deadline is met."""
        timed = self._timed.get(request.protocol)
        if timed is None:
            return await handler(request)
        timed.request_started, timed.in_handler = None, True
        try:
            return await handler(request)
        finally:
            timed.in_handler = False

    async def _sweep(self) -> None:
        """408 and close a connection whose request is late (see the module doc)."""
        def late(timed, _now: float) -> None:
            timed.request_started = None
            self.broker.metrics.request_timed_out("http")
            peer = timed.transport.get_extra_info("peername") or ("?", 0)
            log.warning("http connection from %s:%s: request not complete %g s after "
                        "its first byte (request_timeout_ms): closed", peer[0], peer[1],
                        self.request_timeout_s)
            if not timed.transport.is_closing():
                timed.transport.write(_TIMED_OUT)
                timed.transport.close()

        await sweep_deadlines(self._timed.values, self.request_timeout_s, late)

    def waiting_for(self) -> list[str]:
        """What start-up still waits for: the listeners (main sets ``ready``), the
        group coordinator's load of committed offsets."""
        waiting = [] if self.ready else ["listeners"]
        groups = getattr(self.broker.log, "_groups", None)
        if groups is not None and not groups.loaded:
            waiting.append("group coordinator")
        return waiting

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop accepting, answer what is in flight (2 s at most: scrapes are quick)."""
        self.stopping = True
        if self.ctx is not None:
            self.ctx.close()            # event streams end, long polls answer now
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("http listener on %s stopped", self.address)
