"""ShareGroupHeartbeat (76) and ShareGroupDescribe (77), v1: share-group membership.

kio entities ↔ ``log.share_members`` (pylog/broker/share_members.py), which holds the
members, epochs and assignments; the records themselves are ``log.share_groups``'s.
Topics travel by id.  A heartbeat is answered at once.  The share-offset admin APIs
(90–92) are in share_offsets.py.
"""
from __future__ import annotations

import datetime

from pylog.errors import error_name

from .consumer_groups import topic_id_of
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE = 76, 77
_NO_OPERATIONS = -2147483648
GROUP_ID_NOT_FOUND = 69


def handle_share_group_heartbeat(ctx, request):
    mod = response_module(SHARE_GROUP_HEARTBEAT, ctx.version)
    log_ = ctx.broker.log
    topics = request.subscribed_topic_names
    if not ctx.allowed(3, 3, request.group_id):                  # READ on the group
        return build(mod.ShareGroupHeartbeatResponse, throttle_time=ZERO_MS,
                     error_code=error_code(30), error_message=f"{ctx.principal} may not "
                     f"read share group {request.group_id}", member_id=None,
                     member_epoch=-1, heartbeat_interval=datetime.timedelta(0),
                     assignment=None)
    r = log_.share_members.heartbeat(
        request.group_id, request.member_id, request.member_epoch,
        topics=None if topics is None else list(topics), rack_id=request.rack_id,
        client_id=ctx.header.client_id or "", client_host=f"/{ctx.local_host}")
    assignment = None
    if r.error == 0 and r.assignment is not None:
        parts = []
        for name, ps in sorted(r.assignment.items()):
            tid = topic_id_of(log_, name)
            if tid is not None and ps:
                parts.append(build(mod.TopicPartitions, topic_id=tid,
                                   partitions=tuple(sorted(ps))))
        assignment = build(mod.Assignment, topic_partitions=tuple(parts))
    return build(mod.ShareGroupHeartbeatResponse, throttle_time=ZERO_MS,
                 error_code=error_code(r.error),
                 error_message=r.message if r.message or not r.error else error_name(r.error),
                 member_id=r.member_id if r.error == 0 else None,
                 member_epoch=r.member_epoch if r.error == 0 else -1,
                 heartbeat_interval=datetime.timedelta(milliseconds=r.heartbeat_interval_ms),
                 assignment=assignment)


def handle_share_group_describe(ctx, request):
    mod = response_module(SHARE_GROUP_DESCRIBE, ctx.version)
    log_ = ctx.broker.log
    out = []
    for group_id in request.group_ids:
        d = log_.share_members.describe(group_id)
        if d is None:
            out.append(build(mod.DescribedGroup, error_code=error_code(GROUP_ID_NOT_FOUND),
                             error_message=f"Group {group_id} is not a share group.",
                             group_id=group_id, group_state="Dead", group_epoch=-1,
                             assignment_epoch=-1, assignor_name="", members=(),
                             authorized_operations=_NO_OPERATIONS))
            continue
        state, epoch, assignment_epoch, members = d
        described = []
        for m in members:
            parts = []
            for name, ps in sorted(m.assignment.items()):
                tid = topic_id_of(log_, name)
                if tid is not None and ps:
                    parts.append(build(mod.TopicPartitions, topic_id=tid, topic_name=name,
                                       partitions=tuple(sorted(ps))))
            described.append(build(
                mod.Member, member_id=m.member_id, rack_id=m.rack_id, member_epoch=m.epoch,
                client_id=m.client_id, client_host=m.client_host,
                subscribed_topic_names=tuple(m.topics),
                assignment=build(mod.Assignment, topic_partitions=tuple(parts))))
        out.append(build(mod.DescribedGroup, error_code=error_code(0), error_message=None,
                         group_id=group_id, group_state=state, group_epoch=epoch,
                         assignment_epoch=assignment_epoch, assignor_name="simple",
                         members=tuple(described),
                         authorized_operations=_NO_OPERATIONS))
    return build(mod.ShareGroupDescribeResponse, throttle_time=ZERO_MS, groups=tuple(out))


register(
    ApiSpec(SHARE_GROUP_HEARTBEAT, "ShareGroupHeartbeat", range(1, 2), 1,
            handle_share_group_heartbeat),
    ApiSpec(SHARE_GROUP_DESCRIBE, "ShareGroupDescribe", range(1, 2), 1,
            handle_share_group_describe),
)
