"""Consumer groups of the KIP-848 consumer protocol (ConsumerGroupHeartbeat).

Beside the classic groups of ``groups.py``; a group id is one or the other.  The
state machine is Kafka's GroupMetadataManager.consumerGroupHeartbeat, in three steps
per heartbeat:

1. *Member*: epoch 0 joins (a new member, or a static member — ``instance_id`` —
   taking over the assignment of its predecessor once that one left with epoch -2,
   else UNRELEASED_INSTANCE_ID); epoch > 0 must be the member's epoch, or its
   previous one with owned partitions a subset of its assignment (the answer that
   bumped it was lost), else FENCED_MEMBER_EPOCH; an unknown member id gets
   UNKNOWN_MEMBER_ID.  The client then rejoins with epoch 0.  Epoch -1 leaves;
   epoch -2 is a static member's temporary leave (its assignment is kept for its
   session timeout).  A changed subscription, a member joining or leaving, or a
   change of the subscribed topics' partition counts bumps the *group epoch*.
2. *Target assignment*: when the group epoch is ahead of the assignment epoch, the
   group's assignor (``uniform``/``range``, see ``assignors.py``; the members' most
   asked-for ``server_assignor``, else the first of ``group.consumer.assignors``)
   computes every member's target, and the assignment epoch catches up.
3. *Reconciliation* (Kafka's CurrentAssignmentBuilder): a member whose epoch is
   behind the assignment epoch first has to revoke what is not in its target
   (state UNREVOKED_PARTITIONS: its epoch stays until a heartbeat's owned partitions
   no longer hold them, or it is fenced at its rebalance timeout); then it moves to
   the assignment epoch and gets the target partitions no other member still owns
   (UNRELEASED_PARTITIONS until the others release them, then STABLE).  A partition
   is thus never owned by two members at once.

Sessions: a member not heard from for ``group.consumer.session.timeout.ms`` (45 s;
per group ``consumer.session.timeout.ms``) is removed, and its partitions go to the
others.  Members are told to heartbeat every ``group.consumer.heartbeat.interval.ms``.

Offsets (OffsetCommit v9+ / OffsetFetch v9+): a commit or fetch carrying a member id
must name a member and its current epoch, else STALE_MEMBER_EPOCH (Kafka's
validateMemberEpoch); epoch -1 (admin tools) commits only to an empty group.

What is persisted: committed offsets only (``__consumer_offsets``, as for classic
groups).  Members, epochs and assignments live in memory: after a restart every
member's heartbeat gets UNKNOWN_MEMBER_ID, it rejoins with epoch 0 (what Kafka's
clients do) and resumes from the committed offsets.

``ConsumerProtocolMixin`` is the coordinator's side (``GroupCoordinator`` in
``groups.py``: its lock, the classic/consumer id check); ``ConsumerGroups`` is not
thread-safe by itself: the mixin calls in with the coordinator's lock held.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import NamedTuple

from .assignors import ASSIGNORS
from .group_state import (FENCED_INSTANCE_ID, FENCED_MEMBER_EPOCH, GROUP_ID_NOT_FOUND,
                          GROUP_MAX_SIZE_REACHED, INVALID_GROUP_ID, INVALID_REQUEST,
                          NON_EMPTY_GROUP, NONE,
                          STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID, UNRELEASED_INSTANCE_ID,
                          UNSUPPORTED_ASSIGNOR)

__all__ = ["ConsumerGroups", "ConsumerProtocolMixin", "HeartbeatResult", "ConsumerGroup", "ConsumerMember"]

log = logging.getLogger("pylog.groups")

LEAVE_EPOCH, STATIC_LEAVE_EPOCH = -1, -2
STABLE, UNREVOKED, UNRELEASED = "STABLE", "UNREVOKED_PARTITIONS", "UNRELEASED_PARTITIONS"
Assignment = dict[str, frozenset]
UNSUPPORTED_VERSION = 35
# Python's re backtracks: a quantified group that holds a quantifier, e.g. "(a+)+", or a
# back-reference can take exponential time on a 249-character topic name.  Kafka
# matches with RE2 (linear); pylog refuses those shapes instead.
_BACKTRACKING = re.compile(r"\((?:[^()\\]|\\.)*[*+?}](?:[^()\\]|\\.)*\)[*+?{]|\\[1-9]")
_MAX_REGEX = 1000


class HeartbeatResult(NamedTuple):
    error: int
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None      # None: not sent (unchanged)


class ConsumerMember:
    __slots__ = ("member_id", "instance_id", "rack_id", "client_id", "client_host",
                 "topics", "regex", "assignor", "rebalance_ms", "epoch", "previous_epoch",
                 "state", "assigned", "revoking", "deadline", "revoke_deadline")

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.instance_id: str | None = None
        self.rack_id: str | None = None
        self.client_id = self.client_host = ""
        self.topics: tuple[str, ...] = ()
        self.regex: str | None = None
        self.assignor: str | None = None
        self.rebalance_ms = 300_000
        self.epoch = self.previous_epoch = 0
        self.state = STABLE
        self.assigned: Assignment = {}
        self.revoking: Assignment = {}
        self.deadline = 0.0
        self.revoke_deadline = 0.0

    def owned(self) -> set[tuple[str, int]]:
        return {(t, p) for part in (self.assigned, self.revoking)
                for t, ps in part.items() for p in ps}


class ConsumerGroup:
    __slots__ = ("group_id", "epoch", "assignment_epoch", "members", "target",
                 "metadata", "assignor")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.target: dict[str, Assignment] = {}
        self.metadata: tuple = ()         # ((topic, partitions), ...) of subscribed topics
        self.assignor = ""

    @property
    def state(self) -> str:
        """Kafka's ConsumerGroup states."""
        if not self.members:
            return "Empty"
        if self.assignment_epoch < self.epoch:
            return "Assigning"
        if any(m.epoch != self.assignment_epoch or m.state != STABLE
               for m in self.members.values() if m.epoch >= 0):
            return "Reconciling"
        return "Stable"

    def static_member(self, instance_id: str | None) -> ConsumerMember | None:
        if instance_id is None:
            return None
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def subscribed(self, topic: str) -> bool:
        return any(t == topic for t, _n in self.metadata)


def _same(a: Assignment, b: Assignment) -> bool:
    return {t: p for t, p in a.items() if p} == {t: p for t, p in b.items() if p}


class ConsumerProtocolMixin:
    """The consumer protocol's entry points on ``GroupCoordinator`` (``groups.py``):
    they take its lock and hand over to ``self.consumer`` (a ``ConsumerGroups``)."""

    def consumer_heartbeat(self, group_id: str, member_id: str, member_epoch: int,
                           **fields) -> HeartbeatResult:
        """ConsumerGroupHeartbeat (see ConsumerGroups.heartbeat for ``fields``)."""
        with self._lock:
            code = self._not_ready()
            if code != NONE:
                return HeartbeatResult(code)
            classic = self._groups.get(group_id)
            busy = classic is not None and bool(classic.members)
            if classic is not None and not busy and member_epoch == 0:
                del self._groups[group_id]          # an empty classic group converts
            result = self.consumer.heartbeat(group_id, member_id, member_epoch,
                                             classic_members=busy, **fields)
            self._wake.set()
            return result

    def consumer_group(self, group_id: str):
        """The ConsumerGroup (consumer protocol) or None; read it under ``locked()``."""
        return self.consumer.groups.get(group_id)

    def locked(self):
        return self._lock

    def delete_any_group(self, group_id: str) -> tuple[int, int]:
        """DeleteGroups for a classic or a consumer-protocol group: (error, committed
        offsets deleted); NON_EMPTY_GROUP while either kind has members."""
        with self._lock:
            cgroup = self.consumer.groups.get(group_id)
            if cgroup is not None and cgroup.members:
                return NON_EMPTY_GROUP, 0
            if cgroup is not None and self._not_ready() == NONE:
                del self.consumer.groups[group_id]
                if not self.offsets.has_group(group_id):
                    return NONE, 0
            return self.delete_group(group_id)

    def group_type(self, group_id: str) -> str:
        """"consumer" (KIP-848 protocol) or "classic"."""
        return "consumer" if group_id in self.consumer.groups else "classic"


class ConsumerGroups:
    """The consumer-protocol groups of one coordinator (see the module doc)."""

    def __init__(self, log_, *, session_timeout_ms: int = 45_000,
                 heartbeat_interval_ms: int = 5000, assignors: str = "uniform,range",
                 max_size: int = 2_147_483_647) -> None:
        self.log = log_
        self.session_ms, self.interval_ms = session_timeout_ms, heartbeat_interval_ms
        self.assignors = [a.strip() for a in assignors.split(",") if a.strip()]
        unknown = [a for a in self.assignors if a not in ASSIGNORS]
        if unknown or not self.assignors:
            raise ValueError(f"group.consumer.assignors {assignors!r}: known assignors are "
                             f"{', '.join(ASSIGNORS)}")
        self.max_size = max_size
        self.groups: dict[str, ConsumerGroup] = {}

    # -- per-group configs (IncrementalAlterConfigs GROUP, when present) ---------------
    def _group_config(self, group_id: str, key: str, default: int) -> int:
        store = getattr(self.log, "group_configs", None)
        try:
            value = (store.get(group_id) or {}).get(key) if store is not None else None
            return int(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    def session_timeout_ms(self, group_id: str) -> int:
        return self._group_config(group_id, "consumer.session.timeout.ms", self.session_ms)

    def heartbeat_interval_ms(self, group_id: str) -> int:
        return self._group_config(group_id, "consumer.heartbeat.interval.ms", self.interval_ms)

    # -- ConsumerGroupHeartbeat -----------------------------------------------------------
    def heartbeat(self, group_id: str, member_id: str, epoch: int, *, version: int = 1,
                  instance_id: str | None = None, rack_id: str | None = None,
                  rebalance_timeout_ms: int = -1, topics: list[str] | None = None,
                  regex: str | None = None, assignor: str | None = None,
                  owned: Assignment | None = None, client_id: str = "",
                  client_host: str = "", classic_members: bool = False) -> HeartbeatResult:
        """One heartbeat (caller holds the coordinator lock); ``owned`` is the request's
        topic_partitions by topic name (None when not sent); ``classic_members``: the
        group id is a classic group that has members."""
        bad = self._invalid(group_id, member_id, epoch, version, instance_id, rack_id,
                            rebalance_timeout_ms, topics, regex, assignor, owned)
        if bad is not None:
            return bad
        if classic_members:
            return HeartbeatResult(GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer "
                                   "group")
        now = time.monotonic()
        group = self.groups.get(group_id)
        if epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, member_id, epoch, instance_id)
        if group is None:
            if epoch != 0:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, f"group {group_id} has no members")
            group = self.groups[group_id] = ConsumerGroup(group_id)
        if not member_id:
            member_id = str(uuid.uuid4())          # v0: the coordinator names members
        member, error = self._member(group, member_id, epoch, instance_id, owned)
        if error is not None:
            return error
        before = dict(member.assigned)
        self._update(group, member, instance_id, rack_id, rebalance_timeout_ms, topics, regex,
                     assignor, client_id, client_host)
        self._refresh_metadata(group)
        if group.epoch > group.assignment_epoch:
            self._assign(group)
        self._reconcile(group, member, owned, now)
        member.deadline = now + self.session_timeout_ms(group_id) / 1000
        full = epoch == 0 or (rebalance_timeout_ms != -1 and topics is not None
                              and owned is not None)
        send = full or not _same(before, member.assigned)
        return HeartbeatResult(NONE, None, member.member_id, member.epoch,
                               self.heartbeat_interval_ms(group_id),
                               dict(member.assigned) if send else None)

    def _invalid(self, group_id, member_id, epoch, version, instance_id, rack_id,
                 rebalance_timeout_ms, topics, regex, assignor, owned):
        def bad(msg: str, code: int = INVALID_REQUEST) -> HeartbeatResult:
            return HeartbeatResult(code, msg)
        if not group_id:
            return bad("GroupId can't be empty.", INVALID_GROUP_ID)
        if instance_id == "" or rack_id == "":
            return bad("InstanceId and RackId can't be empty.")
        if epoch > 0 or epoch == LEAVE_EPOCH:
            if not member_id:
                return bad("MemberId can't be empty.")
        elif epoch == 0:
            if version >= 1 and not member_id:
                return bad("MemberId can't be empty.")
            if rebalance_timeout_ms == -1:
                return bad("RebalanceTimeoutMs must be provided in first request.")
            if owned:
                return bad("TopicPartitions must be empty when (re-)joining.")
            if not topics and regex is None:
                return bad("SubscribedTopicNames or SubscribedTopicRegex must be set in "
                           "first request.")
        elif epoch == STATIC_LEAVE_EPOCH:
            if not member_id or instance_id is None:
                return bad("MemberId and InstanceId must be set to leave with epoch -2.")
        else:
            return bad(f"MemberEpoch {epoch} is invalid.")
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as exc:
                return bad(f"SubscribedTopicRegex {regex!r} is invalid: {exc}")
            if len(regex) > _MAX_REGEX or _BACKTRACKING.search(regex):
                return bad(f"SubscribedTopicRegex {regex[:60]!r} is not supported: "
                           "back-references and nested quantifiers are refused (Kafka uses "
                           f"RE2; pylog matches with Python's re), at most {_MAX_REGEX} "
                           "characters")
        if assignor is not None and assignor not in self.assignors:
            return bad(f"ServerAssignor {assignor} is not supported. Supported assignors: "
                       f"{', '.join(self.assignors)}.", UNSUPPORTED_ASSIGNOR)
        return None

    def _member(self, group: ConsumerGroup, member_id: str, epoch: int,
                instance_id: str | None, owned) -> tuple[ConsumerMember | None,
                                                        HeartbeatResult | None]:
        static = group.static_member(instance_id)
        if epoch == 0:
            if static is not None and static.member_id != member_id:
                if static.epoch != STATIC_LEAVE_EPOCH:
                    return None, HeartbeatResult(
                        UNRELEASED_INSTANCE_ID, f"Static member {static.member_id} with "
                        f"instance id {instance_id} is not released yet.")
                member = ConsumerMember(member_id)      # takes over the assignment
                member.assigned, member.topics, member.regex = (
                    static.assigned, static.topics, static.regex)
                del group.members[static.member_id]
                group.target[member_id] = group.target.pop(static.member_id, {})
                group.members[member_id] = member
                log.info("group %s: static member %s replaces %s (instance id %s)",
                         group.group_id, member_id, static.member_id, instance_id)
                return member, None
            member = group.members.get(member_id)
            if member is None:
                if len(group.members) >= self.max_size:
                    return None, HeartbeatResult(GROUP_MAX_SIZE_REACHED,
                                                 f"group {group.group_id} is full")
                member = group.members[member_id] = ConsumerMember(member_id)
                group.epoch += 1
                log.info("group %s: member %s joins (consumer protocol)", group.group_id,
                         member_id)
            elif member.epoch != 0 or member.assigned:     # rejoins: starts afresh, as a
                member.epoch = member.previous_epoch = 0   # client that rejoins has given
                member.assigned, member.revoking = {}, {}  # up its partitions
                member.state = STABLE
                group.epoch += 1
            return member, None
        if static is not None and static.member_id != member_id:
            return None, HeartbeatResult(FENCED_INSTANCE_ID, f"instance id {instance_id} "
                                         f"belongs to member {static.member_id}")
        member = group.members.get(member_id)
        if member is None:
            return None, HeartbeatResult(UNKNOWN_MEMBER_ID,
                                         f"member {member_id} is not in group "
                                         f"{group.group_id}")
        if epoch > member.epoch or (epoch < member.epoch and (
                epoch != member.previous_epoch or owned is None or any(
                    not ps <= member.assigned.get(t, frozenset()) for t, ps in owned.items()))):
            return None, HeartbeatResult(
                FENCED_MEMBER_EPOCH, f"member epoch {epoch} is not the coordinator's "
                f"({member.epoch}); the member must abandon its partitions and rejoin")
        return member, None

    def _update(self, group, member, instance_id, rack_id, rebalance_timeout_ms, topics,
                regex, assignor, client_id, client_host) -> None:
        changed = False
        if topics is not None and tuple(topics) != member.topics:
            member.topics, changed = tuple(topics), True
        if regex is not None and regex != member.regex:
            member.regex, changed = regex, True
        if assignor is not None and assignor != member.assignor:
            member.assignor, changed = assignor, True
        if instance_id is not None:
            member.instance_id = instance_id
        if rack_id is not None:
            member.rack_id = rack_id
        if rebalance_timeout_ms > 0:
            member.rebalance_ms = rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        if changed:
            group.epoch += 1

    def _subscription(self, member: ConsumerMember) -> tuple[str, ...]:
        names = set(member.topics)
        if member.regex is not None:
            pattern = re.compile(member.regex)
            names |= {t for t in self.log.topics()
                      if not t.startswith("__") and pattern.fullmatch(t)}
        return tuple(sorted(names))

    def _refresh_metadata(self, group: ConsumerGroup) -> None:
        """Bump the group epoch when a subscribed topic appears, goes or grows."""
        names = set()
        for m in group.members.values():
            names.update(self._subscription(m))
        meta = []
        for t in sorted(names):
            if self.log.has_topic(t):
                meta.append((t, self.log.topic(t).num_partitions))
        if tuple(meta) != group.metadata:
            group.metadata = tuple(meta)
            group.epoch += 1

    def _assign(self, group: ConsumerGroup) -> None:
        votes: dict[str, int] = {}
        for m in group.members.values():
            if m.assignor:
                votes[m.assignor] = votes.get(m.assignor, 0) + 1
        name = max(votes, key=lambda a: votes[a]) if votes else self.assignors[0]
        subs = {mid: self._subscription(m) for mid, m in group.members.items()}
        group.target = ASSIGNORS[name](subs, dict(group.metadata), group.target)
        group.assignor = name
        group.assignment_epoch = group.epoch
        log.info("group %s: epoch %d target assignment by %s for %d members", group.group_id,
                 group.epoch, name, len(group.members))

    # -- reconciliation (Kafka's CurrentAssignmentBuilder) ---------------------------------
    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember, owned, now: float
                   ) -> None:
        if member.state == STABLE and member.epoch == group.assignment_epoch:
            return
        if member.state == UNREVOKED:
            if owned is None or any(owned.get(t, frozenset()) & ps
                                    for t, ps in member.revoking.items()):
                return                                  # still revoking
            member.revoking = {}
        target = group.target.get(member.member_id, {})
        others: set[tuple[str, int]] = set()
        for m in group.members.values():
            if m is not member:
                others |= m.owned()
        keep, revoke, unreleased = {}, {}, False
        for t in set(member.assigned) | set(target):
            cur, tgt = member.assigned.get(t, frozenset()), target.get(t, frozenset())
            free = {p for p in tgt - cur if (t, p) not in others}
            unreleased = unreleased or len(free) < len(tgt - cur)
            keep[t] = (cur & tgt) | free
            if cur - tgt:
                revoke[t] = cur - tgt
        if revoke:
            member.assigned = {t: member.assigned.get(t, frozenset()) & target.get(t, frozenset())
                               for t in member.assigned}
            member.assigned = {t: ps for t, ps in member.assigned.items() if ps}
            member.revoking = revoke
            member.state = UNREVOKED
            member.revoke_deadline = now + member.rebalance_ms / 1000
            return
        member.assigned = {t: frozenset(ps) for t, ps in keep.items() if ps}
        if member.epoch != group.assignment_epoch:
            member.previous_epoch, member.epoch = member.epoch, group.assignment_epoch
        member.state = UNRELEASED if unreleased else STABLE

    # -- leaving, expiring -----------------------------------------------------------------
    def _leave(self, group: ConsumerGroup | None, member_id: str, epoch: int,
               instance_id: str | None) -> HeartbeatResult:
        member = None
        if group is not None:
            member = (group.static_member(instance_id) if instance_id is not None
                      else group.members.get(member_id))
        if member is None:
            return HeartbeatResult(UNKNOWN_MEMBER_ID, f"member {member_id} is not in the group")
        if member.member_id != member_id:
            return HeartbeatResult(FENCED_INSTANCE_ID, f"instance id {instance_id} belongs "
                                   f"to member {member.member_id}")
        if epoch == STATIC_LEAVE_EPOCH:
            member.epoch, member.revoking = STATIC_LEAVE_EPOCH, {}
            log.info("group %s: static member %s left for now", group.group_id, member_id)
        else:
            self.remove(group, member, "left the group")
        return HeartbeatResult(NONE, None, member_id, epoch, 0, None)

    def remove(self, group: ConsumerGroup, member: ConsumerMember, why: str) -> None:
        log.info("group %s: member %s %s", group.group_id, member.member_id, why)
        group.members.pop(member.member_id, None)
        group.target.pop(member.member_id, None)
        group.epoch += 1

    def tick(self, now: float, has_offsets) -> float:
        """Expire sessions and revocations; drop empty groups without offsets.  Returns
        seconds until the next deadline (at most 1)."""
        nxt = 1.0
        for group in list(self.groups.values()):
            for m in list(group.members.values()):
                if now >= m.deadline:
                    self.remove(group, m, "session timed out")
                elif m.state == UNREVOKED and now >= m.revoke_deadline:
                    self.remove(group, m, "did not revoke its partitions within its "
                                f"rebalance timeout ({m.rebalance_ms} ms)")
                else:
                    nxt = min(nxt, m.deadline - now)
            if not group.members and not has_offsets(group.group_id):
                del self.groups[group.group_id]
        return nxt

    # -- offsets ---------------------------------------------------------------------------
    def validate_offsets(self, group: ConsumerGroup, member_id: str | None, epoch: int,
                         commit: bool, api_version: int = 9) -> int:
        """OffsetCommit / OffsetFetch by ``member_id`` at ``epoch`` (Kafka's
        ConsumerGroup.validateOffsetCommit / validateOffsetFetch): any other epoch than
        the member's is STALE_MEMBER_EPOCH; members commit with OffsetCommit v9+."""
        if epoch < 0 and (not group.members if commit else not member_id):
            return NONE                                   # admin / non-member
        member = group.members.get(member_id or "")
        if member is None:
            return UNKNOWN_MEMBER_ID
        if commit and api_version < 9:
            return UNSUPPORTED_VERSION
        return NONE if epoch == member.epoch else STALE_MEMBER_EPOCH
