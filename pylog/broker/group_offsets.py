"""The coordinator's committed-offset requests: OffsetCommit, OffsetFetch, OffsetDelete,
and offset expiry (``offsets.retention.minutes``).  A mixin of ``GroupCoordinator``
(``groups.py``), run under its lock; the store itself is ``offsets.py``.

Who may commit (Kafka's validateOffsetCommit):
  * classic groups: a member of the current generation (ILLEGAL_GENERATION,
    UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS while completing; FENCED_INSTANCE_ID for a
    stale member of a static instance), or a non-member (generation -1) while the
    group is empty;
  * consumer-protocol groups (``consumer_groups.py``): a member at its current epoch
    (STALE_MEMBER_EPOCH for any other, UNKNOWN_MEMBER_ID, UNSUPPORTED_VERSION below
    OffsetCommit v9), or epoch -1 while the group is empty.  OffsetFetch v9+ with a
    member id is checked the same way.

Expiry (Kafka ≥ 2.1): the offsets of a group with no members are deleted (tombstones
in ``__consumer_offsets``) once ``offsets.retention.minutes`` have passed since the
group became empty — or, for a group not seen with members since the broker started,
since the offset was committed; an offset committed after the group emptied counts
from its commit.  A consumer-protocol group with members keeps the offsets of the topics
it subscribes to; those of other topics expire ``offsets.retention.minutes`` after
their commit (Kafka's ConsumerGroup.isSubscribedToTopic rule).  Checked every
``offsets.retention.check.interval.ms``.
"""
from __future__ import annotations

import logging
import struct
import time

from pylog.errors import PylogError

from .group_state import (COMPLETING, FENCED_INSTANCE_ID, GROUP_ID_NOT_FOUND,
                          GROUP_SUBSCRIBED_TO_TOPIC, ILLEGAL_GENERATION, NON_EMPTY_GROUP, NONE,
                          OFFSET_METADATA_TOO_LARGE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
                          UNKNOWN_TOPIC_OR_PARTITION, Group)
from .offsets import Committed

log = logging.getLogger("pylog.groups")


def subscribed_topics(metadata: bytes) -> set[str] | None:
    """Topics of a classic ``consumer`` member's ConsumerProtocolSubscription (version
    i16, topics: i32 count of i16-length strings, ...); None if it does not parse."""
    try:
        (n,) = struct.unpack_from(">i", metadata, 2)
        pos, topics = 6, set()
        for _ in range(n):
            (size,) = struct.unpack_from(">h", metadata, pos)
            if size < 0 or pos + 2 + size > len(metadata):
                return None
            topics.add(metadata[pos + 2:pos + 2 + size].decode("utf-8"))
            pos += 2 + size
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


class OffsetsMixin:
    """OffsetCommit / OffsetFetch / OffsetDelete / expiry for ``GroupCoordinator``."""

    # -- OffsetCommit ---------------------------------------------------------------------
    def commit_offsets(self, group_id: str, generation: int, member_id: str,
                       offsets: list[tuple[str, int, int, int, str | None]], *,
                       trusted: bool = False, group_instance_id: str | None = None,
                       api_version: int = 9) -> list[int]:
        """OffsetCommit of (topic, partition, offset, leader_epoch, metadata) entries;
        returns one error code per entry.  ``trusted`` (embedded consumers) skips the
        membership checks: an in-process consumer needs no generation.  For a
        consumer-protocol group ``generation`` is the member epoch."""
        with self._lock:
            code = self._not_ready()
            group = self._groups.get(group_id)
            if code == NONE and not trusted:
                cgroup = self.consumer.groups.get(group_id)
                if cgroup is not None:
                    code = self.consumer.validate_offsets(cgroup, member_id, generation, True,
                                                          api_version)
                else:
                    code = self._commit_allowed(group, generation, member_id,
                                                group_instance_id)
            if code != NONE:
                return [code] * len(offsets)
            codes, accepted = [], []
            for topic, partition, offset, epoch, metadata in offsets:
                c = self._check_commit(topic, partition, metadata)
                codes.append(c)
                if c == NONE:
                    accepted.append((topic, partition,
                                     Committed(offset, epoch, metadata or "", -1)))
            try:
                self.offsets.commit(group_id, accepted)
            except PylogError as exc:        # the engine refused the append (disk, I/O)
                log.error("group %s: commit failed: %s", group_id, exc)
                return [exc.errno if c == NONE else c for c in codes]
            if (group is None and accepted and group_id not in self._groups
                    and group_id not in self.consumer.groups):
                self._groups[group_id] = Group(group_id)     # offsets-only group: listed
            return codes

    def check_member(self, group_id: str, generation: int, member_id: str,
                     group_instance_id: str | None = None) -> int:
        """The membership check of an OffsetCommit (TxnOffsetCommit v3+ makes it too)."""
        with self._lock:
            code = self._not_ready()
            if code != NONE:
                return code
            cgroup = self.consumer.groups.get(group_id)
            if cgroup is not None:
                return self.consumer.validate_offsets(cgroup, member_id, generation, True, 9)
            return self._commit_allowed(self._groups.get(group_id), generation, member_id,
                                        group_instance_id)

    def _commit_allowed(self, group: Group | None, generation: int, member_id: str,
                        group_instance_id: str | None = None) -> int:
        if generation < 0 and (group is None or not group.members):
            return NONE                      # a non-member commit to an empty group
        if group is None:
            return ILLEGAL_GENERATION
        if group_instance_id is not None:
            static = group.static_member(group_instance_id)
            if static is not None and static.member_id != member_id:
                return FENCED_INSTANCE_ID
        if group.state == COMPLETING:
            return REBALANCE_IN_PROGRESS
        member = group.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ILLEGAL_GENERATION
        member.deadline = time.monotonic() + member.session_s
        return NONE

    def _check_commit(self, topic: str, partition: int, metadata: str | None) -> int:
        if metadata is not None and len(metadata) > self.metadata_max:
            return OFFSET_METADATA_TOO_LARGE
        return NONE if self.offsets.partition_exists(topic, partition) \
            else UNKNOWN_TOPIC_OR_PARTITION

    # -- OffsetFetch ----------------------------------------------------------------------
    def fetch_offsets(self, group_id: str, partitions: list[tuple[str, int]] | None, *,
                      member_id: str | None = None, member_epoch: int = -1
                      ) -> tuple[int, dict[tuple[str, int], Committed | None]]:
        """OffsetFetch: (error, {(topic, partition): Committed or None}); None = all.
        ``member_id``/``member_epoch`` (v9+) are checked for consumer-protocol groups."""
        code = self._not_ready()
        if code != NONE:
            return code, {}
        if member_id or member_epoch >= 0:
            with self._lock:
                cgroup = self.consumer.groups.get(group_id)
                if cgroup is not None:
                    code = self.consumer.validate_offsets(cgroup, member_id, member_epoch,
                                                          False)
                elif member_id:
                    code = UNKNOWN_MEMBER_ID if not self._is_classic_member(
                        group_id, member_id) else NONE
            if code != NONE:
                return code, {}
        if partitions is None:
            return NONE, dict(self.offsets.group_offsets(group_id))
        return NONE, {(t, i): self.offsets.fetch(group_id, t, i) for t, i in partitions}

    def _is_classic_member(self, group_id: str, member_id: str) -> bool:
        group = self._groups.get(group_id)
        return group is not None and member_id in group.members

    # -- OffsetDelete ---------------------------------------------------------------------
    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]
                       ) -> tuple[int, list[int]]:
        """OffsetDelete: (top-level error, one code per partition).  GROUP_ID_NOT_FOUND
        for an unknown group, NON_EMPTY_GROUP for an active group of a non-consumer
        protocol, GROUP_SUBSCRIBED_TO_TOPIC for the topics an active group reads."""
        code = self._not_ready()
        if code != NONE:
            return code, [code] * len(partitions)
        with self._lock:
            classic = self._groups.get(group_id)
            cgroup = self.consumer.groups.get(group_id)
            if classic is None and cgroup is None and not self.offsets.has_group(group_id):
                return GROUP_ID_NOT_FOUND, [GROUP_ID_NOT_FOUND] * len(partitions)
            subscribed: set[str] | None = set()
            if cgroup is not None and cgroup.members:
                subscribed = {t for t, _n in cgroup.metadata}
                for m in cgroup.members.values():
                    subscribed.update(m.topics)
            elif classic is not None and classic.members:
                if classic.protocol_type != "consumer":
                    return NON_EMPTY_GROUP, [NON_EMPTY_GROUP] * len(partitions)
                for m in classic.members.values():
                    topics = subscribed_topics(m.metadata(classic.protocol)
                                               or (m.protocols[0][1] if m.protocols else b""))
                    if topics is None:
                        subscribed = None        # cannot tell: every topic is subscribed
                        break
                    subscribed |= topics
            codes = [GROUP_SUBSCRIBED_TO_TOPIC if subscribed is None or t in subscribed
                     else NONE for t, _i in partitions]
            try:
                self.offsets.delete_offsets(group_id, [tp for tp, c in zip(partitions, codes)
                                                       if c == NONE])
            except PylogError as exc:
                log.error("group %s: offset delete failed: %s", group_id, exc)
                return exc.errno, [exc.errno] * len(partitions)
            return NONE, codes

    # -- expiry -----------------------------------------------------------------------------
    def _note_empty_groups_locked(self, wall_ms: int) -> None:
        """Remember since when each known group has had no members."""
        for gid, members in [(g.group_id, g.members) for g in self._groups.values()] + \
                [(g.group_id, g.members) for g in self.consumer.groups.values()]:
            if members:
                self._empty_since.pop(gid, None)
            else:
                self._empty_since.setdefault(gid, wall_ms)

    def expire_offsets(self, wall_ms: int | None = None) -> int:
        """Delete the offsets that ``offsets.retention.minutes`` expired by ``wall_ms``
        (default: now; tests pass a later time); returns how many.  Runs on the timer
        every ``offsets.retention.check.interval.ms``."""
        wall_ms = int(time.time() * 1000) if wall_ms is None else wall_ms
        if self._not_ready() != NONE:
            return 0
        total = 0
        with self._lock:
            self._note_empty_groups_locked(int(time.time() * 1000))
            for gid in self.offsets.group_ids():
                classic, cgroup = self._groups.get(gid), self.consumer.groups.get(gid)
                if classic is not None and classic.members:
                    continue
                since, keep = self._empty_since.get(gid, -1), set()
                if cgroup is not None and cgroup.members:     # Kafka: unsubscribed topics
                    since, keep = -1, {t for t, _n in cgroup.metadata}   # expire anyway
                    for m in cgroup.members.values():
                        keep.update(m.topics)
                expired = [tp for tp, c in self.offsets.group_offsets(gid).items()
                           if tp[0] not in keep
                           and wall_ms - max(since, c.commit_timestamp) >= self.retention_ms]
                if not expired:
                    continue
                try:
                    total += self.offsets.delete_offsets(gid, expired)
                except PylogError as exc:
                    log.error("group %s: offset expiry failed: %s", gid, exc)
                    continue
                log.info("group %s: %d committed offsets expired (offsets.retention.minutes"
                         " %d)", gid, len(expired), self.retention_ms // 60_000)
        return total
