"""Embedded contenders: pylog's Python API against a naive file, SQLite (WAL) and LMDB.

Each workload writes `count` records of `size` bytes into a fresh store under `dir` (one file
or directory per run), either one record per call ("single") or `batch` records per call
("batched"), or first writes them untimed and then times reading them all back ("read").
Durability is each store's cheapest non-durable mode unless said otherwise, as DESIGN section 7
asks: pylog flush.ms=1000 (the default), SQLite synchronous=OFF or NORMAL, LMDB sync=False, the
naive file never fsyncs.  Values are `VALUES_DISTINCT` distinct random byte strings reused in turn.
"""
from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

from bench._job import Timer, result
from bench.servers import NotAvailable

VALUES_DISTINCT = 1000
LEN = struct.Struct("<I")


def values_for(size: int, n: int = VALUES_DISTINCT) -> list[bytes]:
    blob = os.urandom(size * n)
    return [blob[i * size:(i + 1) * size] for i in range(n)]


def _batches(values: list[bytes], count: int, batch: int):
    """Yield lists of `batch` values (the last may be shorter) totalling `count`."""
    full = (values * (batch // len(values) + 1))[:batch]
    done = 0
    while done < count:
        n = min(batch, count - done)
        yield full if n == batch else full[:n]
        done += n


# ---- pylog ---------------------------------------------------------------------------------

def _pylog_partition(dir: str, config: dict | None = None):
    try:
        import pylog
        open_ = pylog.open
    except (ImportError, AttributeError) as e:
        raise NotAvailable(f"pylog storage engine not importable: {e}") from e
    log = open_(str(Path(dir) / "pylog"))
    topic = log.create_topic("bench", partitions=1, config=config or {})
    return log, topic.partition(0)


def pylog_append(dir: str, size: int, count: int, config: dict | None = None) -> dict:
    """`PartitionLog.append` once per record."""
    log, p = _pylog_partition(dir, config)
    values = values_for(size)
    nv = len(values)
    append = p.append
    with Timer() as t:
        for i in range(count):
            append(values[i % nv])
    log.close()
    return result(count, size, t)


def pylog_batched(dir: str, size: int, count: int, batch: int = 1000,
                  config: dict | None = None) -> dict:
    """`PartitionLog.append_batch` with `batch` records per call (one RecordBatch each)."""
    log, p = _pylog_partition(dir, config)
    append_batch = p.append_batch
    with Timer() as t:
        for chunk in _batches(values_for(size), count, batch):
            append_batch(chunk)
    log.close()
    return result(count, size, t)


def _pylog_filled(dir: str, size: int, count: int):
    log, p = _pylog_partition(dir)
    for chunk in _batches(values_for(size), count, 1000):
        p.append_batch(chunk)
    return log, p


def pylog_read(dir: str, size: int, count: int) -> dict:
    """`PartitionLog.read` from offset 0 to the end, as Record objects."""
    log, p = _pylog_filled(dir, size, count)
    n = off = 0
    with Timer() as t:
        while n < count:
            recs = p.read(off, max_records=10_000, max_bytes=16 << 20)
            n += len(recs)
            off = recs[-1].offset + 1
    log.close()
    return result(n, size, t)


def pylog_read_columns(dir: str, size: int, count: int) -> dict:
    """`PartitionLog.read_columns` from offset 0 to the end (numpy arrays over the mmap)."""
    import numpy  # noqa: F401 - pylog imports numpy on the first read_columns: not timed
    log, p = _pylog_filled(dir, size, count)
    n = off = 0
    with Timer() as t:
        while n < count:
            cols = p.read_columns(off, max_records=count - n)
            got = _ncols(cols)
            if not got:
                raise NotAvailable(f"read_columns returned nothing at offset {off}")
            n += got
            off = int(cols.offsets[got - 1]) + 1
    log.close()
    return result(n, size, t)


def _ncols(cols) -> int:
    """Rows filled in a read_columns result (arrays may be longer than the count)."""
    count = getattr(cols, "count", None)
    return len(cols.offsets) if count is None else int(count)


def pylog_concurrent(dir: str, size: int, count: int, producers: int = 8, batch: int = 100,
                     config: dict | None = None) -> dict:
    """`producers` threads appending `batch`-record batches (batch=1: single appends) at once.

    With flush.messages=1 every call returns only once its records are behind a barrier, so
    this measures group commit: one fdatasync should serve all threads waiting on it."""
    log, p = _pylog_partition(dir, config)
    values = values_for(size)
    per = count // producers
    start = threading.Barrier(producers + 1)

    def produce():
        start.wait()
        if batch == 1:
            for i in range(per):
                p.append(values[i % len(values)])
        else:
            for chunk in _batches(values, per, batch):
                p.append_batch(chunk)

    threads = [threading.Thread(target=produce) for _ in range(producers)]
    for th in threads:
        th.start()
    with Timer() as t:
        start.wait()
        for th in threads:
            th.join()
    log.close()
    return result(per * producers, size, t)


# ---- naive length-prefixed file ------------------------------------------------------------

def naive_append(dir: str, size: int, count: int) -> dict:
    """A buffered Python file; each record written as a 4-byte length and the value."""
    values = values_for(size)
    nv = len(values)
    pack = LEN.pack
    with Timer() as t:
        with open(Path(dir) / "naive.log", "ab") as f:
            w = f.write
            for i in range(count):
                v = values[i % nv]
                w(pack(len(v)))
                w(v)
    return result(count, size, t)


def naive_batched(dir: str, size: int, count: int, batch: int = 1000) -> dict:
    """The same file, one write of `batch` length-prefixed records per call."""
    pack = LEN.pack
    with Timer() as t:
        with open(Path(dir) / "naive.log", "ab") as f:
            for chunk in _batches(values_for(size), count, batch):
                f.write(b"".join([pack(len(v)) + v for v in chunk]))
    return result(count, size, t)


def naive_read(dir: str, size: int, count: int) -> dict:
    """Read the file back into a list of bytes objects (1 MiB reads, parse the prefixes)."""
    naive_batched(dir, size, count)
    unpack = LEN.unpack_from
    n = 0
    with Timer() as t:
        with open(Path(dir) / "naive.log", "rb") as f:
            tail = b""
            while chunk := f.read(1 << 20):
                buf = tail + chunk
                pos, end, out = 0, len(buf), []
                while pos + 4 <= end:
                    (ln,) = unpack(buf, pos)
                    if pos + 4 + ln > end:
                        break
                    out.append(buf[pos + 4:pos + 4 + ln])
                    pos += 4 + ln
                n += len(out)
                tail = buf[pos:]
    return result(n, size, t)


# ---- SQLite (WAL) --------------------------------------------------------------------------

def _sqlite(dir: str, synchronous: str):
    import sqlite3
    db = sqlite3.connect(Path(dir) / "bench.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS log (offset INTEGER PRIMARY KEY, value BLOB)")
    return db


def sqlite_append(dir: str, size: int, count: int, synchronous: str = "OFF") -> dict:
    """One INSERT per record in autocommit mode (each record its own transaction)."""
    db = _sqlite(dir, synchronous)
    values = values_for(size)
    nv = len(values)
    ex = db.execute
    with Timer() as t:
        for i in range(count):
            ex("INSERT INTO log (value) VALUES (?)", (values[i % nv],))
    db.close()
    return result(count, size, t)


def sqlite_batched(dir: str, size: int, count: int, batch: int = 1000,
                   synchronous: str = "OFF") -> dict:
    """One transaction with an executemany of `batch` rows per batch."""
    db = _sqlite(dir, synchronous)
    with Timer() as t:
        for chunk in _batches(values_for(size), count, batch):
            db.execute("BEGIN")
            db.executemany("INSERT INTO log (value) VALUES (?)", [(v,) for v in chunk])
            db.execute("COMMIT")
    db.close()
    return result(count, size, t)


def sqlite_read(dir: str, size: int, count: int, synchronous: str = "OFF") -> dict:
    """SELECT every row in offset order, fetched 10,000 at a time."""
    sqlite_batched(dir, size, count, synchronous=synchronous)
    db = _sqlite(dir, synchronous)
    n = 0
    with Timer() as t:
        cur = db.execute("SELECT offset, value FROM log ORDER BY offset")
        while rows := cur.fetchmany(10_000):
            n += len(rows)
    db.close()
    return result(n, size, t)


# ---- LMDB ----------------------------------------------------------------------------------

def _lmdb(dir: str, size: int, count: int):
    try:
        import lmdb
    except ImportError as e:
        raise NotAvailable("python module lmdb missing (pip install lmdb)") from e
    return lmdb.open(str(Path(dir) / "lmdb"), map_size=max(1 << 28, count * (size + 64) * 2),
                     sync=False, metasync=False)


KEY = struct.Struct(">Q")


def lmdb_append(dir: str, size: int, count: int) -> dict:
    """One write transaction per record (put with append=True: keys are increasing offsets)."""
    env = _lmdb(dir, size, count)
    values = values_for(size)
    nv = len(values)
    pack = KEY.pack
    with Timer() as t:
        for i in range(count):
            with env.begin(write=True) as txn:
                txn.put(pack(i), values[i % nv], append=True)
    env.close()
    return result(count, size, t)


def lmdb_batched(dir: str, size: int, count: int, batch: int = 1000) -> dict:
    """One write transaction with putmulti(append=True) of `batch` records per batch."""
    env = _lmdb(dir, size, count)
    pack = KEY.pack
    i = 0
    with Timer() as t:
        for chunk in _batches(values_for(size), count, batch):
            with env.begin(write=True) as txn:
                txn.cursor().putmulti([(pack(i + j), v) for j, v in enumerate(chunk)],
                                      append=True)
            i += len(chunk)
    env.close()
    return result(count, size, t)


def lmdb_read(dir: str, size: int, count: int) -> dict:
    """Iterate every (key, value) with a read cursor, values copied out as bytes."""
    lmdb_batched(dir, size, count)
    env = _lmdb(dir, size, count)
    n = 0
    with Timer() as t:
        with env.begin() as txn:
            for _k, _v in txn.cursor():
                n += 1
    env.close()
    return result(n, size, t)
