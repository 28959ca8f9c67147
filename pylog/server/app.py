"""The pylog-server process: listeners over one broker, and the shutdown steps.

``Server`` owns the Kafka listener (the text and HTTP listeners of DESIGN §5 are
later issues and plug in beside it) and the connection housekeeping: idle
connections are closed after ``connections.max.idle.ms``, and a client that
stops half-way through a request is closed after ``request_timeout_ms``.

Shutdown (SIGTERM / SIGINT), as Kafka's controlled shutdown on one node:
  1. stop accepting connections;
  2. stop reading new requests; long-polling Fetches answer at once;
  3. let every connection finish the answers it owes (bounded by a timeout);
  4. close the connections;
  5. ``Log.close()``: flush every partition, write the checkpoints, then the
     clean-shutdown marker (the storage engine's job, last);
and the process exits 0.
"""
from __future__ import annotations

import asyncio
import logging

from .kafka.context import BrokerContext, BrokerSettings
from .kafka.protocol import KafkaConnection
from .listener import ConnectionCap, Listener, default_max_connections, sweep_interval

__all__ = ["Server"]

log = logging.getLogger("pylog.server")


class Server:
    def __init__(self, log_, host: str = "127.0.0.1", port: int = 9092,
                 settings: BrokerSettings | None = None, idle_ms: int = 600_000,
                 request_timeout_ms: int = 30_000, max_connections: int | None = None,
                 security=None, max_connections_per_ip: int | None = None) -> None:
        self.log = log_
        self.host, self.port = host, port
        self.broker = BrokerContext(log_, settings)
        self.broker.security = security         # pylog.security.sasl.Security or None
        if security is not None:
            self.broker.metrics.section("security", lambda: {
                **security.stats(), "acl_denials": getattr(self.broker.authorizer,
                                                           "denied", 0),
                "throttled": self.broker.quotas.throttled})
        self.idle_s = idle_ms / 1000
        self.request_timeout_s = request_timeout_ms / 1000
        # max.connections, shared with the text and HTTP listeners.
        self.cap = ConnectionCap(max_connections or default_max_connections(),
                                 self.broker.metrics, max_connections_per_ip)
        self.connections: set[KafkaConnection] = set()
        self._listeners: list[tuple] = []        # (ListenerSpec, Listener)
        self._sweeper: asyncio.Task | None = None
        self._warmup: asyncio.Task | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def addresses(self) -> list[tuple]:
        """(ListenerSpec, "host:port") of every Kafka listener, the first first."""
        return [(spec, f"{lst.host}:{lst.port}") for spec, lst in self._listeners]

    def reload_tls(self) -> None:
        """SIGHUP: load the TLS certificate files again."""
        sec = self.broker.security
        if sec is not None and sec.tls is not None:
            sec.tls.reload()

    async def start(self, socks=None) -> None:
        """Start serving on ``socks``, [(ListenerSpec, socket)] main bound before opening
        the data directory; a bare socket or None (bind host:port now) is one
        PLAINTEXT listener."""
        loop = asyncio.get_running_loop()
        self.broker.loop = loop
        # Start loading committed offsets now (the coordinator's background thread), so
        # the first JoinGroup rarely meets COORDINATOR_LOAD_IN_PROGRESS.
        self.log.start_groups(**self.broker.settings.group_options())
        self.broker.settings.apply_share_defaults(self.log)
        self.log.start_transactions(**self.broker.settings.transaction_options())
        from pylog.security.listeners import ListenerSpec
        if socks is None or not isinstance(socks, list):
            socks = [(ListenerSpec("PLAINTEXT", self.host, self.port), socks)]
        security = self.broker.security
        for spec, sock in socks:
            ssl_ctx = security.tls.context if spec.tls and security is not None else None
            listener = Listener(
                "kafka", spec.host, spec.port,
                lambda spec=spec: KafkaConnection(self.broker, self.connections, spec),
                cap=self.cap, ssl=ssl_ctx)
            await listener.start(sock)
            self._listeners.append((spec, listener))
        self.host, self.port = self._listeners[0][1].host, self._listeners[0][1].port
        self._sweeper = asyncio.ensure_future(self._sweep())
        self._warmup = asyncio.ensure_future(self._warm_schemas())
        log.info("kafka listener on %s (max.connections %d over all listeners)", self.address,
                 self.cap.limit)

    async def _warm_schemas(self) -> None:
        """Load every served version's kio schema modules, one per loop turn, right
        after the listener opens: startup does not wait for them (about a second), and
        the first Produce or Fetch does not pay for them either."""
        from .kafka.dispatch import API_TABLE
        from .kafka.messages import request_class, response_module
        for spec in list(API_TABLE.values()):
            for version in spec.versions:
                request_class(spec.key, version)
                response_module(spec.key, version)
                await asyncio.sleep(0)

    async def _sweep(self) -> None:
        """Close idle connections, and those whose request is not complete
        ``request_timeout_ms`` after its first byte (a quarter of it between sweeps, at
        most 1 s).  While we are not reading a socket (flow control) its deadline waits."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(sweep_interval(self.request_timeout_s))
            now = loop.time()
            for conn in list(self.connections):
                started = conn.request_started
                if started is not None and now - started > self.request_timeout_s:
                    if conn.flow is not None and conn.flow.paused:
                        conn.request_started = now
                    else:
                        conn.cut_off(self.request_timeout_s)
                elif not conn.busy and now - conn.last_activity > self.idle_s:
                    conn.close(f"idle for {now - conn.last_activity:.0f} s "
                               f"(connections.max.idle.ms)")

    async def shutdown(self, drain_timeout: float = 10.0) -> None:
        """Steps 1–4 of the docstring; the caller then closes the Log (step 5)."""
        # 1. Stop accepting.
        for _spec, listener in self._listeners:
            listener.close()
        for task in (self._sweeper, self._warmup):
            if task is not None:
                task.cancel()
        # 2. Stop reading; answer long polls now.
        for conn in list(self.connections):
            conn.stop_reading()
        self.broker.close()
        # 3. Finish in-flight answers.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        while any(c.busy for c in self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        # 4. Close connections (their transports flush what is buffered).
        for conn in list(self.connections):
            conn.close()
        await asyncio.sleep(0)
        log.info("kafka listener on %s stopped", self.address)
