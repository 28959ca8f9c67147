"""The embedded API of DESIGN section 4, end to end, on disk and in memory."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import pylog
from pylog.errors import (InvalidPartitionsError, InvalidTopicError, LogLockedError,
                          OffsetOutOfRangeError, RecordTooLargeError, TopicExistsError,
                          UnknownTopicError, InvalidConfigError)
from pylog.partitioner import partition_for_key
from pylog.records import CODEC_GZIP, CODEC_LZ4, CODEC_SNAPPY, CODEC_ZSTD, encode_batch


@pytest.fixture(params=["disk", "memory"])
def log(request, tmp_path):
    lg = pylog.open(tmp_path / "data" if request.param == "disk" else None)
    yield lg
    lg.close()


def test_design_example_round_trip(log):
    t = log.create_topic("orders", partitions=3, config={"retention.ms": 86_400_000})
    assert log.topic("orders") is t and log.topics() == ["orders"] and log.has_topic("orders")
    md = t.append(b"value", key=b"k", headers=[("h", b"v")])
    assert md.topic == "orders" and md.partition == partition_for_key(b"k", 3)
    p = t.partition(md.partition)
    off = p.append(b"v", key=None, headers=None, timestamp=None)
    base = p.append_batch([b"a", b"b"], keys=None, headers=None)
    assert (md.offset, off, base) == (0, 1, 2)
    recs = p.read(0, max_records=500, max_bytes=1 << 20)
    assert [(r.offset, r.key, r.value, r.headers) for r in recs] == [
        (0, b"k", b"value", (("h", b"v"),)), (1, None, b"v", ()), (2, None, b"a", ()),
        (3, None, b"b", ())]
    assert recs[0].timestamp == md.timestamp
    assert [r.value for r in p.iter(1)] == [b"v", b"a", b"b"]
    cols = p.read_columns(0, max_records=1_000_000)
    assert cols.offsets.tolist() == [0, 1, 2, 3]
    assert [cols.value(i) for i in range(4)] == [b"value", b"v", b"a", b"b"]
    assert (p.log_start_offset, p.log_end_offset, p.high_watermark) == (0, 4, 4)
    assert p.size_bytes > 0 and p.offset_for_time(0) == 0
    p.flush()
    log.delete_topic("orders")
    assert log.topics() == []


def test_null_values_keys_and_headers_round_trip(log):
    p = log.create_topic("t").partition(0)
    p.append(None, key=b"tomb")
    p.append_batch([b"x", None, b""], keys=[None, b"k", b""],
                   headers=[[("a", None)], [], [("b", b"1"), ("c", b"")]],
                   timestamps=[5, 7, 6])
    recs = p.read(0)
    assert [(r.key, r.value, r.headers) for r in recs] == [
        (b"tomb", None, ()), (None, b"x", (("a", None),)), (b"k", None, ()),
        (b"", b"", (("b", b"1"), ("c", b"")))]
    assert [r.timestamp for r in recs[1:]] == [5, 7, 6]


def test_keys_route_like_kafka_and_null_keys_spread(log):
    t = log.create_topic("keyed", partitions=4)
    for k in (b"alpha", b"beta", b"gamma", b"delta"):
        assert t.append(b"v", key=k).partition == partition_for_key(k, 4)
    spread = {t.append(b"v").partition for _ in range(8)}
    assert len(spread) == 4


def test_compressed_client_batches_decode_on_read(log):
    p = log.create_topic("z").partition(0)
    for codec in (CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD):
        vals = [b"compressed-%d-%d" % (codec, i) for i in range(50)]
        res = p.append_raw(encode_batch(vals, keys=[b"k"] * 50, compression=codec))
        assert res.last_offset - res.base_offset == 49
    recs = p.read(0, max_records=10_000)
    assert len(recs) == 200 and recs[60].value == b"compressed-2-10"
    assert [r.offset for r in recs] == list(range(200))
    cols = p.read_columns(30, max_records=100)
    assert cols.offsets.tolist() == list(range(30, 130))
    assert cols.value(0) == b"compressed-1-30" and cols.key(0) == b"k"
    assert p.read(75, max_records=2)[0].value == b"compressed-2-25"


def test_read_columns_is_a_zero_copy_view_of_the_mapping(log):
    p = log.create_topic("cols").partition(0)
    p.append_batch([b"%06d" % i for i in range(1000)])
    cols = p.read_columns(10, max_records=20)
    assert cols.offsets.tolist() == list(range(10, 30))
    assert not cols.values.flags.owndata and not cols.values.flags.writeable
    starts, lens = cols.value_starts, cols.value_lengths
    assert bytes(cols.values[starts[3]:starts[3] + lens[3]]) == b"000013"
    assert np.all(lens == 6)


def test_read_raw_returns_whole_batches_containing_offset(log):
    p = log.create_topic("raw").partition(0)
    p.append_batch([b"a"] * 10)
    p.append_batch([b"b"] * 10)
    whole = bytes(p.read_raw(0, 1 << 20))
    first = bytes(p.read_raw(5, 1))            # at least one whole batch
    assert whole.startswith(first) and len(first) < len(whole)
    assert bytes(p.read_raw(15, 1)) == whole[len(first):]
    assert p.read_raw(20).nbytes == 0
    with pytest.raises(OffsetOutOfRangeError):
        p.read_raw(21)


def test_offsets_below_start_or_past_end_are_out_of_range(log):
    p = log.create_topic("r").partition(0)
    p.append(b"x")
    assert p.read(1) == []
    for bad in (-1, 2, 10**12):
        with pytest.raises(OffsetOutOfRangeError):
            p.read(bad)
    with pytest.raises(UnknownTopicError):
        log.topic("r").partition(1)
    with pytest.raises(UnknownTopicError):
        log.topic("nope")


@pytest.mark.parametrize("name", ["../x", "a/b", "x" * 250, "", ".", "..", "a b", "é",
                                  "a\x00b", "a\\b"])
def test_invalid_topic_names_are_refused_before_any_path(log, tmp_path, name):
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InvalidTopicError) as err:
        log.create_topic(name)
    if name:
        assert repr(name[:40])[1:-1] in str(err.value) or name in ("", ".", "..")
    assert sorted(os.listdir(tmp_path)) == before and log.topics() == []


def test_topic_argument_errors(log):
    log.create_topic("a.b")
    with pytest.raises(TopicExistsError):
        log.create_topic("a.b")
    with pytest.raises(InvalidTopicError):
        log.create_topic("a_b")                 # collides with a.b, as in Kafka
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidPartitionsError):
            log.create_topic("p", partitions=bad)
    with pytest.raises(InvalidConfigError):
        log.create_topic("c", config={"retention.ms": "soon"})
    assert log.topics() == ["a.b"]
    assert log.create_topic("x" * 249).name == "x" * 249
    assert log.create_topic("__consumer_offsets").name == "__consumer_offsets"


def test_oversized_records_are_refused_and_nothing_is_lost(log):
    p = log.create_topic("big", config={"max.message.bytes": 2000}).partition(0)
    p.append(b"ok")
    with pytest.raises(RecordTooLargeError):
        p.append(b"x" * 5000)
    with pytest.raises(RecordTooLargeError):
        p.append_raw(encode_batch([b"y" * 5000]))
    p.append(b"ok2")
    assert [r.value for r in p.read(0)] == [b"ok", b"ok2"]


def test_listeners_are_called_after_each_append(log):
    p = log.create_topic("l").partition(0)
    calls = []
    fn = lambda: calls.append(p.log_end_offset)   # noqa: E731
    p.add_listener(fn)
    p.append(b"a")
    p.append_batch([b"b", b"c"])
    p.append_raw(encode_batch([b"d"]))
    p.remove_listener(fn)
    p.append(b"e")
    assert calls == [1, 3, 4]


def test_offset_for_time_matches_a_brute_force_scan(log):
    p = log.create_topic("ts", config={"index.interval.bytes": 100}).partition(0)
    stamps = [1000, 1000, 990, 1500, 1200, 2000, 2000, 1999, 3000]
    for i, ts in enumerate(stamps):
        p.append(b"v%d" % i, timestamp=ts)
    p.append_batch([b"b1", b"b2", b"b3"], timestamps=[2500, 4000, 3500])
    recs = p.read(0)
    for target in (0, 990, 1000, 1001, 1500, 1999, 2000, 2001, 3001, 3500, 4000, 4001):
        expect = next((r.offset for r in recs if r.timestamp >= target), None)
        assert p.offset_for_time(target) == expect, target


def test_in_memory_log_lives_in_shm_and_is_removed_on_close():
    log = pylog.open(None)
    where = log._dir
    assert log.data_dir is None and where.exists()
    t = log.create_topic("m", config={"flush.messages": 1})
    t.append(b"x")                                # no barrier: flushing disabled
    log.close()
    assert not where.exists()


def test_log_is_a_context_manager_and_reopens_with_its_data(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t", partitions=2).partition(1).append_batch([b"a", b"b"])
    with pylog.open(tmp_path) as log:
        assert log.topic("t").num_partitions == 2
        assert [r.value for r in log.topic("t").partition(1).read(0)] == [b"a", b"b"]
        assert {r.mode for r in log.recovery_reports} == {"clean"}


def test_second_open_of_a_locked_directory_names_the_pid(tmp_path):
    with pylog.open(tmp_path):
        with pytest.raises(LogLockedError, match=f"pid {os.getpid()}"):
            pylog.open(tmp_path)
        code = ("import pylog, sys\n"
                "try:\n    pylog.open(sys.argv[1])\n"
                "except pylog.LogLockedError as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], text=True,
                             capture_output=True, timeout=60,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
        assert f"pid {os.getpid()}" in out.stdout, out.stderr
    pylog.open(tmp_path).close()                   # released on close


def test_concurrent_appends_from_threads_get_distinct_offsets(log):
    p = log.create_topic("mt").partition(0)
    got = []

    def worker(k):
        mine = [p.append(b"%d-%d" % (k, i)) for i in range(300)]
        got.append(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    offsets = sorted(o for m in got for o in m)
    assert offsets == list(range(1200))
    assert all(m == sorted(m) for m in got)
    values = {r.offset: r.value for r in p.iter(0)}
    assert len(values) == 1200
    for mine in got:
        k = values[mine[0]].split(b"-")[0]
        assert [values[o] for o in mine] == [b"%s-%d" % (k, i) for i in range(300)]


def test_timestamps_default_to_now(log):
    p = log.create_topic("now").partition(0)
    before = int(time.time() * 1000)
    p.append(b"x")
    after = int(time.time() * 1000)
    assert before <= p.read(0)[0].timestamp <= after
