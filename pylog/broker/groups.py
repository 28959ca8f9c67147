"""The group coordinator: Kafka's classic group protocol and committed offsets.

One ``GroupCoordinator`` per ``Log`` (``log.groups``).  It is the coordinator for every
group (one broker), so FindCoordinator always answers "self".

Group states, as Kafka's GroupCoordinator names them::

    Empty ──join──▶ PreparingRebalance ──all joined / rebalance timeout──▶ CompletingRebalance
      ▲                   ▲    │                                               │ leader's SyncGroup
      └─ last member gone ┘    └────── member joins / leaves / expires ◀── Stable ◀┘

* JoinGroup: the broker assigns member ids (``<client_id>-<uuid>``) directly, without
  the MEMBER_ID_REQUIRED round trip (research/kafka-protocol.md §2.6: every client
  accepts it).  A join is *parked* (its callback kept) until the join phase completes:
  when every known member has rejoined, or at the rebalance timeout (the largest of the
  members'), when members that did not rejoin are removed.  An empty group's first join
  waits ``group.initial.rebalance.delay.ms`` (default 0: no wait).
* The protocol chosen is one every member supports, by vote of each member's first
  supported preference (Kafka's ``selectProtocol``).  The leader (kept across
  generations while it stays) receives every member's metadata; the others none.
* SyncGroup: members park until the leader's SyncGroup brings the assignments; then
  the group is Stable and each member gets its own.
* Heartbeat: REBALANCE_IN_PROGRESS while preparing (members must rejoin),
  ILLEGAL_GENERATION for a stale generation, UNKNOWN_MEMBER_ID for a stranger.
* Session timeout: a member not heard from (heartbeat, join, sync, commit) within its
  session timeout is removed and the group rebalances; members parked in a join are
  bounded by the rebalance timeout instead.  A timer thread (``pylog-groups``) runs
  these deadlines.  Limits: ``group.min/max.session.timeout.ms`` (INVALID_SESSION_TIMEOUT),
  ``group.max.size`` (GROUP_MAX_SIZE_REACHED for a new member).
* Static members (``group.instance.id``, KIP-345): a join with no member id and a known
  instance id replaces the old member (``_replace_static``: no rebalance in a Stable
  group); a stale member id of the instance gets FENCED_INSTANCE_ID everywhere.
* Offsets (``group_offsets.py``, store in ``offsets.py``): commit/fetch/delete rules and
  expiry after ``offsets.retention.minutes``.  Until ``__consumer_offsets`` is loaded (a
  background thread at creation) every group request gets COORDINATOR_LOAD_IN_PROGRESS.
* The KIP-848 consumer protocol (``consumer_groups.py``) shares the lock, the timer
  and the offsets; a group id is classic or consumer, never both (a join to the other
  kind while it has members: INCONSISTENT_GROUP_PROTOCOL / GROUP_ID_NOT_FOUND).

The data (members, groups, result tuples, error codes) is in ``group_state.py``.

Callbacks: ``join`` and ``sync`` answer through a callback, called at once or later
from whichever thread completes the phase (a request thread or the timer thread),
*with the coordinator lock held*: callbacks must only hand the result over
(``loop.call_soon_threadsafe``), never block or call back in.  Thread-safe: one lock.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from pylog.errors import PylogError

from .consumer_groups import ConsumerGroups, ConsumerProtocolMixin
from .group_offsets import OffsetsMixin
from .group_state import (COMPLETING, COORDINATOR_LOAD_IN_PROGRESS,
                          COORDINATOR_NOT_AVAILABLE, EMPTY, FENCED_INSTANCE_ID,
                          GROUP_MAX_SIZE_REACHED, ILLEGAL_GENERATION,
                          INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
                          INVALID_SESSION_TIMEOUT, NONE, UNLIMITED_GROUP_SIZE,
                          OFFSET_METADATA_TOO_LARGE, PREPARING, REBALANCE_IN_PROGRESS, STABLE,
                          UNKNOWN_MEMBER_ID, UNKNOWN_TOPIC_OR_PARTITION, Group, GroupSummary,
                          JoinResult, Member, MemberSummary, PartitionLag, SyncResult)
from .offsets import OffsetStore

__all__ = ["GroupCoordinator", "JoinResult", "SyncResult", "GroupSummary", "MemberSummary",
           "PartitionLag", "NONE", "UNKNOWN_TOPIC_OR_PARTITION", "OFFSET_METADATA_TOO_LARGE",
           "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE", "ILLEGAL_GENERATION",
           "INCONSISTENT_GROUP_PROTOCOL", "INVALID_GROUP_ID", "UNKNOWN_MEMBER_ID",
           "INVALID_SESSION_TIMEOUT", "REBALANCE_IN_PROGRESS"]

log = logging.getLogger("pylog.groups")
NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND = 68, 69


class GroupCoordinator(OffsetsMixin, ConsumerProtocolMixin):
    """Groups and committed offsets for one Log (see the module doc)."""

    def __init__(self, log_, *, initial_rebalance_delay_ms: int = 0,
                 min_session_timeout_ms: int = 6000, max_session_timeout_ms: int = 1_800_000,
                 max_size: int = UNLIMITED_GROUP_SIZE, consumer_session_timeout_ms: int = 45_000,
                 consumer_heartbeat_interval_ms: int = 5000,
                 consumer_assignors: str = "uniform,range",
                 offsets_retention_minutes: int = 10080,
                 offsets_retention_check_interval_ms: int = 600_000,
                 offset_metadata_max_bytes: int = 4096, load: bool = True,
                 offsets_retention_bytes: int | None = None) -> None:
        self.log = log_
        self.initial_delay_s = initial_rebalance_delay_ms / 1000
        self.min_session_ms, self.max_session_ms = min_session_timeout_ms, max_session_timeout_ms
        self.max_size = max_size
        self.consumer = ConsumerGroups(log_, session_timeout_ms=consumer_session_timeout_ms,
                                       heartbeat_interval_ms=consumer_heartbeat_interval_ms,
                                       assignors=consumer_assignors, max_size=max_size)
        self.retention_ms = offsets_retention_minutes * 60_000
        self.retention_check_s = offsets_retention_check_interval_ms / 1000
        self._next_expiry = time.monotonic() + self.retention_check_s
        self._empty_since: dict[str, int] = {}      # group id → wall ms it became empty
        self.metadata_max = offset_metadata_max_bytes
        kw = {} if offsets_retention_bytes is None else {"retention_bytes":
                                                          offsets_retention_bytes}
        self.offsets = OffsetStore(log_, **kw)
        self._lock = threading.RLock()
        self._groups: dict[str, Group] = {}
        self._loaded = threading.Event()
        self.load_error: BaseException | None = None
        self._closed = False
        self._wake = threading.Event()
        self._timer = threading.Thread(target=self._run_timer, name="pylog-groups",
                                       daemon=True)
        self._timer.start()
        self._loader = threading.Thread(target=self._load, name="pylog-groups-load",
                                        daemon=True)
        if load:
            self._loader.start()

    # -- loading ------------------------------------------------------------------------
    def _load(self) -> None:
        started = time.monotonic()
        try:
            self.offsets.load()
        except BaseException as exc:    # noqa: BLE001 -- reported, requests get 15
            self.load_error = exc
            if not self._closed:        # else: the Log closed under the loader
                log.exception("cannot load %s", "__consumer_offsets")
        else:
            log.info("group coordinator loaded in %.0f ms", (time.monotonic() - started) * 1e3)
        self._loaded.set()

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set() and self.load_error is None

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until the offsets are loaded (embedded use); re-raises a load failure."""
        done = self._loaded.wait(timeout)
        if self.load_error is not None:
            raise self.load_error
        return done

    def _not_ready(self) -> int:
        if self._closed or self.load_error is not None:
            return COORDINATOR_NOT_AVAILABLE
        return NONE if self._loaded.is_set() else COORDINATOR_LOAD_IN_PROGRESS

    # -- JoinGroup ----------------------------------------------------------------------
    def join(self, group_id: str, member_id: str, protocol_type: str,
             protocols: list[tuple[str, bytes]], callback: Callable[[JoinResult], None], *,
             session_timeout_ms: int, rebalance_timeout_ms: int = -1, client_id: str = "",
             client_host: str = "", group_instance_id: str | None = None,
             api_version: int = 5) -> None:
        """JoinGroup; ``callback(JoinResult)`` now or when the join phase completes."""
        with self._lock:
            code = self._not_ready()
            if code == NONE and not group_id:
                code = INVALID_GROUP_ID
            if code == NONE and not (self.min_session_ms <= session_timeout_ms
                                     <= self.max_session_ms):
                code = INVALID_SESSION_TIMEOUT
            group = self._groups.get(group_id)
            if code == NONE:
                code = self._claim_classic(group_id)
            static = group.static_member(group_instance_id) if group is not None else None
            if code == NONE and static is not None and member_id and \
                    static.member_id != member_id:
                code = FENCED_INSTANCE_ID                 # a stale instance of the member
            if code == NONE and member_id and (group is None or member_id not in group.members):
                code = UNKNOWN_MEMBER_ID
            if code == NONE and not member_id and static is None and group is not None and \
                    len(group.members) >= self.max_size:
                code = GROUP_MAX_SIZE_REACHED
            if code == NONE and not self._protocols_fit(group, member_id or getattr(
                    static, "member_id", ""), protocol_type, protocols):
                code = INCONSISTENT_GROUP_PROTOCOL
            if code != NONE:
                callback(JoinResult(code, member_id=member_id))
                return
            if group is None:
                group = self._groups[group_id] = Group(group_id)
            now = time.monotonic()
            if static is not None and not member_id:
                if self._replace_static(group, static, client_id, protocols, callback, now,
                                        session_timeout_ms, api_version):
                    return
                member_id = static.member_id
            new = not member_id
            if new:
                member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
                member = group.members[member_id] = Member(member_id, client_id, client_host)
                if not group.leader:
                    group.leader = member_id
            member = group.members[member_id]
            changed = new or member.protocols != list(protocols)
            member.session_s = session_timeout_ms / 1000
            member.rebalance_s = (rebalance_timeout_ms if rebalance_timeout_ms > 0
                                  else session_timeout_ms) / 1000
            member.protocols = list(protocols)
            member.group_instance_id = group_instance_id
            member.deadline = now + member.session_s
            group.protocol_type = protocol_type              # checked by _protocols_fit
            if not changed and group.state in (STABLE, COMPLETING) and (
                    group.state == COMPLETING or member_id != group.leader):
                callback(self._join_result(group, member))      # nothing to rebalance for
                return
            if member.join_cb is not None:                       # a retried join
                member.join_cb(JoinResult(REBALANCE_IN_PROGRESS, member_id=member_id))
            member.join_cb = callback
            self._prepare_rebalance(group, now, new_member=new)
            self._maybe_complete_join(group, now)

    def _claim_classic(self, group_id: str) -> int:
        """A classic join to a group id the consumer protocol holds: refused while it
        has members (Kafka: INCONSISTENT_GROUP_PROTOCOL), else the id changes hands."""
        cgroup = self.consumer.groups.get(group_id)
        if cgroup is None:
            return NONE
        if cgroup.members:
            return INCONSISTENT_GROUP_PROTOCOL
        del self.consumer.groups[group_id]
        return NONE

    def _replace_static(self, group: Group, old: Member, client_id: str, protocols,
                        callback, now: float, session_timeout_ms: int,
                        api_version: int) -> bool:
        """A static member (``group.instance.id``) rejoins with no member id: it gets a
        new id and takes the old one's place (Kafka's
        updateStaticMemberThenRebalanceOrCompleteJoin).  The old instance's pending
        join or sync is answered FENCED_INSTANCE_ID.  In a Stable group whose selected
        protocol stays the same the member is answered at once with the current
        generation — no rebalance, its SyncGroup returns the assignment it had; a
        leader is told so with skip_assignment (v9+), or (older versions) is named
        by its old id so that it does not reassign.  True if answered here."""
        new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
        for cb, result in ((old.join_cb, JoinResult(FENCED_INSTANCE_ID, member_id=old.member_id)),
                           (old.sync_cb, SyncResult(FENCED_INSTANCE_ID))):
            if cb is not None:
                cb(result)
        old.join_cb = old.sync_cb = None
        members = list(group.members.items())
        group.members = {(new_id if mid == old.member_id else mid): m for mid, m in members}
        log.info("group %s: static member %s (instance %s) replaced by %s", group.group_id,
                 old.member_id, old.group_instance_id, new_id)
        old_id, was_leader = old.member_id, group.leader == old.member_id
        if was_leader:
            group.leader = new_id
        old.member_id, old.client_id, old.told = new_id, client_id, True
        old.session_s = session_timeout_ms / 1000
        old.deadline = now + old.session_s
        old_protocols, old.protocols = old.protocols, list(protocols)
        if group.state == STABLE and self._select_protocol(group) == group.protocol:
            r = self._join_result(group, old)
            if was_leader and api_version >= 9:
                r = r._replace(skip_assignment=True)
            elif was_leader:
                r = r._replace(leader=old_id, members=())
            callback(r)
            return True
        old.protocols = old_protocols
        return False

    def abandon_join(self, group_id: str, callback: Callable) -> None:
        """The client of a parked JoinGroup went away (connection lost).  A member that
        was never told its id can never come back: drop it now rather than let it hold
        the join phase and then sit in the group until its session expires (the problem
        Kafka's MEMBER_ID_REQUIRED round trip solves)."""
        with self._lock:
            group = self._groups.get(group_id)
            for m in list(group.members.values()) if group is not None else ():
                if m.join_cb is callback:
                    m.join_cb = None
                    if not m.told:
                        self._remove_member(group, m, "went away before its join completed")
                    return

    def _protocols_fit(self, group: Group | None, member_id: str, protocol_type: str,
                       protocols) -> bool:
        if not protocol_type or not protocols:
            return False
        if group is None or not group.members or list(group.members) == [member_id]:
            return True
        if protocol_type != group.protocol_type:
            return False
        common = group.candidates(exclude=member_id)
        return common is None or bool(common & {n for n, _ in protocols})

    def _prepare_rebalance(self, group: Group, now: float, new_member: bool = False) -> None:
        """Move to PreparingRebalance (a no-op if already there, but for the delay)."""
        if group.state == PREPARING:
            if group.delay_deadline and new_member:      # Kafka's InitialDelayedJoin
                group.delay_deadline = min(now + self.initial_delay_s, group.join_deadline)
            return
        if group.state == COMPLETING:                    # their assignment is void now
            for m in group.members.values():
                if m.sync_cb is not None:
                    m.sync_cb(SyncResult(REBALANCE_IN_PROGRESS))
                    m.sync_cb = None
        timeout = max((m.rebalance_s for m in group.members.values()), default=0.0)
        group.join_deadline = now + timeout
        group.delay_deadline = 0.0
        if group.state == EMPTY and self.initial_delay_s > 0:
            group.delay_deadline = min(now + self.initial_delay_s, group.join_deadline)
        log.debug("group %s: %s -> PreparingRebalance", group.group_id, group.state)
        group.state = PREPARING
        self._wake.set()

    def _maybe_complete_join(self, group: Group, now: float) -> None:
        if group.state != PREPARING:
            return
        if group.delay_deadline and now < group.delay_deadline:
            return
        if all(m.join_cb is not None for m in group.members.values()):
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: float) -> None:
        for m in [m for m in group.members.values() if m.join_cb is None]:
            log.info("group %s: member %s did not rejoin in time; removed",
                     group.group_id, m.member_id)
            del group.members[m.member_id]
        group.generation += 1
        group.delay_deadline = group.join_deadline = 0.0
        if not group.members:
            group.state, group.leader, group.protocol = EMPTY, "", ""
            return
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.protocol = self._select_protocol(group)
        group.state = COMPLETING
        log.info("group %s: generation %d, %d members, protocol %s, leader %s",
                 group.group_id, group.generation, len(group.members), group.protocol,
                 group.leader)
        for m in group.members.values():
            m.assignment = b""
            m.deadline = now + m.session_s
            cb, m.join_cb = m.join_cb, None
            m.told = True
            cb(self._join_result(group, m))

    @staticmethod
    def _select_protocol(group: Group) -> str:
        common = group.candidates() or set()
        votes: dict[str, int] = {}
        for m in group.members.values():
            first = next(n for n, _ in m.protocols if n in common)
            votes[first] = votes.get(first, 0) + 1
        return max(votes, key=lambda n: votes[n])       # first maximum wins ties

    @staticmethod
    def _join_result(group: Group, member: Member) -> JoinResult:
        members = ()
        if member.member_id == group.leader:
            members = tuple((m.member_id, m.group_instance_id, m.metadata(group.protocol))
                            for m in group.members.values())
        return JoinResult(NONE, group.generation, group.protocol, group.leader,
                          member.member_id, members)

    # -- SyncGroup, Heartbeat, LeaveGroup -----------------------------------------------
    def _member(self, group_id: str, member_id: str, instance_id: str | None = None
                ) -> tuple[int, Group | None, Member | None]:
        code = self._not_ready()
        if code != NONE:
            return code, None, None
        if not group_id:
            return INVALID_GROUP_ID, None, None
        group = self._groups.get(group_id)
        static = group.static_member(instance_id) if group is not None else None
        if static is not None and static.member_id != member_id:
            return FENCED_INSTANCE_ID, group, None
        member = group.members.get(member_id) if group is not None else None
        if member is None:
            return UNKNOWN_MEMBER_ID, group, None
        member.deadline = time.monotonic() + member.session_s
        return NONE, group, member

    def sync(self, group_id: str, generation: int, member_id: str,
             assignments: dict[str, bytes] | None,
             callback: Callable[[SyncResult], None], group_instance_id: str | None = None
             ) -> None:
        """SyncGroup; ``callback(SyncResult)`` now or when the leader's assignment comes."""
        with self._lock:
            code, group, member = self._member(group_id, member_id, group_instance_id)
            if code == NONE and generation != group.generation:
                code = ILLEGAL_GENERATION
            if code == NONE and group.state == PREPARING:
                code = REBALANCE_IN_PROGRESS
            if code != NONE:
                callback(SyncResult(code))
                return
            if group.state == STABLE:
                callback(SyncResult(NONE, member.assignment))
                return
            member.sync_cb = callback                       # CompletingRebalance
            if member_id == group.leader:
                for mid, m in group.members.items():
                    m.assignment = bytes((assignments or {}).get(mid, b""))
                group.state = STABLE
                for m in group.members.values():
                    cb, m.sync_cb = m.sync_cb, None
                    if cb is not None:
                        cb(SyncResult(NONE, m.assignment))

    def heartbeat(self, group_id: str, generation: int, member_id: str,
                  group_instance_id: str | None = None) -> int:
        with self._lock:
            code, group, _member = self._member(group_id, member_id, group_instance_id)
            if code != NONE:
                return code
            if group.state == PREPARING:
                return REBALANCE_IN_PROGRESS
            if generation != group.generation:
                return ILLEGAL_GENERATION
            return NONE

    def leave(self, group_id: str, member_ids: list[str],
              instance_ids: list[str | None] | None = None) -> tuple[int, list[int]]:
        """LeaveGroup: (top-level code, one code per member id).  v3+ members may be
        named by ``group.instance.id`` (member id "" or the member's own; another
        member's id → FENCED_INSTANCE_ID)."""
        with self._lock:
            code = self._not_ready() or (INVALID_GROUP_ID if not group_id else NONE)
            if code != NONE:
                return code, [code] * len(member_ids)
            group = self._groups.get(group_id)
            codes = []
            for mid, iid in zip(member_ids, instance_ids or [None] * len(member_ids)):
                static = group.static_member(iid) if group is not None else None
                if iid is not None and static is not None:
                    if mid and mid != static.member_id:
                        codes.append(FENCED_INSTANCE_ID)
                        continue
                    mid = static.member_id
                if group is None or mid not in group.members:
                    codes.append(UNKNOWN_MEMBER_ID)
                    continue
                codes.append(NONE)
                self._remove_member(group, group.members[mid], "left the group")
            top = codes[0] if len(codes) == 1 else NONE
            return top, codes

    def _remove_member(self, group: Group, member: Member, why: str) -> None:
        log.info("group %s: member %s %s", group.group_id, member.member_id, why)
        del group.members[member.member_id]
        if member.join_cb is not None:
            member.join_cb(JoinResult(UNKNOWN_MEMBER_ID, member_id=member.member_id))
        if member.sync_cb is not None:
            member.sync_cb(SyncResult(UNKNOWN_MEMBER_ID))
        if group.leader == member.member_id:
            group.leader = next(iter(group.members), "")
        now = time.monotonic()
        if group.state in (STABLE, COMPLETING):
            self._prepare_rebalance(group, now)
        if group.state == PREPARING:
            if group.members:
                self._maybe_complete_join(group, now)
            else:
                self._complete_join(group, now)

    # -- ListGroups, DescribeGroups, lag -------------------------------------------------
    def list_groups(self) -> tuple[int, list[tuple[str, str]]]:
        code = self._not_ready()
        if code != NONE:
            return code, []
        with self._lock:
            ids = set(self._groups) | set(self.offsets.group_ids()) | set(self.consumer.groups)
            return NONE, sorted((g, self._groups[g].protocol_type if g in self._groups
                                 else "consumer" if g in self.consumer.groups else "")
                                for g in ids)

    def describe_group(self, group_id: str) -> tuple[int, GroupSummary]:
        code = self._not_ready()
        if code != NONE:
            return code, GroupSummary(group_id, "", "", "", ())
        with self._lock:
            cgroup = self.consumer.groups.get(group_id)
            if cgroup is not None:                  # consumer protocol: no metadata bytes
                return NONE, GroupSummary(group_id, cgroup.state, "consumer", cgroup.assignor,
                                          tuple(MemberSummary(m.member_id, m.instance_id,
                                                              m.client_id, m.client_host,
                                                              b"", b"")
                                                for m in cgroup.members.values()))
            group = self._groups.get(group_id)
            if group is None:
                state = "Empty" if self.offsets.group_offsets(group_id) else "Dead"
                return NONE, GroupSummary(group_id, state, "", "", ())
            stable = group.state == STABLE
            members = tuple(MemberSummary(m.member_id, m.group_instance_id, m.client_id,
                                          m.client_host,
                                          m.metadata(group.protocol) if stable else b"",
                                          m.assignment if stable else b"")
                            for m in group.members.values())
            return NONE, GroupSummary(group_id, group.state, group.protocol_type,
                                      group.protocol if stable else "", members)

    def delete_group(self, group_id: str) -> tuple[int, int]:
        """DeleteGroups for one group: (error, committed offsets deleted).
        NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND if unknown."""
        code = self._not_ready()
        if code != NONE:
            return code, 0
        with self._lock:
            group = self._groups.get(group_id)
            if group is not None and group.members:
                return NON_EMPTY_GROUP, 0
            if group is None and not self.offsets.has_group(group_id):
                return GROUP_ID_NOT_FOUND, 0
            try:
                deleted = self.offsets.delete_group(group_id)
            except PylogError as exc:
                log.error("group %s: delete failed: %s", group_id, exc)
                return exc.errno, 0
            self._groups.pop(group_id, None)
            log.info("group %s deleted (%d committed offsets)", group_id, deleted)
            return NONE, deleted

    def lag(self, group: str | None = None) -> list[PartitionLag]:
        """Per group and partition: log end offset − committed offset (≥ 0), for the
        metrics endpoint and the dashboard; partitions of deleted topics are left out."""
        return [PartitionLag(*row) for row in self.offsets.lag(group)]

    # -- deadlines --------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Expire sessions, end join phases; returns seconds until the next deadline."""
        now = time.monotonic() if now is None else now
        nxt = 1.0
        with self._lock:
            for group in list(self._groups.values()):
                for m in list(group.members.values()):
                    if m.join_cb is None and now >= m.deadline:
                        self._remove_member(group, m, "session timed out "
                                            f"({m.session_s:.1f} s)")
                    elif m.join_cb is None:
                        nxt = min(nxt, m.deadline - now)
                if group.state == PREPARING:
                    if group.delay_deadline and now >= group.delay_deadline:
                        group.delay_deadline = 0.0
                        self._maybe_complete_join(group, now)
                    if group.state == PREPARING and now >= group.join_deadline:
                        self._complete_join(group, now)
                    elif group.state == PREPARING:
                        nxt = min(nxt, (group.delay_deadline or group.join_deadline) - now)
                if group.state == EMPTY and not self.offsets.has_group(group.group_id):
                    del self._groups[group.group_id]     # nothing left to list or describe
            nxt = min(nxt, self.consumer.tick(now, self.offsets.has_group))
            self._note_empty_groups_locked(int(time.time() * 1000))
        if now >= self._next_expiry:
            self._next_expiry = now + self.retention_check_s
            self.expire_offsets()
        return max(min(nxt, self._next_expiry - now), 0.005)

    def _run_timer(self) -> None:
        wait = 1.0
        while not self._closed:
            self._wake.wait(wait)
            self._wake.clear()
            if self._closed:
                return
            try:
                wait = self.tick()
            except Exception:                # noqa: BLE001 -- keep the timer alive
                log.exception("group timer failed")
                wait = 1.0

    def close(self) -> None:
        """Stop the timer; parked requests get COORDINATOR_NOT_AVAILABLE (they re-find
        the coordinator).  Offsets need no flush: each commit is already in the log."""
        with self._lock:
            self._closed = True
            for group in self._groups.values():
                for m in group.members.values():
                    if m.join_cb is not None:
                        m.join_cb(JoinResult(COORDINATOR_NOT_AVAILABLE, member_id=m.member_id))
                        m.join_cb = None
                    if m.sync_cb is not None:
                        m.sync_cb(SyncResult(COORDINATOR_NOT_AVAILABLE))
                        m.sync_cb = None
        self._wake.set()
        for thread in (self._timer, self._loader):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(5.0)
