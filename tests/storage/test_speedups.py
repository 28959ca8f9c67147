"""pylog._speedups: the partition Lock, append()'s C fast path, and Records built in C.

The fast path appends with the GIL held and only while the partition lock is free;
these tests race it against every locked path (append_batch, rolls, barriers, config
changes, listeners, close) on real files and check that nothing is lost, duplicated
or written after close, and that it steps aside whenever the Python path must run.
"""
from __future__ import annotations

import gc
import threading
import time

import pytest

import pylog
from pylog import _speedups
from pylog.errors import CorruptRecordError, StorageError
from pylog.records import Record
from pylog.storage.reader import _Cols


# ---- Lock ---------------------------------------------------------------------------
def test_lock_behaves_like_threading_lock():
    lk = _speedups.Lock()
    assert not lk.locked()
    assert lk.acquire() is True and lk.locked()
    assert lk.acquire(False) is False
    assert lk.acquire(timeout=0.01) is False
    lk.release()
    with lk:
        assert lk.locked()
    assert not lk.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lk.release()
    with pytest.raises(ValueError):
        lk.acquire(False, 1.0)
    with pytest.raises(ValueError):
        lk.acquire(timeout=-5)
    with pytest.raises(TypeError):
        _speedups.Lock(1)


def test_lock_blocks_until_another_thread_releases():
    lk = _speedups.Lock()
    lk.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lk.acquire(timeout=5)))
    t.start()
    time.sleep(0.05)
    assert got == []
    lk.release()                    # a lock, not an RLock: any thread may release
    t.join()
    assert got == [True] and lk.locked()


def test_lock_guards_a_counter_across_threads():
    lk, box = _speedups.Lock(), [0]

    def bump():
        for _ in range(20_000):
            with lk:
                v = box[0]
                box[0] = v + 1
    ts = [threading.Thread(target=bump) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert box[0] == 80_000


# ---- the append fast path ----------------------------------------------------------
@pytest.fixture
def disk_log(tmp_path):
    lg = pylog.open(tmp_path / "data")
    yield lg
    lg.close()


def test_fast_path_steps_aside_for_policy_listeners_and_close(disk_log):
    p = disk_log.create_topic("t").partition(0)
    assert p.append(b"first") == 0          # not dirty yet: the Python path, then on
    assert p._appender.enabled
    calls = []
    p.add_listener(lambda: calls.append(1))
    assert not p._appender.enabled
    p.append(b"x")
    assert calls == [1]
    p.remove_listener(p._listeners[0])
    assert p._appender.enabled
    p.flush()                                # a barrier: clean again, Python path next
    assert not p._appender.enabled
    p.append(b"y")
    assert p._appender.enabled
    disk_log.alter_topic_config("t", {"flush.messages": "1"})
    assert not p._appender.enabled
    assert p.append(b"durable") == 3 and p.recovery_point == 4
    p.close()
    assert not p._appender.enabled
    with pytest.raises(StorageError, match="closed"):
        p.append(b"after close")


def test_fast_path_takes_buffers_and_refuses_text(disk_log):
    p = disk_log.create_topic("t").partition(0)
    p.append(b"warm")
    assert p._fast_append(bytearray(b"v")) is None       # not bytes: Python decides
    assert p._fast_append(b"v", memoryview(b"k")) is None
    assert p.append(bytearray(b"v"), key=memoryview(b"k")) == 1
    with pytest.raises(TypeError):
        p.append("text")
    assert p._fast_append(b"v", None) == 2
    assert [(r.key, r.value) for r in p.read(1)] == [(b"k", b"v"), (None, b"v")]


def test_fast_path_refuses_while_the_partition_lock_is_held(disk_log):
    p = disk_log.create_topic("t").partition(0)
    p.append(b"warm")
    with p._lock:
        assert p._fast_append(b"v") is None
        assert p.log_end_offset == 1
    assert p._fast_append(b"v") == 1


def test_fast_path_rolls_through_python_when_segment_ms_passes(disk_log):
    p = disk_log.create_topic("t", config={"segment.ms": 200}).partition(0)
    p.append(b"a")
    p.append(b"b")
    time.sleep(0.3)
    p.append(b"c")                           # PL_EROLL from C: Python rolls, appends
    assert len(p.segments) >= 2 and p.segments[-1].base_offset == 2
    assert [r.value for r in p.read(0)] == [b"a", b"b", b"c"]


def test_concurrent_fast_slow_batch_appends_rolls_and_barriers_lose_nothing(disk_log):
    # Small segments: rolls (PL_EFULL) happen under the fast path's feet all the time.
    p = disk_log.create_topic("t", config={"segment.bytes": 64 * 1024}).partition(0)
    n_threads, per = 4, 3000
    errors = []

    def single(tid):
        try:
            for i in range(per):
                p.append(b"s%d-%d" % (tid, i), key=b"k" if i % 7 == 0 else None)
        except BaseException as e:            # noqa: BLE001 - reported below
            errors.append(e)

    def batches():
        try:
            for i in range(100):
                p.append_batch([b"b%d-%d" % (i, j) for j in range(20)])
        except BaseException as e:            # noqa: BLE001
            errors.append(e)

    stop = threading.Event()

    def churn():                              # barriers (fast path off/on) and rolls
        try:
            while not stop.is_set():
                p.flush()
                p.roll()
                p.append(b"h", headers=[("via", b"python")])
                time.sleep(0.001)
        except BaseException as e:            # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=single, args=(i,)) for i in range(n_threads)]
    ts += [threading.Thread(target=batches)]
    ch = threading.Thread(target=churn)
    ch.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    ch.join()
    assert errors == []
    recs = list(p.iter(0))
    assert [r.offset for r in recs] == list(range(p.log_end_offset))
    values = [r.value for r in recs]
    want = {b"s%d-%d" % (t, i) for t in range(n_threads) for i in range(per)}
    want |= {b"b%d-%d" % (i, j) for i in range(100) for j in range(20)}
    got = [v for v in values if v != b"h"]
    assert len(got) == len(want) and set(got) == want
    for t in range(n_threads):               # each thread's records in its order
        mine = [v for v in got if v.startswith(b"s%d-" % t)]
        assert mine == [b"s%d-%d" % (t, i) for i in range(per)]
    assert len(p.segments) > 3
    disk_log.close()
    again = pylog.open(disk_log.data_dir)
    try:
        q = again.topic("t").partition(0)
        assert [r.value for r in q.iter(0)] == values
    finally:
        again.close()


def test_close_while_appending_never_writes_after_close(tmp_path):
    lg = pylog.open(tmp_path / "data")
    p = lg.create_topic("t").partition(0)
    p.append(b"warm")
    done = []

    def spin():
        n = 0
        try:
            while True:
                p.append(b"v")
                n += 1
        except StorageError:
            done.append(n)

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    lg.close()
    t.join(5)
    assert done and not t.is_alive()
    again = pylog.open(tmp_path / "data")
    try:
        assert again.topic("t").partition(0).log_end_offset == done[0] + 1
    finally:
        again.close()


# ---- Records built in C ------------------------------------------------------------
def test_records_are_immutable_and_untracked_by_the_gc(disk_log):
    p = disk_log.create_topic("t").partition(0)
    p.append_batch([b"a", b"b"], headers=[[("h", b"1"), ("x", None)], None])
    recs = p.read(0)
    assert recs == [Record(0, recs[0].timestamp, None, b"a", (("h", b"1"), ("x", None))),
                    Record(1, recs[1].timestamp, None, b"b", ())]
    assert all(type(r) is Record and not gc.is_tracked(r) for r in recs)
    assert not gc.is_tracked(recs[0].headers)


def test_records_refuses_positions_outside_the_source():
    cols = _Cols(1)
    for name, v in (("offsets", 0), ("timestamps", 0), ("key_pos", 0), ("key_lens", -1),
                    ("value_pos", 8), ("value_lens", 4), ("headers_pos", 0),
                    ("header_counts", 0)):
        getattr(cols, name)[0] = v
    cols.c.count = 1
    with pytest.raises(CorruptRecordError, match="runs past"):
        _speedups.records(Record, b"0123456789", cols.addr, 0, 1, CorruptRecordError)
    cols.value_pos[0] = 6
    assert _speedups.records(Record, b"0123456789", cols.addr, 0, 1,
                             CorruptRecordError)[0].value == b"6789"
    cols.header_counts[0], cols.headers_pos[0] = 1, 9      # a key varint past the end
    with pytest.raises(CorruptRecordError, match="headers"):
        _speedups.records(Record, b"0123456789", cols.addr, 0, 1, CorruptRecordError)
    with pytest.raises(ValueError):
        _speedups.records(Record, b"", cols.addr, 0, 2, CorruptRecordError)


def test_join_lengths():
    blob, lens = _speedups.join_lengths([b"ab", None, b"", b"c"])
    assert blob == b"abc"
    assert memoryview(lens).cast("i").tolist() == [2, -1, 0, 1]
    assert _speedups.join_lengths([b"a", bytearray(b"b")]) is None
    assert _speedups.join_lengths(()) == (b"", b"")
    with pytest.raises(TypeError):
        _speedups.join_lengths(5)


def test_value_spans_point_into_the_items_it_keeps():
    import ctypes
    vals = [b"abc", None, b"", b"xyz" * 10]
    keep, ptrs, lens = _speedups.value_spans(vals)
    assert keep == tuple(vals) and all(a is b for a, b in zip(keep, vals))
    assert memoryview(lens).cast("i").tolist() == [3, -1, 0, 30]
    addrs = memoryview(ptrs).cast("N" if ctypes.sizeof(ctypes.c_void_p) == 8 else "I")
    assert addrs[1] == 0
    assert ctypes.string_at(addrs[0], 3) == b"abc"
    assert ctypes.string_at(addrs[3], 30) == b"xyz" * 10
    assert _speedups.value_spans([b"a", memoryview(b"b")]) is None
    assert _speedups.value_spans(iter([b"g"]))[0] == (b"g",)
    with pytest.raises(TypeError):
        _speedups.value_spans(5)


# ---- big appends go through pwrite (PL_WRITE_MIN), small ones through the mapping --
def test_big_and_small_appends_interleave_byte_exact(disk_log):
    from pylog._ffi import RecordsIn, build_batch
    from pylog.records import encode_batch
    p = disk_log.create_topic("t").partition(0)
    big = [bytes([i % 251]) * 100 for i in range(1000)]       # ~110 KB: pwrite
    client = encode_batch([b"c%d" % i * 50 for i in range(400)], timestamps=123)
    assert len(client) > 16 << 10
    p.append(b"small-1")
    base = p.append_batch(big, timestamps=[7] * 1000)
    p.append_batch([b"small-2"], timestamps=[8])
    res = p.append_raw(client)
    p.append(b"small-3")
    assert (base, res.base_offset) == (1, 1002)
    raw = bytes(p.read_raw(0, 1 << 24))
    want_big = build_batch(RecordsIn(big, timestamps=[7] * 1000), base_offset=1)
    assert want_big in raw
    values = [r.value for r in p.iter(0)]
    assert values == [b"small-1", *big, b"small-2", *[b"c%d" % i * 50 for i in range(400)],
                      b"small-3"]
    disk_log.close()
    again = pylog.open(disk_log.data_dir)        # and the same after a reopen
    try:
        assert [r.value for r in again.topic("t").partition(0).iter(0)] == values
    finally:
        again.close()


# ---- read_columns reuses the memory of Columns the caller dropped, never of held ones
def test_read_columns_never_reuses_memory_still_referenced(disk_log):
    import numpy as np
    p = disk_log.create_topic("t").partition(0)
    for b in range(20):
        p.append_batch([b"%d-%d" % (b, i) for i in range(500)])
    first = p.read_columns(0, 5000)
    kept_offsets = first.offsets                 # one array keeps the block alive
    want = kept_offsets.copy()
    del first
    others = [p.read_columns(start, 5000) for start in (100, 2000, 4000, 7000)]
    assert np.array_equal(kept_offsets, want)
    assert [int(c.offsets[0]) for c in others] == [100, 2000, 4000, 7000]
    assert not any(np.shares_memory(kept_offsets, c.offsets) for c in others)
    snap = [c.offsets.copy() for c in others]
    del kept_offsets
    again = [p.read_columns(start, 5000) for start in (50, 60)]
    assert all(np.array_equal(c.offsets, s) for c, s in zip(others, snap))
    assert [int(c.offsets[0]) for c in again] == [50, 60]
    assert [c.value(0) for c in again] == [b"0-50", b"0-60"]
    dropped = p.read_columns(0, 100)
    addr = dropped.offsets.__array_interface__["data"][0]
    del dropped
    reused = p.read_columns(10, 100)             # the dropped block comes back, warm
    assert reused.offsets.__array_interface__["data"][0] == addr
    assert reused.offsets.tolist() == list(range(10, 110))


def test_big_values_are_written_from_the_callers_buffers(disk_log):
    # >= PL_VEC_MIN_VALUE on average and >= PL_WRITE_MIN in all: pwritev straight from
    # the bytes objects; mixed with nulls, empties, keys and headers.
    from pylog._ffi import RecordsIn, build_batch
    p = disk_log.create_topic("t").partition(0)
    vals = [bytes([i]) * (700 + 13 * i) if i % 5 else (None if i % 2 else b"")
            for i in range(60)]
    keys = [b"k%d" % i if i % 3 else None for i in range(60)]
    hdrs = [[("h", b"%d" % i)] if i % 4 == 0 else None for i in range(60)]
    base = p.append_batch(vals, keys=keys, headers=hdrs, timestamps=[1000 + i for i in range(60)])
    raw = bytes(p.read_raw(base, 1 << 24))
    assert raw == build_batch(RecordsIn(vals, keys, [h or [] for h in hdrs],
                                        [1000 + i for i in range(60)]), base_offset=base)
    got = p.read(base, max_records=100)
    assert [(r.key, r.value, r.headers) for r in got] == [
        (k, v, tuple(h or ())) for k, v, h in zip(keys, vals, hdrs)]
