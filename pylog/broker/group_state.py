"""The data of consumer groups, without behaviour: error codes, states, members, groups,
and the results the coordinator (``groups.py``) hands out.

``Member`` and ``Group`` are mutable and not thread-safe: only the coordinator touches
them, under its lock.  The NamedTuples are immutable answers safe to pass anywhere.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

# Kafka error codes (research/kafka-protocol.md §4).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
INVALID_REQUEST = 42
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86
FENCED_MEMBER_EPOCH = 110
UNRELEASED_INSTANCE_ID = 111
UNSUPPORTED_ASSIGNOR = 112
STALE_MEMBER_EPOCH = 113

UNLIMITED_GROUP_SIZE = 2_147_483_647      # Kafka's group.max.size default (Integer.MAX_VALUE)

EMPTY, PREPARING, COMPLETING, STABLE = ("Empty", "PreparingRebalance",
                                        "CompletingRebalance", "Stable")


class JoinResult(NamedTuple):
    error: int
    generation: int = -1
    protocol_name: str = ""
    leader: str = ""
    member_id: str = ""
    members: tuple = ()            # leader only: (member_id, group_instance_id, metadata)
    skip_assignment: bool = False  # a static leader's rejoin: it must not reassign


class SyncResult(NamedTuple):
    error: int
    assignment: bytes = b""


class MemberSummary(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


class GroupSummary(NamedTuple):
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple


class PartitionLag(NamedTuple):
    group: str
    topic: str
    partition: int
    committed_offset: int
    log_end_offset: int
    lag: int


class Member:
    __slots__ = ("member_id", "group_instance_id", "client_id", "client_host",
                 "session_s", "rebalance_s", "protocols", "assignment", "join_cb",
                 "sync_cb", "deadline", "told")

    def __init__(self, member_id: str, client_id: str, client_host: str) -> None:
        self.member_id = member_id
        self.group_instance_id: str | None = None
        self.client_id, self.client_host = client_id, client_host
        self.session_s = self.rebalance_s = 10.0
        self.protocols: list[tuple[str, bytes]] = []
        self.assignment = b""
        self.join_cb: Callable | None = None
        self.sync_cb: Callable | None = None
        self.deadline = 0.0
        self.told = False               # has a JoinGroup answer carried its id yet?

    def metadata(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


class Group:
    __slots__ = ("group_id", "state", "generation", "protocol_type", "protocol",
                 "leader", "members", "join_deadline", "delay_deadline")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.state = EMPTY
        self.generation = 0
        self.protocol_type = ""
        self.protocol = ""
        self.leader = ""
        self.members: dict[str, Member] = {}
        self.join_deadline = 0.0        # PreparingRebalance: force completion then
        self.delay_deadline = 0.0       # initial rebalance delay of an empty group

    def static_member(self, instance_id: str | None) -> Member | None:
        if instance_id is None:
            return None
        return next((m for m in self.members.values() if m.group_instance_id == instance_id),
                    None)

    def candidates(self, exclude: str | None = None) -> set[str] | None:
        """Protocols every member (but ``exclude``) supports; None if no such member."""
        common = None
        for m in self.members.values():
            if m.member_id == exclude:
                continue
            names = {n for n, _ in m.protocols}
            common = names if common is None else common & names
        return common
