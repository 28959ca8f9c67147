"""pylog's queue features beyond Kafka, through the embedded API (log.queue): dead
letters, redelivery backoff, delayed delivery, TTL, priority; clocks injected."""
from __future__ import annotations

import pytest

import pylog
from pylog.broker.dead_letters import DLQ_HEADERS, parse_dlq_headers
from pylog.errors import (InvalidConfigError, InvalidRecordStateError, InvalidRequestError,
                          PylogError, StorageError)

TS = 1_700_000_000_000
EARLIEST = {"share.auto.offset.reset": "earliest"}


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def env():
    log = pylog.open(None)
    clock, wall = Clock(1_000), Clock(TS)
    log.share_groups.clock = clock
    log.share_groups.wall_clock = wall
    yield log, clock, wall
    log.close()


def dead_letters(log, topic="orders.dlq"):
    if not log.has_topic(topic):
        return []
    return [r for p in log.topic(topic).partitions for r in p.read(0, 1000)]


# -- dead letters -------------------------------------------------------------------------
def test_delivery_limit_produces_the_record_to_the_dlq_with_its_origin(env):
    log, clock, wall = env
    log.group_configs.alter("workers", {"share.delivery.count.limit": "2"})
    t = log.create_topic("orders", 2)
    t.partition(1).append(b"pay", key=b"k1", headers=[("trace", b"t-1")],
                          timestamp=TS - 5)
    q = log.queue("workers", "orders", **EARLIEST)
    q.receive()[0].release()
    m = q.receive()[0]
    assert m.delivery_count == 2
    clock.now += 30_000                            # lock expiry at the limit
    assert q.receive() == []
    dlq = log.topic("orders.dlq")
    assert len(dlq.partitions) == 2                # the origin's partition count
    [r] = dead_letters(log)
    assert r.value == b"pay" and r.key == b"k1" and r.timestamp == TS - 5
    assert list(r.headers)[0] == ("trace", b"t-1")
    assert [k for k, _ in r.headers][1:] == [*DLQ_HEADERS, "pylog-msg-id"]
    assert dict(r.headers)["pylog-msg-id"] == b"dlq/workers/orders/1/0"   # origin's id
    o = parse_dlq_headers(r.headers)
    assert (o.group, o.topic, o.partition, o.offset, o.delivery_count, o.reason,
            o.time_ms) == ("workers", "orders", 1, 0, 2, "delivery-limit", TS)
    assert dlq.partition(1).log_end_offset == 1    # origin partition 1 -> 1
    s = q.stats()[1]
    assert s["dead_lettered_total"] == 1 and s["archived_total"] == 1 and s["spso"] == 1


def test_reject_goes_to_the_configured_topic_or_is_only_archived_when_off(env):
    log, _, _ = env
    t = log.create_topic("orders", 1)
    t.partition(0).append_batch([b"a", b"b"])
    log.group_configs.alter("g1", {"errors.deadletterqueue.topic.name": "dead"})
    q = log.queue("g1", "orders", **EARLIEST)
    for m in q.receive():
        m.reject()
    assert [parse_dlq_headers(r.headers).reason for r in dead_letters(log, "dead")] \
        == ["rejected", "rejected"]
    assert not log.has_topic("orders.dlq")
    q2 = log.queue("g2", "orders", **EARLIEST, **{"errors.deadletterqueue.enable": False})
    for m in q2.receive():
        m.reject()
    assert q2.stats()[0]["archived_total"] == 2 and q2.stats()[0]["spso"] == 2
    assert q2.stats()[0]["dead_lettered_total"] == 0
    assert not log.has_topic("orders.dlq") and len(dead_letters(log, "dead")) == 2


def test_a_failed_dead_letter_write_leaves_the_record_unarchived(env):
    log, _, _ = env
    t = log.create_topic("orders", 1)
    t.partition(0).append(b"x" * 500)
    log.create_topic("orders.dlq", 1, {"max.message.bytes": 100})
    q = log.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    with pytest.raises(PylogError):
        m.reject()                                 # the dead letter is too large
    s = q.stats()[0]
    assert s["acquired"] == 1 and s["archived_total"] == 0 and s["spso"] == 0
    assert dead_letters(log) == []
    log.alter_topic_config("orders.dlq", {"max.message.bytes": 1 << 20})
    log.topic("orders.dlq").partition(0).roll()
    m.reject()
    assert len(dead_letters(log)) == 1 and q.stats()[0]["spso"] == 1


# -- redelivery backoff -------------------------------------------------------------------
def test_released_and_expired_records_wait_an_exponential_backoff(env):
    log, clock, _ = env
    log.group_configs.alter("workers", {
        "share.redelivery.backoff.ms": "1000", "share.redelivery.backoff.max.ms": "3000",
        "share.redelivery.backoff.jitter": "0"})
    t = log.create_topic("orders", 1)
    t.partition(0).append_batch([b"a", b"b"])
    q = log.queue("workers", "orders", **EARLIEST)
    a, b = q.receive()
    a.release()                                    # after delivery 1: 1000 ms
    clock.now += 999
    assert q.stats()[0]["delayed"] == 1
    assert q.receive() == []
    clock.now += 1
    a = q.receive()[0]
    assert (a.offset, a.delivery_count) == (0, 2)
    a.release()                                    # after delivery 2: 2000 ms
    clock.now += 1999
    assert q.receive() == []
    clock.now += 1
    a = q.receive()[0]
    assert a.delivery_count == 3
    deadline = clock.now + 30_000                  # b's lock expired too by then
    clock.now = deadline + 2999                    # after delivery 3: 4000, capped 3000
    assert [m.offset for m in q.receive()] == [1]  # b: one delivery, 1000 ms
    clock.now = deadline + 3000
    a = q.receive()[0]
    assert (a.offset, a.delivery_count) == (0, 4)
    a.release(delay_ms=50)                         # the caller's delay wins
    clock.now += 50
    assert q.receive()[0].delivery_count == 5


def test_default_backoff_is_kafkas_immediate_redelivery(env):
    log, _, _ = env
    log.create_topic("orders", 1).partition(0).append(b"a")
    q = log.queue("workers", "orders", **EARLIEST)
    q.receive()[0].release()
    assert q.receive()[0].delivery_count == 2


# -- delay --------------------------------------------------------------------------------
def test_a_delayed_record_waits_and_does_not_block_those_behind_it(env):
    log, _, wall = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"later", headers=[("pylog-delay-ms", b"5000")], timestamp=TS)
    p.append(b"at", headers=[("pylog-deliver-at", b"%d" % (TS + 2000))], timestamp=TS)
    p.append(b"now", timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST)
    got = q.receive()
    assert [m.value for m in got] == [b"now"]
    got[0].ack()
    assert q.stats()[0]["delayed"] == 2
    wall.now += 2000
    assert [m.value for m in q.receive()] == [b"at"]
    wall.now += 2999
    assert q.receive() == []
    wall.now += 1
    assert [m.value for m in q.receive()] == [b"later"]


def test_a_delayed_record_at_the_start_holds_the_window(env):
    log, _, wall = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"d", headers=[("pylog-delay-ms", b"60000")], timestamp=TS)
    p.append_batch([b"%d" % i for i in range(10)], timestamps=[TS] * 10)
    q = log.queue("workers", "orders", **EARLIEST,
                  **{"group.share.partition.max.record.locks": 4})
    got = q.receive()
    assert [m.offset for m in got] == [1, 2, 3]    # the window is 4 records wide
    for m in got:
        m.ack()
    assert q.receive() == [] and q.stats()[0]["spso"] == 0
    wall.now += 60_000
    assert [m.offset for m in q.receive()] == [0]


# -- TTL ----------------------------------------------------------------------------------
def test_an_expired_record_is_never_delivered_and_is_archived(env):
    log, _, wall = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"short", headers=[("pylog-ttl-ms", b"1000")], timestamp=TS)
    p.append(b"plain", timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST)
    wall.now += 1000
    assert [m.value for m in q.receive()] == [b"plain"]
    s = q.stats()[0]
    assert s["ttl_expired_total"] == 1 and s["archived_total"] == 1
    assert not log.has_topic("orders.dlq")


def test_topic_ttl_and_expired_action_dlq(env):
    log, _, wall = env
    p = log.create_topic("orders", 1, {"message.ttl.ms": 500}).partition(0)
    p.append(b"old", timestamp=TS - 500)
    p.append(b"keep", headers=[("pylog-ttl-ms", b"-1")], timestamp=TS - 500)
    p.append(b"young", timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST, **{"share.expired.action": "dlq"})
    assert [m.value for m in q.receive()] == [b"keep", b"young"]
    [r] = dead_letters(log)
    o = parse_dlq_headers(r.headers)
    assert r.value == b"old" and (o.offset, o.delivery_count, o.reason) == (0, 0, "expired")


def test_a_record_whose_ttl_passes_while_held_is_not_redelivered(env):
    log, _, wall = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"x", headers=[("pylog-ttl-ms", b"1000")], timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    wall.now += 5000
    m.release()
    assert q.receive() == [] and q.stats()[0]["ttl_expired_total"] == 1


# -- priority -----------------------------------------------------------------------------
def _prio_topic(log, prios):
    p = log.create_topic("orders", 1).partition(0)
    for i, pr in enumerate(prios):
        hs = [] if pr is None else [("pylog-priority", b"%d" % pr)]
        p.append(b"%d" % i, headers=hs, timestamp=TS)


def test_higher_priority_first_fifo_within_a_priority(env):
    log, _, _ = env
    _prio_topic(log, [1, 5, 9, None, 9, 5, 0])
    q = log.queue("workers", "orders", **EARLIEST)
    order = []
    while msgs := q.receive(max_records=1):
        order.append(msgs[0].offset)
        msgs[0].ack()
    assert order == [2, 4, 1, 5, 3, 0, 6]
    log2 = pylog.open(None)
    _prio_topic(log2, [1, 5, 9, None, 9, 5, 0])
    q2 = log2.queue("w", "orders", **EARLIEST)
    assert [m.offset for m in q2.receive(max_records=10)] == [2, 4, 1, 5, 3, 0, 6]
    log2.close()


def test_priority_applies_within_the_window_only(env):
    log, _, _ = env
    _prio_topic(log, [0, 0, 0, 9])
    q = log.queue("workers", "orders", **EARLIEST, **{"share.priority.window.records": 2})
    order = []
    while msgs := q.receive(max_records=1):
        order.append(msgs[0].offset)
        msgs[0].ack()
    assert order == [0, 1, 3, 2]                   # the 9 waited until [spso, spso+2) held it


def test_a_bad_hint_header_is_ignored_and_counted(env):
    log, _, _ = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"a", headers=[("pylog-priority", b"urgent")])
    p.append(b"b", headers=[("pylog-delay-ms", b"-3")])
    q = log.queue("workers", "orders", **EARLIEST)
    assert [m.value for m in q.receive()] == [b"a", b"b"]
    assert q.stats()[0]["bad_hints_total"] == 2


def test_stats_report_oldest_available_age(env):
    log, _, wall = env
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"a", timestamp=TS - 1500)
    p.append(b"b", timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST)
    assert q.receive(max_records=1)[0].offset == 0
    s = q.stats()[0]
    assert s["oldest_available_age_ms"] == 0 and s["oldest_available_offset"] == 1
    q.receive()
    assert q.stats()[0]["oldest_available_age_ms"] is None


def test_queue_configs_are_checked_like_group_configs(env):
    log, _, _ = env
    log.create_topic("orders", 1)
    with pytest.raises(InvalidConfigError):
        log.queue("workers", "orders", **{"share.delivery.count.limit": 50})
    with pytest.raises(InvalidConfigError):
        log.queue("workers", "orders", **{"share.expired.action": "drop"})


# -- restart ------------------------------------------------------------------------------
def _open(path, clock, wall):
    log = pylog.open(path)
    log.share_groups.clock = clock
    log.share_groups.wall_clock = wall
    return log


def test_a_restart_keeps_counts_dead_letters_delays_and_backoff(tmp_path):
    clock, wall = Clock(1_000), Clock(TS)
    log = _open(tmp_path / "d", clock, wall)
    log.group_configs.alter("workers", {"share.redelivery.backoff.ms": "1000",
                                        "share.redelivery.backoff.jitter": "0"})
    p = log.create_topic("orders", 1).partition(0)
    p.append(b"rej", timestamp=TS)
    p.append(b"rel", timestamp=TS)
    p.append(b"late", headers=[("pylog-delay-ms", b"10000")], timestamp=TS)
    p.append(b"hi", headers=[("pylog-priority", b"8")], timestamp=TS)
    q = log.queue("workers", "orders", **EARLIEST)
    msgs = {m.value: m for m in q.receive()}
    assert set(msgs) == {b"rej", b"rel", b"hi"}
    msgs[b"rej"].reject()
    msgs[b"rel"].release()
    msgs[b"hi"].ack()
    log.close()

    clock2 = Clock(50)                             # a new process: a new monotonic clock
    log = _open(tmp_path / "d", clock2, wall)
    q = log.queue("workers", "orders")
    assert q.receive() == []                       # rel waits its backoff again
    clock2.now += 1000
    [m] = q.receive()
    assert (m.value, m.delivery_count) == (b"rel", 2)
    m.ack()
    wall.now += 10_000
    [m] = q.receive()
    assert (m.value, m.delivery_count) == (b"late", 1)
    m.ack()
    assert [parse_dlq_headers(r.headers).offset for r in dead_letters(log)] == [0]
    assert q.stats()[0]["spso"] == 4
    with pytest.raises(InvalidRecordStateError):
        m.ack()
    log.close()


def test_by_duration_reset_starts_at_the_first_record_that_young(env):
    log, _, _ = env
    p = log.create_topic("orders", 1).partition(0)
    for age in (7_200_000, 1_800_000, 0):
        p.append(b"%d" % age, timestamp=TS - age)
    q = log.queue("workers", "orders", **{"share.auto.offset.reset": "by_duration:PT1H"})
    assert [m.value for m in q.receive()] == [b"1800000", b"0"]


def test_a_negative_release_delay_is_refused_and_changes_nothing(env):
    log, _, _ = env
    log.create_topic("orders", 1).partition(0).append(b"a")
    q = log.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    with pytest.raises(InvalidRequestError):
        m.release(delay_ms=-1)
    assert q.stats()[0]["acquired"] == 1
    m.ack()


def test_group_configs_altered_while_open_apply_to_the_next_call(env):
    log, clock, _ = env
    log.create_topic("orders", 1).partition(0).append_batch([b"a", b"b"])
    q = log.queue("workers", "orders", **EARLIEST)
    a, b = q.receive()
    a.release()
    a = q.receive()[0]                             # at once: Kafka's default
    log.group_configs.alter("workers", {"share.redelivery.backoff.ms": "500",
                                        "share.redelivery.backoff.jitter": "0",
                                        "errors.deadletterqueue.enable": "false"})
    a.release()                                    # after delivery 2: 500 * 2
    clock.now += 999
    assert q.receive() == []
    clock.now += 1
    a = q.receive()[0]
    assert (a.offset, a.delivery_count) == (0, 3)
    b.reject()
    assert not log.has_topic("orders.dlq") and q.stats()[0]["archived_total"] == 1


def test_dead_letter_first_then_state_a_retried_write_is_stored_once(env):
    log, _, _ = env
    log.create_topic("orders", 1).partition(0).append(b"poison")
    q = log.queue("workers", "orders", **EARLIEST)
    m = q.receive()[0]
    store = log.share_groups.store
    real = store._partition

    class Refusing:                      # the state topic's partition, fenced
        def append_batch(self, *a, **k):
            raise StorageError("disk full")

    store._partition = Refusing()
    with pytest.raises(StorageError):
        m.reject()                       # the dead letter was written, the archive not
    store._partition = real
    assert len(dead_letters(log)) == 1 and q.stats()[0]["acquired"] == 1
    m.reject()                           # again: the dead letter's id dedups the retry
    assert [parse_dlq_headers(r.headers).offset for r in dead_letters(log)] == [0]
    assert q.stats()[0]["spso"] == 1
