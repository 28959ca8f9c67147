"""Confluent REST Proxy v2: topics, partitions and produce (consumers: rest_consumers).

    GET  /topics                          -> ["orders", ...]          (internal __ topics left out)
    GET  /topics/{topic}                  -> {name, configs, partitions: [{partition, leader, replicas}]}
    GET  /topics/{topic}/partitions       -> [{partition, leader, replicas}]
    GET  /topics/{topic}/partitions/{p}   -> {partition, leader, replicas}
    GET  /topics/{topic}/partitions/{p}/offsets -> {beginning_offset, end_offset}   (Redpanda)
    GET  /topics/{topic}/partitions/{p}/records?offset=&timeout=&max_bytes=  (Redpanda)
    GET  /brokers                         -> {"brokers": [0]}
    POST /topics/{topic}                  <- {"records": [{key?, value, partition?, headers?}]}
    POST /topics/{topic}/partitions/{p}   <- {"records": [{key?, value, headers?}]}
        -> {"key_schema_id": null, "value_schema_id": null,
            "offsets": [{partition, offset, error_code, error}]}   (one row per record, in order)

Produce bodies are ``application/vnd.kafka.json.v2+json`` (key and value any JSON,
stored as its compact UTF-8 text) or ``application/vnd.kafka.binary.v2+json`` (key and
value base64).  Headers (an extension, as Redpanda's proxy): ``[{"name": str, "value":
str | null}]``, the value base64 in binary bodies and UTF-8 text in JSON ones.  A record
without a partition goes where a Kafka client would put it (murmur2 of the key; null
keys spread).  Topics are not auto-created here (40401).

Every record is checked before anything is written: one bad record (422), an unknown
partition (40402), a record over the topic's ``max.message.bytes`` (42201), more than
``MAX_RECORDS`` records, or a body over 8 MiB (413) and nothing is stored.  Records of
one partition are appended as few batches as ``max.message.bytes`` allows (each one
CRC, each all-or-nothing), and the answer waits until the topic's flush policy says they are acknowledged (acks=all).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json

from aiohttp import web

from pylog.errors import PylogError
from pylog.records import encode_batch

from .errors import V2_JSON, RestError, read_json, rest_json

__all__ = ["routes", "parse_records", "append_records", "JSON_V2", "BINARY_V2",
           "MAX_RECORDS"]

JSON_V2 = "application/vnd.kafka.json.v2+json"
BINARY_V2 = "application/vnd.kafka.binary.v2+json"
MAX_RECORDS = 10_000            # records per produce request
MAX_HEADERS = 64


def _b64(value, what: str, i: int) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RestError(422, 422, f"records[{i}].{what} must be a base64 string or null")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RestError(422, 422, f"records[{i}].{what} is not valid base64") from None


def _json_bytes(value) -> bytes | None:
    return None if value is None else json.dumps(value, separators=(",", ":"),
                                                 ensure_ascii=False).encode()


def _headers(raw, binary: bool, i: int) -> list[tuple[str, bytes | None]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS:
        raise RestError(422, 422, f"records[{i}].headers must be a list of at most "
                                  f"{MAX_HEADERS} {{name, value}} objects")
    out = []
    for h in raw:
        if not isinstance(h, dict) or not isinstance(h.get("name", h.get("key")), str):
            raise RestError(422, 422, f"records[{i}].headers: each header needs a string "
                                      f"name")
        value = h.get("value")
        if binary:
            value = _b64(value, "headers.value", i)
        elif value is not None:
            if not isinstance(value, str):
                raise RestError(422, 422, f"records[{i}].headers values are strings in "
                                          f"JSON bodies")
            value = value.encode()
        out.append((h.get("name", h.get("key")), value))
    return out


def parse_records(doc, binary: bool, fixed_partition: int | None = None) -> list[tuple]:
    """[(partition or None, key, value, headers)] from a produce body; RestError 422."""
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise RestError(422, 422, 'the body must be {"records": [...]}')
    records = doc["records"]
    if not records:
        raise RestError(422, 422, "records is empty")
    if len(records) > MAX_RECORDS:
        raise RestError(422, 42201, f"{len(records)} records in one request; at most "
                                    f"{MAX_RECORDS}")
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise RestError(422, 422, f"records[{i}] must be an object")
        partition = r.get("partition", fixed_partition)
        if fixed_partition is not None:
            partition = fixed_partition
        if partition is not None and (isinstance(partition, bool)
                                      or not isinstance(partition, int)):
            raise RestError(422, 42202, f"records[{i}].partition must be an integer")
        if binary:
            key, value = _b64(r.get("key"), "key", i), _b64(r.get("value"), "value", i)
        else:
            key, value = _json_bytes(r.get("key")), _json_bytes(r.get("value"))
        out.append((partition, key, value, _headers(r.get("headers"), binary, i)))
    return out


async def append_records(ctx, topic_name: str, parsed: list[tuple]) -> list[dict]:
    """Append parsed records (partition None: the default partitioner); one batch per
    partition; returns one offsets row per record, in order."""
    topic = ctx.topic(topic_name)
    rows: list[dict | None] = [None] * len(parsed)
    by_partition: dict[int, list[int]] = {}
    for i, (partition, key, _v, _h) in enumerate(parsed):
        if partition is None:
            partition = topic.partition_for(key)
        elif not 0 <= partition < topic.num_partitions:
            raise RestError(404, 40402, f"partition {partition} of topic {topic_name!r} "
                                        f"not found (it has {topic.num_partitions})")
        by_partition.setdefault(partition, []).append(i)
    limit = int(getattr(topic.config, "max_message_bytes", 1_048_588))
    batches: list[tuple[int, list[int], bytes]] = []      # (partition, record indexes, batch)
    for partition, idx in by_partition.items():
        for chunk in _chunks(parsed, idx, limit):
            batches.append((partition, chunk, _batch(parsed, chunk, limit, partition)))
    for partition, idx, batch in batches:
        try:
            p = topic.partition(partition)
            result = p.append_raw(batch, wait=False)
            durable = p.durable_future(result.last_offset)
            if not durable.done():
                await asyncio.wrap_future(durable)
            elif durable.exception() is not None:
                raise durable.exception()
        except PylogError as exc:
            err = RestError.from_pylog(exc)
            for i in idx:
                rows[i] = {"partition": partition, "offset": None,
                           "error_code": err.code, "error": err.message}
            continue
        ctx.broker.metrics.records_in(len(idx))
        for n, i in enumerate(idx):
            rows[i] = {"partition": partition, "offset": result.base_offset + n,
                       "error_code": None, "error": None}
    return rows


_RECORD_OVERHEAD = 32         # bytes a record adds to a batch beyond key, value, headers
_BATCH_OVERHEAD = 61


def _size(rec) -> int:
    _p, key, value, headers = rec
    return (_RECORD_OVERHEAD + len(key or b"") + len(value or b"")
            + sum(len(k) + len(v or b"") + 8 for k, v in headers))


def _chunks(parsed, idx: list[int], limit: int):
    """Runs of ``idx`` whose batch should stay within ``limit`` bytes (estimated; a
    batch found too big anyway is refused whole by ``_batch``)."""
    chunk, size = [], _BATCH_OVERHEAD
    for i in idx:
        n = _size(parsed[i])
        if chunk and size + n > limit:
            yield chunk
            chunk, size = [], _BATCH_OVERHEAD
        chunk.append(i)
        size += n
    if chunk:
        yield chunk


def _batch(parsed, chunk: list[int], limit: int, partition: int) -> bytes:
    batch = encode_batch([parsed[i][2] for i in chunk], keys=[parsed[i][1] for i in chunk],
                         headers=[parsed[i][3] for i in chunk])
    if len(batch) > limit:
        what = "a record" if len(chunk) == 1 else f"{len(chunk)} records"
        raise RestError(422, 42201, f"{what} for partition {partition} make a "
                                    f"{len(batch)}-byte batch, over the topic's "
                                    f"max.message.bytes {limit}; nothing stored")
    return batch


def _partition_doc(i: int) -> dict:
    return {"partition": i, "leader": 0,
            "replicas": [{"broker": 0, "leader": True, "in_sync": True}]}


def routes(ctx) -> list:
    from .routing import Route

    async def list_topics(request: web.Request) -> web.Response:
        return rest_json(sorted(n for n in ctx.log.topics() if not n.startswith("__")),
                         content_type=V2_JSON)

    async def get_topic(request: web.Request) -> web.Response:
        t = ctx.topic(request.match_info["topic"])
        configs = {name: value for name, value, _default in t.config.describe()
                   if value is not None}
        return rest_json({"name": t.name, "configs": configs,
                          "partitions": [_partition_doc(i) for i in range(t.num_partitions)]},
                         content_type=V2_JSON)

    async def get_partitions(request: web.Request) -> web.Response:
        t = ctx.topic(request.match_info["topic"])
        return rest_json([_partition_doc(i) for i in range(t.num_partitions)],
                         content_type=V2_JSON)

    def _index(request) -> int:
        raw = request.match_info["partition"]
        if not raw.isdigit():
            raise RestError(404, 40402, f"partition {raw!r} not found")
        return int(raw)

    async def get_partition(request: web.Request) -> web.Response:
        index = _index(request)
        ctx.partition(request.match_info["topic"], index)
        return rest_json(_partition_doc(index), content_type=V2_JSON)

    async def get_partition_offsets(request: web.Request) -> web.Response:
        _t, p = ctx.partition(request.match_info["topic"], _index(request))
        return rest_json({"beginning_offset": p.log_start_offset,
                          "end_offset": p.log_end_offset}, content_type=V2_JSON)

    async def partition_records(request: web.Request) -> web.Response:
        """Redpanda's fetch from one partition: offset, timeout (ms), max_bytes; the
        Accept type (json or binary v2) picks the encoding."""
        from .context import int_param
        from .rest_consumers import MAX_BYTES, MAX_POLL_RECORDS, MAX_TIMEOUT_MS, _encode
        name, index = request.match_info["topic"], _index(request)
        _t, p = ctx.partition(name, index)
        accept = request.headers.get("Accept", BINARY_V2).lower()
        fmt = "json" if JSON_V2 in accept else "binary"
        offset = int_param(request, "offset", p.log_start_offset, 0, 1 << 62)
        timeout = int_param(request, "timeout", 0, 0, MAX_TIMEOUT_MS)
        max_bytes = int_param(request, "max_bytes", 1 << 20, 1, MAX_BYTES)
        if not p.log_start_offset <= offset <= p.log_end_offset:
            raise RestError(422, 42202, f"offset {offset} is outside {name}-{index}'s range "
                                        f"[{p.log_start_offset}, {p.log_end_offset}]")
        if offset == p.log_end_offset and timeout:
            await ctx.wait_for_records([p], timeout / 1000,
                                       lambda: p.log_end_offset > offset)
        recs = []
        if offset < p.log_end_offset:
            recs = [r for r in p.read(offset, max_records=MAX_POLL_RECORDS,
                                      max_bytes=max_bytes) if r.offset >= offset]
        ctx.broker.metrics.records_out(len(recs))
        return rest_json({"records": [{"topic": name, "key": _encode(fmt, r.key),
                                       "value": _encode(fmt, r.value), "partition": index,
                                       "offset": r.offset} for r in recs]},
                         content_type=JSON_V2 if fmt == "json" else BINARY_V2)

    async def brokers(request: web.Request) -> web.Response:
        return rest_json({"brokers": [0]}, content_type=V2_JSON)

    async def _produce(request: web.Request, fixed: int | None) -> web.Response:
        name = request.match_info["topic"]
        ctx.topic(name)                                 # 40401 before the body is read
        doc = await read_json(request, (JSON_V2, BINARY_V2))
        parsed = parse_records(doc, request.content_type.lower() == BINARY_V2, fixed)
        rows = await append_records(ctx, name, parsed)
        return rest_json({"key_schema_id": None, "value_schema_id": None, "offsets": rows},
                         content_type=V2_JSON)

    async def produce(request: web.Request) -> web.Response:
        return await _produce(request, None)

    async def produce_partition(request: web.Request) -> web.Response:
        index = _index(request)
        ctx.partition(request.match_info["topic"], index)
        return await _produce(request, index)

    record = {"type": "object", "properties": {
        "key": {}, "value": {}, "partition": {"type": "integer"},
        "headers": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "value": {"type": ["string", "null"]}}}}}}
    body = {"type": "object", "required": ["records"],
            "properties": {"records": {"type": "array", "items": record}}}
    produce_body = {JSON_V2: body, BINARY_V2: body}
    errors = {404: "40401 topic / 40402 partition not found", 413: "body over 8 MiB",
              415: "not a vnd.kafka.{json,binary}.v2+json body", 422: "invalid record"}
    return [
        Route("GET", "/topics", list_topics, "Topic names (REST Proxy v2)", "rest-v2"),
        Route("GET", "/topics/{topic}", get_topic, "A topic's configs and partitions",
              "rest-v2", responses={404: "40401 topic not found"}),
        Route("POST", "/topics/{topic}", produce, "Produce records (REST Proxy v2)",
              "rest-v2", body=produce_body, responses=errors),
        Route("GET", "/topics/{topic}/partitions", get_partitions, "A topic's partitions",
              "rest-v2"),
        Route("GET", "/topics/{topic}/partitions/{partition}", get_partition,
              "One partition", "rest-v2", responses={404: "40401 / 40402"}),
        Route("POST", "/topics/{topic}/partitions/{partition}", produce_partition,
              "Produce records to one partition (REST Proxy v2)", "rest-v2",
              body=produce_body, responses=errors),
        Route("GET", "/topics/{topic}/partitions/{partition}/records", partition_records,
              "Fetch records of one partition (Redpanda HTTP Proxy)", "rest-v2",
              query={"offset": "first offset", "timeout": "ms to wait at the log end",
                     "max_bytes": "at most (whole batches, at least one record)"},
              responses={422: "42202 offset out of range"}),
        Route("GET", "/brokers", brokers, "Broker ids (REST Proxy v2)", "rest-v2"),
        Route("GET", "/topics/{topic}/partitions/{partition}/offsets",
              get_partition_offsets, "Beginning and end offsets of a partition",
              "rest-v2"),
    ]
