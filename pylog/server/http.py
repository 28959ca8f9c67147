"""The HTTP listener (aiohttp): ``/metrics`` as JSON or Prometheus text, ``/healthz``.

Default ``127.0.0.1:8081``.  ``GET /metrics`` answers JSON unless the client
asks for Prometheus: ``?format=prometheus`` (text format 0.0.4),
``?format=openmetrics``, or an Accept header naming ``text/plain`` or
``application/openmetrics-text`` (what a Prometheus scraper sends; the format
is then chosen by ``prometheus_client.exposition.choose_encoder``, so the
version it asks for is the one it gets).  ``?format=json`` forces JSON.

The JSON document (every figure is computed when asked; nothing is cached):

    uptime_seconds, started_at (unix s)
    active_connections            open connections on every listener, this one included
    connections {kafka,text,http} the same per listener; connections_accepted likewise
    queues {"<topic>-<partition>": records waiting}
        records waiting = log end offset - the slowest group's committed offset
        (a committed offset below the log start counts from the log start), or
        the records retained (log end - log start) when no group has committed
    partitions {"<topic>-<partition>": log_start_offset, log_end_offset, size_bytes,
                records_retained, records_waiting, slowest_group, lost_offsets,
                lost_ranges, lost [ranges recovery quarantined, storage/lost.py]}
    groups {group: {lag, partitions {"<topic>-<partition>": committed_offset,
                                     log_end_offset, lag}}}
    requests {listener: {api or command: count}}
    kafka_api_versions {api: {version: count}}   the versions clients negotiated
    fetch_sessions {sessions, slots, partitions, evictions}   KIP-227 session cache
    records {produced_total, fetched_total, produce_rate, fetch_rate (records/s over
             the last rate_window_seconds)}

    connections_refused {listener: n}   over max.connections since start
    requests_timed_out {listener: n}    cut off: a request not complete request_timeout_ms
                                        after its first byte

Connections: accepted by ``listener.Listener`` (back-off at the fd limit, a 503
over ``max.connections``); idle ones closed after ``idle_ms`` (aiohttp's
keep-alive timeout), and a request whose headers are not complete
``request_timeout_ms`` after its first byte gets a 408 and is closed
(``_TimedHandler``; aiohttp has no such deadline of its own).

``GET /healthz`` answers 503 ``{"status": "starting", "waiting_for": [...]}`` until
every listener is serving (main sets ``ready``) and the group coordinator has loaded
the committed offsets, then 200 ``{"status": "ready"}``, and 503
``{"status": "stopping"}`` once shutdown has begun.  Internal topics
(``__consumer_offsets``) are left out of the figures unless ``?internal=1``.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import (CONTENT_TYPE_PLAIN_0_0_4, choose_encoder,
                                          generate_latest)
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry

from .listener import Listener, Wrapped, sweep_deadlines
from .metrics import CommittedOffsets, Metrics, partition_state, queues

__all__ = ["HttpServer", "collect", "render_prometheus"]

log = logging.getLogger("pylog.server.http")


def collect(broker, offsets: CommittedOffsets, internal: bool = False) -> dict:
    """Every figure of the JSON document (see the module docstring)."""
    metrics: Metrics = broker.metrics
    doc = metrics.snapshot()
    partitions, groups = partition_state(broker.log, offsets.all(), internal)
    doc["queues"] = queues(partitions)
    doc["partitions"] = partitions
    doc["groups"] = groups
    return doc


class _Snapshot:
    """A prometheus_client collector over one JSON document (built per scrape)."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def collect(self):
        d = self.doc
        yield GaugeMetricFamily("pylog_uptime_seconds", "Seconds since the server started",
                                value=d["uptime_seconds"])
        conns = GaugeMetricFamily("pylog_active_connections", "Open connections",
                                  labels=["listener"])
        accepted = CounterMetricFamily("pylog_connections_accepted",
                                       "Connections accepted since start", labels=["listener"])
        for listener, n in sorted(d["connections"].items()):
            conns.add_metric([listener], n)
        for listener, n in sorted(d["connections_accepted"].items()):
            accepted.add_metric([listener], n)
        yield conns
        yield accepted
        requests = CounterMetricFamily("pylog_requests", "Requests and commands served",
                                       labels=["listener", "api"])
        for listener, apis in sorted(d["requests"].items()):
            for api, n in sorted(apis.items()):
                requests.add_metric([listener, api], n)
        yield requests
        versions = CounterMetricFamily("pylog_kafka_api_versions",
                                       "Kafka requests by API and version", labels=["api", "version"])
        for api, by_version in sorted(d["kafka_api_versions"].items()):
            for version, n in sorted(by_version.items()):
                versions.add_metric([api, version], n)
        yield versions
        fs = d.get("fetch_sessions")
        if fs is not None:
            yield GaugeMetricFamily("pylog_fetch_sessions", "Incremental fetch sessions held "
                                    "(KIP-227)", value=fs["sessions"])
            yield GaugeMetricFamily("pylog_fetch_session_partitions",
                                    "Partitions in all fetch sessions", value=fs["partitions"])
            yield CounterMetricFamily("pylog_fetch_session_evictions",
                                      "Fetch sessions evicted for a new one",
                                      value=fs["evictions"])
        rec = d["records"]
        yield CounterMetricFamily("pylog_records_produced", "Records appended by clients",
                                  value=rec["produced_total"])
        yield CounterMetricFamily("pylog_records_fetched", "Records sent to consumers",
                                  value=rec["fetched_total"])
        yield GaugeMetricFamily("pylog_produce_rate", "Records produced per second "
                                f"(last {rec['rate_window_seconds']} s)", value=rec["produce_rate"])
        yield GaugeMetricFamily("pylog_fetch_rate", "Records fetched per second "
                                f"(last {rec['rate_window_seconds']} s)", value=rec["fetch_rate"])
        yield from self._partitions(d["partitions"])
        yield from self._groups(d["groups"])

    @staticmethod
    def _partitions(partitions: dict):
        labels = ["topic", "partition"]
        families = {
            "log_start_offset": GaugeMetricFamily("pylog_log_start_offset",
                                                  "First offset retained", labels=labels),
            "log_end_offset": GaugeMetricFamily("pylog_log_end_offset",
                                                "Offset of the next record", labels=labels),
            "size_bytes": GaugeMetricFamily("pylog_log_size_bytes", "Bytes of log segments",
                                            labels=labels),
            "records_waiting": GaugeMetricFamily(
                "pylog_queue_records_waiting",
                "Log end offset minus the slowest group's committed offset "
                "(records retained when no group committed)", labels=labels),
            "lost_offsets": GaugeMetricFamily(
                "pylog_lost_offsets", "Offsets recovery quarantined as corrupt "
                "(lost-offsets.json, until pylog-fsck --clear-lost)", labels=labels),
            "lost_ranges": GaugeMetricFamily(
                "pylog_lost_offset_ranges", "Quarantined ranges behind pylog_lost_offsets",
                labels=labels),
        }
        for row in partitions.values():
            key = [row["topic"], str(row["partition"])]
            for field, family in families.items():
                family.add_metric(key, max(0, row[field]))
        yield from families.values()

    @staticmethod
    def _groups(groups: dict):
        labels = ["group", "topic", "partition"]
        committed = GaugeMetricFamily("pylog_group_committed_offset", "Committed offset",
                                      labels=labels)
        lag = GaugeMetricFamily("pylog_group_lag", "Log end offset minus committed offset",
                                labels=labels)
        total = GaugeMetricFamily("pylog_group_lag_total", "Lag summed over partitions",
                                  labels=["group"])
        for group, g in groups.items():
            for row in g["partitions"].values():
                key = [group, row["topic"], str(row["partition"])]
                committed.add_metric(key, row["committed_offset"])
                lag.add_metric(key, row["lag"])
            total.add_metric([group], g["lag"])
        yield committed
        yield lag
        yield total


def render_prometheus(doc: dict, accept: str | None = None,
                      fmt: str = "prometheus") -> tuple[bytes, str]:
    """(body, content type) in the exposition format asked for."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(doc))
    if accept:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type
    if fmt == "openmetrics":
        return openmetrics.generate_latest(registry), openmetrics.CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4


def _wants_prometheus(accept: str) -> bool:
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"text/plain", "application/openmetrics-text"})


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
                 request_timeout_s: float = 30.0, cap=None) -> None:
        self.broker = broker
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._arrived])
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def start(self, sock=None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0, keepalive_timeout=self.idle_s)
        await self._runner.setup()
        runner = self._runner
        self._listener = Listener("http", self.host, self.port,
                                  lambda: _TimedHandler(runner.server(), self._timed),
                                  cap=self.cap, refusal=_REFUSAL)
        await self._listener.start(sock)
        self.port = self._listener.port
        self.broker.metrics.connections_gauge(
            "http", lambda: len(runner.server.connections) if runner.server else 0)
        self._sweeper = asyncio.ensure_future(self._sweep())
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

    async def metrics(self, request: web.Request) -> web.Response:
        self.broker.metrics.request("/metrics", "http")
        fmt = request.query.get("format", "").lower()
        if fmt not in ("", "json", "prometheus", "openmetrics"):
            return web.json_response(
                {"error": f"unknown format {fmt!r}: use json, prometheus or openmetrics"},
                status=400)
        internal = request.query.get("internal", "") in ("1", "true", "yes")
        doc = collect(self.broker, self.offsets, internal)
        accept = request.headers.get("Accept", "")
        if fmt in ("prometheus", "openmetrics"):
            body, ctype = render_prometheus(doc, fmt=fmt)
        elif fmt == "" and _wants_prometheus(accept):
            body, ctype = render_prometheus(doc, accept=accept)
        else:
            return web.Response(text=json.dumps(doc, indent=1, sort_keys=True),
                                content_type="application/json")
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def healthz(self, request: web.Request) -> web.Response:
        self.broker.metrics.request("/healthz", "http")
        if self.stopping:
            return web.json_response({"status": "stopping"}, status=503)
        waiting = self.waiting_for()
        if waiting:
            return web.json_response({"status": "starting", "waiting_for": waiting},
                                     status=503)
        return web.json_response({"status": "ready",
                                  "uptime_seconds": round(self.broker.metrics.uptime, 3)})

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
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("http listener on %s stopped", self.address)
