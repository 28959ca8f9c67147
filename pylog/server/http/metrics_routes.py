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

import json

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import (CONTENT_TYPE_PLAIN_0_0_4, choose_encoder,
                                          generate_latest)
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry

from ..metrics import CommittedOffsets, Metrics, partition_state, queues
from ..share_metrics import families as share_families

__all__ = ["collect", "render_prometheus", "routes"]


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
        yield from share_families(d.get("share_groups") or {})

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


def routes(ctx) -> list:
    from .routing import Route

    async def metrics(request: web.Request) -> web.Response:
        ctx.broker.metrics.request("/metrics", "http")
        fmt = request.query.get("format", "").lower()
        if fmt not in ("", "json", "prometheus", "openmetrics"):
            return web.json_response(
                {"error": f"unknown format {fmt!r}: use json, prometheus or openmetrics"},
                status=400)
        internal = request.query.get("internal", "") in ("1", "true", "yes")
        doc = collect(ctx.broker, ctx.offsets, internal)
        accept = request.headers.get("Accept", "")
        if fmt in ("prometheus", "openmetrics"):
            body, ctype = render_prometheus(doc, fmt=fmt)
        elif fmt == "" and _wants_prometheus(accept):
            body, ctype = render_prometheus(doc, accept=accept)
        else:
            return web.Response(text=json.dumps(doc, indent=1, sort_keys=True),
                                content_type="application/json")
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def healthz(request: web.Request) -> web.Response:
        ctx.broker.metrics.request("/healthz", "http")
        server = ctx.server
        if server.stopping:
            return web.json_response({"status": "stopping"}, status=503)
        waiting = server.waiting_for()
        if waiting:
            return web.json_response({"status": "starting", "waiting_for": waiting},
                                     status=503)
        return web.json_response({"status": "ready",
                                  "uptime_seconds": round(ctx.broker.metrics.uptime, 3)})

    return [
        Route("GET", "/metrics", metrics, "Server metrics: JSON, or Prometheus/OpenMetrics "
              "text by ?format= or Accept", "metrics",
              query={"format": "json | prometheus | openmetrics",
                     "internal": "1 to include __ topics"}),
        Route("GET", "/healthz", healthz, "200 once every listener serves and the group "
              "coordinator has loaded; 503 while starting or stopping", "metrics"),
    ]
