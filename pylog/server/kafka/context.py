"""What a Kafka API handler sees: the broker (shared) and the request (per call).

``BrokerContext`` is shared by every connection of one server and used only on
the event-loop thread (not thread-safe).  It owns the pylog ``Log``, the
idempotent-producer state, the few broker settings handlers need, and the
topic lookups with Kafka's error semantics.  ``RequestContext`` adds what a
handler needs to know about one request: the header and the address the client
connected to (what Metadata advertises unless a host is configured).
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from pylog.broker.broker_configs import BrokerConfigs
from pylog.broker.producers import ProducerStateManager
from pylog.errors import (InvalidTopicError, UnknownTopicError)

from ..metrics import Metrics
from .fetch_session import DEFAULT_EVICTION_MS, DEFAULT_SLOTS, FetchSessionCache
from .messages import RequestHeader

__all__ = ["BrokerSettings", "BrokerContext", "RequestContext", "validate_topic_name"]

_LEGAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
MAX_TOPIC_NAME = 249


def validate_topic_name(name: str | None) -> str:
    """Kafka's ``Topic.validate``: ``[a-zA-Z0-9._-]{1,249}``, not ``.`` or ``..``.

    Checked here, before the name reaches the storage layer, so a request can
    never make a path from it (the storage layer checks again before any path).
    """
    if not name or name in (".", "..") or len(name) > MAX_TOPIC_NAME \
            or not _LEGAL.issuperset(name):
        shown = name if name is None or len(name) <= 60 else name[:60] + "..."
        raise InvalidTopicError(f"invalid topic name {shown!r}: must be 1-{MAX_TOPIC_NAME} "
                                f"characters of [a-zA-Z0-9._-], not '.' or '..'")
    return name


# Group settings: BrokerSettings field (= ServerConfig field) → Kafka's name; each is a
# GroupCoordinator keyword argument of the same name without the ``group_`` prefix.
GROUP_SETTINGS = {
    "group_min_session_timeout_ms": "group.min.session.timeout.ms",
    "group_max_session_timeout_ms": "group.max.session.timeout.ms",
    "group_max_size": "group.max.size",
    "group_consumer_session_timeout_ms": "group.consumer.session.timeout.ms",
    "group_consumer_heartbeat_interval_ms": "group.consumer.heartbeat.interval.ms",
    "group_consumer_assignors": "group.consumer.assignors",
    "offsets_retention_minutes": "offsets.retention.minutes",
    "offsets_retention_check_interval_ms": "offsets.retention.check.interval.ms",
}
# Share-group settings: BrokerSettings field → Kafka's name; the defaults of the share
# group configs (``log.share_groups.defaults`` / ``log.share_members``).
SHARE_SETTINGS = {
    "group_share_record_lock_duration_ms": "group.share.record.lock.duration.ms",
    "group_share_delivery_count_limit": "group.share.delivery.count.limit",
    "group_share_session_timeout_ms": "group.share.session.timeout.ms",
    "group_share_heartbeat_interval_ms": "group.share.heartbeat.interval.ms",
}
# Transaction settings: BrokerSettings field → Kafka's name (``log.start_transactions``).
TXN_SETTINGS = {
    "transaction_max_timeout_ms": "transaction.max.timeout.ms",
    "transaction_abort_check_interval_ms":
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
}


@dataclass
class BrokerSettings:
    """The broker-level settings handlers consult (Kafka's names in comments)."""
    node_id: int = 0                        # node.id
    advertised_host: str | None = None      # advertised.listeners host; None = as connected
    advertised_port: int | None = None
    auto_create_topics: bool = True         # auto.create.topics.enable
    num_partitions: int = 1                 # num.partitions
    max_request_bytes: int = 104_857_600    # socket.request.max.bytes
    group_initial_rebalance_delay_ms: int = 0   # group.initial.rebalance.delay.ms
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_max_size: int = 2_147_483_647
    group_consumer_session_timeout_ms: int = 45_000
    group_consumer_heartbeat_interval_ms: int = 5000
    group_consumer_assignors: str = "uniform,range"
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600_000
    group_share_record_lock_duration_ms: int = 30_000
    group_share_delivery_count_limit: int = 5
    group_share_session_timeout_ms: int = 45_000
    group_share_heartbeat_interval_ms: int = 5000
    transaction_max_timeout_ms: int = 900_000
    transaction_abort_check_interval_ms: int = 10_000
    fetch_session_cache_slots: int = DEFAULT_SLOTS   # max.incremental.fetch.session.cache.slots
    fetch_session_eviction_ms: int = DEFAULT_EVICTION_MS   # min.incremental.fetch.session.eviction.ms
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    topic_defaults: dict[str, Any] = field(default_factory=dict)   # log.* → topic config

    def describe(self) -> dict[str, str]:
        """Broker configs for DescribeConfigs(BROKER)."""
        return {
            "node.id": str(self.node_id),
            "auto.create.topics.enable": str(self.auto_create_topics).lower(),
            "num.partitions": str(self.num_partitions),
            "socket.request.max.bytes": str(self.max_request_bytes),
            "group.initial.rebalance.delay.ms": str(self.group_initial_rebalance_delay_ms),
            "default.replication.factor": "1",
            **{kafka: str(getattr(self, name)) for name, kafka in GROUP_SETTINGS.items()},
            **{kafka: str(getattr(self, name)) for name, kafka in SHARE_SETTINGS.items()},
            **{kafka: str(getattr(self, name)) for name, kafka in TXN_SETTINGS.items()},
        }

    def group_options(self) -> dict[str, Any]:
        """GroupCoordinator keyword arguments (``log.start_groups``)."""
        opts = {name.removeprefix("group_"): getattr(self, name) for name in GROUP_SETTINGS}
        opts["initial_rebalance_delay_ms"] = self.group_initial_rebalance_delay_ms
        return opts

    def transaction_options(self) -> dict[str, Any]:
        """TransactionCoordinator keyword arguments (``log.start_transactions``)."""
        return {"max_timeout_ms": self.transaction_max_timeout_ms,
                "check_interval_ms": self.transaction_abort_check_interval_ms}

    def apply_share_defaults(self, log_) -> None:
        """Make the share settings the defaults of every share group of ``log_``."""
        log_.share_groups.defaults.update(
            lock_duration_ms=self.group_share_record_lock_duration_ms,
            delivery_count_limit=self.group_share_delivery_count_limit)
        log_.share_members.defaults.update(
            session_timeout_ms=self.group_share_session_timeout_ms,
            heartbeat_interval_ms=self.group_share_heartbeat_interval_ms)


class BrokerContext:
    """Shared broker state for the Kafka handlers (event-loop thread only)."""

    def __init__(self, log, settings: BrokerSettings | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.log = log
        self.settings = settings or BrokerSettings()
        self.producers = (log.producer_ids if hasattr(log, "producer_ids")
                          else ProducerStateManager(getattr(log, "data_dir", None)))
        # Dynamic broker configs (broker-configs.json), applied over the settings now.
        self.configs = BrokerConfigs(log, self.settings)
        self.loop = loop
        self.closing = False            # set at shutdown: long polls answer at once
        self.security = None            # pylog.security.sasl.Security (set by app.Server)
        self.authorizer = None          # pylog.security.acls.Authorizer when ACLs are on
        from pylog.security.quotas import QuotaManager
        self.quotas = QuotaManager(getattr(log, "data_dir", None))   # client byte rates
        self.fetch_waiters: set[asyncio.Event] = set()   # long-polling Fetch requests
        self.fetch_sessions = FetchSessionCache(self.settings.fetch_session_cache_slots,
                                                self.settings.fetch_session_eviction_ms)
        self.metrics = Metrics()        # connections, requests, record rates (every listener)
        self.metrics.section("fetch_sessions", self.fetch_sessions.stats)
        from pylog.server.share_metrics import ShareGroupMetrics
        self.metrics.section("share_groups", ShareGroupMetrics(log).collect)

    def close(self) -> None:
        """Shutdown step: answer every long-polling Fetch now."""
        self.closing = True
        for event in list(self.fetch_waiters):
            event.set()

    # -- topics ---------------------------------------------------------------------
    def topic(self, name: str):
        """The Topic, or UnknownTopicError / InvalidTopicError (name checked first)."""
        validate_topic_name(name)
        return self.log.topic(name)

    def topic_ref(self, name: str | None, topic_id):
        """The Topic named by id (when the request carries a non-zero id: Fetch v13+,
        Produce v13, Metadata v10+ ...) or else by name; UnknownTopicIdError /
        UnknownTopicError / InvalidTopicError."""
        if topic_id is not None and topic_id.int != 0:
            return self.log.topic_by_id(topic_id)
        return self.topic(name)

    def partition(self, name: str, index: int):
        """The PartitionLog for (topic, index); UnknownTopicError if either is unknown."""
        topic = self.topic(name)
        if not 0 <= index < topic.num_partitions:
            raise UnknownTopicError(f"topic {name!r} has no partition {index}")
        return topic.partition(index)

    def ensure_topic(self, name: str, allow_create: bool):
        """The topic, auto-created (num.partitions) when allowed and enabled."""
        validate_topic_name(name)
        if self.log.has_topic(name):
            return self.log.topic(name)
        if not (allow_create and self.settings.auto_create_topics):
            raise UnknownTopicError(f"unknown topic {name!r}")
        return self.create_topic(name, self.settings.num_partitions, {})

    def create_topic(self, name: str, partitions: int, config: dict[str, Any]):
        validate_topic_name(name)
        merged = dict(self.settings.topic_defaults)
        merged.update(config)
        topic = self.log.create_topic(name, partitions=partitions, config=merged or None)
        return topic


@dataclass
class RequestContext:
    """One request as a handler sees it."""
    broker: BrokerContext
    header: RequestHeader
    local_host: str = "127.0.0.1"
    local_port: int = 9092
    auth: Any = None                # pylog.security.sasl.ConnectionAuth of the connection
    request_body: Any = None        # the decoded request (quotas count its bytes)

    @property
    def principal(self) -> str:
        return self.auth.principal if self.auth is not None else "User:ANONYMOUS"

    def throttle(self, kind: str, nbytes: int) -> int:
        """Count bytes against this client's quota (``producer_byte_rate`` /
        ``consumer_byte_rate``); the throttle time in ms, also applied to the
        connection (it is not read for that long after the response)."""
        ms = self.broker.quotas.record(self.principal, self.header.client_id or "", kind,
                                       nbytes)
        if ms and self.auth is not None:
            self.auth.throttle_ms = max(getattr(self.auth, "throttle_ms", 0), ms)
        return ms

    def allowed(self, operation: int, resource_type: int, name: str) -> bool:
        """ACL check for this request's principal (True when no authorizer is set)."""
        authz = self.broker.authorizer
        if authz is None:
            return True
        host = getattr(self.auth, "host", "*") or "*"
        return authz.authorize(self.principal, host, operation, resource_type, name)

    @property
    def version(self) -> int:
        return self.header.api_version

    @property
    def advertised(self) -> tuple[str, int]:
        s = self.broker.settings
        return (s.advertised_host or self.local_host, s.advertised_port or self.local_port)
