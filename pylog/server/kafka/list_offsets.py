"""ListOffsets (2), v1–11: earliest, latest, max timestamp, or the first offset at a time.

Timestamp -2 (EARLIEST) and -4 (EARLIEST_LOCAL, v8+: every segment is local)
→ the log start offset; -1 (LATEST) → the high watermark (== log end offset: one
replica), or with isolation_level 1 (read_committed, v2+) the last stable offset;
all with timestamp -1 as Kafka answers.  -3
(MAX_TIMESTAMP, v7+) → the first record carrying the log's largest timestamp,
with that timestamp.  -5 (LATEST_TIERED, v9+) and -6 (EARLIEST_PENDING_UPLOAD,
v11) → offset -1, timestamp -1: nothing is tiered, as Kafka answers without
remote storage.  Any other timestamp → the first record whose timestamp is ≥ it
(the ``.timeindex`` lookup behind ``PartitionLog.offset_for_time``) with that
record's timestamp, or offset -1 / timestamp -1 when there is none.
The leader epoch (v4+) is always 0.  v0 (old_style_offsets) is not served; no
current client sends it.  v10's ``timeout_ms`` needs no wait on one node.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError, TopicAuthorizationFailedError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 2
EARLIEST, LATEST, MAX_TIMESTAMP, EARLIEST_LOCAL = -2, -1, -3, -4
LATEST_TIERED, EARLIEST_PENDING_UPLOAD = -5, -6
log = logging.getLogger("pylog.server.kafka")


def _record_at_or_after(p, timestamp: int) -> tuple[int, int]:
    offset = p.offset_for_time(timestamp)
    if offset is None:
        return -1, -1
    records = p.read(offset, max_records=1)
    found = records[0].timestamp if records else -1
    return offset, found


def _lookup(p, timestamp: int, committed: bool = False) -> tuple[int, int]:
    """(offset, timestamp) for one ListOffsets query on partition log ``p``."""
    if timestamp in (EARLIEST, EARLIEST_LOCAL):
        return p.log_start_offset, -1
    if timestamp == LATEST:
        return (p.last_stable_offset if committed else p.high_watermark), -1
    if timestamp == MAX_TIMESTAMP:
        top = p.max_timestamp()
        return _record_at_or_after(p, top) if top >= 0 else (-1, -1)
    if timestamp in (LATEST_TIERED, EARLIEST_PENDING_UPLOAD):
        return -1, -1
    return _record_at_or_after(p, timestamp)


def handle_list_offsets(ctx, request):
    mod = response_module(API_KEY, ctx.version)
    committed = getattr(request, "isolation_level", 0) == 1
    topics = []
    for t in request.topics:
        parts = []
        for q in t.partitions:
            try:
                if not ctx.allowed(8, 2, t.name):              # DESCRIBE on the topic
                    raise TopicAuthorizationFailedError(f"{ctx.principal} may not "
                                                        f"describe {t.name}")
                p = ctx.broker.partition(t.name, q.partition_index)
                offset, ts = _lookup(p, q.timestamp, committed)
                code = 0
            except PylogError as exc:
                offset, ts, code = -1, -1, exc.errno
            parts.append(build(mod.ListOffsetsPartitionResponse,
                               partition_index=q.partition_index, error_code=error_code(code),
                               timestamp=ts, offset=offset, leader_epoch=0 if code == 0 else -1))
        topics.append(build(mod.ListOffsetsTopicResponse, name=t.name, partitions=tuple(parts)))
    return build(mod.ListOffsetsResponse, throttle_time=ZERO_MS, topics=tuple(topics))


register(ApiSpec(API_KEY, "ListOffsets", range(1, 12), 11, handle_list_offsets))
