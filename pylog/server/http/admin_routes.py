"""The dashboard's JSON (``/api/...``): one data function per page, thin over the broker.

    GET    /api/overview                    topics, partitions, bytes, log ends, rates, conns, uptime
    GET    /api/topics?q=&offset=&limit=    a page of topics (name filter), total count
    GET    /api/topics/{topic}              partitions (start, end, bytes), configs
    DELETE /api/topics/{topic}              delete (the page asks for confirmation)
    GET    /api/topics/{topic}/messages?partition=&offset=|timestamp=&max=
    GET    /api/groups                      groups: state, members, lag
    GET    /api/groups/{group}              members (assignment decoded), committed, lag
    POST   /api/groups/{group}/reset        {"topic", "partition"?, "to": earliest|latest|offset|timestamp, "offset"?, "timestamp"?}
    GET    /api/queues                      = GET /dashboard

Records come from ``PartitionLog.read`` (CRC checked) and are shown through
``queue_routes.record_doc`` (key and value as text and base64, headers, timestamp).
Every value goes to the page as JSON data; the page writes it with ``textContent``.
"""
from __future__ import annotations

import struct
import time

from aiohttp import web

from pylog.errors import OffsetOutOfRangeError, PylogError, for_code

from .context import int_param
from .errors import RestError, read_json, rest_json
from .queue_routes import record_doc

__all__ = ["routes", "queue_panel", "share_keys", "decode_assignment"]

MAX_PAGE = 500
MAX_MESSAGES = 500


def decode_assignment(raw: bytes) -> list[tuple[str, int]]:
    """The consumer protocol's Assignment (version, [topic, [partition]], user data)
    as (topic, partition) pairs; empty if it does not parse."""
    out = []
    try:
        pos = 2
        (n,) = struct.unpack_from(">i", raw, pos)
        pos += 4
        for _ in range(max(0, n)):
            (length,) = struct.unpack_from(">h", raw, pos)
            pos += 2
            topic = bytes(raw[pos:pos + length]).decode()
            pos += length
            (count,) = struct.unpack_from(">i", raw, pos)
            pos += 4
            parts = struct.unpack_from(f">{max(0, count)}i", raw, pos)
            pos += 4 * max(0, count)
            out.extend((topic, p) for p in parts)
    except (struct.error, UnicodeDecodeError):
        return []
    return out


def share_keys(log) -> list[tuple[str, str]]:
    """(group, topic) of every share-partition known (in memory or in the store)."""
    sg = log.share_groups
    keys = {(g, t) for g, t, _ in sg.store.keys()}
    keys |= {(g, t) for g, t, _ in list(getattr(sg, "_partitions", {}))}
    return sorted(k for k in keys if log.has_topic(k[1]))


async def queue_panel(ctx) -> dict:
    """Per share group and topic: available, acquired, acknowledged, released, expired,
    archived (totals since the server started, as SharePartition.stats), dead_lettered,
    and the dead-letter topic's name and retained records."""
    from pylog.broker.dead_letters import dlq_topic_name
    log = ctx.log

    def gather():
        rows = []
        for group, topic in share_keys(log):
            try:
                stats = log.share_groups.stats(group, topic)
            except PylogError:
                continue
            row = {"group": group, "topic": topic, "partitions": stats}
            for name in ("available", "acquired"):
                row[name] = sum(s[name] for s in stats.values())
            for name in ("acknowledged", "released", "expired", "archived"):
                row[name] = sum(s.get(f"{name}_total", 0) for s in stats.values())
            sp = log.share_groups.share_partition(group, topic, 0)
            dlq = getattr(sp, "dlq_topic", None) or dlq_topic_name(topic)
            row["dlq_topic"] = dlq
            row["dlq_exists"] = log.has_topic(dlq)
            row["dlq_retained"] = 0
            if row["dlq_exists"]:
                row["dlq_retained"] = sum(p.log_end_offset - p.log_start_offset
                                          for p in log.topic(dlq).partitions)
            counted = [s["dead_lettered_total"] for s in stats.values()
                       if "dead_lettered_total" in s]
            # dead letters written since the server started, where share groups count
            # them; else what the dead-letter topic retains
            row["dead_lettered"] = sum(counted) if counted else row["dlq_retained"]
            rows.append(row)
        return rows

    return {"queues": await ctx.run(gather), "updated_at": time.time()}


def _topic_row(t) -> dict:
    parts = t.partitions
    return {"name": t.name, "partitions": len(parts),
            "size_bytes": sum(int(getattr(p, "size_bytes", 0)) for p in parts),
            "log_end_offset": sum(p.log_end_offset for p in parts),
            "records": sum(p.log_end_offset - p.log_start_offset for p in parts),
            "internal": t.name.startswith("__")}


def overview(ctx) -> dict:
    m = ctx.broker.metrics.snapshot()
    topics = partitions = size = end = 0
    for name in ctx.log.topics():
        if name.startswith("__"):
            continue
        try:
            row = _topic_row(ctx.log.topic(name))
        except PylogError:
            continue
        topics += 1
        partitions += row["partitions"]
        size += row["size_bytes"]
        end += row["log_end_offset"]
    return {"topics": topics, "partitions": partitions, "size_bytes": size,
            "log_end_offset": end, "uptime_seconds": m["uptime_seconds"],
            "connections": m["connections"], "records": m["records"],
            "consumer_instances": len(ctx.consumers.instances),
            "live": ctx.live.stats(), "time": time.time()}


def routes(ctx) -> list:
    from .routing import Route
    log = ctx.log

    async def get_overview(request: web.Request) -> web.Response:
        return rest_json(overview(ctx))

    async def list_topics(request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        internal = request.query.get("internal") in ("1", "true")
        offset = int_param(request, "offset", 0, 0, 1 << 31)
        limit = int_param(request, "limit", 50, 1, MAX_PAGE)
        names = sorted(n for n in log.topics() if q.lower() in n.lower()
                       and (internal or not n.startswith("__")))
        rows = []
        for n in names[offset:offset + limit]:
            try:
                rows.append(_topic_row(log.topic(n)))
            except PylogError:
                continue
        return rest_json({"total": len(names), "offset": offset, "limit": limit,
                          "topics": rows})

    async def get_topic(request: web.Request) -> web.Response:
        t = ctx.topic(request.match_info["topic"])
        parts = [{"partition": i, "log_start_offset": p.log_start_offset,
                  "log_end_offset": p.log_end_offset,
                  "size_bytes": int(getattr(p, "size_bytes", 0))}
                 for i, p in enumerate(t.partitions)]
        configs = [{"name": n, "value": v, "default": d} for n, v, d in t.config.describe()]
        return rest_json({**_topic_row(t), "partition_list": parts, "configs": configs})

    async def delete_topic(request: web.Request) -> web.Response:
        name = request.match_info["topic"]
        ctx.topic(name)
        log.delete_topic(name)          # as the text protocol: on the loop thread
        return web.Response(status=204)

    async def messages(request: web.Request) -> web.Response:
        name = request.match_info["topic"]
        index = int_param(request, "partition", 0, 0, 1 << 31)
        _t, p = ctx.partition(name, index)
        limit = int_param(request, "max", 50, 1, MAX_MESSAGES)
        start, end = p.log_start_offset, p.log_end_offset
        if "timestamp" in request.query:
            ts = int_param(request, "timestamp", 0, 0, 1 << 62)
            found = p.offset_for_time(ts)
            offset = end if found is None else found
        else:
            offset = int_param(request, "offset", start, 0, 1 << 62)
        offset = max(offset, start)
        out = []
        if offset < end:
            try:
                recs = p.read(offset, max_records=limit, max_bytes=4 << 20)
            except OffsetOutOfRangeError:
                recs = []
            out = [record_doc(r, index) for r in recs if r.offset >= offset][:limit]
        return rest_json({"topic": name, "partition": index, "log_start_offset": start,
                          "log_end_offset": end, "offset": offset, "records": out})

    def _group_rows(group: str) -> dict:
        state, n = ctx.offsets.state(group)
        committed = ctx.offsets.committed(group)
        parts, lag = [], 0
        for (topic, i), off in sorted(committed.items()):
            if not log.has_topic(topic) or i >= log.topic(topic).num_partitions:
                continue
            end = log.topic(topic).partition(i).log_end_offset
            parts.append({"topic": topic, "partition": i, "committed_offset": off,
                          "log_end_offset": end, "lag": max(0, end - off)})
            lag += max(0, end - off)
        rest = [c.name for (g, _), c in ctx.consumers.instances.items() if g == group]
        return {"group": group, "state": state, "members": n, "lag": lag,
                "partitions": parts, "rest_instances": rest}

    async def list_groups(request: web.Request) -> web.Response:
        groups = ctx.offsets.groups()
        groups = sorted(set(groups) | {g for g, _ in ctx.consumers.instances})
        rows = []
        for g in groups[:MAX_PAGE * 4]:
            r = _group_rows(g)
            del r["partitions"]
            rows.append(r)
        return rest_json({"groups": rows, "total": len(groups)})

    async def get_group(request: web.Request) -> web.Response:
        group = request.match_info["group"]
        doc = _group_rows(group)
        code, summary = log.groups.describe_group(group)
        if code:
            raise RestError.from_pylog(for_code(code)(f"group {group!r}"))
        doc["protocol"] = summary.protocol
        doc["member_list"] = [{"member_id": m.member_id, "client_id": m.client_id,
                               "client_host": m.client_host,
                               "assignment": [{"topic": t, "partition": p} for t, p in
                                              decode_assignment(m.assignment)]}
                              for m in summary.members]
        return rest_json(doc)

    async def reset(request: web.Request) -> web.Response:
        group = request.match_info["group"]
        doc = await read_json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str):
            raise RestError(422, 422, 'the body must be {"topic", "partition"?, "to"}')
        t = ctx.topic(doc["topic"])
        to = doc.get("to", "earliest")
        which = doc.get("partition")
        indexes = range(t.num_partitions) if which is None else [which]
        plan = []
        for i in indexes:
            _t, p = ctx.partition(t.name, i)
            if to == "earliest":
                off = p.log_start_offset
            elif to == "latest":
                off = p.log_end_offset
            elif to == "offset" and isinstance(doc.get("offset"), int):
                off = min(max(doc["offset"], p.log_start_offset), p.log_end_offset)
            elif to == "timestamp" and isinstance(doc.get("timestamp"), int):
                found = p.offset_for_time(doc["timestamp"])
                off = p.log_end_offset if found is None else found
            else:
                raise RestError(422, 422, "to must be earliest, latest, offset (with "
                                          "offset) or timestamp (with timestamp)")
            plan.append((i, off))
        for i, off in plan:
            await ctx.run(ctx.offsets.commit, group, t.name, i, off)
        return rest_json({"group": group, "topic": t.name,
                          "offsets": [{"partition": i, "offset": o} for i, o in plan]})

    async def queues(request: web.Request) -> web.Response:
        return rest_json(await queue_panel(ctx))

    t = "dashboard-api"
    return [
        Route("GET", "/api/overview", get_overview, "Overview figures", t),
        Route("GET", "/api/topics", list_topics, "A page of topics", t,
              query={"q": "name contains", "offset": "first row", "limit": "rows (<= 500)",
                     "internal": "1: include __ topics"}),
        Route("GET", "/api/topics/{topic}", get_topic, "Partitions and configs", t),
        Route("DELETE", "/api/topics/{topic}", delete_topic, "Delete a topic", t,
              responses={204: "deleted", 404: "40401"}),
        Route("GET", "/api/topics/{topic}/messages", messages, "Browse records", t,
              query={"partition": "partition", "offset": "first offset",
                     "timestamp": "first record at or after (ms)", "max": "<= 500"}),
        Route("GET", "/api/groups", list_groups, "Consumer groups", t),
        Route("GET", "/api/groups/{group}", get_group, "A group: members, committed "
              "offsets, lag", t),
        Route("POST", "/api/groups/{group}/reset", reset, "Reset committed offsets "
              "(refused while the group has active members)", t,
              body={"application/json": {"type": "object", "properties": {
                  "topic": {"type": "string"}, "partition": {"type": "integer"},
                  "to": {"enum": ["earliest", "latest", "offset", "timestamp"]},
                  "offset": {"type": "integer"}, "timestamp": {"type": "integer"}}}},
              responses={409: "the group has active members"}),
        Route("GET", "/api/queues", queues, "Share-group figures (= /dashboard)", t),
    ]
