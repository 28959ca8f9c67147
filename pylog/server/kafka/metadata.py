"""Metadata (3), v0–8: this broker, its topics, and auto-creation.

One node (node.id 0) leads every partition; replicas and ISR are [0]; the
leader epoch is always 0 (v7+) so no client ever starts KIP-320 offset
validation (research/kafka-protocol.md §2.5 item 6).

Topic list semantics (§2.6): v0: an empty list means all topics; v1+: null
means all, an empty list means none.  Requested topics that do not exist are
created with ``num.partitions`` when auto-creation is on and the request
allows it (``allow_auto_topic_creation``, v4+; older versions always allow).
Creation is synchronous here, so the reply already lists the partitions
instead of Kafka's transient LEADER_NOT_AVAILABLE.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 3
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
log = logging.getLogger("pylog.server.kafka")


def _partitions(mod, topic) -> tuple:
    none = error_code(0)
    return tuple(build(mod.MetadataResponsePartition, error_code=none, partition_index=i,
                       leader_id=0, leader_epoch=0, replica_nodes=(0,), isr_nodes=(0,),
                       offline_replicas=())
                 for i in range(topic.num_partitions))


def _topic_entry(mod, name: str, topic=None, code: int = 0):
    return build(mod.MetadataResponseTopic, error_code=error_code(code), name=name,
                 is_internal=name in INTERNAL_TOPICS,
                 partitions=_partitions(mod, topic) if topic is not None else ())


def _requested_names(ctx, request) -> list[str] | None:
    """Names asked for, or None for all topics (per-version null/empty rules)."""
    topics = request.topics
    if topics is None or (ctx.version == 0 and len(topics) == 0):
        return None
    return [t.name for t in topics]


def handle_metadata(ctx, request):
    broker = ctx.broker
    mod = response_module(API_KEY, ctx.version)
    names = _requested_names(ctx, request)
    allow = getattr(request, "allow_auto_topic_creation", True)
    entries = []
    if names is None:
        for name in sorted(broker.log.topics()):
            entries.append(_topic_entry(mod, name, broker.log.topic(name)))
    else:
        for name in dict.fromkeys(names):           # de-duplicated, order kept
            try:
                topic = broker.ensure_topic(name, allow)
            except PylogError as exc:
                entries.append(_topic_entry(mod, name if name is not None else "", None,
                                            exc.errno))
                continue
            entries.append(_topic_entry(mod, name, topic))
    host, port = ctx.advertised
    brokers = (build(mod.MetadataResponseBroker, node_id=broker.settings.node_id,
                     host=host, port=port, rack=None),)
    return build(mod.MetadataResponse, throttle_time=ZERO_MS, brokers=brokers,
                 cluster_id=broker.settings.cluster_id,
                 controller_id=broker.settings.node_id, topics=tuple(entries))


register(ApiSpec(API_KEY, "Metadata", range(0, 9), 8, handle_metadata))
