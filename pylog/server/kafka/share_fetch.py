"""ShareFetch (78) and ShareAcknowledge (79), v1–2: records for share-group members.

The state lives in ``log.share_groups`` (pylog/broker/queues.py, share_state.py); this
module maps the two requests onto it:

* **Share sessions** (KIP-932), one per (group, member): epoch 0 opens one with the
  partitions named (a new epoch-0 request replaces it), -1 closes it after applying the
  request's acknowledgements, and any other epoch must be the next one
  (INVALID_SHARE_SESSION_EPOCH, 123); epoch > 0 without a session is
  SHARE_SESSION_NOT_FOUND (122).  Partitions named in a request join the session,
  ``forgotten_topics_data`` leave it.  At most ``MAX_SESSIONS`` sessions
  (SHARE_SESSION_LIMIT_REACHED, 133).  Acknowledgements are refused in epoch 0: the
  session that acquired them is gone (INVALID_SHARE_SESSION_EPOCH per partition).
* **Acknowledgements** come first, all-or-nothing per partition (errors in
  ``acknowledge_error_code``: INVALID_RECORD_STATE for records not held by this member,
  INVALID_REQUEST for ranges that overlap or run backwards).  A batch carries one type
  for the whole range, or one per offset.  GAP (0) — offsets with no record — counts as
  accepted.  The response waits until the acknowledgements are as durable as the
  ``__share_group_state`` flush policy promises.
* **Records**: up to ``max_records`` are acquired round-robin over the session's
  partitions; each partition answers the whole batches that hold its acquired offsets
  (CRC-checked reads, as Fetch) and the acquired ranges with their delivery counts.  The
  client delivers only the acquired offsets.  With nothing acquired and ``max_wait_ms``
  > 0 the request waits for an append to a session partition or for records to come
  back (release, lock expiry), re-checking every ``_POLL_SLICE_S``.
* Version 2 adds acknowledge type RENEW (4, KIP-1222): the records' locks are extended
  (``ShareGroups.renew``) and they stay acquired.
* Member ids are checked against the share group (ShareGroupHeartbeat), else
  UNKNOWN_MEMBER_ID at the top level.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import struct

from pylog.broker.share_state import AcknowledgeType
from pylog.errors import PylogError, UnknownTopicIdError, error_name
from pylog.records import encode_batch

from ..metrics import count_batch_records
from ..wakeup import AppendWaker
from .dispatch import ApiSpec, Applied, register
from .messages import ZERO_MS, build, error_code, ms, response_module

SHARE_FETCH, SHARE_ACKNOWLEDGE = 78, 79
NONE, INVALID_REQUEST, UNKNOWN_MEMBER_ID, COORDINATOR_LOAD_IN_PROGRESS = 0, 42, 25, 14
SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_LIMIT_REACHED = \
    122, 123, 133
UNKNOWN_TOPIC_ID, UNKNOWN_SERVER_ERROR = 100, -1
MAX_SESSIONS = 2000                  # group.share.max.share.sessions
GAP, RENEW = 0, 4
_POLL_SLICE_S = 0.1
_MAX_READ = 8 << 20                  # bytes read per partition and response at most
_BATCH_HEAD = struct.Struct(">qi")   # base offset, batch length
_LAST_DELTA = struct.Struct(">i")    # at byte 23
_SPLIT_BYTES = 16 << 10              # larger batches are split to what was acquired
_ATTR_CONTROL = 0x20                 # attributes low byte (offset 22): control batch

log = logging.getLogger("pylog.server.kafka")


class ShareSession:
    __slots__ = ("epoch", "partitions")

    def __init__(self) -> None:
        self.epoch = 1                              # the next epoch expected
        self.partitions: dict[tuple, str | None] = {}   # (topic id, partition) -> name


class ShareSessions:
    """Share sessions of one broker, keyed by (group, member); loop thread only."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self.limit = limit
        self._sessions: dict[tuple[str, str], ShareSession] = {}
        self._rr = itertools.count()
        # (group, (topic id, partition)) -> members whose session holds it, and the
        # long-polling fetches waiting on it (woken when acknowledgements free records).
        self._readers: dict[tuple, set[str]] = {}
        self._waiters: dict[tuple, set] = {}

    def add_partition(self, group: str, member: str, key: tuple) -> None:
        self._readers.setdefault((group, key), set()).add(member)

    def drop_partition(self, group: str, member: str, key: tuple) -> None:
        readers = self._readers.get((group, key))
        if readers is not None:
            readers.discard(member)
            if not readers:
                del self._readers[(group, key)]

    def readers(self, group: str, key: tuple) -> int:
        return len(self._readers.get((group, key), ()))

    def wait(self, group: str, key: tuple, event) -> None:
        self._waiters.setdefault((group, key), set()).add(event)

    def unwait(self, group: str, key: tuple, event) -> None:
        w = self._waiters.get((group, key))
        if w is not None:
            w.discard(event)
            if not w:
                del self._waiters[(group, key)]

    def wake(self, group: str, key: tuple) -> None:
        for event in self._waiters.get((group, key), ()):
            event.set()

    def __len__(self) -> int:
        return len(self._sessions)

    def resolve(self, group: str, member: str, epoch: int) -> tuple[int, ShareSession | None]:
        """(error, session) for a request's epoch; epoch 0 opens a fresh session."""
        key = (group, member)
        if epoch == 0:
            if key not in self._sessions and len(self._sessions) >= self.limit:
                return SHARE_SESSION_LIMIT_REACHED, None
            self.close(group, member)
            s = self._sessions[key] = ShareSession()
            return NONE, s
        s = self._sessions.get(key)
        if s is None:
            return SHARE_SESSION_NOT_FOUND, None
        if epoch == -1:
            return NONE, s
        if epoch != s.epoch:
            return INVALID_SHARE_SESSION_EPOCH, None
        s.epoch = s.epoch + 1 if s.epoch < 0x7FFFFFFF else 1
        return NONE, s

    def close(self, group: str, member: str) -> None:
        s = self._sessions.pop((group, member), None)
        for key in (s.partitions if s is not None else ()):
            self.drop_partition(group, member, key)

    def next_start(self) -> int:
        return next(self._rr)


def _sessions(broker) -> ShareSessions:
    s = getattr(broker, "share_sessions", None)
    if s is None:
        s = broker.share_sessions = ShareSessions()
        broker.metrics.section("share_sessions", lambda: {"sessions": len(s)})
        loop = broker.loop

        def left(group: str, member: str) -> None:   # a member left or timed out
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(s.close, group, member)
        broker.log.share_members.on_leave.append(left)
    return s


def _topic_name(log_, topic_id) -> str | None:
    try:
        return log_.topic_by_id(topic_id).name
    except (UnknownTopicIdError, AttributeError):
        return None


def _batches(first: int, last: int, types) -> list[tuple[int, int, int]]:
    """One acknowledgement batch → (first, last, type) ranges; ValueError if malformed."""
    types = tuple(types)
    if first > last or first < 0:
        raise ValueError(f"acknowledgement batch {first}-{last} runs backwards")
    if len(types) == 1:
        kinds = [(first, last, types[0])]
    elif len(types) == last - first + 1:
        kinds = [(first + i, first + i, t) for i, t in enumerate(types)]
    else:
        raise ValueError(f"acknowledgement batch {first}-{last} has {len(types)} types")
    out = []
    for f, l_, t in kinds:
        if t == GAP:
            t = AcknowledgeType.ACCEPT
        if t not in (AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, AcknowledgeType.REJECT,
                     RENEW):
            raise ValueError(f"unknown acknowledge type {t}")
        if out and out[-1][2] == t and out[-1][1] == f - 1:
            out[-1] = (out[-1][0], l_, t)
        else:
            out.append((f, l_, int(t)))
    return out


def _start_acks(log_, group: str, member: str, topics, results: dict,
                version: int = 1) -> list:
    """Apply the acknowledgements of ``topics`` (ShareFetch or ShareAcknowledge topics);
    fills ``results[(topic id, partition)] = [code, message]`` and returns
    (key, future) pairs still to wait for."""
    waits = []
    for t in topics:
        name = _topic_name(log_, t.topic_id)
        for p in t.partitions:
            key = (t.topic_id, p.partition_index)
            if not p.acknowledgement_batches:
                continue
            if name is None:
                results[key] = [UNKNOWN_TOPIC_ID, f"unknown topic id {t.topic_id}"]
                continue
            try:
                batches = [b for ab in p.acknowledgement_batches
                           for b in _batches(ab.first_offset, ab.last_offset,
                                             ab.acknowledge_types)]
                renew = [b for b in batches if b[2] == RENEW]
                if renew and version < 2:
                    raise ValueError("acknowledge type 4 (renew) needs version 2")
                for first, last, _t in renew:      # KIP-1222: extend the locks
                    log_.share_groups.renew(group, member, name, p.partition_index,
                                            first, last)
                batches = [b for b in batches if b[2] != RENEW]
                fut = log_.share_groups.acknowledge(group, member, name, p.partition_index,
                                                    batches, wait=False)
            except ValueError as exc:
                results[key] = [INVALID_REQUEST, str(exc)]
            except PylogError as exc:
                results[key] = [exc.errno, str(exc)]
            else:
                results[key] = [NONE, None]
                waits.append((key, fut))
    return waits


def _wake(sessions: ShareSessions, group: str, waits) -> None:
    """Acknowledgements freed records: other members' long polls look again now."""
    for key, _fut in waits:
        sessions.wake(group, key)


async def _finish_acks(waits, results: dict) -> None:
    for key, fut in waits:
        try:
            await asyncio.wrap_future(fut)
        except PylogError as exc:
            results[key] = [exc.errno, str(exc)]
        except Exception as exc:       # noqa: BLE001 -- reported to the client
            results[key] = [UNKNOWN_SERVER_ERROR, str(exc)]


def _check_member(log_, group: str | None, member: str | None,
                  ctx=None) -> tuple[int, str | None]:
    if not group:
        return INVALID_REQUEST, "GroupId can't be empty."
    if ctx is not None and not ctx.allowed(3, 3, group):         # READ on the group
        return 30, f"{ctx.principal} may not read share group {group}"
    if not member:
        return INVALID_REQUEST, "MemberId can't be empty."
    if not log_.share_groups._loaded.is_set():
        return COORDINATOR_LOAD_IN_PROGRESS, "share-group state is still loading"
    if not log_.share_members.is_member(group, member):
        return UNKNOWN_MEMBER_ID, f"Member {member} is not a member of share group {group}."
    return NONE, None


# -- records ------------------------------------------------------------------------------
def _read_runs(p, runs) -> bytes:
    """The batches holding the offsets of ``runs`` (sorted, disjoint), each once.

    A whole stored batch is sent as it is (zero-copy), unless it is large
    (> ``_SPLIT_BYTES``) and the runs take less than half of its records: then just
    the acquired records are re-encoded as batches of their own (read through the
    verified reader), so a consumer acquiring 100 records of a 10,000-record batch is
    not sent, and does not parse, the other 9,900 — again on every fetch."""
    parts: list = []
    covered = -1                    # last offset of the last batch taken
    size = 0
    for run in runs:
        pos = max(run.first_offset, covered + 1)
        while pos <= run.last_offset and size < _MAX_READ:
            view = p.read_raw(pos, 1 << 20)
            n = view.nbytes
            if n == 0:
                return b"".join(parts)
            at = 0
            while at + 27 <= n:
                base, length = _BATCH_HEAD.unpack_from(view, at)
                end = at + 12 + length
                if end > n:
                    break
                last = base + _LAST_DELTA.unpack_from(view, at + 23)[0]
                if base > run.last_offset:
                    break
                if last > covered:
                    subs = _acquired_in(runs, max(base, covered + 1), last)
                    taken = sum(b - a + 1 for a, b in subs)
                    if end - at > _SPLIT_BYTES and 2 * taken < last - base + 1 and \
                            not view[at + 22] & _ATTR_CONTROL:
                        for first, upto in subs:
                            piece = _reencode(p, first, upto)
                            parts.append(piece)
                            size += len(piece)
                    else:
                        parts.append(view[at:end])
                        size += end - at
                    covered = last
                at = end
            if covered < pos:            # no progress (cannot happen with whole batches)
                break
            pos = covered + 1
    return b"".join(parts)


def _acquired_in(runs, lo: int, hi: int) -> list[tuple[int, int]]:
    """The parts of [lo, hi] the runs cover."""
    out = []
    for r in runs:
        a, b = max(lo, r.first_offset), min(hi, r.last_offset)
        if a <= b:
            out.append((a, b))
    return out


def _reencode(p, first: int, last: int) -> bytes:
    recs = [r for r in p.read(first, max_records=last - first + 1) if r.offset <= last]
    if not recs:
        return b""
    out = []
    run: list = []
    for r in recs + [None]:          # consecutive offsets per batch (gaps: compaction)
        if r is not None and (not run or r.offset == run[-1].offset + 1):
            run.append(r)
            continue
        out.append(encode_batch([x.value for x in run], keys=[x.key for x in run],
                                headers=[list(x.headers) for x in run],
                                timestamps=[x.timestamp for x in run],
                                base_offset=run[0].offset))
        run = [r] if r is not None else []
    return b"".join(out)


def _acquire(ctx, group: str, member: str, session: ShareSession, max_records: int,
             max_bytes: int, found: dict) -> int:
    """Acquire and read records into ``found[(topic id, partition)]`` =
    [code, message, records, acquired runs]; returns records acquired."""
    log_ = ctx.broker.log
    keys = list(session.partitions)
    if not keys:
        return 0
    sessions = _sessions(ctx.broker)
    start = sessions.next_start() % len(keys)
    total = size = 0
    for j in range(len(keys)):
        if total >= max_records or size >= max_bytes:
            break
        key = keys[(start + j) % len(keys)]
        name = session.partitions[key]
        if name is None:
            found[key] = [UNKNOWN_TOPIC_ID, f"unknown topic id {key[0]}", b"", ()]
            continue
        if not ctx.allowed(3, 2, name):                          # READ on the topic
            found[key] = [29, f"{ctx.principal} may not read {name}", b"", ()]
            continue
        try:
            p = log_.partition(name, key[1])
            # Fair shares: with n members reading this partition, one fetch takes at
            # most 1/n of the record-lock window, so a fast member acking and fetching
            # again cannot keep the others waiting.
            window = log_.share_groups.share_partition(group, name, key[1]).max_record_locks
            cap = max(1, window // max(1, sessions.readers(group, key)))
            runs = log_.share_groups.acquire(group, member, name, key[1],
                                             min(cap, max_records - total))
            if not runs:
                continue
            records = _read_runs(p, runs)
        except PylogError as exc:
            found[key] = [exc.errno, str(exc), b"", ()]
            continue
        n = sum(r.last_offset - r.first_offset + 1 for r in runs)
        total += n
        size += len(records)
        ctx.broker.metrics.records_out(count_batch_records(records) if records else 0)
        found[key] = [NONE, None, records, tuple(runs)]
    return total


def _session_partitions(ctx, group: str, member: str, session: ShareSession,
                        request) -> None:
    log_ = ctx.broker.log
    sessions = _sessions(ctx.broker)
    for t in request.topics:
        name = _topic_name(log_, t.topic_id)
        for p in t.partitions:
            session.partitions[(t.topic_id, p.partition_index)] = name
            sessions.add_partition(group, member, (t.topic_id, p.partition_index))
    for t in request.forgotten_topics_data:
        for i in t.partitions:
            session.partitions.pop((t.topic_id, i), None)
            sessions.drop_partition(group, member, (t.topic_id, i))


def _lock_timeout_ms(log_, group: str) -> int:
    try:
        return int(log_.share_groups._settings(group)["lock_duration_ms"])
    except Exception:                  # noqa: BLE001 -- the default if configs fail
        return 30_000


def _fetch_response(ctx, group, code, message, acks: dict, found: dict):
    mod = response_module(SHARE_FETCH, ctx.version)
    leader = build(mod.LeaderIdAndEpoch, leader_id=ctx.broker.settings.node_id,
                   leader_epoch=0)
    by_topic: dict = {}
    for key in list(acks) + [k for k in found if k not in acks]:
        a_code, a_msg = acks.get(key, (NONE, None))
        f_code, f_msg, records, runs = found.get(key, (NONE, None, b"", ()))
        by_topic.setdefault(key[0], []).append(build(
            mod.PartitionData, partition_index=key[1], error_code=error_code(f_code),
            error_message=f_msg, acknowledge_error_code=a_code,
            acknowledge_error_message=a_msg, current_leader=leader, records=records,
            acquired_records=tuple(build(mod.AcquiredRecords, first_offset=r.first_offset,
                                         last_offset=r.last_offset,
                                         delivery_count=r.delivery_count) for r in runs)))
    responses = tuple(build(mod.ShareFetchableTopicResponse, topic_id=tid,
                            partitions=tuple(ps)) for tid, ps in by_topic.items())
    return build(mod.ShareFetchResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                 error_message=message if message or not code else error_name(code),
                 acquisition_lock_timeout=ms(_lock_timeout_ms(ctx.broker.log, group)
                                             if group else 0),
                 responses=responses, node_endpoints=())


def handle_share_fetch(ctx, request):
    """Acknowledgements and the first acquisition take effect at once; the answer
    (acknowledgements durable, a long poll if nothing was acquired) is ``Applied``, so
    the connection's next requests — a ShareAcknowledge, say — are applied meanwhile
    (their answers still go out in order)."""
    log_ = ctx.broker.log
    group, member, epoch = request.group_id, request.member_id, request.share_session_epoch
    code, message = _check_member(log_, group, member, ctx)
    if code:
        return _fetch_response(ctx, group, code, message, {}, {})
    sessions = _sessions(ctx.broker)
    acks: dict = {}
    has_acks = any(p.acknowledgement_batches for t in request.topics for p in t.partitions)
    if epoch == 0 and has_acks:
        for t in request.topics:
            for p in t.partitions:
                if p.acknowledgement_batches:
                    acks[(t.topic_id, p.partition_index)] = [
                        INVALID_SHARE_SESSION_EPOCH, "acknowledgements need an open session"]
    code, session = sessions.resolve(group, member, epoch)
    if code:
        return _fetch_response(ctx, group, code, error_name(code), {}, {})
    waits = []
    if epoch != 0:
        waits = _start_acks(log_, group, member, request.topics, acks, ctx.version)
        _wake(sessions, group, waits)
    if epoch == -1:
        sessions.close(group, member)
        return Applied(_answer_fetch(ctx, group, waits, acks, {}))
    _session_partitions(ctx, group, member, session, request)
    found: dict = {}
    max_bytes = request.max_bytes if request.max_bytes > 0 else _MAX_READ
    poll = None
    if request.max_records > 0:
        got = _acquire(ctx, group, member, session, request.max_records, max_bytes, found)
        wait_s = request.max_wait.total_seconds()
        if not got and wait_s > 0 and session.partitions and not ctx.broker.closing:
            poll = (session, request, max_bytes, wait_s)
    if not waits and poll is None:
        return _fetch_response(ctx, group, NONE, None, acks, found)
    return Applied(_answer_fetch(ctx, group, waits, acks, found, member, poll))


async def _answer_fetch(ctx, group, waits, acks, found, member=None, poll=None):
    await _finish_acks(waits, acks)
    if poll is not None:
        session, request, max_bytes, wait_s = poll
        await _long_poll(ctx, group, member, session, request, max_bytes, found, wait_s)
    return _fetch_response(ctx, group, NONE, None, acks, found)


async def _long_poll(ctx, group, member, session, request, max_bytes, found, timeout):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    log_ = ctx.broker.log
    parts = []
    for name, i in {(n, k[1]) for k, n in session.partitions.items() if n is not None}:
        try:
            parts.append(log_.partition(name, i))
        except PylogError:
            pass
    broker = ctx.broker
    sessions = _sessions(broker)
    keys = list(session.partitions)
    waker = AppendWaker().listen(parts)
    woken = waker.event
    broker.fetch_waiters.add(woken)
    for key in keys:
        sessions.wait(group, key, woken)
    try:
        while not broker.closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            woken.clear()
            try:
                await asyncio.wait_for(woken.wait(), min(remaining, _POLL_SLICE_S))
            except asyncio.TimeoutError:
                pass
            if not log_.share_members.is_member(group, member):
                return
            if _acquire(ctx, group, member, session, request.max_records, max_bytes, found):
                return
    finally:
        broker.fetch_waiters.discard(woken)
        for key in keys:
            sessions.unwait(group, key, woken)
        waker.close()


def handle_share_acknowledge(ctx, request):
    mod = response_module(SHARE_ACKNOWLEDGE, ctx.version)
    log_ = ctx.broker.log
    group, member, epoch = request.group_id, request.member_id, request.share_session_epoch

    def answer(code, message, acks):
        leader = build(mod.LeaderIdAndEpoch, leader_id=ctx.broker.settings.node_id,
                       leader_epoch=0)
        by_topic: dict = {}
        for (tid, i), (c, m) in acks.items():
            by_topic.setdefault(tid, []).append(build(
                mod.PartitionData, partition_index=i, error_code=error_code(c),
                error_message=m, current_leader=leader))
        return build(mod.ShareAcknowledgeResponse, throttle_time=ZERO_MS,
                     error_code=error_code(code), error_message=message,
                     acquisition_lock_timeout=ms(_lock_timeout_ms(log_, group)
                                                 if group else 0),
                     responses=tuple(build(mod.ShareAcknowledgeTopicResponse, topic_id=tid,
                                           partitions=tuple(ps))
                                     for tid, ps in by_topic.items()),
                     node_endpoints=())

    code, message = _check_member(log_, group, member, ctx)
    if code:
        return answer(code, message, {})
    if epoch == 0:
        return answer(INVALID_SHARE_SESSION_EPOCH, "ShareAcknowledge needs an open share "
                      "session (epoch 0 opens one with ShareFetch)", {})
    sessions = _sessions(ctx.broker)
    code, _session = sessions.resolve(group, member, epoch)
    if code:
        return answer(code, error_name(code), {})
    acks: dict = {}
    waits = _start_acks(log_, group, member, request.topics, acks, ctx.version)
    _wake(sessions, group, waits)
    if epoch == -1:
        sessions.close(group, member)

    async def durable():                 # in effect now; answered once durable
        await _finish_acks(waits, acks)
        return answer(NONE, None, acks)
    return Applied(durable())


register(
    ApiSpec(SHARE_FETCH, "ShareFetch", range(1, 3), 2, handle_share_fetch),
    ApiSpec(SHARE_ACKNOWLEDGE, "ShareAcknowledge", range(1, 3), 2, handle_share_acknowledge),
)
