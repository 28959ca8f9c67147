"""The embedded queue API (pylog/broker/queues.py): log.queue(group, topic)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import pylog
from pylog.errors import (InvalidRecordStateError, InvalidRequestError, StorageError,
                          UnknownMemberIdError, UnknownTopicError)

WORKER = Path(__file__).with_name("share_worker.py")
ROOT = Path(__file__).resolve().parents[2]
EARLIEST = {"share.auto.offset.reset": "earliest"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def mem():
    log = pylog.open(None)
    yield log
    log.close()


def test_in_memory_queue_receive_ack_release_reject_and_stats(mem):
    t = mem.create_topic("orders", 2)
    for i in range(6):
        t.partition(i % 2).append(b"v%d" % i, key=b"k", headers=[("h", b"1")])
    q = mem.queue("workers", "orders", **EARLIEST)
    msgs = q.receive(max_records=10)
    assert sorted((m.partition, m.offset) for m in msgs) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    m = msgs[0]
    assert m.key == b"k" and m.value.startswith(b"v") and m.delivery_count == 1
    assert list(m.headers) == [("h", b"1")] and m.timestamp > 0
    by = {(m.partition, m.offset): m for m in msgs}
    for k in [(0, 0), (0, 1), (1, 0)]:
        by[k].ack()
    by[(0, 2)].release()
    by[(1, 1)].reject()
    s = q.stats()
    assert s[0]["spso"] == 2 and s[0]["available"] == 1 and s[0]["acquired"] == 0
    assert s[1]["spso"] == 2 and s[1]["acquired"] == 1 and s[1]["archived_total"] == 1
    again = q.receive(max_records=10)
    assert [(m.partition, m.offset, m.delivery_count) for m in again] == [(0, 2, 2)]


def test_latest_is_the_default(mem):
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"old")
    q = mem.queue("workers", "orders")
    assert q.receive() == []
    t.partition(0).append(b"new")
    assert [m.value for m in q.receive()] == [b"new"]


def test_receive_waits_for_a_new_record(mem):
    t = mem.create_topic("orders", 3)
    q = mem.queue("workers", "orders")
    assert q.receive() == []                       # initialises at the (empty) end
    timer = threading.Timer(0.2, lambda: t.partition(2).append(b"late"))
    timer.start()
    msgs = q.receive(wait_ms=10_000)
    assert [(m.partition, m.value) for m in msgs] == [(2, b"late")]
    timer.join()


def test_lock_expiry_redelivers_to_another_member(mem):
    clock = Clock()
    mem.share_groups.clock = clock
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"a")
    q1 = mem.queue("workers", "orders", **EARLIEST)
    q2 = mem.queue("workers", "orders")
    m = q1.receive()[0]
    assert q2.receive() == []
    clock.now += 30_000                            # the default lock duration
    m2 = q2.receive()[0]
    assert (m2.offset, m2.delivery_count) == (0, 2)
    with pytest.raises(InvalidRecordStateError):
        m.ack()
    m2.ack()
    assert q1.stats()[0]["spso"] == 1


def test_renew_keeps_the_lock(mem):
    clock = Clock()
    mem.share_groups.clock = clock
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"a")
    q = mem.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    clock.now += 20_000
    m.renew()
    clock.now += 20_000
    m.ack()


def test_group_configs_set_lock_duration_and_delivery_limit(mem):
    clock = Clock()
    mem.share_groups.clock = clock
    mem.group_configs.alter("workers", {"share.record.lock.duration.ms": "15000"})
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"a")
    q = mem.queue("workers", "orders", **EARLIEST, **{"share.delivery.count.limit": 2})
    assert q.receive()[0].delivery_count == 1
    clock.now += 15_000
    assert q.receive()[0].delivery_count == 2
    clock.now += 15_000
    assert q.receive() == []                       # limit reached: archived
    assert q.stats()[0]["archived_total"] == 1 and q.stats()[0]["spso"] == 1


def test_bad_input_is_refused(mem):
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"a")
    with pytest.raises(UnknownTopicError):
        mem.queue("workers", "nope")
    with pytest.raises(InvalidRequestError):
        mem.queue("workers", "orders", bogus=1)
    q = mem.queue("workers", "orders", **EARLIEST)
    with pytest.raises(InvalidRequestError):
        q.receive(max_records=0)
    sg = mem.share_groups
    with pytest.raises(UnknownMemberIdError) as ei:
        sg.acknowledge("workers", "stranger", "orders", 0, [(0, 0, 1)])
    assert ei.value.errno == 25
    m = q.receive()[0]
    with pytest.raises(InvalidRequestError) as ei:
        sg.acknowledge("workers", q.member_id, "orders", 0, [(0, 0, 1), (0, 0, 1)])
    assert ei.value.errno == 42
    q.close()                                      # leaving releases the record
    with pytest.raises(UnknownMemberIdError):
        m.ack()
    q2 = mem.queue("workers", "orders")
    assert [(m.offset, m.delivery_count) for m in q2.receive()] == [(0, 2)]


def test_three_consumers_ack_each_of_30000_records_exactly_once(tmp_path):
    n = 30_000
    with pylog.open(tmp_path / "data") as log:
        t = log.create_topic("orders", 1)
        t.partition(0).append_batch([b"%d" % i for i in range(n)])
        acked: list[list[int]] = [[], [], []]
        errors = []
        queues = [log.queue("workers", "orders", **EARLIEST) for _ in range(3)]

        def work(k):
            try:
                while sum(map(len, acked)) < n:
                    for m in queues[k].receive(max_records=50, wait_ms=50):
                        m.ack()
                        acked[k].append(m.offset)
            except Exception as e:                 # noqa: BLE001 -- reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=300)
        assert not errors
        every = sorted(o for a in acked for o in a)
        assert every == list(range(n))
        assert all(acked)                          # all three did work
        s = queues[0].stats()[0]
        assert s["spso"] == n and s["acknowledged_total"] == n


def _run_and_kill(data: Path, total: int, rng: random.Random) -> list[str]:
    proc = subprocess.Popen([sys.executable, str(WORKER), str(data), str(total)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: proc.stdout.read1(1 << 16), b"")))
    reader.start()
    deadline = time.time() + 60
    while b"A " not in b"".join(chunks) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.05, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    out = b"".join(chunks).decode()
    assert "A " in out, proc.stderr.read().decode()
    proc.stderr.close()
    lines = out.split("\n")
    lines.pop()                                    # empty, or cut by the kill
    return lines


def test_kill_9_loses_no_ack_and_redelivers_the_rest_with_counts_kept(tmp_path):
    rng = random.Random(12)
    data = tmp_path / "data"
    total = 20_000
    acked: set[tuple[int, int]] = set()
    counts: dict[tuple[int, int], int] = {}        # highest delivery count seen

    def seen(key, count):
        assert key not in acked, f"{key} delivered again after its ack"
        if key in counts:
            assert count > counts[key], f"{key} count {count} after {counts[key]}"
        counts[key] = count

    for _ in range(4):
        for line in _run_and_kill(data, total, rng):
            kind, p, o, *rest = line.split()
            key = (int(p), int(o))
            if kind == "R":
                seen(key, int(rest[0]))
            else:
                acked.add(key)
    with pylog.open(data) as log:
        t = log.topic("orders")
        q = log.queue("workers", "orders")
        while sum(p.log_end_offset for p in t.partitions) < total:
            t.partition(0).append(b"fill")
        while True:
            msgs = q.receive(max_records=500)
            if not msgs:
                break
            for m in msgs:
                seen((m.partition, m.offset), m.delivery_count)
                if counts[(m.partition, m.offset)] > 1:
                    assert m.delivery_count >= 2
                m.ack()
                acked.add((m.partition, m.offset))
        stats = q.stats()
        for i, p in enumerate(t.partitions):
            assert stats[i]["spso"] == p.log_end_offset      # nothing lost
            assert stats[i]["archived_total"] == 0
        assert any(c > 1 for c in counts.values())           # some were redelivered


def test_a_failed_state_write_changes_nothing(mem):
    t = mem.create_topic("orders", 1)
    t.partition(0).append(b"a")
    q = mem.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    store = mem.share_groups.store
    real = store._partition

    class Refusing:                      # the internal topic's partition, fenced
        def append_batch(self, *a, **k):
            raise StorageError("disk full")

    store._partition = Refusing()
    with pytest.raises(StorageError):
        m.ack()
    store._partition = real
    assert q.stats()[0]["acquired"] == 1
    m.ack()
    assert q.stats()[0]["spso"] == 1


def test_ack_all_settles_many_with_one_write_per_partition(mem):
    t = mem.create_topic("bulk", 2)
    for i in range(10):
        t.partition(i % 2).append(b"v%d" % i)
    q = mem.queue("workers", "bulk", **EARLIEST)
    msgs = q.receive(max_records=10)
    assert len(msgs) == 10
    before = mem.share_groups.store._partition.log_end_offset
    q.ack_all(msgs)
    assert mem.share_groups.store._partition.log_end_offset - before == 2   # one per partition
    assert all(s["acknowledged_total"] == 5 for s in q.stats().values())
    with pytest.raises(InvalidRecordStateError):
        q.ack_all(msgs[:1])                    # already settled: all or nothing
    other = mem.queue("workers", "bulk")
    with pytest.raises(InvalidRequestError):
        other.ack_all(msgs[:1])
