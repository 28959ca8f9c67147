"""Consumer-group APIs: FindCoordinator, Join/Sync/Heartbeat/LeaveGroup, OffsetCommit,
OffsetFetch, ListGroups, DescribeGroups — kio entities ↔ ``pylog.broker.groups``.

No I/O and no blocking: the coordinator (``log.groups``) holds the state; these
handlers translate.  JoinGroup and SyncGroup may have to wait for other members (the
join phase, the leader's assignment): the coordinator then keeps a callback, and the
handler returns a coroutine awaiting an asyncio future that the callback resolves
with ``loop.call_soon_threadsafe`` (the phase may complete on the coordinator's timer
thread).  The connection keeps its request order meanwhile; other connections are
not held up.  At shutdown a parked request is answered COORDINATOR_NOT_AVAILABLE
(it waits on one of the broker's shutdown events, ``BrokerContext.fetch_waiters``).

Versions: every API is advertised with min 0 and its highest non-flexible version
(research/kafka-protocol.md §2.4): FindCoordinator 2, JoinGroup 5, SyncGroup 3,
Heartbeat 3, LeaveGroup 3, OffsetCommit 7, OffsetFetch 5, DescribeGroups 4,
ListGroups 2.  Member ids are assigned directly, without MEMBER_ID_REQUIRED (§2.6).
"""
from __future__ import annotations

import asyncio
import threading

from pylog.broker import groups as G

from .dispatch import ApiSpec, Applied, register
from .messages import ZERO_MS, build, error_code, response_module

FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS = 15, 16
_UNSET = object()
_GROUP_LEVEL = (G.COORDINATOR_LOAD_IN_PROGRESS, G.COORDINATOR_NOT_AVAILABLE, G.INVALID_GROUP_ID)


def _coordinator(ctx) -> G.GroupCoordinator:
    return ctx.broker.log.groups


def _ms(td) -> int:
    return int(td.total_seconds() * 1000) if td is not None else -1


class _Parked:
    """A coordinator callback that either answers at once (called during the call) or
    later, from any thread, through an asyncio future on the loop."""

    __slots__ = ("loop", "lock", "result", "future")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.lock = threading.Lock()
        self.result = _UNSET
        self.future: asyncio.Future | None = None

    def __call__(self, result) -> None:
        with self.lock:
            if self.future is None:
                self.result = result
                return
        try:
            self.loop.call_soon_threadsafe(self._deliver, result)
        except RuntimeError:            # the loop is closed: nobody is waiting any more
            pass

    def _deliver(self, result) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def settle(self):
        """The result now, or a future for it (call once, after the coordinator call)."""
        with self.lock:
            if self.result is not _UNSET:
                return self.result
            self.future = self.loop.create_future()
            return self.future


async def _await_parked(ctx, future: asyncio.Future, unavailable):
    """The parked result, or ``unavailable`` if the server shuts down first."""
    stop = asyncio.Event()
    waiters = ctx.broker.fetch_waiters
    waiters.add(stop)
    try:
        if ctx.broker.closing:
            return unavailable
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({future, stopper},
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        return future.result() if future in done else unavailable
    finally:
        waiters.discard(stop)


# -- FindCoordinator -----------------------------------------------------------------------
def handle_find_coordinator(ctx, request):
    mod = response_module(FIND_COORDINATOR, ctx.version)
    host, port = ctx.advertised
    if getattr(request, "key_type", 0) != 0:        # transactions: not served
        return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS,
                     error_code=error_code(G.COORDINATOR_NOT_AVAILABLE),
                     error_message="transactions are not supported", node_id=-1,
                     host="", port=-1)
    return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 error_message=None, node_id=ctx.broker.settings.node_id, host=host, port=port)


# -- JoinGroup / SyncGroup -------------------------------------------------------------------
def _join_response(mod, r: G.JoinResult):
    members = tuple(build(mod.JoinGroupResponseMember, member_id=mid, group_instance_id=gi,
                          metadata=meta) for mid, gi, meta in r.members)
    return build(mod.JoinGroupResponse, throttle_time=ZERO_MS, error_code=error_code(r.error),
                 generation_id=r.generation, protocol_name=r.protocol_name, leader=r.leader,
                 member_id=r.member_id, members=members)


def handle_join_group(ctx, request):
    mod = response_module(JOIN_GROUP, ctx.version)
    parked = _Parked()
    session_ms = _ms(request.session_timeout)
    _coordinator(ctx).join(
        request.group_id, request.member_id, request.protocol_type,
        [(p.name, bytes(p.metadata)) for p in request.protocols], parked,
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=_ms(getattr(request, "rebalance_timeout", None)),
        client_id=ctx.header.client_id or "", client_host=f"/{ctx.local_host}",
        group_instance_id=getattr(request, "group_instance_id", None))
    result = parked.settle()
    if not isinstance(result, asyncio.Future):
        return _join_response(mod, result)

    async def later():
        try:
            r = await _await_parked(ctx, result, G.JoinResult(G.COORDINATOR_NOT_AVAILABLE,
                                                              member_id=request.member_id))
        except asyncio.CancelledError:      # the connection is gone
            _coordinator(ctx).abandon_join(request.group_id, parked)
            raise
        return _join_response(mod, r)
    return Applied(later())           # the group change is made; the answer waits


def _sync_response(mod, r: G.SyncResult):
    return build(mod.SyncGroupResponse, throttle_time=ZERO_MS, error_code=error_code(r.error),
                 assignment=r.assignment)


def handle_sync_group(ctx, request):
    mod = response_module(SYNC_GROUP, ctx.version)
    parked = _Parked()
    assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
    _coordinator(ctx).sync(request.group_id, request.generation_id, request.member_id,
                           assignments, parked)
    result = parked.settle()
    if not isinstance(result, asyncio.Future):
        return _sync_response(mod, result)

    async def later():
        r = await _await_parked(ctx, result, G.SyncResult(G.COORDINATOR_NOT_AVAILABLE))
        return _sync_response(mod, r)
    return Applied(later())           # the group change is made; the answer waits


# -- Heartbeat / LeaveGroup ------------------------------------------------------------------
def handle_heartbeat(ctx, request):
    mod = response_module(HEARTBEAT, ctx.version)
    code = _coordinator(ctx).heartbeat(request.group_id, request.generation_id,
                                       request.member_id)
    return build(mod.HeartbeatResponse, throttle_time=ZERO_MS, error_code=error_code(code))


def handle_leave_group(ctx, request):
    mod = response_module(LEAVE_GROUP, ctx.version)
    if ctx.version >= 3:
        idents = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        idents = [(request.member_id, None)]
    top, codes = _coordinator(ctx).leave(request.group_id, [mid for mid, _ in idents])
    members = ()
    if ctx.version >= 3:                                    # v3+: errors per member
        members = tuple(build(mod.MemberResponse, member_id=mid, group_instance_id=gi,
                              error_code=error_code(c)) for (mid, gi), c in zip(idents, codes))
        top = top if top in _GROUP_LEVEL else G.NONE
    return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS, error_code=error_code(top),
                 members=members)


# -- OffsetCommit / OffsetFetch ----------------------------------------------------------------
def handle_offset_commit(ctx, request):
    mod = response_module(OFFSET_COMMIT, ctx.version)
    entries, shape = [], []
    for t in request.topics:
        shape.append((t.name, [p.partition_index for p in t.partitions]))
        for p in t.partitions:
            entries.append((t.name, p.partition_index, p.committed_offset,
                            getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
    codes = iter(_coordinator(ctx).commit_offsets(
        request.group_id, request.generation_id_or_member_epoch, request.member_id, entries))
    topics = tuple(
        build(mod.OffsetCommitResponseTopic, name=name, partitions=tuple(
            build(mod.OffsetCommitResponsePartition, partition_index=i,
                  error_code=error_code(next(codes))) for i in parts))
        for name, parts in shape)
    return build(mod.OffsetCommitResponse, throttle_time=ZERO_MS, topics=topics)


def handle_offset_fetch(ctx, request):
    mod = response_module(OFFSET_FETCH, ctx.version)
    wanted = None if request.topics is None else [
        (t.name, i) for t in request.topics for i in t.partition_indexes]
    code, found = _coordinator(ctx).fetch_offsets(request.group_id, wanted)
    if wanted is None:
        wanted = sorted(found)
    by_topic: dict[str, list] = {}
    part_code = code if ctx.version < 2 else G.NONE       # v2+: one top-level error
    for topic, i in wanted:
        c = found.get((topic, i))
        by_topic.setdefault(topic, []).append(build(
            mod.OffsetFetchResponsePartition, partition_index=i,
            committed_offset=-1 if c is None else c.offset,
            committed_leader_epoch=-1 if c is None else c.leader_epoch,
            metadata="" if c is None else c.metadata, error_code=error_code(part_code)))
    topics = tuple(build(mod.OffsetFetchResponseTopic, name=name, partitions=tuple(parts))
                   for name, parts in by_topic.items())
    return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, topics=topics,
                 error_code=error_code(code))


# -- ListGroups / DescribeGroups ----------------------------------------------------------------
def handle_list_groups(ctx, request):
    mod = response_module(LIST_GROUPS, ctx.version)
    code, groups = _coordinator(ctx).list_groups()
    listed = tuple(build(mod.ListedGroup, group_id=g, protocol_type=pt) for g, pt in groups)
    return build(mod.ListGroupsResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                 groups=listed)


def handle_describe_groups(ctx, request):
    mod = response_module(DESCRIBE_GROUPS, ctx.version)
    coord = _coordinator(ctx)
    out = []
    for group_id in request.groups:
        code, s = coord.describe_group(group_id)
        members = tuple(build(mod.DescribedGroupMember, member_id=m.member_id,
                              group_instance_id=m.group_instance_id, client_id=m.client_id,
                              client_host=m.client_host, member_metadata=m.metadata,
                              member_assignment=m.assignment) for m in s.members)
        out.append(build(mod.DescribedGroup, error_code=error_code(code), group_id=group_id,
                         group_state=s.state, protocol_type=s.protocol_type,
                         protocol_data=s.protocol, members=members,
                         authorized_operations=-2147483648))
    return build(mod.DescribeGroupsResponse, throttle_time=ZERO_MS, groups=tuple(out))


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
