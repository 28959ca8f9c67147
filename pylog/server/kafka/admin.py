"""Admin APIs: CreateTopics (19) v2–4, DeleteTopics (20) v1–3, DescribeConfigs (32) v1–3.

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
                          InvalidRequestError, PylogError, TopicExistsError,
                          UnknownTopicError)

from .context import validate_topic_name
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

log = logging.getLogger("pylog.server.kafka")
CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS = 19, 20, 32
RESOURCE_TOPIC, RESOURCE_BROKER = 2, 4
SOURCE_TOPIC_CONFIG, SOURCE_STATIC_BROKER, SOURCE_DEFAULT = 1, 4, 5


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
        code, message = 0, None
        try:
            if names.count(t.name) > 1:
                raise InvalidRequestError(f"topic {t.name!r} appears more than once")
            partitions, configs = _creation_plan(broker, t)
            if request.validate_only:
                _validate_configs(configs)
                if broker.log.has_topic(t.name):
                    raise TopicExistsError(f"topic {t.name!r} already exists")
            else:
                broker.create_topic(t.name, partitions, configs)
                log.info("created topic %s (%d partitions, configs %s)", t.name, partitions,
                         configs or "{}")
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        results.append(build(mod.CreatableTopicResult, name=t.name if t.name is not None else "",
                             error_code=error_code(code), error_message=message))
    return build(mod.CreateTopicsResponse, throttle_time=ZERO_MS, topics=tuple(results))


def handle_delete_topics(ctx, request):
    broker = ctx.broker
    mod = response_module(DELETE_TOPICS, ctx.version)
    results = []
    for name in request.topic_names:
        code = 0
        try:
            validate_topic_name(name)
            if not broker.log.has_topic(name):
                raise UnknownTopicError(f"unknown topic {name!r}")
            broker.log.delete_topic(name)
            broker.producers.forget_topic(name)
            log.info("deleted topic %s", name)
        except PylogError as exc:
            code = exc.errno
        results.append(build(mod.DeletableTopicResult, name=name if name is not None else "",
                             error_code=error_code(code)))
    return build(mod.DeleteTopicsResponse, throttle_time=ZERO_MS, responses=tuple(results))


def _topic_configs(broker, name: str) -> list[tuple[str, str | None, int]]:
    """(name, value, config_source) per topic config key (TopicConfig.describe)."""
    topic = broker.topic(name)
    return [(k, v, SOURCE_DEFAULT if is_default else SOURCE_TOPIC_CONFIG)
            for k, v, is_default in topic.config.describe()]


def handle_describe_configs(ctx, request):
    broker = ctx.broker
    mod = response_module(DESCRIBE_CONFIGS, ctx.version)
    results = []
    for res in request.resources:
        code, message, entries = 0, None, []
        try:
            if res.resource_type == RESOURCE_TOPIC:
                entries = _topic_configs(broker, res.resource_name)
            elif res.resource_type == RESOURCE_BROKER:
                entries = [(k, v, SOURCE_STATIC_BROKER)
                           for k, v in sorted(broker.settings.describe().items())]
            else:
                raise InvalidRequestError(f"resource type {res.resource_type} not supported")
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        keys = res.configuration_keys
        configs = tuple(build(mod.DescribeConfigsResourceResult, name=k, value=v,
                              read_only=res.resource_type != RESOURCE_TOPIC,
                              config_source=source, is_sensitive=False, synonyms=(),
                              config_type=0, documentation=None)
                        for k, v, source in entries if keys is None or k in keys)
        results.append(build(mod.DescribeConfigsResult, error_code=error_code(code),
                             error_message=message, resource_type=res.resource_type,
                             resource_name=res.resource_name, configs=configs))
    return build(mod.DescribeConfigsResponse, throttle_time=ZERO_MS, results=tuple(results))


register(ApiSpec(CREATE_TOPICS, "CreateTopics", range(2, 5), 4, handle_create_topics),
         ApiSpec(DELETE_TOPICS, "DeleteTopics", range(1, 4), 3, handle_delete_topics),
         ApiSpec(DESCRIBE_CONFIGS, "DescribeConfigs", range(1, 4), 3, handle_describe_configs))
