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

Versions: every API is advertised with min 0 and the highest version kio has:
FindCoordinator 6 (v4+ batches keys), JoinGroup 9, SyncGroup 5 (v5 echoes the
protocol type and name), Heartbeat 4, LeaveGroup 5, OffsetCommit 10 and
OffsetFetch 10 (v10: topics by id; OffsetFetch v8+ batches groups),
DescribeGroups 6, ListGroups 5.  Member ids are assigned directly, without
MEMBER_ID_REQUIRED (§2.6).
"""
from __future__ import annotations

import asyncio
import threading

from pylog.broker import groups as G
from pylog.errors import PylogError, UnknownTopicIdError

from .dispatch import ApiSpec, Applied, register
from .messages import ZERO_MS, build, error_code, response_module

FIND_COORDINATOR, OFFSET_COMMIT, OFFSET_FETCH = 10, 8, 9
JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS = 15, 16
DELETE_GROUPS, OFFSET_DELETE = 42, 47
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
# key types a coordinator is served for (one node coordinates everything)
COORDINATOR_KEY_TYPES = {0, 1, 2}       # groups; transactional ids; share-partition keys


READ, DESCRIBE, GROUP, TOPIC = 3, 8, 3, 2
GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED = 30, 29


def _group_denied(ctx, group_id, operation: int = READ) -> bool:
    """ACL check on a group (READ to join and commit, DESCRIBE to find and fetch)."""
    return not ctx.allowed(operation, GROUP, group_id or "")


def _coordinator_fields(ctx, key_type: int, key: str = "") -> dict:
    host, port = ctx.advertised
    if key_type == 0 and _group_denied(ctx, key, DESCRIBE):
        return dict(error_code=error_code(GROUP_AUTHORIZATION_FAILED),
                    error_message=f"{ctx.principal} may not describe group {key}",
                    node_id=-1, host="", port=-1)
    if key_type not in COORDINATOR_KEY_TYPES:
        kind = {1: "transactions are", 2: "share groups are"}.get(key_type, "this key type is")
        return dict(error_code=error_code(G.COORDINATOR_NOT_AVAILABLE),
                    error_message=f"{kind} not supported", node_id=-1, host="", port=-1)
    return dict(error_code=error_code(0), error_message=None,
                node_id=ctx.broker.settings.node_id, host=host, port=port)


def handle_find_coordinator(ctx, request):
    mod = response_module(FIND_COORDINATOR, ctx.version)
    key_type = getattr(request, "key_type", 0)
    if ctx.version >= 4:                            # v4+: a batch of keys
        coordinators = tuple(build(mod.Coordinator, key=k,
                                   **_coordinator_fields(ctx, key_type, k))
                             for k in request.coordinator_keys)
        return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS,
                     coordinators=coordinators)
    return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS,
                 **_coordinator_fields(ctx, key_type, request.key))


# -- JoinGroup / SyncGroup -------------------------------------------------------------------
def _join_response(mod, r: G.JoinResult, protocol_type: str | None):
    members = tuple(build(mod.JoinGroupResponseMember, member_id=mid, group_instance_id=gi,
                          metadata=meta) for mid, gi, meta in r.members)
    return build(mod.JoinGroupResponse, throttle_time=ZERO_MS, error_code=error_code(r.error),
                 generation_id=r.generation, protocol_name=r.protocol_name, leader=r.leader,
                 member_id=r.member_id, members=members,
                 protocol_type=protocol_type if r.error == G.NONE else None,
                 skip_assignment=r.skip_assignment)


def handle_join_group(ctx, request):
    mod = response_module(JOIN_GROUP, ctx.version)
    if _group_denied(ctx, request.group_id):
        return _join_response(mod, G.JoinResult(GROUP_AUTHORIZATION_FAILED,
                                                member_id=request.member_id), None)
    parked = _Parked()
    session_ms = _ms(request.session_timeout)
    _coordinator(ctx).join(
        request.group_id, request.member_id, request.protocol_type,
        [(p.name, bytes(p.metadata)) for p in request.protocols], parked,
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=_ms(getattr(request, "rebalance_timeout", None)),
        client_id=ctx.header.client_id or "", client_host=f"/{ctx.local_host}",
        group_instance_id=getattr(request, "group_instance_id", None),
        api_version=ctx.version)
    result = parked.settle()
    ptype = request.protocol_type
    if not isinstance(result, asyncio.Future):
        return _join_response(mod, result, ptype)

    async def later():
        try:
            r = await _await_parked(ctx, result, G.JoinResult(G.COORDINATOR_NOT_AVAILABLE,
                                                              member_id=request.member_id))
        except asyncio.CancelledError:      # the connection is gone
            _coordinator(ctx).abandon_join(request.group_id, parked)
            raise
        return _join_response(mod, r, ptype)
    return Applied(later())           # the group change is made; the answer waits


def _sync_response(ctx, mod, r: G.SyncResult, group_id: str):
    ptype = pname = None
    if r.error == G.NONE and ctx.version >= 5:      # v5: the group's protocol type and name
        _code, state = _coordinator(ctx).describe_group(group_id)
        ptype, pname = state.protocol_type or None, state.protocol or None
    return build(mod.SyncGroupResponse, throttle_time=ZERO_MS, error_code=error_code(r.error),
                 assignment=r.assignment, protocol_type=ptype, protocol_name=pname)


def handle_sync_group(ctx, request):
    mod = response_module(SYNC_GROUP, ctx.version)
    if _group_denied(ctx, request.group_id):
        return _sync_response(ctx, mod, G.SyncResult(GROUP_AUTHORIZATION_FAILED),
                              request.group_id)
    parked = _Parked()
    assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
    _coordinator(ctx).sync(request.group_id, request.generation_id, request.member_id,
                           assignments, parked,
                           group_instance_id=getattr(request, "group_instance_id", None))
    result = parked.settle()
    if not isinstance(result, asyncio.Future):
        return _sync_response(ctx, mod, result, request.group_id)

    async def later():
        r = await _await_parked(ctx, result, G.SyncResult(G.COORDINATOR_NOT_AVAILABLE))
        return _sync_response(ctx, mod, r, request.group_id)
    return Applied(later())           # the group change is made; the answer waits


# -- Heartbeat / LeaveGroup ------------------------------------------------------------------
def handle_heartbeat(ctx, request):
    mod = response_module(HEARTBEAT, ctx.version)
    if _group_denied(ctx, request.group_id):
        return build(mod.HeartbeatResponse, throttle_time=ZERO_MS,
                     error_code=error_code(GROUP_AUTHORIZATION_FAILED))
    code = _coordinator(ctx).heartbeat(request.group_id, request.generation_id,
                                       request.member_id,
                                       getattr(request, "group_instance_id", None))
    return build(mod.HeartbeatResponse, throttle_time=ZERO_MS, error_code=error_code(code))


def handle_leave_group(ctx, request):
    mod = response_module(LEAVE_GROUP, ctx.version)
    if _group_denied(ctx, request.group_id):
        return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS,
                     error_code=error_code(GROUP_AUTHORIZATION_FAILED), members=())
    if ctx.version >= 3:
        idents = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        idents = [(request.member_id, None)]
    top, codes = _coordinator(ctx).leave(request.group_id, [mid for mid, _ in idents],
                                         [gi for _, gi in idents])
    members = ()
    if ctx.version >= 3:                                    # v3+: errors per member
        members = tuple(build(mod.MemberResponse, member_id=mid, group_instance_id=gi,
                              error_code=error_code(c)) for (mid, gi), c in zip(idents, codes))
        top = top if top in _GROUP_LEVEL else G.NONE
    return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS, error_code=error_code(top),
                 members=members)


# -- OffsetCommit / OffsetFetch ----------------------------------------------------------------
def _name_of(ctx, t) -> str | None:
    """The topic a request entry names: by name, or (v10) by id; None if the id is
    unknown."""
    topic_id = getattr(t, "topic_id", None)
    if topic_id is None or topic_id.int == 0:
        return getattr(t, "name", None)
    try:
        return ctx.broker.log.topic_by_id(topic_id).name
    except UnknownTopicIdError:
        return None


def _id_of(ctx, name: str):
    try:
        return ctx.broker.log.topic(name).topic_id
    except PylogError:
        return None


def handle_offset_commit(ctx, request):
    mod = response_module(OFFSET_COMMIT, ctx.version)
    entries, shape = [], []
    group_denied = _group_denied(ctx, request.group_id)
    for t in request.topics:
        name = _name_of(ctx, t)
        denied = group_denied and GROUP_AUTHORIZATION_FAILED or (
            name is not None and not ctx.allowed(READ, TOPIC, name)
            and TOPIC_AUTHORIZATION_FAILED)
        shape.append((t, name, [p.partition_index for p in t.partitions], denied))
        if name is None or denied:
            continue
        for p in t.partitions:
            entries.append((name, p.partition_index, p.committed_offset,
                            getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
    codes = iter(()) if group_denied else iter(_coordinator(ctx).commit_offsets(
        request.group_id, request.generation_id_or_member_epoch, request.member_id, entries,
        group_instance_id=getattr(request, "group_instance_id", None), api_version=ctx.version))
    unknown_id = error_code(UnknownTopicIdError.errno)
    topics = tuple(
        build(mod.OffsetCommitResponseTopic, name=name or "",
              topic_id=getattr(t, "topic_id", None), partitions=tuple(
                  build(mod.OffsetCommitResponsePartition, partition_index=i,
                        error_code=unknown_id if name is None else error_code(denied) if
                        denied else error_code(next(codes)))
                  for i in parts))
        for t, name, parts, denied in shape)
    return build(mod.OffsetCommitResponse, throttle_time=ZERO_MS, topics=topics)


def _fetch_group(ctx, mod, group_id: str, topics, v8: bool, member=(None, -1),
                 require_stable: bool = False):
    """One group's committed offsets: (top-level code, response topics).  With
    ``require_stable`` (v7+) a partition whose offset an open transaction is about to
    change gets UNSTABLE_OFFSET_COMMIT (88), which clients retry."""
    if _group_denied(ctx, group_id, DESCRIBE):
        return GROUP_AUTHORIZATION_FAILED, ()
    wanted, unknown = None, []
    if topics is not None:
        wanted = []
        for t in topics:
            name = _name_of(ctx, t)
            if name is None:
                unknown.append(t)
            else:
                wanted += [(name, i) for i in t.partition_indexes]
    code, found = _coordinator(ctx).fetch_offsets(group_id, wanted, member_id=member[0],
                                                  member_epoch=member[1])
    if wanted is None:
        wanted = sorted(found)
    part_code = code if ctx.version < 2 else G.NONE       # v2+: one top-level error
    txns = ctx.broker.log.transactions_if_started if require_stable else None
    unstable = txns.pending_offsets(group_id) if txns is not None else ()
    by_topic: dict[str, list] = {}
    parts_cls = mod.OffsetFetchResponsePartitions if v8 else mod.OffsetFetchResponsePartition
    topic_cls = mod.OffsetFetchResponseTopics if v8 else mod.OffsetFetchResponseTopic
    for topic, i in wanted:
        c = found.get((topic, i))
        by_topic.setdefault(topic, []).append(build(
            parts_cls, partition_index=i,
            committed_offset=-1 if c is None else c.offset,
            committed_leader_epoch=-1 if c is None else c.leader_epoch,
            metadata="" if c is None else c.metadata,
            error_code=error_code(88 if (topic, i) in unstable else part_code)))
    out = [build(topic_cls, name=name, topic_id=_id_of(ctx, name), partitions=tuple(parts))
           for name, parts in by_topic.items()]
    for t in unknown:                                      # v10: ids nobody has
        out.append(build(topic_cls, topic_id=t.topic_id, partitions=tuple(
            build(parts_cls, partition_index=i, committed_offset=-1, committed_leader_epoch=-1,
                  metadata="", error_code=error_code(UnknownTopicIdError.errno))
            for i in t.partition_indexes)))
    return code, tuple(out)


def handle_offset_fetch(ctx, request):
    mod = response_module(OFFSET_FETCH, ctx.version)
    if ctx.version >= 8:                                   # v8+: a batch of groups
        groups = []
        for g in request.groups:
            code, topics = _fetch_group(ctx, mod, g.group_id, g.topics, True,
                                        (getattr(g, "member_id", None),
                                         getattr(g, "member_epoch", -1)),
                                        getattr(request, "require_stable", False))
            groups.append(build(mod.OffsetFetchResponseGroup, group_id=g.group_id,
                                topics=topics, error_code=error_code(code)))
        return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, groups=tuple(groups))
    code, topics = _fetch_group(ctx, mod, request.group_id, request.topics, False,
                                require_stable=getattr(request, "require_stable", False))
    return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, topics=topics,
                 error_code=error_code(code))


# -- ListGroups / DescribeGroups ----------------------------------------------------------------
def handle_list_groups(ctx, request):
    """v4+ filter by state, v5+ by type (both case-insensitive, as Kafka's)."""
    mod = response_module(LIST_GROUPS, ctx.version)
    coord = _coordinator(ctx)
    code, groups = coord.list_groups()
    states = {x.lower() for x in getattr(request, "states_filter", ()) or ()}
    types = {x.lower() for x in getattr(request, "types_filter", ()) or ()}
    listed = []
    # Kafka: DESCRIBE on the cluster lists every group, else those DESCRIBE allows.
    see_all = ctx.allowed(DESCRIBE, 4, "kafka-cluster")
    for g, pt in groups:
        if not see_all and _group_denied(ctx, g, DESCRIBE):
            continue
        state = coord.describe_group(g)[1].state if ctx.version >= 4 else ""
        gtype = coord.group_type(g)
        if (states and state.lower() not in states) or (types and gtype not in types):
            continue
        listed.append(build(mod.ListedGroup, group_id=g, protocol_type=pt, group_state=state,
                            group_type=gtype))
    known = {g for g, _pt in groups}
    for g in ctx.broker.log.share_members.group_ids():         # KIP-932 share groups
        d = ctx.broker.log.share_members.describe(g)
        state = d[0] if d is not None and ctx.version >= 4 else ""
        if g in known or (states and state.lower() not in states) or \
                (types and "share" not in types) or (not types and ctx.version < 5) or \
                (not see_all and _group_denied(ctx, g, DESCRIBE)):
            continue
        listed.append(build(mod.ListedGroup, group_id=g, protocol_type="share",
                            group_state=state, group_type="share"))
    return build(mod.ListGroupsResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                 groups=tuple(listed))


def handle_describe_groups(ctx, request):
    mod = response_module(DESCRIBE_GROUPS, ctx.version)
    coord = _coordinator(ctx)
    out = []
    for group_id in request.groups:
        if _group_denied(ctx, group_id, DESCRIBE):
            out.append(build(mod.DescribedGroup, error_code=error_code(
                GROUP_AUTHORIZATION_FAILED), group_id=group_id, group_state="",
                protocol_type="", protocol_data="", members=(),
                authorized_operations=-2147483648,
                error_message=f"{ctx.principal} may not describe group {group_id}"))
            continue
        code, s = coord.describe_group(group_id)
        if code == 0 and (coord.group_type(group_id) == "consumer" or s.state == "Dead" and
                          ctx.broker.log.share_members.describe(group_id) is not None):
            out.append(build(mod.DescribedGroup, error_code=error_code(G.GROUP_ID_NOT_FOUND),
                             group_id=group_id, group_state="Dead", protocol_type="",
                             protocol_data="", members=(), authorized_operations=-2147483648,
                             error_message=f"Group {group_id} is not a classic group."))
            continue
        members = tuple(build(mod.DescribedGroupMember, member_id=m.member_id,
                              group_instance_id=m.group_instance_id, client_id=m.client_id,
                              client_host=m.client_host, member_metadata=m.metadata,
                              member_assignment=m.assignment) for m in s.members)
        out.append(build(mod.DescribedGroup, error_code=error_code(code), group_id=group_id,
                         group_state=s.state, protocol_type=s.protocol_type,
                         protocol_data=s.protocol, members=members,
                         authorized_operations=-2147483648,
                         error_message=None if code == 0 else _group_error_text(code, group_id)))
    return build(mod.DescribeGroupsResponse, throttle_time=ZERO_MS, groups=tuple(out))


def _group_error_text(code: int, group_id: str) -> str:
    from pylog.errors import error_name
    return f"{error_name(code)}: group {group_id!r}"


# -- DeleteGroups / OffsetDelete ------------------------------------------------------------
def handle_delete_groups(ctx, request):
    """Each group must be empty (NON_EMPTY_GROUP) and known (GROUP_ID_NOT_FOUND); its
    committed offsets are tombstoned."""
    mod = response_module(DELETE_GROUPS, ctx.version)
    coord = _coordinator(ctx)
    results = []
    for group_id in request.groups_names:
        if _group_denied(ctx, group_id, 6):                     # DELETE on the group
            results.append((group_id, GROUP_AUTHORIZATION_FAILED))
            continue
        if ctx.broker.log.share_members.describe(group_id) is not None:
            results.append((group_id, _delete_share_group(ctx, group_id)))
            continue
        code, _deleted = coord.delete_any_group(group_id)
        results.append((group_id, code))
    return build(mod.DeleteGroupsResponse, throttle_time=ZERO_MS, results=tuple(
        build(mod.DeletableGroupResult, group_id=g, error_code=error_code(c))
        for g, c in results))


def _delete_share_group(ctx, group_id: str) -> int:
    from pylog.broker import share_admin
    try:
        share_admin.delete_group(ctx.broker.log, group_id)
    except PylogError as exc:
        return exc.errno
    return G.NONE


def handle_offset_delete(ctx, request):
    mod = response_module(OFFSET_DELETE, ctx.version)
    wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    top, codes = _coordinator(ctx).delete_offsets(request.group_id, wanted)
    per_topic: dict[str, list] = {}
    for (name, i), c in zip(wanted, codes):
        per_topic.setdefault(name, []).append(build(
            mod.OffsetDeleteResponsePartition, partition_index=i,
            error_code=error_code(G.NONE if top != G.NONE else c)))
    topics = () if top != G.NONE else tuple(
        build(mod.OffsetDeleteResponseTopic, name=n, partitions=tuple(ps))
        for n, ps in per_topic.items())
    return build(mod.OffsetDeleteResponse, error_code=error_code(top), throttle_time=ZERO_MS,
                 topics=topics)


register(
    ApiSpec(DELETE_GROUPS, "DeleteGroups", range(0, 3), 2, handle_delete_groups),
    ApiSpec(OFFSET_DELETE, "OffsetDelete", range(0, 1), 0, handle_offset_delete),
    ApiSpec(OFFSET_COMMIT, "OffsetCommit", range(2, 11), 10, handle_offset_commit),
    ApiSpec(OFFSET_FETCH, "OffsetFetch", range(1, 11), 10, handle_offset_fetch),
    ApiSpec(FIND_COORDINATOR, "FindCoordinator", range(0, 7), 6, handle_find_coordinator),
    ApiSpec(JOIN_GROUP, "JoinGroup", range(0, 10), 9, handle_join_group),
    ApiSpec(HEARTBEAT, "Heartbeat", range(0, 5), 4, handle_heartbeat),
    ApiSpec(LEAVE_GROUP, "LeaveGroup", range(0, 6), 5, handle_leave_group),
    ApiSpec(SYNC_GROUP, "SyncGroup", range(0, 6), 5, handle_sync_group),
    ApiSpec(DESCRIBE_GROUPS, "DescribeGroups", range(0, 7), 6, handle_describe_groups),
    ApiSpec(LIST_GROUPS, "ListGroups", range(0, 6), 5, handle_list_groups),
)

from . import consumer_groups  # noqa: E402,F401 -- registers ConsumerGroupHeartbeat/Describe
