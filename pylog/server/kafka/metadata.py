"""Metadata (3), v0–13: this broker, its topics, and auto-creation.

One node (node.id 0) leads every partition; replicas and ISR are [0]; the
leader epoch is always 0 (v7+) so no client ever starts KIP-320 offset
validation (research/kafka-protocol.md §2.5 item 6).

Topic list semantics (§2.6): v0: an empty list means all topics; v1+: null
means all, an empty list means none.  v10+ answers carry each topic's id
(KIP-516); from v12 a requested topic may be named by id alone (an unknown id
gets UNKNOWN_TOPIC_ID, 100).  Requested topics that do not exist are created
with ``num.partitions`` when auto-creation is on and the request allows it
(``allow_auto_topic_creation``, v4+; older versions always allow).  Creation is
synchronous here, so the reply already lists the partitions instead of Kafka's
transient LEADER_NOT_AVAILABLE.  v13's top-level error code is always 0.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 3
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state",
                             "__share_group_state"})
log = logging.getLogger("pylog.server.kafka")


def _partitions(mod, topic) -> tuple:
    none = error_code(0)
    return tuple(build(mod.MetadataResponsePartition, error_code=none, partition_index=i,
                       leader_id=0, leader_epoch=0, replica_nodes=(0,), isr_nodes=(0,),
                       offline_replicas=())
                 for i in range(topic.num_partitions))


def _topic_entry(mod, name: str | None, topic=None, code: int = 0, topic_id=None):
    return build(mod.MetadataResponseTopic, error_code=error_code(code), name=name,
                 topic_id=topic.topic_id if topic is not None else topic_id,
                 is_internal=name in INTERNAL_TOPICS,
                 partitions=_partitions(mod, topic) if topic is not None else ())


def _requested(ctx, request) -> list | None:
    """(name, topic id) asked for, or None for all topics (per-version rules)."""
    topics = request.topics
    if topics is None or (ctx.version == 0 and len(topics) == 0):
        return None
    return [(t.name, getattr(t, "topic_id", None)) for t in topics]


def _lookup(broker, name, topic_id, allow: bool):
    if topic_id is not None and topic_id.int != 0:
        return broker.topic_ref(None, topic_id)
    return broker.ensure_topic(name, allow)


DESCRIBE, CREATE, TOPIC, CLUSTER, TOPIC_AUTHORIZATION_FAILED = 8, 5, 2, 4, 29


def handle_metadata(ctx, request):
    broker = ctx.broker
    mod = response_module(API_KEY, ctx.version)
    wanted = _requested(ctx, request)
    allow = getattr(request, "allow_auto_topic_creation", True)
    entries = []
    if wanted is None:
        for name in sorted(broker.log.topics()):
            if ctx.allowed(DESCRIBE, TOPIC, name):          # others are left out
                entries.append(_topic_entry(mod, name, broker.log.topic(name)))
    else:
        for name, topic_id in dict.fromkeys(wanted):      # de-duplicated, order kept
            if name is not None and not ctx.allowed(DESCRIBE, TOPIC, name):
                entries.append(_topic_entry(mod, name, None, TOPIC_AUTHORIZATION_FAILED,
                                            topic_id))
                continue
            creatable = allow and name is not None and (
                ctx.allowed(CREATE, CLUSTER, "kafka-cluster") or ctx.allowed(CREATE, TOPIC, name))
            try:
                topic = _lookup(broker, name, topic_id, creatable)
            except PylogError as exc:
                shown = name if name is not None or ctx.version >= 12 else ""
                entries.append(_topic_entry(mod, shown, None, exc.errno, topic_id))
                continue
            entries.append(_topic_entry(mod, topic.name, topic))
    host, port = ctx.advertised
    brokers = (build(mod.MetadataResponseBroker, node_id=broker.settings.node_id,
                     host=host, port=port, rack=None),)
    return build(mod.MetadataResponse, throttle_time=ZERO_MS, brokers=brokers,
                 cluster_id=broker.settings.cluster_id,
                 controller_id=broker.settings.node_id, topics=tuple(entries),
                 error_code=error_code(0))


register(ApiSpec(API_KEY, "Metadata", range(0, 14), 13, handle_metadata))
