"""Confluent REST Proxy v2 consumer instances.

    POST   /consumers/{group}                       <- {name?, format, auto.offset.reset, auto.commit.enable}
                                                    -> {instance_id, base_uri}
    DELETE /consumers/{group}/instances/{name}
    POST|GET|DELETE .../subscription                <- {"topics": [...]} | {"topic_pattern": "re"}
    POST|GET .../assignments                        <- {"partitions": [{topic, partition}]}
    POST   .../positions                            <- {"offsets": [{topic, partition, offset}]}
    POST   .../positions/beginning | /end           <- {"partitions": [{topic, partition}]}
    GET    .../records?timeout=&max_bytes=          -> [{topic, key, value, partition, offset}]
    POST   .../offsets                              <- {"offsets": [...]} or no body: all positions
    GET    .../offsets                              <- {"partitions": [...]} -> {"offsets": [...]}

``base_uri`` is built from the request's Host (and scheme), as the REST proxy does, so
a client behind a port forward gets a URI it can reach.

Group semantics.  An instance is a member of ``group`` as pylog's embedded consumers are
(pylog/broker/consumer.py): subscribed instances of one group split the subscribed
topics' partitions round-robin among themselves, in creation order; an instance with
manual ``assignments`` reads just those.  Positions start at the group's committed
offset (the coordinator's, the one Kafka clients' OffsetFetch returns), else
``auto.offset.reset``.  Commits go to the same coordinator (``commit_offsets`` as a
non-member, generation -1, as the text protocol's COMMIT), so a confluent-kafka
consumer of the group resumes where a REST client committed and vice versa.  REST
instances do not take part in the Kafka rebalance protocol; while the group has active
Kafka members their commits are refused (409, ``kafka_error`` ILLEGAL_GENERATION)
rather than overwrite the members' offsets.

``GET records`` long-polls up to ``timeout`` ms (default ``consumer.request.timeout.ms``
1000, at most 30 s) for at least one record, reads through ``PartitionLog.read`` (CRC
checked), at most ``max_bytes`` (default and cap 8 MiB) and ``MAX_POLL_RECORDS``.  The
``Accept`` type picks the format and must match the instance's (406, 40601).

Idle instances (no request for ``consumer.instance.timeout.ms``, 300000 as Confluent's
default) are deleted by a sweep; at most ``MAX_INSTANCES`` exist at once (429 beyond).
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid

from aiohttp import web

from pylog.errors import OffsetOutOfRangeError, for_code

from .errors import V2_JSON, RestError, read_json, rest_json
from .rest_v2 import BINARY_V2, JSON_V2

__all__ = ["ConsumerInstances", "RestConsumer", "routes", "INSTANCE_TIMEOUT_MS"]

INSTANCE_TIMEOUT_MS = 300_000       # consumer.instance.timeout.ms (Confluent's default)
REQUEST_TIMEOUT_MS = 1_000          # consumer.request.timeout.ms
MAX_TIMEOUT_MS = 30_000
MAX_BYTES = 8 << 20
MAX_POLL_RECORDS = 10_000
MAX_INSTANCES = 1_000
_REQUEST_TYPES = (V2_JSON, "application/json", JSON_V2, BINARY_V2)
_FORMATS = {"json": JSON_V2, "binary": BINARY_V2}


class RestConsumer:
    """One consumer instance (event-loop thread only)."""

    def __init__(self, group: str, name: str, fmt: str, reset: str, auto_commit: bool,
                 clock) -> None:
        self.group, self.name, self.format = group, name, fmt
        self.reset, self.auto_commit = reset, auto_commit
        self.topics: list[str] = []
        self.pattern: str | None = None
        self.manual: list[tuple[str, int]] | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.clock = clock
        self.last_used = clock()
        self.reading = asyncio.Lock()

    def touch(self) -> None:
        self.last_used = self.clock()


class ConsumerInstances:
    """Every consumer instance of this listener: {(group, name): RestConsumer}."""

    def __init__(self, ctx, timeout_ms: int = INSTANCE_TIMEOUT_MS, clock=time.monotonic):
        self.ctx = ctx
        self.timeout_s = timeout_ms / 1000
        self.clock = clock
        self.instances: dict[tuple[str, str], RestConsumer] = {}
        self._sweeper: asyncio.Task | None = None

    def start(self) -> None:
        self._sweeper = asyncio.ensure_future(self._sweep())

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(10.0, max(0.05, self.timeout_s / 4)))
            self.expire()

    def expire(self) -> list[tuple[str, str]]:
        """Delete instances idle longer than the timeout; returns their keys."""
        now = self.clock()
        gone = [k for k, c in self.instances.items() if now - c.last_used > self.timeout_s]
        for k in gone:
            del self.instances[k]
        return gone

    def create(self, group: str, name: str | None, fmt: str, reset: str,
               auto_commit: bool) -> RestConsumer:
        name = name or f"rest-consumer-{uuid.uuid4().hex[:12]}"
        if (group, name) in self.instances:
            raise RestError(409, 40902, f"consumer instance {name!r} already exists in "
                                        f"group {group!r}")
        if len(self.instances) >= MAX_INSTANCES:
            raise RestError(429, 42901, f"{MAX_INSTANCES} consumer instances exist; delete "
                                        f"some or let them expire")
        c = RestConsumer(group, name, fmt, reset, auto_commit, self.clock)
        self.instances[(group, name)] = c
        return c

    def get(self, group: str, name: str) -> RestConsumer:
        c = self.instances.get((group, name))
        if c is None:
            raise RestError(404, 40403, f"consumer instance {name!r} of group {group!r} "
                                        f"not found")
        c.touch()
        return c

    def delete(self, group: str, name: str) -> None:
        self.get(group, name)
        del self.instances[(group, name)]

    # -- assignment -------------------------------------------------------------------
    def subscribed_topics(self, c: RestConsumer) -> list[str]:
        log = self.ctx.log
        if c.pattern is not None:
            rx = re.compile(c.pattern)
            return sorted(t for t in log.topics() if rx.fullmatch(t) and not
                          t.startswith("__"))
        return sorted(t for t in c.topics if log.has_topic(t))

    def assignment(self, c: RestConsumer) -> list[tuple[str, int]]:
        if c.manual is not None:
            return list(c.manual)
        members = [m for m in self.instances.values()
                   if m.group == c.group and m.manual is None and (m.topics or m.pattern)]
        if c not in members:
            return []
        subs = {id(m): set(self.subscribed_topics(m)) for m in members}
        mine, turn = [], 0
        for topic in sorted(set().union(*subs.values())):
            owners = [m for m in members if topic in subs[id(m)]]
            for i in range(self.ctx.log.topic(topic).num_partitions):
                if owners[turn % len(owners)] is c:
                    mine.append((topic, i))
                turn += 1
        return mine

    def position(self, c: RestConsumer, tp: tuple[str, int]) -> int:
        pos = c.positions.get(tp)
        if pos is None:
            found = self.ctx.log.groups.offsets.fetch(c.group, *tp)
            p = self.ctx.log.topic(tp[0]).partition(tp[1])
            if found is not None:
                pos = found.offset
            elif c.reset == "latest":
                pos = p.log_end_offset
            elif c.reset == "earliest":
                pos = p.log_start_offset
            else:
                raise RestError(422, 42202, f"no committed offset for {tp[0]}-{tp[1]} in "
                                            f"group {c.group!r} and auto.offset.reset is none")
            c.positions[tp] = pos
        return pos

    # -- reading ----------------------------------------------------------------------
    def read(self, c: RestConsumer, max_bytes: int) -> list[tuple]:
        """[(topic, partition, Record)] from the assigned partitions' positions."""
        out, size = [], 0
        for tp in self.assignment(c):
            if size >= max_bytes or len(out) >= MAX_POLL_RECORDS:
                break
            p = self.ctx.log.topic(tp[0]).partition(tp[1])
            pos = self.position(c, tp)
            if pos >= p.log_end_offset:
                continue
            try:
                recs = p.read(max(pos, p.log_start_offset),
                              max_records=MAX_POLL_RECORDS - len(out),
                              max_bytes=max(1, max_bytes - size))
            except OffsetOutOfRangeError:
                c.positions.pop(tp, None)
                continue
            for r in recs:
                if r.offset < pos:
                    continue
                n = len(r.value or b"") + len(r.key or b"")
                if out and size + n > max_bytes:
                    break
                out.append((tp[0], tp[1], r))
                size += n
                c.positions[tp] = r.offset + 1
        return out

    async def commit(self, c: RestConsumer, offsets: dict[tuple[str, int], int]) -> None:
        entries = [(t, i, off, -1, "") for (t, i), off in offsets.items()]
        if not entries:
            return
        coordinator = self.ctx.log.groups
        codes = await self.ctx.run(coordinator.commit_offsets, c.group, -1, "", entries)
        for (t, i, off, _, _), code in zip(entries, codes):
            if code:
                raise RestError.from_pylog(for_code(code)(
                    f"commit of {t}-{i} offset {off} for group {c.group!r} failed"))


def _encode(fmt: str, data: bytes | None):
    if data is None:
        return None
    if fmt == "binary":
        return base64.b64encode(bytes(data)).decode()
    try:
        return json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        return bytes(data).decode("utf-8", "replace")     # not JSON: shown as text


def _tp_list(doc, key: str) -> list[tuple[str, int, dict]]:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise RestError(422, 422, f'the body must be {{"{key}": [...]}}')
    out = []
    for row in doc[key]:
        if not isinstance(row, dict) or not isinstance(row.get("topic"), str) \
                or isinstance(row.get("partition"), bool) \
                or not isinstance(row.get("partition"), int):
            raise RestError(422, 422, f"each {key} entry needs a string topic and an "
                                      f"integer partition")
        out.append((row["topic"], row["partition"], row))
    return out


def routes(ctx) -> list:
    from .routing import Route
    reg: ConsumerInstances = ctx.consumers
    base = "/consumers/{group}/instances/{name}"

    def _inst(request) -> RestConsumer:
        return reg.get(request.match_info["group"], request.match_info["name"])

    def _checked(topic: str, partition: int) -> tuple[str, int]:
        ctx.partition(topic, partition)
        return topic, partition

    async def create(request: web.Request) -> web.Response:
        group = request.match_info["group"]
        if not 1 <= len(group) <= 255:
            raise RestError(422, 422, "group id must be 1-255 characters")
        doc = await read_json(request, _REQUEST_TYPES, allow_empty=True) or {}
        if not isinstance(doc, dict):
            raise RestError(422, 422, "the body must be a JSON object")
        fmt = str(doc.get("format", "binary")).lower()
        if fmt not in _FORMATS:
            raise RestError(422, 422, f"format {fmt!r} is not supported: use json or binary "
                                      f"(avro, protobuf and jsonschema need a schema "
                                      f"registry)")
        reset = str(doc.get("auto.offset.reset", "latest")).lower()
        if reset not in ("earliest", "latest", "none"):
            raise RestError(422, 422, f"auto.offset.reset {reset!r}: earliest, latest or "
                                      f"none")
        auto = str(doc.get("auto.commit.enable", "true")).lower() == "true"
        name = doc.get("name")
        if name is not None and (not isinstance(name, str) or not name
                                 or len(name) > 255):
            raise RestError(422, 422, "name must be a string of 1-255 characters")
        c = reg.create(group, name, fmt, reset, auto)
        uri = f"{request.scheme}://{request.host}/consumers/{group}/instances/{c.name}"
        return rest_json({"instance_id": c.name, "base_uri": uri}, content_type=V2_JSON)

    async def delete(request: web.Request) -> web.Response:
        reg.delete(request.match_info["group"], request.match_info["name"])
        return web.Response(status=204)

    async def subscribe(request: web.Request) -> web.Response:
        c = _inst(request)
        doc = await read_json(request, _REQUEST_TYPES)
        if not isinstance(doc, dict) or ("topics" in doc) == ("topic_pattern" in doc):
            raise RestError(422, 422, 'the body must be {"topics": [...]} or '
                                      '{"topic_pattern": "..."}')
        if c.manual is not None:
            raise RestError(409, 40903, "this instance has manual assignments; subscription "
                                        "and assignment are exclusive")
        if "topic_pattern" in doc:
            try:
                re.compile(str(doc["topic_pattern"]))
            except re.error as exc:
                raise RestError(422, 422, f"topic_pattern: {exc}") from None
            c.pattern, c.topics = str(doc["topic_pattern"]), []
        else:
            topics = doc["topics"]
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise RestError(422, 422, "topics must be a list of names")
            c.topics, c.pattern = list(topics), None
        c.positions.clear()
        return web.Response(status=204)

    async def get_subscription(request: web.Request) -> web.Response:
        c = _inst(request)
        topics = reg.subscribed_topics(c) if c.pattern else list(c.topics)
        return rest_json({"topics": topics}, content_type=V2_JSON)

    async def unsubscribe(request: web.Request) -> web.Response:
        c = _inst(request)
        c.topics, c.pattern = [], None
        c.positions.clear()
        return web.Response(status=204)

    async def assign(request: web.Request) -> web.Response:
        c = _inst(request)
        tps = [_checked(t, p) for t, p, _ in
               _tp_list(await read_json(request, _REQUEST_TYPES), "partitions")]
        if c.topics or c.pattern:
            raise RestError(409, 40903, "this instance is subscribed; subscription and "
                                        "assignment are exclusive")
        c.manual = tps
        c.positions = {tp: off for tp, off in c.positions.items() if tp in tps}
        return web.Response(status=204)

    async def get_assignments(request: web.Request) -> web.Response:
        c = _inst(request)
        return rest_json({"partitions": [{"topic": t, "partition": i}
                                         for t, i in reg.assignment(c)]},
                         content_type=V2_JSON)

    async def seek(request: web.Request) -> web.Response:
        c = _inst(request)
        rows = _tp_list(await read_json(request, _REQUEST_TYPES), "offsets")
        for t, i, row in rows:
            off = row.get("offset")
            if isinstance(off, bool) or not isinstance(off, int) or off < 0:
                raise RestError(422, 42202, f"offset for {t}-{i} must be a non-negative "
                                            f"integer")
            _checked(t, i)
        for t, i, row in rows:
            c.positions[(t, i)] = row["offset"]
        return web.Response(status=204)

    async def _seek_to(request: web.Request, end: bool) -> web.Response:
        c = _inst(request)
        rows = _tp_list(await read_json(request, _REQUEST_TYPES), "partitions")
        for t, i, _ in rows:
            _t, p = ctx.partition(t, i)
            c.positions[(t, i)] = p.log_end_offset if end else p.log_start_offset
        return web.Response(status=204)

    async def seek_beginning(request: web.Request) -> web.Response:
        return await _seek_to(request, False)

    async def seek_end(request: web.Request) -> web.Response:
        return await _seek_to(request, True)

    async def records(request: web.Request) -> web.Response:
        c = _inst(request)
        accept = request.headers.get("Accept", _FORMATS[c.format])
        wanted = _FORMATS[c.format]
        kinds = {a.split(";")[0].strip().lower() for a in accept.split(",")}
        if wanted not in kinds and not kinds & {"*/*", "application/*"}:
            raise RestError(406, 40601, f"the consumer's format is {c.format} "
                                        f"({wanted}); the request accepts {accept}")
        from .context import int_param
        timeout = int_param(request, "timeout", REQUEST_TIMEOUT_MS, 0, MAX_TIMEOUT_MS)
        max_bytes = int_param(request, "max_bytes", MAX_BYTES, 1, MAX_BYTES)
        async with c.reading:
            got = reg.read(c, max_bytes)
            if not got and timeout > 0:
                parts = [ctx.log.topic(t).partition(i) for t, i in reg.assignment(c)]
                box: list = []

                def ready() -> bool:
                    box.extend(reg.read(c, max_bytes))
                    return bool(box)
                await ctx.wait_for_records(parts, timeout / 1000, ready)
                got = box
            if c.auto_commit and got:
                last: dict = {}
                for t, i, r in got:
                    last[(t, i)] = r.offset + 1
                await reg.commit(c, last)
        c.touch()
        ctx.broker.metrics.records_out(len(got))
        body = [{"topic": t, "key": _encode(c.format, r.key),
                 "value": _encode(c.format, r.value), "partition": i, "offset": r.offset,
                 "timestamp": r.timestamp} for t, i, r in got]
        return rest_json(body, content_type=wanted)

    async def commit(request: web.Request) -> web.Response:
        c = _inst(request)
        doc = await read_json(request, _REQUEST_TYPES, allow_empty=True)
        if doc is None or (isinstance(doc, dict) and not doc.get("offsets")):
            offsets = dict(c.positions)             # everything fetched so far
        else:
            offsets = {}
            for t, i, row in _tp_list(doc, "offsets"):
                off = row.get("offset")
                if isinstance(off, bool) or not isinstance(off, int) or off < 0:
                    raise RestError(422, 42202, f"offset for {t}-{i} must be a "
                                                f"non-negative integer")
                offsets[_checked(t, i)] = off
        await reg.commit(c, offsets)
        return rest_json({"offsets": [{"topic": t, "partition": i, "offset": o}
                                      for (t, i), o in sorted(offsets.items())]},
                         content_type=V2_JSON)

    async def committed(request: web.Request) -> web.Response:
        c = _inst(request)
        doc = await read_json(request, _REQUEST_TYPES, allow_empty=True)
        tps = ([(t, i) for t, i, _ in _tp_list(doc, "partitions")] if doc
               else reg.assignment(c))
        out = []
        for t, i in tps:
            found = ctx.log.groups.offsets.fetch(c.group, t, i)
            out.append({"topic": t, "partition": i,
                        "offset": -1 if found is None else found.offset,
                        "metadata": "" if found is None else (found.metadata or "")})
        return rest_json({"offsets": out}, content_type=V2_JSON)

    tp = {"type": "object", "properties": {"topic": {"type": "string"},
                                           "partition": {"type": "integer"}}}
    tps = {V2_JSON: {"type": "object", "properties": {
        "partitions": {"type": "array", "items": tp}}}}
    offs = {V2_JSON: {"type": "object", "properties": {"offsets": {"type": "array", "items": {
        "type": "object", "properties": {"topic": {"type": "string"},
                                         "partition": {"type": "integer"},
                                         "offset": {"type": "integer"}}}}}}}
    not_found = {404: "40403 consumer instance not found"}
    t = "rest-v2-consumers"
    return [
        Route("POST", "/consumers/{group}", create, "Create a consumer instance", t,
              body={V2_JSON: {"type": "object", "properties": {
                  "name": {"type": "string"}, "format": {"enum": ["json", "binary"]},
                  "auto.offset.reset": {"enum": ["earliest", "latest", "none"]},
                  "auto.commit.enable": {"enum": ["true", "false"]}}}},
              responses={409: "40902 instance exists"}),
        Route("DELETE", base, delete, "Delete a consumer instance", t, responses=not_found),
        Route("POST", base + "/subscription", subscribe, "Subscribe to topics or a "
              "pattern", t, body={V2_JSON: {"type": "object", "properties": {
                  "topics": {"type": "array", "items": {"type": "string"}},
                  "topic_pattern": {"type": "string"}}}}, responses=not_found),
        Route("GET", base + "/subscription", get_subscription, "Subscribed topics", t),
        Route("DELETE", base + "/subscription", unsubscribe, "Unsubscribe", t),
        Route("POST", base + "/assignments", assign, "Assign partitions manually", t,
              body=tps),
        Route("GET", base + "/assignments", get_assignments, "Assigned partitions", t),
        Route("POST", base + "/positions", seek, "Seek to offsets", t, body=offs),
        Route("POST", base + "/positions/beginning", seek_beginning, "Seek to the log "
              "start", t, body=tps),
        Route("POST", base + "/positions/end", seek_end, "Seek to the log end", t, body=tps),
        Route("GET", base + "/records", records, "Fetch records (long poll; Accept picks "
              "the format)", t, query={"timeout": "ms to wait for a record (<= 30000)",
                                       "max_bytes": "at most this many key+value bytes"},
              responses={406: "40601 Accept does not match the instance's format"}),
        Route("POST", base + "/offsets", commit, "Commit offsets (no body: every "
              "position)", t, body=offs),
        Route("GET", base + "/offsets", committed, "Committed offsets", t, body=tps),
    ]
