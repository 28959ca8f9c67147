"""Partition admin APIs: CreatePartitions (37) v0–3, DeleteRecords (21) v0–2.

CreatePartitions grows a topic to ``count`` partitions (``Log.create_partitions``);
keys then route by murmur2 over the new count, as Kafka's.  A count not above the
current one is INVALID_PARTITIONS (37), above ``MAX_PARTITIONS`` too; manual
assignments must give one list per new partition, each naming only this node
(INVALID_REPLICA_ASSIGNMENT, 39); a topic named twice is INVALID_REQUEST for both
(Kafka: "Duplicate topic name."); ``validate_only`` checks and changes nothing.
``__consumer_offsets`` keeps the one partition its coordinator created
(POLICY_VIOLATION, 44).

DeleteRecords moves a partition's log start offset up to ``offset`` (-1: the high
watermark); records below it are unreadable at once (ListOffsets earliest, Fetch
OFFSET_OUT_OF_RANGE), the segments wholly below it are deleted, and the
log-start-offset checkpoint is written before the answer, so it survives a
restart.  An offset past the high watermark (or below -1) is OFFSET_OUT_OF_RANGE;
an internal topic (``__consumer_offsets``) is INVALID_TOPIC_EXCEPTION, as Kafka.
"""
from __future__ import annotations

import logging

from pylog.broker.broker_configs import MAX_PARTITIONS
from pylog.broker.offsets import OFFSETS_TOPIC
from pylog.errors import (InvalidPartitionsError, InvalidReplicaAssignmentError,
                          TopicAuthorizationFailedError,
                          InvalidRequestError, InvalidTopicError, OffsetOutOfRangeError,
                          PolicyViolationError, PylogError)

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

log = logging.getLogger("pylog.server.kafka")
DELETE_RECORDS, CREATE_PARTITIONS = 21, 37
HIGH_WATERMARK = -1          # DeleteRecords: "up to the high watermark"


def _check_growth(broker, t) -> int:
    """The topic's current partition count, once the request for it is checked."""
    topic = broker.topic(t.name)
    if t.name == OFFSETS_TOPIC:
        raise PolicyViolationError(f"{OFFSETS_TOPIC} has the partitions its group "
                                   "coordinator created")
    current = topic.num_partitions
    if t.count < current:
        raise InvalidPartitionsError(f"Topic currently has {current} partitions, which is "
                                     f"higher than the requested {t.count}.")
    if t.count == current:
        raise InvalidPartitionsError(f"Topic already has {current} partitions.")
    if t.count > MAX_PARTITIONS:
        raise InvalidPartitionsError(f"The requested {t.count} partitions exceed this "
                                     f"broker's limit of {MAX_PARTITIONS} per topic.")
    if t.assignments is not None:
        node = broker.settings.node_id
        if len(t.assignments) != t.count - current:
            raise InvalidReplicaAssignmentError(
                f"Attempted to add {t.count - current} additional partition(s), but only "
                f"{len(t.assignments)} assignment(s) were specified.")
        for a in t.assignments:
            if tuple(a.broker_ids) != (node,):
                raise InvalidReplicaAssignmentError(
                    f"assignment {list(a.broker_ids)[:10]}: this single-node broker is "
                    f"node {node}, with a replication factor of 1")
    return current


def handle_create_partitions(ctx, request):
    broker = ctx.broker
    mod = response_module(CREATE_PARTITIONS, ctx.version)
    names = [t.name for t in request.topics]
    results = []
    for t in request.topics:
        code, message = 0, None
        try:
            if names.count(t.name) > 1:
                raise InvalidRequestError("Duplicate topic name.")
            if not ctx.allowed(7, 2, t.name):                   # ALTER on the topic
                raise TopicAuthorizationFailedError(f"{ctx.principal} may not alter "
                                                    f"topic {t.name!r}")
            current = _check_growth(broker, t)
            if not request.validate_only:
                broker.log.create_partitions(t.name, t.count)
                log.info("topic %s grown from %d to %d partitions", t.name, current, t.count)
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        results.append(build(mod.CreatePartitionsTopicResult, name=t.name,
                             error_code=error_code(code), error_message=message))
    return build(mod.CreatePartitionsResponse, throttle_time=ZERO_MS, results=tuple(results))


def _delete_records(broker, name: str, index: int, offset: int) -> int:
    """The partition's new log start offset (low watermark)."""
    if name == OFFSETS_TOPIC:
        raise InvalidTopicError(f"Cannot delete records of internal topic {name}")
    p = broker.partition(name, index)
    if offset == HIGH_WATERMARK:
        offset = p.high_watermark
    elif offset < 0:
        raise OffsetOutOfRangeError(f"Cannot delete records of {name}-{index} up to "
                                    f"offset {offset}: not an offset")
    return p.delete_records(offset)


def handle_delete_records(ctx, request):
    broker = ctx.broker
    mod = response_module(DELETE_RECORDS, ctx.version)
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            code, low = 0, -1
            try:
                if not ctx.allowed(6, 2, t.name):               # DELETE on the topic
                    raise TopicAuthorizationFailedError(f"{ctx.principal} may not delete "
                                                        f"records of {t.name!r}")
                low = _delete_records(broker, t.name, p.partition_index, p.offset)
                log.info("deleted records of %s-%d below %d", t.name, p.partition_index, low)
            except PylogError as exc:        # an unknown partition: UnknownTopicError
                code = exc.errno
            parts.append(build(mod.DeleteRecordsPartitionResult,
                               partition_index=p.partition_index, low_watermark=low,
                               error_code=error_code(code)))
        topics.append(build(mod.DeleteRecordsTopicResult, name=t.name, partitions=tuple(parts)))
    return build(mod.DeleteRecordsResponse, throttle_time=ZERO_MS, topics=tuple(topics))


register(ApiSpec(DELETE_RECORDS, "DeleteRecords", range(0, 3), 2, handle_delete_records),
         ApiSpec(CREATE_PARTITIONS, "CreatePartitions", range(0, 4), 3,
                 handle_create_partitions))
