"""DescribeShareGroupOffsets (90, v0–1), AlterShareGroupOffsets (91, v0) and
DeleteShareGroupOffsets (92, v0): a share group's start offsets, through
pylog/broker/share_admin.py.

Describe answers start offset -1 for partitions the group never used (Kafka's
answer), and v1's lag (records from the start not yet acknowledged or archived).
Alter and Delete need an empty group (NON_EMPTY_GROUP, 68); an unknown group is
GROUP_ID_NOT_FOUND (69); a group id of another type is GROUP_ID_NOT_FOUND too.
"""
from __future__ import annotations

from pylog.broker import share_admin
from pylog.errors import PylogError, error_name

from .consumer_groups import topic_id_of
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

DESCRIBE, ALTER, DELETE = 90, 91, 92
GROUP_ID_NOT_FOUND = 69


def _is_share_group(log_, group: str) -> bool:
    return log_.share_members.describe(group) is not None or share_admin.has_state(log_, group)


def handle_describe_share_group_offsets(ctx, request):
    mod = response_module(DESCRIBE, ctx.version)
    log_ = ctx.broker.log
    groups = []
    for g in request.groups:
        if not _is_share_group(log_, g.group_id):
            groups.append(build(mod.DescribeShareGroupOffsetsResponseGroup,
                                group_id=g.group_id, topics=(),
                                error_code=error_code(GROUP_ID_NOT_FOUND),
                                error_message=f"Group {g.group_id} is not a share group."))
            continue
        wanted = g.topics
        if wanted is None:               # every topic the group has state for
            names = sorted({t for gid, t, _p in log_.share_groups.store.keys()
                            if gid == g.group_id})
            pairs = [(n, None) for n in names]
        else:
            pairs = [(t.topic_name, t.partitions) for t in wanted]
        topics = []
        for name, parts in pairs:
            try:
                n = len(log_.topic(name).partitions)
            except PylogError as exc:
                code, msg, n = exc.errno, str(exc), 0
                parts = parts or ()
            else:
                code, msg = 0, None
            rows = []
            for i in (range(n) if parts is None else parts):
                if code or not 0 <= i < n:
                    c = code or 3
                    rows.append(build(mod.DescribeShareGroupOffsetsResponsePartition,
                                      partition_index=i, start_offset=-1, leader_epoch=-1,
                                      lag=-1, error_code=error_code(c),
                                      error_message=msg or error_name(c)))
                    continue
                start, lag = share_admin.start_offset(log_, g.group_id, name, i)
                rows.append(build(mod.DescribeShareGroupOffsetsResponsePartition,
                                  partition_index=i, start_offset=start,
                                  leader_epoch=0 if start >= 0 else -1, lag=lag,
                                  error_code=error_code(0), error_message=None))
            topics.append(build(mod.DescribeShareGroupOffsetsResponseTopic, topic_name=name,
                                topic_id=topic_id_of(log_, name), partitions=tuple(rows)))
        groups.append(build(mod.DescribeShareGroupOffsetsResponseGroup, group_id=g.group_id,
                            topics=tuple(topics), error_code=error_code(0),
                            error_message=None))
    return build(mod.DescribeShareGroupOffsetsResponse, throttle_time=ZERO_MS,
                 groups=tuple(groups))


def _group_error(log_, group: str) -> tuple[int, str | None]:
    if not group:
        return 42, "GroupId can't be empty."
    if not _is_share_group(log_, group):
        return GROUP_ID_NOT_FOUND, f"Group {group} is not a share group."
    if not share_admin.is_empty(log_, group):
        return 68, f"Share group {group} has members; stop them first."
    return 0, None


def handle_alter_share_group_offsets(ctx, request):
    mod = response_module(ALTER, ctx.version)
    log_ = ctx.broker.log
    code, message = _group_error(log_, request.group_id)
    topics = []
    if not code:
        for t in request.topics:
            rows = []
            for p in t.partitions:
                try:
                    share_admin.alter_start_offset(log_, request.group_id, t.topic_name,
                                                   p.partition_index, p.start_offset)
                    c, m = 0, None
                except PylogError as exc:
                    c, m = exc.errno, str(exc)
                rows.append(build(mod.AlterShareGroupOffsetsResponsePartition,
                                  partition_index=p.partition_index, error_code=error_code(c),
                                  error_message=m))
            topics.append(build(mod.AlterShareGroupOffsetsResponseTopic,
                                topic_name=t.topic_name, topic_id=topic_id_of(log_, t.topic_name),
                                partitions=tuple(rows)))
    return build(mod.AlterShareGroupOffsetsResponse, throttle_time=ZERO_MS,
                 error_code=error_code(code), error_message=message, responses=tuple(topics))


def handle_delete_share_group_offsets(ctx, request):
    mod = response_module(DELETE, ctx.version)
    log_ = ctx.broker.log
    code, message = _group_error(log_, request.group_id)
    topics = []
    if not code:
        for t in request.topics:
            try:
                log_.topic(t.topic_name)
                share_admin.delete_state(log_, request.group_id, t.topic_name)
                c, m = 0, None
            except PylogError as exc:
                c, m = exc.errno, str(exc)
            topics.append(build(mod.DeleteShareGroupOffsetsResponseTopic,
                                topic_name=t.topic_name, topic_id=topic_id_of(log_, t.topic_name),
                                error_code=error_code(c), error_message=m))
    return build(mod.DeleteShareGroupOffsetsResponse, throttle_time=ZERO_MS,
                 error_code=error_code(code), error_message=message, responses=tuple(topics))


register(
    ApiSpec(DESCRIBE, "DescribeShareGroupOffsets", range(0, 2), 1,
            handle_describe_share_group_offsets),
    ApiSpec(ALTER, "AlterShareGroupOffsets", range(0, 1), 0, handle_alter_share_group_offsets),
    ApiSpec(DELETE, "DeleteShareGroupOffsets", range(0, 1), 0,
            handle_delete_share_group_offsets),
)
