"""Fetch (1), v4–18: whole record batches as views over the segment mmap.

Rules (research/kafka-protocol.md §2.5–2.6):
- Records start at the batch that *contains* fetch_offset; clients skip the
  records below it.  ``PartitionLog.read_raw`` returns a zero-copy memoryview;
  ``messages.Chunks`` hands large views to the transport uncopied.
- Limits (KIP-74): ``partition_max_bytes`` per partition and ``max_bytes`` for
  the response, except that the first partition with data always returns at
  least one whole batch, so a batch larger than the limits still gets through.
  A later partition whose next batch does not fit what is left returns no
  records this time (never a partial batch that some clients reject).
- Fetch sessions (KIP-227, v7+; fetch_session.py): a sessionless or full fetch
  answers every partition it names; an incremental one only those with records,
  an error, or a changed high watermark / log start offset.
- Topics are named by id from v13 (UNKNOWN_TOPIC_ID, 100, for an id nobody has).
  last_stable_offset = high watermark (no transactions), aborted_transactions
  empty, preferred_read_replica -1; v12+'s diverging epoch, current leader and
  snapshot id keep their defaults (one node, one leader epoch, no KRaft snapshots).
- fetch_offset < log start or > high watermark → OFFSET_OUT_OF_RANGE (1);
  == high watermark → no records.
- Transactions (KIP-98): every answer carries the partition's last stable offset
  (the first offset of its oldest open transaction, else the high watermark).  With
  ``isolation_level`` 1 (read_committed) only batches below it are returned, with the
  ``aborted_transactions`` (producer id, first offset) overlapping them, which the
  client uses to skip aborted records; control batches are returned as Kafka does
  (clients skip them).  read_uncommitted gets everything and no aborted list.
- Long poll: with fewer than ``min_bytes`` available and ``max_wait_ms`` > 0 the
  response waits until an append to one of the requested partitions (their
  ``add_listener`` callback wakes the loop, thread-safely) or the deadline.
"""
from __future__ import annotations

import asyncio
import logging

from pylog.errors import OffsetOutOfRangeError, PylogError, UnknownTopicIdError

from ..metrics import count_batch_records
from ..wakeup import AppendWaker
from .dispatch import ApiSpec, register
from .fetch_session import CachedPartition, FetchContext, open_session, resolve_context
from .messages import build, error_code, ms, response_module

API_KEY = 1
READ, TOPIC, TOPIC_AUTHORIZATION_FAILED = 3, 2, 29
OFFSET_OUT_OF_RANGE = OffsetOutOfRangeError.errno
log = logging.getLogger("pylog.server.kafka")


class _Read:
    """One pass over every partition of the fetch."""
    __slots__ = ("results", "total", "failed", "partitions", "committed")

    def __init__(self, committed: bool = False) -> None:
        self.committed = committed       # isolation_level read_committed
        # (CachedPartition, code, hw, lso, start, records, aborted)
        self.results: list[tuple] = []
        self.total = 0
        self.failed = False
        self.partitions: list = []       # the PartitionLogs found (for long-poll listeners)


def _read_partition(broker, cp, budget: int, first: bool, read: _Read) -> None:
    try:
        if cp.topic is None:
            raise UnknownTopicIdError(f"unknown topic id {cp.topic_id}")
        p = broker.partition(cp.topic, cp.partition)
    except PylogError as exc:
        read.failed = True
        read.results.append((cp, exc.errno, -1, -1, -1, b"", ()))
        return
    read.partitions.append(p)
    hw, lso = p.high_watermark, p.last_stable_offset
    start, offset = p.log_start_offset, cp.fetch_offset
    code, records, aborted = 0, b"", ()
    end = lso if read.committed else hw
    if offset < start or offset > hw:
        code = OFFSET_OUT_OF_RANGE
        read.failed = True
    elif offset < end and (budget > 0 or first):
        limit = max(1, min(cp.max_bytes, budget))
        try:
            view = p.read_raw(offset, limit, committed=read.committed)
        except PylogError as exc:
            code = exc.errno
            read.failed = True
        else:
            n = view.nbytes if isinstance(view, memoryview) else len(view)
            if n > limit and not first:
                view, n = b"", 0         # next batch does not fit what is left: next time
            records = view
            read.total += n
            broker.metrics.records_out(count_batch_records(view) if n else 0)
            if n and read.committed:
                aborted = p.aborted_transactions(offset, lso)
    read.results.append((cp, code, hw, lso, start, records, aborted))


def _read_all(ctx, request, fctx: FetchContext) -> _Read:
    read = _Read(getattr(request, "isolation_level", 0) == 1)
    max_bytes = request.max_bytes if request.max_bytes > 0 else 0
    for cp in fctx.partitions:
        if cp.topic is not None and not ctx.allowed(READ, TOPIC, cp.topic):
            read.failed = True
            read.results.append((cp, TOPIC_AUTHORIZATION_FAILED, -1, -1, -1, b"", ()))
            continue
        _read_partition(ctx.broker, cp, max_bytes - read.total, read.total == 0, read)
    return read


def _requested(broker, request) -> list[CachedPartition]:
    """The request's partitions, topics resolved (v13+: by id; None if unknown)."""
    out = []
    for ft in request.topics:
        topic_id = getattr(ft, "topic_id", None)
        name = getattr(ft, "topic", None)
        if topic_id is not None and topic_id.int != 0:
            try:
                name = broker.log.topic_by_id(topic_id).name
            except UnknownTopicIdError:
                name = None
        else:
            topic_id = None
        for fp in ft.partitions:
            out.append(CachedPartition(name, topic_id, fp.partition, fp.fetch_offset,
                                       fp.partition_max_bytes))
    return out


def _response(ctx, fctx: FetchContext, read: _Read):
    mod = response_module(API_KEY, ctx.version)
    session_id = fctx.session.id if fctx.session is not None else 0
    if fctx.new_session:
        session_id = open_session(ctx.broker.fetch_sessions, fctx)
    topics: list[tuple] = []                    # ((name, id), [PartitionData])
    for cp, code, hw, lso, start, records, aborted in read.results:
        has_records = bool(len(records))
        if not fctx.include(cp, has_records, code, hw, lso, start):
            continue
        data = build(mod.PartitionData, partition_index=cp.partition,
                     error_code=error_code(code), high_watermark=hw,
                     last_stable_offset=lso, log_start_offset=start,
                     aborted_transactions=tuple(
                         build(mod.AbortedTransaction, producer_id=pid, first_offset=first)
                         for pid, first in aborted),
                     preferred_read_replica=-1, records=records)
        key = (cp.topic, cp.topic_id)
        if topics and topics[-1][0] == key:
            topics[-1][1].append(data)
        else:
            topics.append((key, [data]))
    responses = tuple(build(mod.FetchableTopicResponse, topic=name, topic_id=topic_id,
                            partitions=tuple(parts))
                      for (name, topic_id), parts in topics)
    throttled = ctx.throttle("consumer_byte_rate", read.total)
    return build(mod.FetchResponse, throttle_time=ms(throttled),
                 error_code=error_code(fctx.error),
                 session_id=session_id, responses=responses)


def handle_fetch(ctx, request):
    broker = ctx.broker
    fctx = resolve_context(broker.fetch_sessions, request, ctx.version,
                           _requested(broker, request))
    read = _read_all(ctx, request, fctx)
    wait_ms = request.max_wait.total_seconds() * 1000
    if read.total >= max(request.min_bytes, 1) or wait_ms <= 0 or read.failed \
            or not read.partitions or broker.closing:
        return _response(ctx, fctx, read)
    return _long_poll(ctx, request, fctx, read.partitions, wait_ms / 1000)


async def _long_poll(ctx, request, fctx, partitions, timeout: float):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waker = AppendWaker().listen(partitions)
    woken = waker.event
    broker = ctx.broker
    broker.fetch_waiters.add(woken)
    try:
        while True:
            read = _read_all(ctx, request, fctx)
            remaining = deadline - loop.time()
            if read.total >= max(request.min_bytes, 1) or read.failed or remaining <= 0 \
                    or broker.closing:
                return _response(ctx, fctx, read)
            woken.clear()
            try:
                await asyncio.wait_for(woken.wait(), remaining)
            except asyncio.TimeoutError:
                pass
    finally:
        broker.fetch_waiters.discard(woken)
        waker.close()


register(ApiSpec(API_KEY, "Fetch", range(4, 19), 18, handle_fetch))
