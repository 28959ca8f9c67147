"""ListOffsets (2), v1–5: earliest, latest, or the first offset at or after a time.

Timestamp -2 → the log start offset, -1 → the high watermark (== log end
offset: one replica, no transactions), both with timestamp -1 as Kafka answers.
Any other timestamp → the first record whose timestamp is ≥ it (the
``.timeindex`` lookup behind ``PartitionLog.offset_for_time``) with that
record's timestamp, or offset -1 / timestamp -1 when there is none.  The leader
epoch (v4+) is always 0.  v0 (old_style_offsets) is not served; no current
client sends it.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 2
EARLIEST, LATEST = -2, -1
log = logging.getLogger("pylog.server.kafka")


def _lookup(p, timestamp: int) -> tuple[int, int]:
    """(offset, timestamp) for one ListOffsets query on partition log ``p``."""
    if timestamp == EARLIEST:
        return p.log_start_offset, -1
    if timestamp == LATEST:
        return p.high_watermark, -1
    offset = p.offset_for_time(timestamp)
    if offset is None:
        return -1, -1
    records = p.read(offset, max_records=1)
    found = records[0].timestamp if records else -1
    return offset, found


def handle_list_offsets(ctx, request):
    mod = response_module(API_KEY, ctx.version)
    topics = []
    for t in request.topics:
        parts = []
        for q in t.partitions:
            try:
                p = ctx.broker.partition(t.name, q.partition_index)
                offset, ts = _lookup(p, q.timestamp)
                code = 0
            except PylogError as exc:
                offset, ts, code = -1, -1, exc.errno
            parts.append(build(mod.ListOffsetsPartitionResponse,
                               partition_index=q.partition_index, error_code=error_code(code),
                               timestamp=ts, offset=offset, leader_epoch=0 if code == 0 else -1))
        topics.append(build(mod.ListOffsetsTopicResponse, name=t.name, partitions=tuple(parts)))
    return build(mod.ListOffsetsResponse, throttle_time=ZERO_MS, topics=tuple(topics))


register(ApiSpec(API_KEY, "ListOffsets", range(1, 6), 5, handle_list_offsets))
