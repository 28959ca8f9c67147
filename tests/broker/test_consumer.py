"""Embedded consumers (log.consumer) over a real in-memory Log: reading, committing,
resuming, seeking, the in-process partition split, and waiting for new records."""
from __future__ import annotations

import threading
import time

import pytest

import pylog
from pylog.errors import InvalidGroupIdError, OffsetOutOfRangeError, UnknownTopicError


@pytest.fixture
def log():
    with pylog.open(None) as lg:
        t = lg.create_topic("orders", partitions=4)
        for i in range(40):
            t.append(b"v%d" % i, partition=i % 4)
        yield lg


def values(recs):
    return sorted(r.value for r in recs)


def test_consumer_reads_every_partition_and_resumes_after_its_commit(log):
    with log.consumer("g", ["orders"]) as c:
        first = c.poll(max_records=15)
        assert len(first) == 15
        c.commit()
        assert sum(c.committed("orders", p) or 0 for p in range(4)) == 15
    with log.consumer("g", "orders") as c:
        rest = c.poll(max_records=100)
    assert values(first + rest) == sorted(b"v%d" % i for i in range(40))
    assert len(set((r.partition, r.offset) for r in first + rest)) == 40


def test_two_consumers_split_partitions_and_closing_hands_them_over(log):
    a = log.consumer("split", ["orders"])
    b = log.consumer("split", ["orders"])
    pa, pb = a.assignment(), b.assignment()
    assert sorted(pa + pb) == [("orders", p) for p in range(4)] and pa and pb
    assert not set(pa) & set(pb)
    got_a, got_b = a.poll(max_records=100), b.poll(max_records=100)
    assert {(r.topic, r.partition) for r in got_a} == set(pa)
    assert {(r.topic, r.partition) for r in got_b} == set(pb)
    a.commit()
    a.close()
    assert b.assignment() == [("orders", p) for p in range(4)]
    # a's partitions resume at a's commit: nothing more to read there
    assert b.poll() == []
    b.close()


def test_seek_and_position(log):
    with log.consumer("s", ["orders"]) as c:
        assert c.position("orders", 2) == 0
        c.seek("orders", 2, 7)
        recs = [r for r in c.poll(max_records=100) if r.partition == 2]
        assert [r.offset for r in recs] == [7, 8, 9]
        assert c.position("orders", 2) == 10
        with pytest.raises(UnknownTopicError):
            c.seek("other", 0, 1)
        with pytest.raises(ValueError):
            c.seek("orders", 0, -1)


def test_auto_offset_reset_latest_and_none(log):
    with log.consumer("late", ["orders"], auto_offset_reset="latest") as c:
        assert c.poll() == []
        log.topic("orders").append(b"new", partition=1)
        assert [r.value for r in c.poll()] == [b"new"]
    with pytest.raises(OffsetOutOfRangeError):
        with log.consumer("strict", ["orders"], auto_offset_reset="none") as c:
            c.poll()


def test_poll_waits_for_a_new_record(log):
    with log.consumer("w", ["orders"]) as c:
        c.poll(max_records=1000)
        timer = threading.Timer(0.2, lambda: log.topic("orders").append(b"late", partition=3))
        timer.start()
        started = time.monotonic()
        recs = c.poll(timeout=10)
        assert [r.value for r in recs] == [b"late"]
        assert time.monotonic() - started < 5
        timer.join()


def test_bad_input_is_refused(log):
    with pytest.raises(InvalidGroupIdError):
        log.consumer("", ["orders"])
    with pytest.raises(ValueError):
        log.consumer("g", ["orders"], auto_offset_reset="smallest")
    with log.consumer("g", ["orders"]) as c:
        with pytest.raises(UnknownTopicError):
            c.commit({("nope", 0): 1})


def test_auto_commit_on_close_and_lag(log):
    with log.consumer("auto", ["orders"], auto_commit=True) as c:
        c.poll(max_records=10)
    assert sum(x.committed_offset for x in log.groups.lag("auto")) == 10
    assert sum(x.lag for x in log.groups.lag("auto")) == 30


def test_consumer_of_a_topic_created_later_picks_it_up(log):
    with log.consumer("later", ["fresh"]) as c:
        assert c.poll() == [] and c.assignment() == []
        log.create_topic("fresh", partitions=2).append(b"x", partition=1)
        assert [(r.partition, r.value) for r in c.poll()] == [(1, b"x")]
