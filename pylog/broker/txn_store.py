"""Transaction coordinator state, durable in the internal topic ``__transaction_state``.

Every change of a transactional id's state is appended as one record to partition 0
of ``__transaction_state`` (same engine, data directory and flush policy as any topic,
like ``__consumer_offsets``); ``load()`` replays the partition.  The topic is
compacted (``cleanup.policy=compact``): every record is the whole current state of
its key, so the latest record per key is all a replay needs.

Records (FORMAT.md §10.3), all big-endian, strings i16-length UTF-8:

* Kafka's own TransactionLogKey v0 / TransactionLogValue v0 (AK
  ``TransactionLog.scala``, ``TransactionLogValue.json``)::

    key    version i16 = 0 | transactional_id str
    value  version i16 = 0 | producer_id i64 | producer_epoch i16 | timeout_ms i32 |
           state i8 | partitions: i32 n × (topic str | i32 m × partition i32) |
           last_update_ms i64 | start_ms i64

  ``state`` is Kafka's TransactionState id: 0 Empty, 1 Ongoing, 2 PrepareCommit,
  3 PrepareAbort, 4 CompleteCommit, 5 CompleteAbort, 6 Dead, 7 PrepareEpochFence.

* pylog's pending transactional offsets (TxnOffsetCommit), which Kafka keeps as
  transactional records in ``__consumer_offsets`` instead::

    key    version i16 = 1 | transactional_id str | group str
    value  version i16 = 0 | producer_id i64 | producer_epoch i16 | i32 n ×
           (topic str | partition i32 | offset i64 | leader_epoch i32 | metadata str)

  They become committed offsets when the transaction commits and are tombstoned
  (null value) when it completes either way.  Because they are written before the
  PrepareCommit record of their transaction, a PrepareCommit found on load always
  has its offsets.

Durability: ``write`` appends one batch with ``append_raw(wait=False)`` and returns
``durable_future(last offset)``; the coordinator answers only once it resolves.

Thread-safe: one lock around the appends.
"""
from __future__ import annotations

import logging
import struct
from concurrent.futures import Future
from typing import NamedTuple

from pylog.broker.strings import get_str, put_str
from pylog.records import encode_batch

__all__ = ["TXN_STATE_TOPIC", "TxnRecord", "PendingOffsets", "TxnStore",
           "encode_txn_key", "encode_txn_value", "encode_offsets_key",
           "encode_offsets_value", "decode_record"]

TXN_STATE_TOPIC = "__transaction_state"
TXN_KEY_VERSION = 0
OFFSETS_KEY_VERSION = 1
VALUE_VERSION = 0
DEFAULT_SEGMENT_BYTES = 1 << 20

_H = struct.Struct(">h")
_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_TXN_HEAD = struct.Struct(">hqhib")        # version, pid, epoch, timeout, state
_TIMES = struct.Struct(">qq")              # last update, start
_OFF_HEAD = struct.Struct(">hqhi")         # version, pid, epoch, n
_OFF_ENTRY = struct.Struct(">iqi")         # partition, offset, leader epoch

log = logging.getLogger("pylog.transactions")


class TxnRecord(NamedTuple):
    """One TransactionLogValue: the whole persisted state of a transactional id."""
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: int
    partitions: tuple              # sorted (topic, partition)
    last_update_ms: int
    start_ms: int


class PendingOffsets(NamedTuple):
    """TxnOffsetCommit entries of one (transactional id, group)."""
    producer_id: int
    producer_epoch: int
    offsets: tuple                 # (topic, partition, offset, leader_epoch, metadata)


# -- codec --------------------------------------------------------------------------------
def _count(buf: bytes, pos: int, item_bytes: int) -> tuple[int, int]:
    """An i32 array length, bounds-checked against what is left (>= 1 byte per item)."""
    (n,) = _I.unpack_from(buf, pos)
    pos += 4
    if n < 0 or n * item_bytes > len(buf) - pos:
        raise ValueError(f"array of {n} at {pos - 4} runs past the record")
    return n, pos


def encode_txn_key(transactional_id: str) -> bytes:
    parts: list = [_H.pack(TXN_KEY_VERSION)]
    put_str(parts, transactional_id)
    return b"".join(parts)


def encode_offsets_key(transactional_id: str, group: str) -> bytes:
    parts: list = [_H.pack(OFFSETS_KEY_VERSION)]
    put_str(parts, transactional_id)
    put_str(parts, group)
    return b"".join(parts)


def encode_txn_value(r: TxnRecord) -> bytes:
    parts: list = [_TXN_HEAD.pack(VALUE_VERSION, r.producer_id, r.producer_epoch,
                                  r.timeout_ms, r.state)]
    by_topic: dict[str, list[int]] = {}
    for topic, partition in r.partitions:
        by_topic.setdefault(topic, []).append(partition)
    parts.append(_I.pack(len(by_topic)))
    for topic, ps in by_topic.items():
        put_str(parts, topic)
        parts.append(_I.pack(len(ps)))
        parts.append(struct.pack(f">{len(ps)}i", *ps))
    parts.append(_TIMES.pack(r.last_update_ms, r.start_ms))
    return b"".join(parts)


def _decode_txn_value(buf: bytes) -> TxnRecord:
    version, pid, epoch, timeout, state = _TXN_HEAD.unpack_from(buf, 0)
    if version != VALUE_VERSION:
        raise ValueError(f"transaction value version {version} is not supported")
    n, pos = _count(buf, _TXN_HEAD.size, 6)
    partitions = []
    for _ in range(n):
        topic, pos = get_str(buf, pos)
        m, pos = _count(buf, pos, 4)
        partitions.extend((topic, p) for p in struct.unpack_from(f">{m}i", buf, pos))
        pos += 4 * m
    last_update, start = _TIMES.unpack_from(buf, pos)
    if pos + _TIMES.size != len(buf):
        raise ValueError(f"{len(buf) - pos - _TIMES.size} bytes after the value")
    return TxnRecord(pid, epoch, timeout, state, tuple(sorted(partitions)), last_update,
                     start)


def encode_offsets_value(p: PendingOffsets) -> bytes:
    parts: list = [_OFF_HEAD.pack(VALUE_VERSION, p.producer_id, p.producer_epoch,
                                  len(p.offsets))]
    for topic, partition, offset, leader_epoch, metadata in p.offsets:
        put_str(parts, topic)
        parts.append(_OFF_ENTRY.pack(partition, offset, leader_epoch))
        put_str(parts, metadata or "")
    return b"".join(parts)


def _decode_offsets_value(buf: bytes) -> PendingOffsets:
    version, pid, epoch, n = _OFF_HEAD.unpack_from(buf, 0)
    if version != VALUE_VERSION:
        raise ValueError(f"pending offsets value version {version} is not supported")
    if n < 0 or n * 20 > len(buf) - _OFF_HEAD.size:
        raise ValueError(f"{n} offsets do not fit the record")
    pos, out = _OFF_HEAD.size, []
    for _ in range(n):
        topic, pos = get_str(buf, pos)
        partition, offset, leader_epoch = _OFF_ENTRY.unpack_from(buf, pos)
        metadata, pos = get_str(buf, pos + _OFF_ENTRY.size)
        out.append((topic, partition, offset, leader_epoch, metadata))
    return PendingOffsets(pid, epoch, tuple(out))


def decode_record(key: bytes | None, value: bytes | None):
    """("txn", id, TxnRecord | None) or ("offsets", (id, group), PendingOffsets | None);
    None for a key version this pylog does not know.  ValueError / struct.error on
    bytes that do not parse."""
    if key is None:
        raise ValueError("record without a key")
    (version,) = _H.unpack_from(key, 0)
    if version == TXN_KEY_VERSION:
        txn_id, _ = get_str(key, 2)
        return "txn", txn_id, None if value is None else _decode_txn_value(value)
    if version == OFFSETS_KEY_VERSION:
        txn_id, pos = get_str(key, 2)
        group, _ = get_str(key, pos)
        return "offsets", (txn_id, group), (None if value is None
                                            else _decode_offsets_value(value))
    return None


# -- the store ----------------------------------------------------------------------------
class TxnStore:
    """Appends and replays ``__transaction_state``."""

    def __init__(self, log_) -> None:
        self._log = log_
        self._partition = None

    def _open_partition(self):
        if not self._log.has_topic(TXN_STATE_TOPIC):
            try:
                self._log.create_topic(TXN_STATE_TOPIC, 1, {
                    "cleanup.policy": "compact", "segment.bytes": DEFAULT_SEGMENT_BYTES,
                    "retention.ms": -1, "retention.bytes": -1})
            except Exception:           # noqa: BLE001 -- created meanwhile by someone else
                if not self._log.has_topic(TXN_STATE_TOPIC):
                    raise
        self._partition = self._log.topic(TXN_STATE_TOPIC).partition(0)
        return self._partition

    def load(self) -> tuple[dict[str, TxnRecord], dict[tuple[str, str], PendingOffsets]]:
        """The latest state of every transactional id and every pending offsets set."""
        p = self._open_partition()
        txns: dict[str, TxnRecord] = {}
        pending: dict[tuple[str, str], PendingOffsets] = {}
        n = 0
        for r in p.iter():
            n += 1
            try:
                decoded = decode_record(r.key, r.value)
            except (ValueError, struct.error, UnicodeDecodeError) as exc:
                log.warning("%s offset %d: undecodable record skipped (%s)",
                            TXN_STATE_TOPIC, r.offset, exc)
                continue
            if decoded is None:
                continue
            kind, key, value = decoded
            target = txns if kind == "txn" else pending
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        log.info("loaded %d transactional ids from %d records of %s", len(txns), n,
                 TXN_STATE_TOPIC)
        return txns, pending

    def write(self, records: list[tuple[bytes, bytes | None]]) -> Future:
        """Append (key, value) records as one batch; the future resolves once they are
        as durable as the topic's flush policy promises.  StorageError propagates
        (nothing was written)."""
        keys = [k for k, _ in records]
        values = [v for _, v in records]
        p = self._partition
        result = p.append_raw(encode_batch(values, keys), wait=False)
        return p.durable_future(result.last_offset)
