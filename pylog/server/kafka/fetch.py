"""Fetch (1), v4–11: whole record batches as views over the segment mmap.

Rules (research/kafka-protocol.md §2.5–2.6):
- Records start at the batch that *contains* fetch_offset; clients skip the
  records below it.  ``PartitionLog.read_raw`` returns a zero-copy memoryview;
  ``messages.Chunks`` hands large views to the transport uncopied.
- Limits (KIP-74): ``partition_max_bytes`` per partition and ``max_bytes`` for
  the response, except that the first partition with data always returns at
  least one whole batch, so a batch larger than the limits still gets through.
  A later partition whose next batch does not fit what is left returns no
  records this time (never a partial batch that some clients reject).
- Every requested partition is in the response, with session_id 0: clients
  then stay in sessionless full-fetch mode.  last_stable_offset = high
  watermark (no transactions), aborted_transactions empty, log_start_offset,
  preferred_read_replica -1.
- fetch_offset < log start or > high watermark → OFFSET_OUT_OF_RANGE (1);
  == high watermark → no records.
- Long poll: with fewer than ``min_bytes`` available and ``max_wait_ms`` > 0 the
  response waits until an append to one of the requested partitions (their
  ``add_listener`` callback wakes the loop, thread-safely) or the deadline.
"""
from __future__ import annotations

import asyncio
import logging
import threading

from pylog.errors import OffsetOutOfRangeError, PylogError

from ..metrics import count_batch_records
from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 1
OFFSET_OUT_OF_RANGE = OffsetOutOfRangeError.errno
log = logging.getLogger("pylog.server.kafka")


class _Read:
    """One pass over every requested partition."""
    __slots__ = ("topics", "total", "failed", "partitions")

    def __init__(self) -> None:
        self.topics: list[tuple[str, list]] = []
        self.total = 0
        self.failed = False
        self.partitions: list = []       # the PartitionLogs found (for long-poll listeners)


def _read_partition(mod, broker, topic: str, fp, budget: int, first: bool, read: _Read):
    """PartitionData for one requested partition; updates ``read``'s totals."""
    none = error_code(0)
    try:
        p = broker.partition(topic, fp.partition)
    except PylogError as exc:
        read.failed = True
        return build(mod.PartitionData, partition_index=fp.partition,
                     error_code=error_code(exc.errno), high_watermark=-1,
                     last_stable_offset=-1, log_start_offset=-1, aborted_transactions=(),
                     preferred_read_replica=-1, records=b"")
    read.partitions.append(p)
    hw, start, offset = p.high_watermark, p.log_start_offset, fp.fetch_offset
    code, records = 0, b""
    if offset < start or offset > hw:
        code = OFFSET_OUT_OF_RANGE
        read.failed = True
    elif offset < hw and (budget > 0 or first):
        limit = max(1, min(fp.partition_max_bytes, budget))
        try:
            view = p.read_raw(offset, limit)
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
    return build(mod.PartitionData, partition_index=fp.partition,
                 error_code=none if code == 0 else error_code(code), high_watermark=hw,
                 last_stable_offset=hw, log_start_offset=start, aborted_transactions=(),
                 preferred_read_replica=-1, records=records)


def _read_all(ctx, request) -> _Read:
    mod = response_module(API_KEY, ctx.version)
    read = _Read()
    max_bytes = request.max_bytes if request.max_bytes > 0 else 0
    for ft in request.topics:
        parts = []
        for fp in ft.partitions:
            first = read.total == 0
            parts.append(_read_partition(mod, ctx.broker, ft.topic, fp,
                                         max_bytes - read.total, first, read))
        read.topics.append((ft.topic, parts))
    return read


def _response(ctx, read: _Read):
    mod = response_module(API_KEY, ctx.version)
    topics = tuple(build(mod.FetchableTopicResponse, topic=name, partitions=tuple(parts))
                   for name, parts in read.topics)
    return build(mod.FetchResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 session_id=0, responses=topics)


def handle_fetch(ctx, request):
    read = _read_all(ctx, request)
    wait_ms = request.max_wait.total_seconds() * 1000
    if read.total >= max(request.min_bytes, 1) or wait_ms <= 0 or read.failed \
            or not read.partitions or ctx.broker.closing:
        return _response(ctx, read)
    return _long_poll(ctx, request, read.partitions, wait_ms / 1000)


async def _long_poll(ctx, request, partitions, timeout: float):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    woken = asyncio.Event()
    loop_thread = threading.get_ident()

    def on_append() -> None:
        # Called by the appending thread after every append to these partitions.
        if threading.get_ident() == loop_thread:
            woken.set()
        else:
            loop.call_soon_threadsafe(woken.set)

    broker = ctx.broker
    broker.fetch_waiters.add(woken)
    for p in partitions:
        p.add_listener(on_append)
    try:
        while True:
            read = _read_all(ctx, request)
            remaining = deadline - loop.time()
            if read.total >= max(request.min_bytes, 1) or read.failed or remaining <= 0 \
                    or broker.closing:
                return _response(ctx, read)
            woken.clear()
            try:
                await asyncio.wait_for(woken.wait(), remaining)
            except asyncio.TimeoutError:
                pass
    finally:
        broker.fetch_waiters.discard(woken)
        for p in partitions:
            try:
                p.remove_listener(on_append)
            except Exception:    # noqa: BLE001 -- a deleted topic's log may refuse; harmless
                pass


register(ApiSpec(API_KEY, "Fetch", range(4, 12), 11, handle_fetch))
