"""Incremental fetch sessions (KIP-227): what a Fetch asks for, and what it is told.

A consumer of many partitions sends them all in every sessionless Fetch and gets
them all back, even the idle ones.  With a session, the broker remembers the
partitions (and the fetch offset, high watermark, log start and last stable offset
it last sent for each); the client then sends only partitions whose fetch offset
changed and gets back only partitions with news: records, an error, or a changed
offset.  Idle partitions cost nothing per fetch in either direction.

Requests (``session_id``, ``session_epoch``), as Kafka's ``FetchManager``:

- (0, -1): sessionless full fetch; the answer has session id 0.
- (any, 0): full fetch opening a new session (an old one named is closed); the
  answer carries the new id, or 0 when the cache has no room (the client then
  stays sessionless).
- (id, -1): close ``id``; a sessionless full fetch.
- (id, n > 0): incremental: ``id`` must exist (else FETCH_SESSION_ID_NOT_FOUND,
  70) and ``n`` must be the epoch it expects (else INVALID_FETCH_SESSION_EPOCH,
  71); the request's partitions are added or updated, ``forgotten_topics_data``
  removed, and the session expects ``n + 1`` next.

The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions
(Kafka's default 1,000).  When it is full a new session may evict the least
recently used one that has been idle for ``min.incremental.fetch.session.eviction.ms``
(120 s), else the least recently used one with fewer partitions than itself
(KIP-227: a big consumer gains most), else it is not created.  Single-threaded:
event-loop thread only.
"""
from __future__ import annotations

import random
import time
from collections import OrderedDict

from pylog.errors import FetchSessionIdNotFoundError, InvalidFetchSessionEpochError

__all__ = ["CachedPartition", "FetchSession", "FetchSessionCache", "FetchContext",
           "resolve_context", "DEFAULT_SLOTS", "DEFAULT_EVICTION_MS"]

DEFAULT_SLOTS = 1000
DEFAULT_EVICTION_MS = 120_000
INITIAL_EPOCH, FINAL_EPOCH = 0, -1
INT32_MAX = 2**31 - 1


class CachedPartition:
    """One partition of a fetch: what the client asked for and what it was last told."""
    __slots__ = ("topic", "topic_id", "partition", "fetch_offset", "max_bytes",
                 "hw", "lso", "start")

    def __init__(self, topic, topic_id, partition: int, fetch_offset: int,
                 max_bytes: int) -> None:
        self.topic = topic                  # name; None for a topic id nobody has
        self.topic_id = topic_id            # uuid (v13+) or None
        self.partition = partition
        self.fetch_offset = fetch_offset
        self.max_bytes = max_bytes
        self.hw = self.lso = self.start = None     # last values sent (sessions only)

    def changed(self, hw: int, lso: int, start: int) -> bool:
        """True when the values differ from those last sent; records them."""
        if (hw, lso, start) == (self.hw, self.lso, self.start):
            return False
        self.hw, self.lso, self.start = hw, lso, start
        return True


class FetchSession:
    __slots__ = ("id", "epoch", "partitions", "last_used")

    def __init__(self, session_id: int, partitions: dict) -> None:
        self.id = session_id
        self.epoch = 1                      # the epoch the next request must carry
        self.partitions = partitions        # (topic key, partition) -> CachedPartition
        self.last_used = time.monotonic()

    def advance(self) -> None:
        self.epoch = 1 if self.epoch >= INT32_MAX else self.epoch + 1
        self.last_used = time.monotonic()


class FetchSessionCache:
    def __init__(self, max_slots: int = DEFAULT_SLOTS,
                 eviction_ms: int = DEFAULT_EVICTION_MS) -> None:
        self.max_slots = max_slots
        self.eviction_s = eviction_ms / 1000
        self._sessions: OrderedDict[int, FetchSession] = OrderedDict()   # LRU first
        self._rng = random.Random()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def stats(self) -> dict:
        """For /metrics: sessions held, their partitions, evictions so far."""
        return {"sessions": len(self._sessions), "slots": self.max_slots,
                "partitions": sum(len(s.partitions) for s in self._sessions.values()),
                "evictions": self.evictions}

    def get(self, session_id: int) -> FetchSession | None:
        s = self._sessions.get(session_id)
        if s is not None:
            self._sessions.move_to_end(session_id)
        return s

    def remove(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def create(self, partitions: dict) -> FetchSession | None:
        """A new session over ``partitions``, or None when there is no room."""
        if self.max_slots <= 0:
            return None
        if len(self._sessions) >= self.max_slots and not self._evict_for(len(partitions)):
            return None
        while True:
            sid = self._rng.randint(1, INT32_MAX)
            if sid not in self._sessions:
                break
        s = self._sessions[sid] = FetchSession(sid, partitions)
        return s

    def _evict_for(self, size: int) -> bool:
        now = time.monotonic()
        for sid, s in self._sessions.items():           # least recently used first
            if now - s.last_used >= self.eviction_s:
                return self._evict(sid)
        for sid, s in self._sessions.items():
            if len(s.partitions) < size:
                return self._evict(sid)
        return False

    def _evict(self, sid: int) -> bool:
        del self._sessions[sid]
        self.evictions += 1
        return True


class FetchContext:
    """The partitions one Fetch reads, and how its answer is chosen."""
    __slots__ = ("partitions", "session", "incremental", "new_session", "error")

    def __init__(self, partitions, session=None, incremental=False, new_session=False,
                 error: int = 0) -> None:
        self.partitions = partitions        # CachedPartition, in answer order
        self.session = session
        self.incremental = incremental
        self.new_session = new_session      # create a session from these when answered
        self.error = error

    def include(self, cp: CachedPartition, has_records: bool, code: int,
                hw: int, lso: int, start: int) -> bool:
        """Whether this partition goes into the answer (always, unless incremental)."""
        if self.session is None and not self.new_session:
            return True
        changed = cp.changed(hw, lso, start)
        return not self.incremental or has_records or code != 0 or changed


def _key(cp: CachedPartition):
    return (cp.topic_id if cp.topic_id is not None else cp.topic, cp.partition)


def resolve_context(cache: FetchSessionCache, request, version: int, parts) -> FetchContext:
    """``parts``: the request's partitions as CachedPartitions (topics resolved)."""
    sid = getattr(request, "session_id", 0)
    epoch = getattr(request, "session_epoch", FINAL_EPOCH)
    if version < 7 or (sid == 0 and epoch == FINAL_EPOCH):
        return FetchContext(parts)
    if epoch == INITIAL_EPOCH:
        if sid:
            cache.remove(sid)
        return FetchContext(parts, new_session=True)
    if epoch == FINAL_EPOCH:
        cache.remove(sid)
        return FetchContext(parts)
    session = cache.get(sid)
    if session is None:
        return FetchContext([], error=FetchSessionIdNotFoundError.errno)
    if epoch != session.epoch:
        return FetchContext([], error=InvalidFetchSessionEpochError.errno)
    for cp in parts:                                    # added or updated
        old = session.partitions.get(_key(cp))
        if old is None:
            session.partitions[_key(cp)] = cp
        else:
            old.fetch_offset, old.max_bytes = cp.fetch_offset, cp.max_bytes
    for key in _forgotten(request):
        session.partitions.pop(key, None)
    session.advance()
    return FetchContext(list(session.partitions.values()), session=session,
                        incremental=True)


def _forgotten(request):
    for ft in getattr(request, "forgotten_topics_data", ()) or ():
        tkey = getattr(ft, "topic_id", None)
        if tkey is None or tkey.int == 0:
            tkey = getattr(ft, "topic", None)
        for p in ft.partitions:
            yield (tkey, p)


def open_session(cache: FetchSessionCache, ctx: FetchContext) -> int:
    """After a full fetch that asked for a session: create it; its id (0: no room)."""
    session = cache.create({_key(cp): cp for cp in ctx.partitions})
    return session.id if session is not None else 0
