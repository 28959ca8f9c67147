"""Produce (0), v3–13: append client-built RecordBatch v2 bytes to partitions.

v13 names topics by id (KIP-516; an unknown id gets UNKNOWN_TOPIC_ID, 100);
v10+'s current-leader fields are left at their defaults: this node leads every
partition and never answers NOT_LEADER_OR_FOLLOWER.

The records of each partition stay opaque bytes: ``PartitionLog.append_raw``
(the C core) validates length, magic, CRC and ``max.message.bytes`` and stamps
the base offset and leader epoch 0 outside the CRC.  This module reads only the
61-byte batch header, for three reasons: Kafka's v3+ rule that a partition's
records are exactly one magic-2 batch, refusing client control batches,
transactions, and idempotence (producer id, epoch, sequences; research/
kafka-protocol.md §1.10).  A transactional batch is accepted only for a partition
its producer added to an Ongoing transaction at its current epoch
(``log.transactions.check_append``, KIP-890's verification: INVALID_TXN_STATE 48,
INVALID_PRODUCER_EPOCH 47 for a fenced epoch); the coordinator's lock is held from
that check to the end of the append, so a timeout abort cannot come in between.  Idempotence is keyed on producerId >= 0 only:
aiokafka sends non-idempotent batches with baseSequence 0.  Dedup ids (records
with a ``pylog-msg-id`` header) are applied inside ``append_raw``
(storage/dedup.py: which records are stored and which base offset is answered).

What runs where: the append (a memcpy into the mmap) runs here on the event
loop thread, so check → append → producer-state update of one request is never
interleaved with another.  Durability is never waited for on the loop thread:
``append_raw(wait=False)`` returns at once and, when the topic's flush policy
needs a barrier (flush.messages=1), the response is a coroutine awaiting
``durable_future(last_offset)`` — the flusher thread's group commit.  acks=0
returns None: no response at all (§2.6); when such a request fails, the connection
is closed instead, as Kafka does, since there is no response to carry the error.

Order: the first idempotent batch for a large partition after a restart waits for
its producer state (rebuilt in a worker thread); the handler then returns a
coroutine, and the connection holds its later requests until it has appended
(protocol.py), so a pipelined request never overtakes it.  A response waiting only
for the barrier is ``Applied``: the next request is appended meanwhile.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import struct

from pylog.broker.producers import PartitionProducerState, next_sequence
from pylog.errors import (CorruptRecordError, InvalidRecordError, PylogError,
                          StorageError, UnknownTopicIdError)

from .dispatch import ApiSpec, Applied, CloseConnection, register
from .messages import ZERO_MS, build, error_code, ms, response_module

API_KEY = 0
log = logging.getLogger("pylog.server.kafka")

BATCH_HEADER_BYTES = 61
# baseOffset q, batchLength i, leaderEpoch i, magic b, crc I, attributes h, lastOffsetDelta i,
# baseTimestamp q, maxTimestamp q, producerId q, producerEpoch h, baseSequence i, count i
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20
_VALID_ACKS = (-1, 0, 1)
NONE, INVALID_REQUIRED_ACKS, STORAGE_ERROR, UNKNOWN = 0, 21, 56, -1
# Producer state of a partition smaller than this is rebuilt inline (a few ms at most);
# a larger one in a worker thread while the request waits (see _rebuilds_to_await).
INLINE_REBUILD_BYTES = 1 << 20


class _Outcome:
    """The answer for one partition, possibly still waiting for a barrier."""
    __slots__ = ("index", "code", "base_offset", "log_append_time", "log_start_offset",
                 "message", "durable")

    def __init__(self, index: int, code: int = NONE, base_offset: int = -1,
                 log_append_time: int = -1, log_start_offset: int = -1,
                 message: str | None = None) -> None:
        self.index = index
        self.code = code
        self.base_offset = base_offset
        self.log_append_time = log_append_time
        self.log_start_offset = log_start_offset
        self.message = message
        self.durable = None          # concurrent.futures.Future from durable_future()


def _parse_single_batch(records: bytes | None):
    """The header of the one batch in ``records``; CorruptRecord / InvalidRecord if not."""
    if not records:
        raise InvalidRecordError("produce request carries no record batch")
    if len(records) < BATCH_HEADER_BYTES:
        raise CorruptRecordError(f"records of {len(records)} bytes are shorter than a "
                                 f"batch header ({BATCH_HEADER_BYTES})")
    h = _BATCH_HEADER.unpack_from(records, 0)
    batch_length, magic, attributes = h[1], h[3], h[5]
    if magic != 2:
        raise InvalidRecordError(f"record batch magic {magic}: only magic 2 is accepted")
    if batch_length < BATCH_HEADER_BYTES - 12 or 12 + batch_length > len(records):
        raise CorruptRecordError(f"batch length {batch_length} does not fit the "
                                 f"{len(records)} bytes sent")
    if 12 + batch_length != len(records):
        raise InvalidRecordError("produce v3+ must carry exactly one record batch per "
                                 "partition")
    if attributes & _CONTROL_BIT:
        raise InvalidRecordError("clients may not write control batches")
    if attributes & _TRANSACTIONAL_BIT and h[9] < 0:
        raise InvalidRecordError("a transactional batch without a producer id")
    return h


def _append(broker, topic: str, index: int, records: bytes | None, acks: int) -> _Outcome:
    try:
        p = broker.partition(topic, index)
        h = _parse_single_batch(records)
    except PylogError as exc:
        return _Outcome(index, exc.errno, message=str(exc))
    if not h[5] & _TRANSACTIONAL_BIT:
        return _append_checked(broker, p, records, acks, h)
    coord = broker.log.transactions
    with coord.lock:                  # held until the append is done (module doc)
        try:
            coord.check_append(h[9], h[10], topic, index)
        except PylogError as exc:
            return _Outcome(index, exc.errno, message=str(exc))
        return _append_checked(broker, p, records, acks, h)


def _append_checked(broker, p, records: bytes, acks: int, h) -> _Outcome:
    topic, index = p.topic, p.partition
    out = _Outcome(index)
    try:
        producer_id, epoch, base_seq, last_delta = h[9], h[10], h[11], h[6]
        state = None
        if producer_id >= 0:
            state = broker.producers.for_partition(p)
            last_seq = next_sequence(base_seq, last_delta)
            dup = state.check(producer_id, epoch, base_seq, last_seq)
            if dup is not None:      # a retry: answer with the original offsets
                out.base_offset, out.log_start_offset = dup.base_offset, p.log_start_offset
                if acks != 0:
                    out.durable = p.durable_future(dup.last_offset)
                return out
        # records with a known pylog-msg-id are not stored again (storage/dedup.py):
        # then ``stored`` counts what was, and base_offset may be a first copy's
        result = p.append_raw(records, wait=False)
        broker.metrics.records_in(result.last_offset - result.base_offset + 1
                                  if result.stored is None else result.stored)
        if state is not None:
            state.update(producer_id, epoch, base_seq, last_seq, result.base_offset,
                         result.last_offset, h[8])
        out.base_offset = result.base_offset
        out.log_append_time = result.log_append_time
        out.log_start_offset = result.log_start_offset
        if acks != 0:
            out.durable = p.durable_future(result.last_offset)
    except PylogError as exc:
        out.code, out.message = exc.errno, str(exc)
    except Exception as exc:     # noqa: BLE001 -- one partition's bug must not kill the request
        log.exception("produce to %s-%d failed", topic, index)
        out.code, out.message = UNKNOWN, f"{type(exc).__name__}: {exc}"
    return out


def _rebuilds_to_await(broker, request) -> list:
    """Producer-state rebuilds this request must wait for: idempotent batches for large
    partitions whose state is not loaded yet (the first ones after a restart)."""
    waits = []
    for td in request.topic_data:
        name = _topic_name(broker, td)
        for pd in td.partition_data:
            rec = pd.records
            if not rec or len(rec) < BATCH_HEADER_BYTES:
                continue
            if _BATCH_HEADER.unpack_from(rec)[9] < 0:          # producerId: not idempotent
                continue
            try:
                p = broker.partition(name, pd.index)
            except PylogError:
                continue
            if not broker.producers.has_state(p) and p.size_bytes >= INLINE_REBUILD_BYTES:
                waits.append(_rebuild_future(broker, p))
    return waits


def _rebuild_future(broker, p):
    """One worker-thread rebuild per partition, installed on the loop when done."""
    producers, key = broker.producers, (p.topic, p.partition)
    fut = producers.rebuilding.get(key)
    if fut is None:
        fut = asyncio.get_running_loop().run_in_executor(None, PartitionProducerState.rebuild, p)
        producers.rebuilding[key] = fut

        def installed(f):          # registered first: runs before any waiter resumes
            producers.rebuilding.pop(key, None)
            if not f.cancelled() and f.exception() is None:
                producers.install(p, f.result())
            elif not f.cancelled():
                log.error("producer state of %s-%d not rebuilt: %s", *key, f.exception())
        fut.add_done_callback(installed)
    return fut


async def _produce_after(ctx, request, waits):
    """Append once the rebuilds are done.  Until this returns the connection applies
    none of its later requests (they would otherwise overtake this one)."""
    await asyncio.gather(*waits, return_exceptions=True)
    return _produce_now(ctx, request)


def handle_produce(ctx, request):
    waits = _rebuilds_to_await(ctx.broker, request) if request.acks in _VALID_ACKS else []
    if waits:
        return _produce_after(ctx, request, waits)
    return _produce_now(ctx, request)


def _topic_name(broker, td) -> str | None:
    """The topic a TopicProduceData names: by name, or (v13) by id; None for an
    unknown id."""
    topic_id = getattr(td, "topic_id", None)
    if topic_id is None or topic_id.int == 0:
        return getattr(td, "name", None)
    try:
        return broker.log.topic_by_id(topic_id).name
    except UnknownTopicIdError:
        return None


def _produce_now(ctx, request):
    broker, acks = ctx.broker, request.acks
    results: list[tuple[tuple, list[_Outcome]]] = []
    pending = False
    for topic_data in request.topic_data:
        name = _topic_name(broker, topic_data)
        outcomes = []
        for pd in topic_data.partition_data:
            if acks not in _VALID_ACKS:
                outcome = _Outcome(pd.index, INVALID_REQUIRED_ACKS,
                                   message=f"acks must be -1, 0 or 1, not {acks}")
            elif name is None:
                outcome = _Outcome(pd.index, UnknownTopicIdError.errno,
                                   message=f"unknown topic id {topic_data.topic_id}")
            elif not ctx.allowed(WRITE, TOPIC, name):
                outcome = _Outcome(pd.index, TOPIC_AUTHORIZATION_FAILED,
                                   message=f"{ctx.principal} may not write to {name}")
            else:
                outcome = _append(broker, name, pd.index, pd.records, acks)
            if outcome.code != NONE:
                log.info("produce to %s-%d rejected: %s (%s)", name, pd.index,
                         outcome.code, outcome.message)
            pending = pending or (outcome.durable is not None and not outcome.durable.done())
            outcomes.append(outcome)
        results.append(((name, getattr(topic_data, "topic_id", None)), outcomes))
    if acks == 0:
        failed = [(name, o.index, o.code) for name, outs in results for o in outs if o.code]
        if failed:
            raise CloseConnection(f"acks=0 produce failed for (topic, partition, error) "
                                  f"{failed[:5]}")
        return None
    if pending:          # appended: the connection may apply its next request meanwhile
        return Applied(_respond_when_durable(ctx, results))
    return _response(ctx, results)


async def _respond_when_durable(ctx, results):
    for _topic, outcomes in results:
        for out in outcomes:
            if out.durable is not None and not out.durable.done():
                try:
                    await asyncio.wrap_future(out.durable)
                except Exception:    # noqa: BLE001 -- checked per partition in _response
                    pass
    return _response(ctx, results)


def _timestamp(ms: int):
    if ms is None or ms < 0:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def _response(ctx, results):
    mod = response_module(API_KEY, ctx.version)
    topics = []
    for (name, topic_id), outcomes in results:
        parts = []
        for out in outcomes:
            if out.durable is not None and out.durable.exception() is not None:
                exc = out.durable.exception()
                out.code = exc.errno if isinstance(exc, PylogError) else StorageError.errno
                out.message = f"barrier failed: {exc}"
                log.error("produce to %s-%d not durable: %s", name, out.index, exc)
            ok = out.code == NONE
            parts.append(build(
                mod.PartitionProduceResponse, index=out.index, error_code=error_code(out.code),
                base_offset=out.base_offset if ok else -1,
                log_append_time=_timestamp(out.log_append_time) if ok else None,
                log_start_offset=out.log_start_offset if ok else -1,
                record_errors=(), error_message=None if ok else out.message))
        topics.append(build(mod.TopicProduceResponse, name=name, topic_id=topic_id,
                            partition_responses=tuple(parts)))
    throttled = ctx.throttle("producer_byte_rate", _request_bytes(ctx.request_body))
    return build(mod.ProduceResponse, responses=tuple(topics), throttle_time=ms(throttled))


def _request_bytes(request) -> int:
    if request is None:
        return 0
    return sum(len(pd.records or b"") for td in request.topic_data
               for pd in td.partition_data)


WRITE, TOPIC, TOPIC_AUTHORIZATION_FAILED = 4, 2, 29


register(ApiSpec(API_KEY, "Produce", range(3, 14), 13, handle_produce))
