"""Consumer-group APIs, answered with COORDINATOR_NOT_AVAILABLE until groups exist.

The group coordinator (``pylog/broker/groups.py``) is the next issue.  Until
then these APIs are still advertised (min 0, non-flexible max), because
librdkafka 2.0.2 (Debian's kcat) derives feature flags from their presence and
kafka-python guesses the broker version from the maxima; and every request is
answered, never by closing the connection.  The answer is
COORDINATOR_NOT_AVAILABLE (15): retriable in every client, so a consumer with a
group keeps polling and retrying (and logs it) instead of failing, while
assign()+seek() consumers, which never need a coordinator, work normally.
"""
from __future__ import annotations

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

COORDINATOR_NOT_AVAILABLE = 15
FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS = 15, 16
_MSG = "consumer groups are not implemented yet in this pylog version"


def _err():
    return error_code(COORDINATOR_NOT_AVAILABLE)


def handle_find_coordinator(ctx, request):
    mod = response_module(FIND_COORDINATOR, ctx.version)
    return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS, error_code=_err(),
                 error_message=_MSG, node_id=-1, host="", port=-1)


def handle_join_group(ctx, request):
    mod = response_module(JOIN_GROUP, ctx.version)
    return build(mod.JoinGroupResponse, throttle_time=ZERO_MS, error_code=_err(),
                 generation_id=-1, protocol_name="", leader="", member_id=request.member_id,
                 members=())


def handle_sync_group(ctx, request):
    mod = response_module(SYNC_GROUP, ctx.version)
    return build(mod.SyncGroupResponse, throttle_time=ZERO_MS, error_code=_err(),
                 assignment=b"")


def handle_heartbeat(ctx, request):
    mod = response_module(HEARTBEAT, ctx.version)
    return build(mod.HeartbeatResponse, throttle_time=ZERO_MS, error_code=_err())


def handle_leave_group(ctx, request):
    mod = response_module(LEAVE_GROUP, ctx.version)
    return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS, error_code=_err(), members=())


def handle_offset_commit(ctx, request):
    mod = response_module(OFFSET_COMMIT, ctx.version)
    topics = tuple(
        build(mod.OffsetCommitResponseTopic, name=t.name, partitions=tuple(
            build(mod.OffsetCommitResponsePartition, partition_index=p.partition_index,
                  error_code=_err()) for p in t.partitions))
        for t in request.topics)
    return build(mod.OffsetCommitResponse, throttle_time=ZERO_MS, topics=topics)


def handle_offset_fetch(ctx, request):
    mod = response_module(OFFSET_FETCH, ctx.version)
    topics = tuple(
        build(mod.OffsetFetchResponseTopic, name=t.name, partitions=tuple(
            build(mod.OffsetFetchResponsePartition, partition_index=i, committed_offset=-1,
                  committed_leader_epoch=-1, metadata=None, error_code=_err())
            for i in t.partition_indexes))
        for t in (request.topics or ()))
    return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, topics=topics,
                 error_code=_err())


def handle_describe_groups(ctx, request):
    mod = response_module(DESCRIBE_GROUPS, ctx.version)
    groups = tuple(build(mod.DescribedGroup, error_code=_err(), group_id=g, group_state="",
                         protocol_type="", protocol_data="", members=(),
                         authorized_operations=-2147483648)
                   for g in request.groups)
    return build(mod.DescribeGroupsResponse, throttle_time=ZERO_MS, groups=groups)


def handle_list_groups(ctx, request):
    mod = response_module(LIST_GROUPS, ctx.version)
    return build(mod.ListGroupsResponse, throttle_time=ZERO_MS, error_code=_err(), groups=())


register(
    ApiSpec(OFFSET_COMMIT, "OffsetCommit", range(2, 8), 7, handle_offset_commit),
    ApiSpec(OFFSET_FETCH, "OffsetFetch", range(1, 6), 5, handle_offset_fetch),
    ApiSpec(FIND_COORDINATOR, "FindCoordinator", range(0, 3), 2, handle_find_coordinator),
    ApiSpec(JOIN_GROUP, "JoinGroup", range(0, 6), 5, handle_join_group),
    ApiSpec(HEARTBEAT, "Heartbeat", range(0, 4), 3, handle_heartbeat),
    ApiSpec(LEAVE_GROUP, "LeaveGroup", range(0, 4), 3, handle_leave_group),
    ApiSpec(SYNC_GROUP, "SyncGroup", range(0, 4), 3, handle_sync_group),
    ApiSpec(DESCRIBE_GROUPS, "DescribeGroups", range(0, 5), 4, handle_describe_groups),
    ApiSpec(LIST_GROUPS, "ListGroups", range(0, 3), 2, handle_list_groups),
)
