"""The transaction index of one segment: ``<baseOffset>.txnindex`` (Kafka's
``TransactionIndex``), and the partition's transaction snapshot ``txn-state.snapshot``.

    .txnindex   34-byte big-endian entries, one per aborted transaction whose ABORT
                marker is in this segment, in marker order (FORMAT.md section 6a.2):

        0  version i16 = 0 | 2 producerId i64 | 10 firstOffset i64
       18  lastOffset i64 (the ABORT marker's offset) | 26 lastStableOffset i64

Search rule: none inside a file; the partition keeps every entry in memory, sorted by
lastOffset (``transactions.TxnState``), and a Fetch asks for the entries with
lastOffset >= fetchOffset and firstOffset < the fetch's end.  Not a cache in the
``.index`` sense: once the cleaner has removed an aborted transaction's data the log
no longer says it was aborted, so the compaction swap carries the file
(storage/swap.py); otherwise it is rebuilt from the log (control records and batch
headers) whenever in doubt.  A file that does not exist is an empty index.

    txn-state.snapshot  the ongoing transactions "as of offset N" and how many
                        entries each segment's index held below N (FORMAT.md 6a.3):

        0  version i16 = 0 | 2 reserved i16 = 0 | 4 crc u32 (CRC-32C of [8, end))
        8  asOfOffset i64 | 16 ongoingCount i32 | ongoing: producerId i64, firstOffset i64
        .. segmentCount i32 | per segment: baseOffset i64, entries i32

Its presence marks a partition that has held a transactional batch (a partition
without one pays nothing at start-up); it is written tmp -> fsync -> rename ->
fsync(dir) before the first transactional batch is appended, at clean close, and
after a start-up that had to scan.

Not thread-safe: ``TxnState`` calls this under the partition lock, or at load.
"""
from __future__ import annotations

import os
import struct
from collections import namedtuple
from pathlib import Path

from pylog.crc import crc32c
from pylog.storage import files

__all__ = ["AbortedTxn", "ENTRY_SIZE", "TXNINDEX_SUFFIX", "SNAPSHOT_FILE", "Snapshot",
           "index_path", "encode", "parse", "read_index", "read_bytes", "write_index", "IndexFile",
           "read_snapshot", "write_snapshot"]

TXNINDEX_SUFFIX = files.TXNINDEX_SUFFIX
SNAPSHOT_FILE = files.TXN_SNAPSHOT_FILE
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size                   # 34, PL_TXN_ENTRY_SIZE
_VERSION = 0
_SNAP_HEAD = struct.Struct(">hhI")
_Q_I = struct.Struct(">qi")
_QQ = struct.Struct(">qq")
assert ENTRY_SIZE == 34

AbortedTxn = namedtuple("AbortedTxn",
                        "producer_id first_offset last_offset last_stable_offset")
Snapshot = namedtuple("Snapshot", "as_of ongoing counts")   # dicts: pid->first, base->n


def index_path(directory, base: int) -> Path:
    return Path(directory) / (files.filename_prefix(base) + TXNINDEX_SUFFIX)


def encode(entries) -> bytes:
    return b"".join(_ENTRY.pack(_VERSION, *e) for e in entries)


def parse(data: bytes, base: int | None = None, end: int | None = None
          ) -> tuple[list[AbortedTxn], str | None]:
    """Entries of a .txnindex's bytes and the first problem (None if intact): a size
    that is not a multiple of 34 (a torn last entry), a version other than 0,
    firstOffset > lastOffset, lastOffsets not increasing, or a lastOffset outside the
    segment's offsets [base, end).  The entries are the valid prefix."""
    out: list[AbortedTxn] = []
    n, torn = divmod(len(data), ENTRY_SIZE)
    prev = None
    for i in range(n):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, i * ENTRY_SIZE)
        where = f"entry {i} (byte {i * ENTRY_SIZE})"
        if version != _VERSION:
            return out, f"{where}: version {version}, not 0"
        if first > last:
            return out, f"{where}: firstOffset {first} > lastOffset {last}"
        if prev is not None and last <= prev:
            return out, f"{where}: lastOffset {last} not after {prev}"
        if (base is not None and last < base) or (end is not None and last >= end):
            return out, f"{where}: lastOffset {last} outside the segment [{base}, {end})"
        prev = last
        out.append(AbortedTxn(pid, first, last, lso))
    if torn:
        return out, f"{len(data)} bytes: not a multiple of {ENTRY_SIZE} (a torn entry)"
    return out, None


def read_index(directory, base: int, end: int | None = None
               ) -> tuple[list[AbortedTxn], str | None]:
    """parse() of the segment's file; ([], None) when it does not exist."""
    try:
        data = index_path(directory, base).read_bytes()
    except FileNotFoundError:
        return [], None
    return parse(data, base, end)


def read_bytes(directory, base: int) -> bytes:
    """The segment's .txnindex bytes (b"" when there is none)."""
    try:
        return index_path(directory, base).read_bytes()
    except FileNotFoundError:
        return b""


def write_index(directory, base: int, entries, *, sync: bool = True) -> None:
    """Replace the segment's .txnindex with ``entries`` (none: remove it)."""
    path = index_path(directory, base)
    if not entries:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(encode(entries))
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class IndexFile:
    """The active segment's .txnindex opened for appends (one write per abort)."""

    __slots__ = ("path", "fd", "dirty")

    def __init__(self, directory, base: int):
        self.path = index_path(directory, base)
        self.fd = -1
        self.dirty = False

    def append(self, entry: AbortedTxn) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND |
                              os.O_CLOEXEC, 0o644)
        os.write(self.fd, _ENTRY.pack(_VERSION, *entry))
        self.dirty = True

    def sync(self) -> None:
        if self.fd >= 0 and self.dirty:
            os.fsync(self.fd)
            self.dirty = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---- the snapshot -----------------------------------------------------------------
def write_snapshot(directory, snap: Snapshot) -> None:
    """tmp -> fsync -> rename -> fsync(dir) (files.atomic_write)."""
    body = bytearray(_Q_I.pack(snap.as_of, len(snap.ongoing)))
    for pid, first in sorted(snap.ongoing.items()):
        body += _QQ.pack(pid, first)
    body += struct.pack(">i", len(snap.counts))
    for base, n in sorted(snap.counts.items()):
        body += _Q_I.pack(base, n)
    data = _SNAP_HEAD.pack(_VERSION, 0, crc32c(bytes(body))) + bytes(body)
    files.atomic_write(Path(directory) / SNAPSHOT_FILE, data)


def read_snapshot(directory) -> tuple[Snapshot | None, str | None]:
    """(snapshot, None), (None, None) when there is none, (None, problem) when it is
    unreadable (a bad CRC, version or length)."""
    try:
        data = (Path(directory) / SNAPSHOT_FILE).read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        version, _, crc = _SNAP_HEAD.unpack_from(data, 0)
        if version != _VERSION:
            return None, f"{SNAPSHOT_FILE}: version {version}, not 0"
        if crc32c(data[8:]) != crc:
            return None, f"{SNAPSHOT_FILE}: CRC-32C mismatch"
        as_of, n = _Q_I.unpack_from(data, 8)
        pos, ongoing = 20, {}
        for _ in range(n):
            pid, first = _QQ.unpack_from(data, pos)
            ongoing[pid] = first
            pos += 16
        (m,), pos = struct.unpack_from(">i", data, pos), pos + 4
        counts = {}
        for _ in range(m):
            base, k = _Q_I.unpack_from(data, pos)
            counts[base] = k
            pos += 12
        if pos != len(data) or n < 0 or m < 0:
            return None, f"{SNAPSHOT_FILE}: {len(data) - pos} bytes after the counts"
    except struct.error as e:
        return None, f"{SNAPSHOT_FILE}: truncated ({e})"
    return Snapshot(as_of, ongoing, counts), None
