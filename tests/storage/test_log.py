"""PartitionLog: rolling, retention, log start offset, durability and fencing."""
from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

import pylog
from pylog.errors import OffsetOutOfRangeError, StorageError
from pylog.records import encode_batch
from pylog.storage import files
from pylog.storage.checkpoint import read_offset_checkpoint

SMALL = {"segment.bytes": 4096, "index.interval.bytes": 200}


@pytest.fixture
def log(tmp_path):
    lg = pylog.open(tmp_path)
    yield lg
    if not lg.closed:
        lg.close()


def test_roll_on_segment_bytes_names_segments_by_base_offset(log, tmp_path):
    p = log.create_topic("t", config=SMALL).partition(0)
    for i in range(300):
        p.append(b"x" * 40)
    segs = p.segments
    assert len(segs) > 3
    assert [s.base_offset for s in segs[1:]] == [s.next_offset for s in segs[:-1]]
    assert all(s.size <= 4096 for s in segs)
    names = sorted(os.listdir(tmp_path / "t-0"))
    assert files.filename_prefix(segs[1].base_offset) + ".log" in names
    assert [r.offset for r in p.iter(0)] == list(range(300))


def test_roll_on_segment_ms(log):
    p = log.create_topic("t", config={"segment.ms": 1}).partition(0)
    p.append(b"a")
    time.sleep(0.01)
    p.append(b"b")
    time.sleep(0.01)
    p.append(b"c")
    assert [s.base_offset for s in p.segments] == [0, 1, 2]


def test_explicit_roll_of_an_empty_segment_is_a_no_op(log):
    p = log.create_topic("t").partition(0)
    p.roll()
    p.append(b"a")
    p.roll()
    p.roll()
    assert [s.base_offset for s in p.segments] == [0, 1]


def test_retention_bytes_deletes_oldest_segments_and_advances_log_start(log, tmp_path):
    p = log.create_topic("t", config=dict(SMALL, **{"retention.bytes": 10_000})
                         ).partition(0)
    for i in range(400):
        p.append(b"y" * 40)
    before = len(p.segments)
    deleted = p.enforce_retention()
    assert deleted > 0 and len(p.segments) == before - deleted
    assert p.size_bytes - p.segments[0].size < 10_000
    start = p.log_start_offset
    assert start == p.segments[0].base_offset > 0
    with pytest.raises(OffsetOutOfRangeError):
        p.read(start - 1)
    assert p.read(start, 1)[0].offset == start
    starts, _ = read_offset_checkpoint(tmp_path / files.LOG_START_CHECKPOINT)
    assert starts[("t", 0)] == start
    log.close()
    with pylog.open(tmp_path) as lg:
        assert lg.topic("t").partition(0).log_start_offset == start


def test_retention_ms_rolls_first_when_every_segment_must_go(log):
    p = log.create_topic("t", config={"retention.ms": 1000}).partition(0)
    p.append_batch([b"old"] * 5, timestamps=[1000] * 5)
    assert p.enforce_retention(now_ms=10_000) == 1
    assert (p.log_start_offset, p.log_end_offset) == (5, 5)
    assert p.read(5) == [] and len(p.segments) == 1
    p.append(b"new")
    assert [r.value for r in p.read(5)] == [b"new"]
    assert p.enforce_retention(now_ms=10_000) == 0      # recent timestamps stay


def test_retention_never_deletes_the_empty_active_segment(log):
    p = log.create_topic("t", config={"retention.bytes": 0}).partition(0)
    assert p.enforce_retention() == 0
    p.append(b"a")
    assert p.enforce_retention() == 1 and p.log_start_offset == 1
    assert p.enforce_retention() == 0


def test_log_retention_tick_runs_in_the_flusher(tmp_path):
    with pylog.open(tmp_path, retention_check_interval_ms=50) as lg:
        p = lg.create_topic("t", config={"retention.ms": 1}).partition(0)
        p.append(b"a", timestamp=1)
        deadline = time.time() + 10
        while p.log_start_offset == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert p.log_start_offset == 1


def test_durable_acks_with_8_threads_share_barriers(log):
    p = log.create_topic("d", config={"flush.messages": 1}).partition(0)
    acked: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def producer(k):
        for i in range(100):
            v = b"%d:%d" % (k, i)
            off = p.append(v)
            assert p.recovery_point > off             # acked => behind a barrier
            with lock:
                acked.append((off, v))

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(o for o, _ in acked) == list(range(800))
    stored = {r.offset: r.value for r in p.iter(0)}
    assert all(stored[o] == v for o, v in acked)


def test_durable_future_resolves_after_a_barrier(log):
    p = log.create_topic("d", config={"flush.messages": 1}).partition(0)
    res = p.append_raw(encode_batch([b"a", b"b"]), wait=False)
    fut = p.durable_future(res.last_offset)
    assert fut.result(timeout=30) is None and p.recovery_point >= 2
    assert p.durable_future(0).done()
    q = log.create_topic("n").partition(0)            # default policy: not waited for
    q.append(b"x")
    assert q.durable_future(0).done()


def test_flush_ms_syncs_in_the_background(log):
    p = log.create_topic("f", config={"flush.ms": 10}).partition(0)
    p.append(b"x")
    deadline = time.time() + 10
    while p.recovery_point < 1 and time.time() < deadline:
        time.sleep(0.01)
    assert p.recovery_point == 1


def test_flush_makes_everything_durable(log):
    p = log.create_topic("f", config={"flush.ms": None}).partition(0)
    p.append_batch([b"a", b"b"])
    assert p.recovery_point == 0
    p.flush()
    assert p.recovery_point == 2


def test_failed_barrier_fences_the_partition_and_fails_waiters(log):
    p = log.create_topic("x", config={"flush.messages": 1}).partition(0)
    p.append(b"durable")
    q = log.create_topic("ok", config={"flush.messages": 1}).partition(0)
    real_fd = p._active.c.log.fd
    p._active.c.log.fd = 10_000                        # fdatasync now fails (EBADF)
    try:
        with pytest.raises(StorageError):
            p.append(b"never-acked")
        with pytest.raises(StorageError, match="fenced"):
            p.append(b"refused")
        assert p.fenced and p.durable_future(5).exception() is not None
        assert [r.value for r in p.read(0)][0] == b"durable"   # reads still work
        q.append(b"other partitions unaffected")
    finally:
        p._active.c.log.fd = real_fd
    log.close()
    assert not (log._dir / files.CLEAN_SHUTDOWN_FILE).exists()


def test_iter_batch_headers_from_an_offset(log):
    p = log.create_topic("h", config=SMALL).partition(0)
    for i in range(50):
        p.append_batch([b"z" * 30] * 3)
    heads = list(p.iter_batch_headers())
    assert [h.base_offset for h in heads] == list(range(0, 150, 3))
    assert [h.base_offset for h in p.iter_batch_headers(100)] == list(range(99, 150, 3))
    assert all(h.records_count == 3 and h.producer_id == -1 for h in heads)


def test_append_raw_keeps_client_bytes_and_stamps_offsets(log):
    p = log.create_topic("r").partition(0)
    p.append(b"first")
    batch = encode_batch([b"a", b"b", b"c"], producer_id=7, producer_epoch=1,
                         base_sequence=0, partition_leader_epoch=-1)
    res = p.append_raw(batch + encode_batch([b"d"]))
    assert (res.base_offset, res.last_offset, res.log_start_offset) == (1, 4, 0)
    raw = bytes(p.read_raw(1))
    assert raw[:8] == (1).to_bytes(8, "big") and raw[16:len(batch)] == batch[16:]
    hs = list(p.iter_batch_headers(1))
    assert hs[0].producer_id == 7 and hs[0].base_sequence == 0


def test_index_arrays_are_views_of_the_active_segment(log):
    p = log.create_topic("i", config={"index.interval.bytes": 100}).partition(0)
    for i in range(40):
        p.append(b"v" * 50, timestamp=1000 + i)
    offsets, times = p.index_arrays()
    assert len(offsets) > 5 and len(times) > 5
    assert offsets["position"][0] > 0 and list(times["timestamp"]) == sorted(
        times["timestamp"])
    for rel, pos in zip(offsets["relative_offset"], offsets["position"]):
        raw = bytes(p.read_raw(int(rel), 1))
        assert int.from_bytes(raw[:8], "big") <= rel


def test_readers_see_a_consistent_prefix_while_a_writer_appends(log):
    p = log.create_topic("rw", config=SMALL).partition(0)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set() and i < 3000:
            p.append_batch([b"%d" % (i + j) for j in range(3)])
            i += 3

    th = threading.Thread(target=writer)
    th.start()
    seen = []
    try:
        offset = 0
        while th.is_alive() or offset < p.log_end_offset:
            for r in p.read(offset, max_records=50, max_bytes=700):
                assert r.offset == offset and r.value == b"%d" % offset
                offset += 1
                seen.append(r.offset)
            cols = p.read_columns(max(0, offset - 10), max_records=20)
            assert list(cols.offsets) == list(range(cols.offsets[0], cols.offsets[0] + len(
                cols))) if len(cols) else True
    finally:
        stop.set()
        th.join()
    assert seen == list(range(p.log_end_offset))


def test_log_append_time_topics_stamp_the_broker_clock(log):
    p = log.create_topic("lat", config={"message.timestamp.type": "LogAppendTime"}
                         ).partition(0)
    before = int(time.time() * 1000)
    res = p.append_raw(encode_batch([b"a", b"b"], timestamps=[5, 6]))
    p.append(b"c", timestamp=7)
    p.append_batch([b"d"], timestamps=[8])
    after = int(time.time() * 1000)
    assert before <= res.log_append_time <= after
    stamps = [r.timestamp for r in p.read(0)]
    assert all(before <= t <= after for t in stamps) and len(stamps) == 4
    assert all(h.attributes & 0x08 for h in p.iter_batch_headers())


def test_malformed_records_inside_a_compressed_batch_are_refused_on_append(log):
    from pylog.errors import CorruptRecordError, InvalidRecordError
    from pylog.records import CODEC_GZIP, compress, crc32c
    p = log.create_topic("c").partition(0)
    good = bytearray(encode_batch([b"x" * 20, b"y"], compression=CODEC_GZIP))
    bad = bytearray(good[:61]) + compress(CODEC_GZIP, b"\x10garbage-records")
    bad[8:12] = (len(bad) - 12).to_bytes(4, "big")
    bad[17:21] = crc32c(bytes(bad[21:])).to_bytes(4, "big")   # a valid CRC over junk
    with pytest.raises((InvalidRecordError, CorruptRecordError)):
        p.append_raw(bytes(good) + bytes(bad))                # all or nothing
    assert p.log_end_offset == 0
    p.append_raw(bytes(good))
    assert [r.value for r in p.read(0)] == [b"x" * 20, b"y"]


def test_rolled_segments_are_sealed_by_the_next_barrier(log):
    p = log.create_topic("s", config={"flush.ms": None, "segment.bytes": 4096}).partition(0)
    for i in range(200):
        p.append(b"w" * 40)
    p.flush()
    segs = p.segments
    assert len(segs) > 2 and p.recovery_point == p.log_end_offset
    for s in segs[:-1]:
        assert not s.active and s.log_path.stat().st_size == s.size   # trimmed
        assert s.index_path.stat().st_size % 8 == 0


def test_delete_records_moves_the_log_start_and_drops_whole_segments(log, tmp_path):
    p = log.create_topic("dr", config=SMALL).partition(0)
    for i in range(200):
        p.append(b"d%03d" % i)
    before = len(p.segments)
    assert p.delete_records(150) == 150
    assert len(p.segments) < before and p.segments[0].base_offset <= 150
    with pytest.raises(OffsetOutOfRangeError):
        p.read(149)
    assert [r.offset for r in p.iter()] == list(range(150, 200))
    assert p.delete_records(10) == 150                  # never moves backwards
    with pytest.raises(OffsetOutOfRangeError):
        p.delete_records(201)
    log.close()
    with pylog.open(tmp_path) as lg:
        q = lg.topic("dr").partition(0)
        assert q.log_start_offset == 150 and q.read(150, 1)[0].value == b"d150"


@pytest.fixture(scope="module")
def fuzz_partition():
    lg = pylog.open(None)
    yield lg.create_topic("fuzz", config={"max.message.bytes": 4096}).partition(0)
    lg.close()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_append_raw_of_hostile_bytes_raises_only_our_errors_and_appends_nothing(
        fuzz_partition, data):
    from pylog.errors import PylogError
    from pylog.records import CODEC_GZIP, CODEC_NONE
    p = fuzz_partition
    valid = encode_batch([b"v%d" % i for i in range(data.draw(st.integers(1, 5)))],
                         compression=data.draw(st.sampled_from([CODEC_NONE, CODEC_GZIP])))
    kind = data.draw(st.sampled_from(["random", "flip", "truncate"]))
    if kind == "random":
        buf = data.draw(st.binary(max_size=300))
    elif kind == "flip":
        buf = bytearray(valid)
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        buf = bytes(buf)
    else:
        buf = valid[:data.draw(st.integers(0, len(valid) - 1))]
    leo = p.log_end_offset
    try:
        res = p.append_raw(buf)
    except PylogError:
        assert p.log_end_offset == leo
    else:
        assert res.base_offset == leo and p.log_end_offset == res.last_offset + 1
        p.read(leo)                                   # what was accepted reads back


def test_rolls_barriers_retention_and_readers_race_safely(log):
    cfg = {"segment.bytes": 4096, "flush.messages": 1, "retention.bytes": 20_000}
    p = log.create_topic("race", config=cfg).partition(0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def guard(fn):
        def run():
            try:
                while not stop.is_set():
                    fn()
            except BaseException as e:            # noqa: BLE001 - reported below
                errors.append(e)
        return run

    def write():
        p.append(b"w" * 100)

    def trim():
        p.enforce_retention()

    def read():
        start = p.log_start_offset
        try:
            recs = p.read(start, max_records=50)
        except OffsetOutOfRangeError:
            return                                  # retention moved the start
        offs = [r.offset for r in recs]
        assert offs == list(range(offs[0], offs[0] + len(offs))) if offs else True

    threads = [threading.Thread(target=guard(f)) for f in (write, write, write, trim,
                                                            read, p.flush)]
    for th in threads:
        th.start()
    time.sleep(2.0)
    stop.set()
    for th in threads:
        th.join()
    assert not errors, errors[0]
    assert not p.fenced and p.recovery_point == p.log_end_offset
    assert p.log_start_offset > 0 and p.size_bytes < 20_000 + 2 * 4096
