"""Simple queue routes: a queue over HTTP in four calls, on share groups (KIP-932).

    POST /topics     {"topic" | "name", "partitions"?, "configs"?: {name: value}}  -> 201
    POST /produce    {"topic", "key"?, "partition"?, "headers"?: {name: text},
                      "payload": any JSON  |  "value": base64}
                     or {"topic", "messages": [ the same without topic ]}
                     -> {"topic", "offsets": [{"partition", "offset"}]}
    GET  /consume?topic=&group=&max=&wait_ms=&member=
                     -> {"group", "topic", "member", "records": [{"partition", "offset",
                         "delivery_count", "timestamp", "key", "payload"?, "value",
                         "headers"}]}
    POST /ack        {"group", "topic", "member"?, "acks": [{"partition", "offset",
                      "type": "accept" | "release" | "reject"}]}
                     -> {"results": [{"partition", "offset", "type", "error"}], "errors": n}
    GET  /dashboard  -> the queue panel's figures (admin_routes.queue_panel)

Members.  ``/consume`` acquires records for a share-group member: the one named by
``?member=`` or the ``X-Pylog-Member`` header, else the listener's shared member for
the group (``http``).  The answer names it (body ``member`` and the ``X-Pylog-Member``
header); ``/ack`` must name the same member (or none, for the shared one), because a
share group only accepts acknowledgements from the member holding the records.  A
record neither acked nor released comes back after ``share.record.lock.duration.ms``
(30 s by default).  At most ``MAX_MEMBERS`` client-named members per group are kept;
the least recently used leaves (its records are released).

Keys and values: ``key`` is UTF-8 text (or null); ``payload`` is stored as compact
JSON text; ``value`` is base64 bytes.  /consume gives ``value`` as base64 always and
``payload`` too when the value parses as JSON.  A share group first used here starts
at the log start (``share.auto.offset.reset=earliest``, unless the group's configs set
it): a queue delivers what was produced before its first consumer; and where share
groups write dead letters, they are on for it (``errors.deadletterqueue.enable``), so a
rejected record lands in ``<topic>.dlq``.  Acquire and acknowledge write share
state before answering, so they run in the executor, never on the event loop.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections import OrderedDict

from aiohttp import web

from pylog.broker.share_state import AcknowledgeType
from pylog.errors import PylogError

from .context import int_param
from .errors import RestError, read_json, rest_json
from .rest_v2 import append_records

__all__ = ["routes", "SHARED_MEMBER", "MAX_MEMBERS", "record_doc"]

SHARED_MEMBER = "http"
MAX_MEMBERS = 1_000
MAX_CONSUME = 1_000
MAX_WAIT_MS = 30_000
MAX_ACKS = 10_000
_TYPES = {"accept": AcknowledgeType.ACCEPT, "release": AcknowledgeType.RELEASE,
          "reject": AcknowledgeType.REJECT}


def record_doc(r, partition: int) -> dict:
    """A stored record as the simple routes and the dashboard show it."""
    value = None if r.value is None else bytes(r.value)
    key = None if r.key is None else bytes(r.key)
    doc = {"partition": partition, "offset": r.offset, "timestamp": r.timestamp,
           "key": None if key is None else key.decode("utf-8", "replace"),
           "key_b64": None if key is None else base64.b64encode(key).decode(),
           "value": None if value is None else base64.b64encode(value).decode(),
           "headers": [[k, None if v is None else bytes(v).decode("utf-8", "replace")]
                       for k, v in r.headers]}
    if value is not None:
        try:
            doc["payload"] = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            pass
    return doc


def _message(m: dict, i: int) -> tuple:
    """(partition, key, value, headers) of one /produce message; RestError 422."""
    if not isinstance(m, dict):
        raise RestError(422, 422, f"message {i} must be an object")
    key = m.get("key")
    if key is not None and not isinstance(key, str):
        raise RestError(422, 422, f"message {i}: key must be a string or null")
    if ("payload" in m) == ("value" in m):
        raise RestError(422, 422, f"message {i}: give exactly one of payload (JSON) and "
                                  f"value (base64)")
    if "payload" in m:
        value = json.dumps(m["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    elif m["value"] is None:
        value = None
    else:
        try:
            value = base64.b64decode(str(m["value"]), validate=True)
        except (binascii.Error, ValueError):
            raise RestError(422, 422, f"message {i}: value is not valid base64") from None
    headers = m.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, (str, type(None)))
                                                for v in headers.values()):
        raise RestError(422, 422, f"message {i}: headers must be {{name: text}}")
    partition = m.get("partition")
    if partition is not None and (isinstance(partition, bool) or not isinstance(partition, int)):
        raise RestError(422, 42202, f"message {i}: partition must be an integer")
    return (partition, None if key is None else key.encode(), value,
            [(k, None if v is None else v.encode()) for k, v in headers.items()])


def routes(ctx) -> list:
    from .routing import Route
    members: OrderedDict = OrderedDict()         # (group, member) -> None, LRU order

    async def create_topic(request: web.Request) -> web.Response:
        doc = await read_json(request)
        if not isinstance(doc, dict):
            raise RestError(422, 422, "the body must be a JSON object")
        name = doc.get("topic", doc.get("name"))
        if not isinstance(name, str):
            raise RestError(422, 422, "topic (the name) is required")
        n = doc.get("partitions", ctx.broker.settings.num_partitions)
        configs = doc.get("configs") or {}
        if isinstance(n, bool) or not isinstance(n, int) or not isinstance(configs, dict):
            raise RestError(422, 422, "partitions must be an integer, configs an object")
        topic = ctx.broker.create_topic(name, n, {k: str(v) for k, v in configs.items()})
        return rest_json({"topic": topic.name, "partitions": topic.num_partitions},
                         status=201)

    async def produce(request: web.Request) -> web.Response:
        doc = await read_json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str):
            raise RestError(422, 422, 'the body must be {"topic": ..., "payload" | "value" '
                                      '| "messages"}')
        ctx.topic(doc["topic"])
        msgs = doc["messages"] if "messages" in doc else [doc]
        if not isinstance(msgs, list) or not msgs or len(msgs) > 10_000:
            raise RestError(422, 422, "messages must be a list of 1-10000 messages")
        parsed = [_message(m, i) for i, m in enumerate(msgs)]
        rows = await append_records(ctx, doc["topic"], parsed)
        failed = [r for r in rows if r["error_code"]]
        return rest_json({"topic": doc["topic"],
                          "offsets": [{"partition": r["partition"], "offset": r["offset"],
                                       **({"error": r["error"]} if r["error"] else {})}
                                      for r in rows]},
                         status=500 if failed and len(failed) == len(rows) else 200)

    def _member(request, group: str, given: str | None) -> str:
        member = given or request.headers.get("X-Pylog-Member") or SHARED_MEMBER
        if not isinstance(member, str) or not 1 <= len(member) <= 255:
            raise RestError(422, 422, "member must be a string of 1-255 characters")
        return member

    configured: set[str] = set()

    async def _join(group: str, member: str) -> None:
        sg = ctx.log.share_groups
        key = (group, member)
        if key in members:
            members.move_to_end(key)
        else:
            if group not in configured:
                # A queue keeps what was produced before its first consumer: start new
                # share-partitions at the log start, and dead-letter rejected records,
                # unless the group's configs say otherwise (log.group_configs win).
                extra = {}
                if "dead_letters" in sg.defaults:   # where share groups write dead letters
                    extra["dead_letters"] = True    # reject -> <topic>.dlq, as documented
                sg.configure(group, auto_offset_reset="earliest", **extra)
                configured.add(group)
            await ctx.run(sg.join, group, member)
            members[key] = None
            client_named = [k for k in members if k[0] == group and k[1] != SHARED_MEMBER]
            if len(client_named) > MAX_MEMBERS:
                old = client_named[0]
                del members[old]
                try:
                    await ctx.run(sg.leave, *old)
                except PylogError:
                    pass

    def _group_topic(group, topic) -> None:
        if not isinstance(group, str) or not 1 <= len(group) <= 255:
            raise RestError(422, 422, "group must be a string of 1-255 characters")
        ctx.topic(topic)

    async def consume(request: web.Request) -> web.Response:
        q = request.query
        topic, group = q.get("topic", ""), q.get("group", "")
        _group_topic(group, topic)
        limit = int_param(request, "max", 100, 1, MAX_CONSUME)
        wait_ms = int_param(request, "wait_ms", 0, 0, MAX_WAIT_MS)
        member = _member(request, group, q.get("member"))
        await _join(group, member)
        sg = ctx.log.share_groups
        parts = ctx.log.topic(topic).partitions

        def acquire_once() -> list[dict]:
            out: list[dict] = []
            for i in range(len(parts)):
                if len(out) >= limit:
                    break
                for run in sg.acquire(group, member, topic, i, limit - len(out)):
                    out += [{**record_doc(r, i), "delivery_count": run.delivery_count}
                            for r in sg.records_of(group, member, topic, i, run)]
            return out

        got = await ctx.run(acquire_once)
        if not got and wait_ms:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_ms / 1000
            while not got and not ctx.closing and loop.time() < deadline:
                # woken by an append; expired locks are found by the next acquire
                await ctx.wait_for_records(parts, min(0.5, deadline - loop.time()), None)
                got = await ctx.run(acquire_once)
        ctx.broker.metrics.records_out(len(got))
        resp = rest_json({"group": group, "topic": topic, "member": member, "records": got})
        resp.headers["X-Pylog-Member"] = member
        return resp

    async def ack(request: web.Request) -> web.Response:
        doc = await read_json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("acks"), list):
            raise RestError(422, 422, 'the body must be {"group", "topic", "acks": [...]}')
        group, topic = doc.get("group"), doc.get("topic")
        _group_topic(group, topic)
        acks = doc["acks"]
        if len(acks) > MAX_ACKS:
            raise RestError(422, 422, f"at most {MAX_ACKS} acks per request")
        member = _member(request, group, doc.get("member"))
        n = ctx.log.topic(topic).num_partitions
        by_partition: dict[int, list] = {}
        for i, a in enumerate(acks):
            if not isinstance(a, dict) or a.get("type", "accept") not in _TYPES:
                raise RestError(422, 422, f"acks[{i}]: type must be accept, release or "
                                          f"reject")
            p, off = a.get("partition", 0), a.get("offset")
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < n:
                raise RestError(404, 40402, f"acks[{i}]: partition {p!r} not found")
            if isinstance(off, bool) or not isinstance(off, int) or off < 0:
                raise RestError(422, 42202, f"acks[{i}]: offset must be a non-negative "
                                            f"integer")
            by_partition.setdefault(p, []).append((off, a.get("type", "accept")))
        await _join(group, member)
        sg = ctx.log.share_groups
        results, errors = [], 0
        for p, rows in sorted(by_partition.items()):
            batches = [(off, off, _TYPES[kind]) for off, kind in rows]
            try:        # one durable write per partition when every ack is valid ...
                await ctx.run(sg.acknowledge, group, member, topic, p, batches)
                errs = [None] * len(rows)
            except PylogError:      # ... else each on its own, for per-record answers
                errs = []
                for batch in batches:
                    try:
                        await ctx.run(sg.acknowledge, group, member, topic, p, [batch])
                        errs.append(None)
                    except PylogError as exc:
                        errs.append(f"{getattr(exc, 'name', type(exc).__name__)}: {exc}")
            errors += sum(e is not None for e in errs)
            results.extend({"partition": p, "offset": off, "type": kind, "error": e}
                           for (off, kind), e in zip(rows, errs))
        return rest_json({"results": results, "errors": errors})

    async def dashboard(request: web.Request) -> web.Response:
        from .admin_routes import queue_panel
        return rest_json(await queue_panel(ctx))

    t = "queues"
    return [
        Route("POST", "/topics", create_topic, "Create a topic", t, body={
            "application/json": {"type": "object", "required": ["topic"], "properties": {
                "topic": {"type": "string"}, "partitions": {"type": "integer"},
                "configs": {"type": "object"}}}},
              responses={201: "created", 409: "topic exists", 422: "invalid"}),
        Route("POST", "/produce", produce, "Produce one message (payload JSON or value "
              "base64) or a list of messages", t, body={"application/json": {
                  "type": "object", "required": ["topic"], "properties": {
                      "topic": {"type": "string"}, "key": {"type": ["string", "null"]},
                      "partition": {"type": "integer"}, "payload": {},
                      "value": {"type": "string", "format": "byte"},
                      "headers": {"type": "object"}, "messages": {"type": "array"}}}},
              responses={404: "40401 / 40402", 422: "invalid message"}),
        Route("GET", "/consume", consume, "Acquire records from a share group (long poll)",
              t, query={"topic": "topic (required)", "group": "share group (required)",
                        "max": "at most this many records (<= 1000, default 100)",
                        "wait_ms": "wait up to this long for one (<= 30000)",
                        "member": "member id (or X-Pylog-Member); default: shared"}),
        Route("POST", "/ack", ack, "Accept, release or reject acquired records", t,
              body={"application/json": {"type": "object", "properties": {
                  "group": {"type": "string"}, "topic": {"type": "string"},
                  "member": {"type": "string"}, "acks": {"type": "array", "items": {
                      "type": "object", "properties": {
                          "partition": {"type": "integer"}, "offset": {"type": "integer"},
                          "type": {"enum": ["accept", "release", "reject"]}}}}}}}),
        Route("GET", "/dashboard", dashboard, "Queue figures per share group and topic "
              "(the dashboard's queue panel)", t),
    ]
