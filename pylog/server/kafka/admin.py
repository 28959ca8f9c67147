"""Admin APIs: CreateTopics (19) v2–7, DeleteTopics (20) v1–6.

The config APIs (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs) are in
admin_configs.py; CreatePartitions and DeleteRecords in admin_partitions.py.

CreateTopics v5+ answers with the topic's partitions, replication factor and
configs; v7 with its id.  DeleteTopics v6 names topics by name or id.

Single node, so a replication factor other than 1 (or -1, "broker default",
v4+) is INVALID_REPLICATION_FACTOR (38) and manual assignments may only name
broker 0.  ``num_partitions`` -1 (v4+) means ``num.partitions``.  Topic configs
use Kafka's keys and are validated by ``TopicConfig`` (INVALID_CONFIG, 40, with the
reason as error_message: an unknown key, a bad value, or ``cleanup.policy=compact`` and
the other values pylog does not implement).
Each topic gets its own error code; one bad topic never fails the others.
"""
from __future__ import annotations

import logging

from pylog.config import MAX_PARTITIONS, TopicConfig
from pylog.errors import (InvalidPartitionsError, InvalidReplicationFactorError,
                          TopicAuthorizationFailedError,
                          InvalidRequestError, PylogError, TopicExistsError,
                          UnknownTopicError)

from .context import validate_topic_name
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

log = logging.getLogger("pylog.server.kafka")
CREATE_TOPICS, DELETE_TOPICS = 19, 20
SOURCE_TOPIC_CONFIG, SOURCE_DEFAULT = 1, 5


def _creation_plan(broker, t) -> tuple[int, dict]:
    """(partitions, configs) for one CreatableTopic, or a PylogError."""
    validate_topic_name(t.name)
    partitions = t.num_partitions
    if t.assignments:
        if partitions != -1 or t.replication_factor != -1:
            raise InvalidRequestError("assignments given with num_partitions or "
                                      "replication_factor set")
        for a in t.assignments:
            if tuple(a.broker_ids) != (broker.settings.node_id,):
                raise InvalidReplicationFactorError(
                    f"partition {a.partition_index} assigned to {list(a.broker_ids)}: this "
                    f"single-node broker is node {broker.settings.node_id}")
        partitions = len(t.assignments)
    elif t.replication_factor not in (-1, 1):
        raise InvalidReplicationFactorError(
            f"replication factor {t.replication_factor}: a single-node broker has 1")
    if partitions == -1:
        partitions = broker.settings.num_partitions
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(f"number of partitions {partitions}: must be from 1 "
                                     f"to {MAX_PARTITIONS}")
    configs = {c.name: c.value for c in t.configs if c.value is not None}
    return partitions, configs


def _validate_configs(configs: dict) -> None:
    if configs:
        TopicConfig.from_dict(configs)


def handle_create_topics(ctx, request):
    broker = ctx.broker
    mod = response_module(CREATE_TOPICS, ctx.version)
    names = [t.name for t in request.topics]
    results = []
    for t in request.topics:
        code, message, made = 0, None, None
        try:
            if names.count(t.name) > 1:
                raise InvalidRequestError(f"topic {t.name!r} appears more than once")
            if not (ctx.allowed(5, 4, "kafka-cluster") or ctx.allowed(5, 2, t.name)):
                raise TopicAuthorizationFailedError(f"{ctx.principal} may not create "
                                                    f"topic {t.name!r}")
            partitions, configs = _creation_plan(broker, t)
            if request.validate_only:
                _validate_configs(configs)
                if broker.log.has_topic(t.name):
                    raise TopicExistsError(f"topic {t.name!r} already exists")
            else:
                made = broker.create_topic(t.name, partitions, configs)
                log.info("created topic %s (%d partitions, configs %s)", t.name, partitions,
                         configs or "{}")
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        results.append(_created(mod, t, code, message, made))
    return build(mod.CreateTopicsResponse, throttle_time=ZERO_MS, topics=tuple(results))


def _created(mod, t, code: int, message, topic):
    """One CreatableTopicResult; v5+ describes the new topic."""
    extra = {}
    if topic is not None and hasattr(mod, "CreatableTopicConfigs"):
        extra = dict(num_partitions=topic.num_partitions, replication_factor=1,
                     topic_id=topic.topic_id, configs=tuple(
                         build(mod.CreatableTopicConfigs, name=k, value=v, read_only=False,
                               config_source=SOURCE_DEFAULT if dflt else SOURCE_TOPIC_CONFIG,
                               is_sensitive=False)
                         for k, v, dflt in topic.config.describe()))
    return build(mod.CreatableTopicResult, name=t.name if t.name is not None else "",
                 error_code=error_code(code), error_message=message,
                 **({"num_partitions": -1, "replication_factor": -1, "configs": None,
                     "topic_id": None} | extra))


def handle_delete_topics(ctx, request):
    broker = ctx.broker
    mod = response_module(DELETE_TOPICS, ctx.version)
    results = []
    wanted = ([(t.name, t.topic_id) for t in request.topics] if ctx.version >= 6
              else [(n, None) for n in request.topic_names])
    for name, topic_id in wanted:
        code, message = 0, None
        try:
            if topic_id is not None and topic_id.int != 0:
                name = broker.log.topic_by_id(topic_id).name
            validate_topic_name(name)
            if not ctx.allowed(6, 2, name):                      # DELETE on the topic
                raise TopicAuthorizationFailedError(f"{ctx.principal} may not delete "
                                                    f"topic {name!r}")
            if not broker.log.has_topic(name):
                raise UnknownTopicError(f"unknown topic {name!r}")
            topic_id = broker.log.topic(name).topic_id
            broker.log.delete_topic(name)
            broker.producers.forget_topic(name)
            log.info("deleted topic %s", name)
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        results.append(build(mod.DeletableTopicResult,
                             name=name if name is not None or ctx.version >= 6 else "",
                             topic_id=topic_id, error_code=error_code(code),
                             error_message=message))
    return build(mod.DeleteTopicsResponse, throttle_time=ZERO_MS, responses=tuple(results))


register(ApiSpec(CREATE_TOPICS, "CreateTopics", range(2, 8), 7, handle_create_topics),
         ApiSpec(DELETE_TOPICS, "DeleteTopics", range(1, 7), 6, handle_delete_topics))
