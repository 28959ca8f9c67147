"""Dead letters for the dashboard: list, requeue, purge.

    GET  /api/dlq?topic=<dead-letter topic>&partition=&offset=&max=
         -> records as the message browser shows them, each with ``origin``: the
            pylog-dlq-* headers parsed (broker/dead_letters.py), or ``origin_error``
    POST /api/dlq/requeue {"topic", "partition", "offset"}      -> {"requeued": {...}}
    POST /api/dlq/purge   {"topic", "partition"?, "offset"?}    -> {"log_start_offsets"}

Requeue: when ``pylog.broker.dead_letters.requeue`` exists (the queue doors' function)
it is called as ``requeue(log, topic, partition, offset)``; otherwise this module
produces the record again to its origin topic and partition, with its key, value,
timestamp and own headers (the ``pylog-dlq-*`` ones dropped).  Either way the dead
letter itself stays until purged.  Purge is Kafka's DeleteRecords: the dead-letter
partition's log start moves to ``offset`` (default: its end).
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from pylog.broker import dead_letters
from pylog.errors import OffsetOutOfRangeError, PylogError
from pylog.records import encode_batch

from .context import int_param
from .errors import RestError, read_json, rest_json
from .queue_routes import record_doc

__all__ = ["routes", "requeue_fallback"]


def _origin(r) -> tuple[dict | None, str | None]:
    try:
        o = dead_letters.parse_dlq_headers(r.headers)
    except PylogError as exc:
        return None, str(exc)
    return o._asdict(), None


async def requeue_fallback(ctx, dlq_topic: str, partition: int, offset: int) -> dict:
    """Produce the dead letter at (dlq_topic, partition, offset) back to its origin."""
    _t, p = ctx.partition(dlq_topic, partition)
    try:
        recs = [r for r in p.read(offset, max_records=1) if r.offset == offset]
    except OffsetOutOfRangeError:
        recs = []
    if not recs:
        raise RestError(404, 40402, f"no record at {dlq_topic}-{partition}@{offset}")
    r = recs[0]
    origin, error = _origin(r)
    if origin is None:
        raise RestError(422, 422, f"{dlq_topic}-{partition}@{offset}: {error}")
    _ot, op = ctx.partition(origin["topic"], origin["partition"])
    headers = [(k, v) for k, v in r.headers if k not in dead_letters.DLQ_HEADERS]
    batch = encode_batch([r.value], keys=[r.key], headers=[headers],
                         timestamps=[r.timestamp])
    result = op.append_raw(batch, wait=False)
    durable = op.durable_future(result.last_offset)
    if not durable.done():
        await asyncio.wrap_future(durable)
    elif durable.exception() is not None:
        raise durable.exception()
    return {"topic": origin["topic"], "partition": origin["partition"],
            "offset": result.base_offset}


def routes(ctx) -> list:
    from .routing import Route

    async def list_dead(request: web.Request) -> web.Response:
        name = request.query.get("topic", "")
        index = int_param(request, "partition", 0, 0, 1 << 31)
        _t, p = ctx.partition(name, index)
        limit = int_param(request, "max", 50, 1, 500)
        start, end = p.log_start_offset, p.log_end_offset
        offset = max(start, int_param(request, "offset", start, 0, 1 << 62))
        out = []
        if offset < end:
            for r in p.read(offset, max_records=limit):
                if r.offset < offset:
                    continue
                doc = record_doc(r, index)
                doc["origin"], doc["origin_error"] = _origin(r)
                out.append(doc)
        return rest_json({"topic": name, "partition": index, "log_start_offset": start,
                          "log_end_offset": end, "records": out[:limit],
                          "requeue": "dead_letters.requeue"
                          if hasattr(dead_letters, "requeue") else "republish"})

    def _where(doc) -> tuple[str, int, int | None]:
        if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str):
            raise RestError(422, 422, 'the body must be {"topic", "partition", "offset"}')
        part, off = doc.get("partition", 0), doc.get("offset")
        if isinstance(part, bool) or not isinstance(part, int):
            raise RestError(422, 42202, "partition must be an integer")
        if off is not None and (isinstance(off, bool) or not isinstance(off, int) or off < 0):
            raise RestError(422, 42202, "offset must be a non-negative integer")
        return doc["topic"], part, off

    async def requeue(request: web.Request) -> web.Response:
        topic, part, off = _where(await read_json(request))
        if off is None:
            raise RestError(422, 42202, "offset is required")
        ctx.partition(topic, part)
        doors = getattr(dead_letters, "requeue", None)
        if doors is not None:       # the queue doors' requeue, once merged
            result = await ctx.run(doors, ctx.log, topic, part, off)
            done = result._asdict() if hasattr(result, "_asdict") else result
        else:
            done = await requeue_fallback(ctx, topic, part, off)
        return rest_json({"requeued": done})

    async def purge(request: web.Request) -> web.Response:
        doc = await read_json(request)
        if isinstance(doc, dict) and doc.get("partition") is None:
            doc = {**doc, "partition": 0}
            every = True
        else:
            every = False
        topic, which, off = _where(doc)
        t = ctx.topic(topic)
        starts = {}
        for i in (range(t.num_partitions) if every else [which]):
            _t, p = ctx.partition(t.name, i)
            target = p.log_end_offset if off is None else min(off, p.log_end_offset)
            starts[i] = p.delete_records(target)     # as DeleteRecords: on the loop
        return rest_json({"topic": t.name, "log_start_offsets": starts})

    t = "dashboard-api"
    where = {"application/json": {"type": "object", "properties": {
        "topic": {"type": "string"}, "partition": {"type": "integer"},
        "offset": {"type": "integer"}}}}
    return [
        Route("GET", "/api/dlq", list_dead, "Dead letters with their origin", t,
              query={"topic": "dead-letter topic", "partition": "partition",
                     "offset": "first offset", "max": "<= 500"}),
        Route("POST", "/api/dlq/requeue", requeue, "Send a dead letter back to its "
              "origin topic", t, body=where),
        Route("POST", "/api/dlq/purge", purge, "Delete dead letters below an offset "
              "(DeleteRecords)", t, body=where),
    ]
