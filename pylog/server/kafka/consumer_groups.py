"""The KIP-848 consumer protocol: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe
(69), v0–1 — kio entities ↔ ``pylog.broker.consumer_groups`` (through the coordinator,
``log.groups``).  No I/O and no waiting: a heartbeat is answered at once.

Topics travel by id (KIP-516) in both directions: owned partitions of an unknown topic
id are ignored (the topic is gone; the member will be told its new assignment).
Registering this module advertises the ``group.version`` feature at level 1, which is
what clients check before they use ``group.protocol=consumer``.
"""
from __future__ import annotations

from pylog.errors import PylogError, error_name

from .api_versions import add_feature
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE = 68, 69
_NO_OPERATIONS = -2147483648


def _ms(td) -> int:
    return int(td.total_seconds() * 1000) if td is not None else -1


def _owned(log, topic_partitions) -> dict | None:
    if topic_partitions is None:
        return None
    owned: dict[str, frozenset] = {}
    for tp in topic_partitions:
        try:
            name = log.topic_by_id(tp.topic_id).name
        except (PylogError, AttributeError):
            continue
        owned[name] = owned.get(name, frozenset()) | frozenset(tp.partitions)
    return owned


def topic_id_of(log, name: str):
    """The topic's id, None when it does not exist (any more)."""
    try:
        return log.topic(name).topic_id
    except PylogError:
        return None


def handle_consumer_group_heartbeat(ctx, request):
    mod = response_module(CONSUMER_GROUP_HEARTBEAT, ctx.version)
    log = ctx.broker.log
    if not ctx.allowed(3, 3, request.group_id):                  # READ on the group
        return build(mod.ConsumerGroupHeartbeatResponse, throttle_time=ZERO_MS,
                     error_code=error_code(30), error_message=f"{ctx.principal} may not "
                     f"read group {request.group_id}", member_id=None, member_epoch=-1,
                     heartbeat_interval=_td(0), assignment=None)
    r = log.groups.consumer_heartbeat(
        request.group_id, request.member_id, request.member_epoch, version=ctx.version,
        instance_id=request.instance_id, rack_id=request.rack_id,
        rebalance_timeout_ms=_ms(request.rebalance_timeout),
        topics=None if request.subscribed_topic_names is None
        else list(request.subscribed_topic_names),
        regex=getattr(request, "subscribed_topic_regex", None),
        assignor=request.server_assignor, owned=_owned(log, request.topic_partitions),
        client_id=ctx.header.client_id or "", client_host=f"/{ctx.local_host}")
    assignment = None
    if r.error == 0 and r.assignment is not None:
        parts = []
        for name, ps in sorted(r.assignment.items()):
            tid = topic_id_of(log, name)
            if tid is not None and ps:
                parts.append(build(mod.TopicPartitions, topic_id=tid,
                                   partitions=tuple(sorted(ps))))
        assignment = build(mod.Assignment, topic_partitions=tuple(parts))
    message = r.message if r.message is not None or r.error == 0 else error_name(r.error)
    return build(mod.ConsumerGroupHeartbeatResponse, throttle_time=ZERO_MS,
                 error_code=error_code(r.error), error_message=message,
                 member_id=r.member_id if r.error == 0 else None,
                 member_epoch=r.member_epoch if r.error == 0 else -1,
                 heartbeat_interval=_td(r.heartbeat_interval_ms), assignment=assignment)


def _td(ms: int):
    import datetime
    return datetime.timedelta(milliseconds=ms)


def _described_assignment(mod, log, assignment) -> object:
    parts = []
    for name, ps in sorted(assignment.items()):
        tid = topic_id_of(log, name)
        if tid is not None and ps:
            parts.append(build(mod.TopicPartitions, topic_id=tid, topic_name=name,
                               partitions=tuple(sorted(ps))))
    return build(mod.Assignment, topic_partitions=tuple(parts))


def handle_consumer_group_describe(ctx, request):
    mod = response_module(CONSUMER_GROUP_DESCRIBE, ctx.version)
    log = ctx.broker.log
    coord = log.groups
    out = []
    not_ready = coord._not_ready()
    for group_id in request.group_ids:
        def failed(code: int, text: str):
            return build(mod.DescribedGroup, error_code=error_code(code), error_message=text,
                         group_id=group_id, group_state="Dead", group_epoch=-1,
                         assignment_epoch=-1, assignor_name="", members=(),
                         authorized_operations=_NO_OPERATIONS)
        if not_ready:
            out.append(failed(not_ready, error_name(not_ready)))
            continue
        with coord.locked():
            g = coord.consumer_group(group_id)
            if g is None:
                out.append(failed(69, f"Group {group_id} is not a consumer group." if
                                  coord.describe_group(group_id)[1].state != "Dead"
                                  else f"Group {group_id} not found."))
                continue
            members = tuple(build(
                mod.Member, member_id=m.member_id, instance_id=m.instance_id,
                rack_id=m.rack_id, member_epoch=m.epoch, client_id=m.client_id,
                client_host=m.client_host, subscribed_topic_names=tuple(m.topics),
                subscribed_topic_regex=m.regex,
                assignment=_described_assignment(mod, log, m.assigned),
                target_assignment=_described_assignment(mod, log, g.target.get(m.member_id, {})),
                member_type=1) for m in g.members.values())
            out.append(build(mod.DescribedGroup, error_code=error_code(0), error_message=None,
                             group_id=group_id, group_state=g.state, group_epoch=g.epoch,
                             assignment_epoch=g.assignment_epoch,
                             assignor_name=g.assignor or coord.consumer.assignors[0],
                             members=members, authorized_operations=_NO_OPERATIONS))
    return build(mod.ConsumerGroupDescribeResponse, throttle_time=ZERO_MS, groups=tuple(out))


add_feature("group.version", 0, 1, 1)
register(
    ApiSpec(CONSUMER_GROUP_HEARTBEAT, "ConsumerGroupHeartbeat", range(0, 2), 1,
            handle_consumer_group_heartbeat),
    ApiSpec(CONSUMER_GROUP_DESCRIBE, "ConsumerGroupDescribe", range(0, 2), 1,
            handle_consumer_group_describe),
)
