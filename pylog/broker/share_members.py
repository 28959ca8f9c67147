"""Share-group membership for the Kafka share APIs (KIP-932's ShareGroupHeartbeat).

A share group's members heartbeat with a member id they chose (KIP-1082) and an epoch:

* epoch 0 joins (or rejoins): the member gets the group's new epoch and its assignment;
* epoch -1 leaves: every record it holds is released at once (delivery count kept);
* any other epoch must be the one the member was last given, else FENCED_MEMBER_EPOCH
  (the client then rejoins with epoch 0); an unknown member gets UNKNOWN_MEMBER_ID.

A member that does not heartbeat within ``share.session.timeout.ms`` (45 s) is removed
the same way as a leave, by a timer thread (``tick``), so its records come back to the
others after at most that long (their locks may expire sooner).

Assignment: one node leads every partition, so each member is assigned every partition
of every topic it subscribes to that exists; records are shared per record by the
share-partitions (share_state.py), not per partition.  The group epoch rises when a
member joins or leaves, a subscription changes, or a subscribed topic appears, grows or
is deleted; a member learns its new epoch and assignment on its next heartbeat.

Members are not persisted (Kafka keeps them in ``__consumer_offsets``; after a pylog
restart every client rejoins at its next heartbeat with UNKNOWN_MEMBER_ID → epoch 0).
The records they held come back as the share-partition's recovery says.

Thread-safe: one lock for the registry; calls into ShareGroups are made outside it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

__all__ = ["ShareMembers", "ShareMember", "HeartbeatResult",
           "DEFAULT_SESSION_TIMEOUT_MS", "DEFAULT_HEARTBEAT_INTERVAL_MS", "DEFAULT_MAX_SIZE"]

DEFAULT_SESSION_TIMEOUT_MS = 45_000      # group.share.session.timeout.ms
DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000    # group.share.heartbeat.interval.ms
DEFAULT_MAX_SIZE = 200                   # group.share.max.size
ASSIGNOR = "simple"

NONE, INVALID_REQUEST, UNKNOWN_MEMBER_ID, FENCED_MEMBER_EPOCH = 0, 42, 25, 110
GROUP_ID_NOT_FOUND, GROUP_MAX_SIZE_REACHED, COORDINATOR_LOAD_IN_PROGRESS = 69, 81, 14
MAX_MEMBER_ID = 255

log = logging.getLogger("pylog.broker.share")


@dataclass
class ShareMember:
    member_id: str
    epoch: int
    topics: tuple[str, ...]
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    deadline: float = 0.0
    assignment: dict[str, frozenset] = field(default_factory=dict)


@dataclass
class _Group:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ShareMember] = field(default_factory=dict)


@dataclass(frozen=True)
class HeartbeatResult:
    error: int
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    assignment: dict[str, frozenset] | None = None      # None: unchanged, not sent


class ShareMembers:
    """The members of every share group of one Log (``log.share_members``)."""

    def __init__(self, log_) -> None:
        self._log = log_
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._closed = False
        self._wake = threading.Event()
        self._timer: threading.Thread | None = None
        self.on_leave: list = []         # callables(group, member): sessions to drop
        self.defaults = {"session_timeout_ms": DEFAULT_SESSION_TIMEOUT_MS,
                         "heartbeat_interval_ms": DEFAULT_HEARTBEAT_INTERVAL_MS}

    # -- configs ------------------------------------------------------------------------
    def _config(self, group_id: str, key: str, default: int) -> int:
        try:
            value = self._log.group_configs.get(group_id).get(key)
        except Exception:          # noqa: BLE001 -- a config store problem keeps defaults
            value = None
        return int(value) if value is not None else default

    def session_timeout_ms(self, group_id: str) -> int:
        return self._config(group_id, "share.session.timeout.ms",
                            self.defaults["session_timeout_ms"])

    def heartbeat_interval_ms(self, group_id: str) -> int:
        return self._config(group_id, "share.heartbeat.interval.ms",
                            self.defaults["heartbeat_interval_ms"])

    # -- heartbeat ----------------------------------------------------------------------
    def heartbeat(self, group_id: str, member_id: str, member_epoch: int, *,
                  topics: list[str] | None, rack_id: str | None = None,
                  client_id: str = "", client_host: str = "",
                  now: float | None = None) -> HeartbeatResult:
        now = time.monotonic() if now is None else now
        interval = self.heartbeat_interval_ms(group_id)
        if not group_id:
            return HeartbeatResult(INVALID_REQUEST, "GroupId can't be empty.")
        if not member_id or len(member_id) > MAX_MEMBER_ID:
            return HeartbeatResult(INVALID_REQUEST, "MemberId can't be empty or longer "
                                   f"than {MAX_MEMBER_ID} characters.")
        other = self._other_group_type(group_id)
        if other:
            return HeartbeatResult(GROUP_ID_NOT_FOUND, f"Group {group_id} is not a share "
                                   f"group (it is a {other} group).")
        if member_epoch == -1:
            return self._leave(group_id, member_id)
        if member_epoch < -1:
            return HeartbeatResult(INVALID_REQUEST, f"MemberEpoch {member_epoch} is invalid.")
        session_s = self.session_timeout_ms(group_id) / 1000.0
        joined = False
        with self._lock:
            g = self._groups.get(group_id)
            m = g.members.get(member_id) if g is not None else None
            if member_epoch == 0:
                if topics is None or not topics and m is None:
                    return HeartbeatResult(INVALID_REQUEST, "SubscribedTopicNames must be "
                                           "set and not empty when joining.")
                if g is None:
                    g = self._groups[group_id] = _Group(group_id)
                if m is None:
                    if len(g.members) >= self._config(group_id, "group.share.max.size",
                                                      DEFAULT_MAX_SIZE):
                        return HeartbeatResult(GROUP_MAX_SIZE_REACHED,
                                               f"Share group {group_id} is full.")
                    m = g.members[member_id] = ShareMember(member_id, 0, tuple(topics))
                    joined = True
                else:
                    m.topics = tuple(topics or m.topics)
                m.epoch = 0                      # forces the assignment to be sent
                g.epoch += 1
            elif m is None:
                return HeartbeatResult(UNKNOWN_MEMBER_ID, f"Member {member_id} is not a "
                                       f"member of share group {group_id}.")
            elif member_epoch != m.epoch:
                return HeartbeatResult(FENCED_MEMBER_EPOCH, f"Member {member_id} sent epoch "
                                       f"{member_epoch}; its epoch is {m.epoch}.")
            elif topics is not None and tuple(topics) != m.topics:
                m.topics = tuple(topics)
                g.epoch += 1
            m.rack_id, m.deadline = rack_id, now + session_s
            m.client_id, m.client_host = client_id or m.client_id, client_host or m.client_host
            target = self._target(m.topics)
            send = None
            if target != m.assignment or m.epoch == 0:
                if target != m.assignment and m.epoch != 0:
                    g.epoch += 1                 # a subscribed topic appeared or changed
                m.assignment = target
                send = target
            if m.epoch != g.epoch:
                m.epoch = g.epoch
                send = m.assignment
            g.assignment_epoch = g.epoch
            epoch = m.epoch
        if joined:
            self._log.share_groups.join(group_id, member_id)
            log.info("share group %s: member %s joined (epoch %d, topics %s)", group_id,
                     member_id, epoch, ",".join(topics or ()))
            self._start_timer()
        return HeartbeatResult(NONE, None, member_id, epoch, interval, send)

    def _target(self, topics) -> dict[str, frozenset]:
        out = {}
        for name in topics:
            try:
                n = len(self._log.topic(name).partitions)
            except Exception:          # noqa: BLE001 -- not created yet: nothing assigned
                continue
            out[name] = frozenset(range(n))
        return out

    def _other_group_type(self, group_id: str) -> str | None:
        """'classic' or 'consumer' if ``group_id`` is a live group of that type."""
        try:
            coord = self._log.groups
            _code, summary = coord.describe_group(group_id)
        except Exception:              # noqa: BLE001 -- no coordinator: no other groups
            return None
        if summary.state in ("Dead", ""):
            return None
        if summary.state == "Empty" and not summary.members:
            return None
        return coord.group_type(group_id)

    def _leave(self, group_id: str, member_id: str, reason: str = "left") -> HeartbeatResult:
        with self._lock:
            g = self._groups.get(group_id)
            m = g.members.pop(member_id, None) if g is not None else None
            if m is not None:
                g.epoch += 1
        if m is None:
            return HeartbeatResult(UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member "
                                   f"of share group {group_id}.")
        self._release(group_id, member_id)
        for fn in list(self.on_leave):
            try:
                fn(group_id, member_id)
            except Exception:          # noqa: BLE001 -- a listener's problem, logged
                log.exception("share member leave listener failed")
        log.info("share group %s: member %s %s", group_id, member_id, reason)
        return HeartbeatResult(NONE, None, member_id, -1,
                               self.heartbeat_interval_ms(group_id), None)

    def _release(self, group_id: str, member_id: str) -> None:
        try:
            self._log.share_groups.leave(group_id, member_id)
        except Exception as exc:       # noqa: BLE001 -- locks expire anyway
            log.warning("share group %s: releasing member %s failed: %s", group_id,
                        member_id, exc)

    # -- reads --------------------------------------------------------------------------
    def is_member(self, group_id: str, member_id: str) -> bool:
        with self._lock:
            g = self._groups.get(group_id)
            return g is not None and member_id in g.members

    def group_ids(self) -> list[str]:
        """Share groups with members now, or with stored state (``__share_group_state``)."""
        with self._lock:
            ids = {g for g, grp in self._groups.items() if grp.members}
        try:
            ids.update(g for g, _t, _p in self._log.share_groups.store.keys())
        except Exception:              # noqa: BLE001 -- state still loading: members only
            pass
        return sorted(ids)

    def describe(self, group_id: str) -> tuple[str, int, int, list[ShareMember]] | None:
        """(state, group epoch, assignment epoch, members) or None if not a share group."""
        with self._lock:
            g = self._groups.get(group_id)
            if g is not None and g.members:
                return ("Stable", g.epoch, g.assignment_epoch,
                        [ShareMember(**vars(m)) for m in g.members.values()])
            epoch = g.epoch if g is not None else 0
        if group_id in self.group_ids():
            return ("Empty", epoch, epoch, [])
        return None

    def has_members(self, group_id: str) -> bool:
        with self._lock:
            g = self._groups.get(group_id)
            return bool(g and g.members)

    def forget(self, group_id: str) -> None:
        """Drop an empty group's registry entry (DeleteGroups)."""
        with self._lock:
            g = self._groups.get(group_id)
            if g is not None and not g.members:
                del self._groups[group_id]

    # -- session expiry -----------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Remove members whose session has expired; seconds until the next deadline."""
        now = time.monotonic() if now is None else now
        expired, nxt = [], 1.0
        with self._lock:
            for g in self._groups.values():
                for m in list(g.members.values()):
                    if now >= m.deadline:
                        expired.append((g.group_id, m.member_id))
                    else:
                        nxt = min(nxt, m.deadline - now)
        for group_id, member_id in expired:
            self._leave(group_id, member_id, "timed out (no heartbeat within "
                        f"{self.session_timeout_ms(group_id)} ms)")
        return max(nxt, 0.01)

    def _start_timer(self) -> None:
        with self._lock:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Thread(target=self._run_timer, daemon=True,
                                           name="pylog-share-members")
            self._timer.start()

    def _run_timer(self) -> None:
        wait = 1.0
        while not self._closed:
            self._wake.wait(wait)
            if self._closed:
                return
            try:
                wait = self.tick()
            except Exception:          # noqa: BLE001 -- keep the timer alive
                log.exception("share member timer failed")
                wait = 1.0

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        t = self._timer
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(5.0)
