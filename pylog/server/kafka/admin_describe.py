"""Read-only admin APIs a single node answers about itself.

DescribeCluster (60) v0–2: this node as the only broker and the controller id
(``endpoint_type`` 2, controllers, gets UNSUPPORTED_ENDPOINT_TYPE: a broker
listener does not describe controllers, as in Kafka).  DescribeLogDirs (35)
v1–5: one log dir, the data directory, with each partition's size on disk,
``offset_lag`` 0 (no future replica) and, v4+, the file system's total and
usable bytes.  DescribeProducers (61) v0: the idempotent producers the broker
keeps state for on each partition (no transactions: coordinator epoch and
transaction start -1).  ElectLeaders (43) v0–2: node 0 already leads every
partition, so each named partition answers ELECTION_NOT_NEEDED (84) and a
null topic list an empty result, as Kafka does when no election is needed.
DescribeTopicPartitions (75) v0: topics with their ids and partitions, paged by
``response_partition_limit`` and the cursor (KIP-966; no eligible-leader
replicas on one node).

Cluster-level ``authorized_operations`` are all operations while pylog has no
ACLs; the security issue replaces this with the authorizer's answer.
"""
from __future__ import annotations

import os

from pylog.errors import PylogError, UnknownTopicError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module
from .metadata import INTERNAL_TOPICS

DESCRIBE_LOG_DIRS, ELECT_LEADERS, DESCRIBE_CLUSTER = 35, 43, 60
DESCRIBE_PRODUCERS, DESCRIBE_TOPIC_PARTITIONS = 61, 75
ELECTION_NOT_NEEDED, UNSUPPORTED_ENDPOINT_TYPE = 84, 119
ENDPOINT_BROKERS = 1
UNKNOWN_OPERATIONS = -2147483648
# AclOperation codes allowed on a cluster / topic resource (Kafka's ResourceType docs).
_CLUSTER_OPS = (5, 7, 8, 9, 10, 11, 12)        # CREATE ALTER DESCRIBE CLUSTER_ACTION
_TOPIC_OPS = (3, 4, 5, 6, 7, 8, 10, 11)        # READ WRITE CREATE DELETE ALTER DESCRIBE ...
DEFAULT_PARTITION_LIMIT = 2000


def _ops_bits(ops) -> int:
    return sum(1 << op for op in ops)


def handle_describe_cluster(ctx, request):
    mod = response_module(DESCRIBE_CLUSTER, ctx.version)
    s = ctx.broker.settings
    endpoint = getattr(request, "endpoint_type", ENDPOINT_BROKERS)
    ops = _ops_bits(_CLUSTER_OPS) if request.include_cluster_authorized_operations \
        else UNKNOWN_OPERATIONS
    if endpoint != ENDPOINT_BROKERS:
        return build(mod.DescribeClusterResponse, throttle_time=ZERO_MS,
                     error_code=error_code(UNSUPPORTED_ENDPOINT_TYPE),
                     error_message=f"endpoint type {endpoint} is not served by a broker "
                                   "listener", endpoint_type=endpoint,
                     cluster_id=s.cluster_id, controller_id=-1, brokers=(),
                     cluster_authorized_operations=UNKNOWN_OPERATIONS)
    host, port = ctx.advertised
    brokers = (build(mod.DescribeClusterBroker, broker_id=s.node_id, host=host, port=port,
                     rack=None, is_fenced=False),)
    return build(mod.DescribeClusterResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 error_message=None, endpoint_type=endpoint, cluster_id=s.cluster_id,
                 controller_id=s.node_id, brokers=brokers, cluster_authorized_operations=ops)


def _data_dir(broker) -> str:
    return os.path.abspath(str(getattr(broker.log, "data_dir", "") or ""))


def handle_describe_log_dirs(ctx, request):
    mod = response_module(DESCRIBE_LOG_DIRS, ctx.version)
    log = ctx.broker.log
    if request.topics is None:
        wanted = [(name, None) for name in log.topics()]
    else:
        wanted = [(t.topic, set(t.partitions)) for t in request.topics]
    topics = []
    for name, parts in wanted:
        if not log.has_topic(name):
            continue                               # Kafka leaves unknown topics out
        topic = log.topic(name)
        entries = tuple(build(mod.DescribeLogDirsPartition, partition_index=p.partition,
                              partition_size=p.size_bytes, offset_lag=0, is_future_key=False)
                        for p in topic.partitions if parts is None or p.partition in parts)
        if entries:
            topics.append(build(mod.DescribeLogDirsTopic, name=name, partitions=entries))
    path = _data_dir(ctx.broker)
    try:
        st = os.statvfs(path)
        total, usable = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    except OSError:
        total = usable = -1
    result = build(mod.DescribeLogDirsResult, error_code=error_code(0), log_dir=path,
                   topics=tuple(topics), total_bytes=total, usable_bytes=usable,
                   is_cordoned=False)
    return build(mod.DescribeLogDirsResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 results=(result,))


def handle_describe_producers(ctx, request):
    mod = response_module(DESCRIBE_PRODUCERS, ctx.version)
    broker = ctx.broker
    topics = []
    for t in request.topics:
        parts = []
        for i in t.partition_indexes:
            try:
                p = broker.partition(t.name, i)
                state = broker.producers.for_partition(p)
                open_txns = p.ongoing_transactions()
                active = tuple(
                    build(mod.ProducerState, producer_id=pid, producer_epoch=e.epoch,
                          last_sequence=e.batches[-1].last_seq if e.batches else -1,
                          last_timestamp=e.batches[-1].timestamp if e.batches else -1,
                          coordinator_epoch=0 if pid in open_txns else -1,
                          current_txn_start_offset=open_txns.get(pid, -1))
                    for pid, e in sorted(state.producers.items()))
                code, message = 0, None
            except PylogError as exc:
                active, code, message = (), exc.errno, str(exc)
            parts.append(build(mod.PartitionResponse, partition_index=i,
                               error_code=error_code(code), error_message=message,
                               active_producers=active))
        topics.append(build(mod.TopicResponse, name=t.name, partitions=tuple(parts)))
    return build(mod.DescribeProducersResponse, throttle_time=ZERO_MS, topics=tuple(topics))


def handle_elect_leaders(ctx, request):
    mod = response_module(ELECT_LEADERS, ctx.version)
    results = []
    for t in request.topic_partitions or ():
        parts = []
        for i in t.partitions:
            try:
                ctx.broker.partition(t.topic, i)
                code, message = ELECTION_NOT_NEEDED, (
                    f"node {ctx.broker.settings.node_id} already leads {t.topic}-{i}")
            except PylogError as exc:
                code, message = exc.errno, str(exc)
            parts.append(build(mod.PartitionResult, partition_id=i,
                               error_code=error_code(code), error_message=message))
        results.append(build(mod.ReplicaElectionResult, topic=t.topic,
                             partition_result=tuple(parts)))
    return build(mod.ElectLeadersResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 replica_election_results=tuple(results))


def _dtp_topic(mod, name, topic, code: int, first: int, limit: int, include_ops: bool):
    parts = ()
    if topic is not None:
        parts = tuple(build(mod.DescribeTopicPartitionsResponsePartition,
                            error_code=error_code(0), partition_index=i, leader_id=0,
                            leader_epoch=0, replica_nodes=(0,), isr_nodes=(0,),
                            eligible_leader_replicas=None, last_known_elr=None,
                            offline_replicas=())
                      for i in range(first, min(topic.num_partitions, first + limit)))
    return build(mod.DescribeTopicPartitionsResponseTopic, error_code=error_code(code),
                 name=name, topic_id=topic.topic_id if topic is not None else None,
                 is_internal=name in INTERNAL_TOPICS, partitions=parts,
                 topic_authorized_operations=_ops_bits(_TOPIC_OPS) if include_ops
                 and topic is not None else UNKNOWN_OPERATIONS)


def handle_describe_topic_partitions(ctx, request):
    """Topics in name order from the cursor; at most ``response_partition_limit``
    partitions in all; ``next_cursor`` names where the next page starts."""
    mod = response_module(DESCRIBE_TOPIC_PARTITIONS, ctx.version)
    log = ctx.broker.log
    limit = request.response_partition_limit
    limit = DEFAULT_PARTITION_LIMIT if limit <= 0 else min(limit, DEFAULT_PARTITION_LIMIT)
    names = sorted({t.name for t in request.topics}) if request.topics else log.topics()
    cursor = request.cursor
    if cursor is not None:
        names = [n for n in names if n >= cursor.topic_name]
    out, left, next_cursor = [], limit, None
    for name in names:
        first = cursor.partition_index if cursor is not None and name == cursor.topic_name \
            else 0
        try:
            if not log.has_topic(name):
                raise UnknownTopicError(f"unknown topic {name!r}")
            topic = log.topic(name)
        except PylogError as exc:
            out.append(_dtp_topic(mod, name, None, exc.errno, 0, 0, False))
            continue
        if left <= 0:
            next_cursor = build(mod.Cursor, topic_name=name, partition_index=first)
            break
        out.append(_dtp_topic(mod, name, topic, 0, first, left,
                              request.include_topic_authorized_operations
                              if hasattr(request, "include_topic_authorized_operations")
                              else False))
        taken = max(0, min(topic.num_partitions - first, left))
        left -= taken
        if first + taken < topic.num_partitions:
            next_cursor = build(mod.Cursor, topic_name=name, partition_index=first + taken)
            break
    return build(mod.DescribeTopicPartitionsResponse, throttle_time=ZERO_MS,
                 topics=tuple(out), next_cursor=next_cursor)


register(
    ApiSpec(DESCRIBE_CLUSTER, "DescribeCluster", range(0, 3), 2, handle_describe_cluster),
    ApiSpec(DESCRIBE_LOG_DIRS, "DescribeLogDirs", range(1, 6), 5, handle_describe_log_dirs),
    ApiSpec(DESCRIBE_PRODUCERS, "DescribeProducers", range(0, 1), 0,
            handle_describe_producers),
    ApiSpec(ELECT_LEADERS, "ElectLeaders", range(0, 3), 2, handle_elect_leaders),
    ApiSpec(DESCRIBE_TOPIC_PARTITIONS, "DescribeTopicPartitions", range(0, 1), 0,
            handle_describe_topic_partitions),
)
