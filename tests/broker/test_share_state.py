"""The share-partition state machine (pylog/broker/share_state.py), no I/O."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pylog.broker.share_state import (AcknowledgeType, RecordState, SharePartition)
from pylog.errors import InvalidRecordStateError, InvalidRequestError

ACCEPT, RELEASE, REJECT = AcknowledgeType.ACCEPT, AcknowledgeType.RELEASE, \
    AcknowledgeType.REJECT


class Clock:
    """A settable clock (milliseconds), the real argument SharePartition takes."""

    def __init__(self, now: int = 1_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def make(clock=None, **kw) -> SharePartition:
    kw.setdefault("auto_offset_reset", "earliest")
    return SharePartition("g", "t", 0, clock=clock or Clock(), **kw)


def offsets(runs) -> list[int]:
    return [o for r in runs for o in range(r.first_offset, r.last_offset + 1)]


def snapshot(sp):
    return sp.spso, sp.speo, {o: (e.state, e.delivery_count, e.member, e.deadline)
                              for o, e in sp.window().items()}


def test_latest_is_the_default_reset_and_starts_at_the_log_end():
    sp = SharePartition("g", "t", 0, clock=Clock())
    runs, delta = sp.acquire("m", 10, 0, 7)
    assert runs == [] and sp.spso == 7 and delta.start_moved
    runs, _ = sp.acquire("m", 10, 0, 9)
    assert offsets(runs) == [7, 8]


def test_acquire_ack_advances_the_start_past_the_finished_prefix():
    sp = make()
    runs, delta = sp.acquire("m", 5, 0, 10)
    assert runs[0][:] == (0, 4, 1)
    assert delta.ranges == ((0, 4, int(RecordState.ACQUIRED), 1),)
    d = sp.acknowledge("m", [(1, 2, ACCEPT)])
    assert sp.spso == 0 and d.ranges == ((1, 2, 2, 1),)
    d = sp.acknowledge("m", [(0, 0, REJECT)])
    assert sp.spso == 3 and d.start_offset == 3 and d.start_moved


def test_each_record_goes_to_one_member_at_a_time():
    sp = make()
    a, _ = sp.acquire("a", 3, 0, 6)
    b, _ = sp.acquire("b", 10, 0, 6)
    assert offsets(a) == [0, 1, 2] and offsets(b) == [3, 4, 5]
    assert sp.acquire("c", 10, 0, 6)[0] == []


def test_lock_expiry_makes_records_available_again_with_count_kept():
    clock = Clock()
    sp = make(clock, lock_duration_ms=30_000)
    sp.acquire("a", 2, 0, 2)
    clock.advance(29_999)
    assert sp.acquire("b", 2, 0, 2)[0] == []
    clock.advance(1)
    runs, _ = sp.acquire("b", 2, 0, 2)
    assert runs == [(0, 1, 2)]
    with pytest.raises(InvalidRecordStateError):
        sp.acknowledge("a", [(0, 0, ACCEPT)])      # a's lock is gone


def test_renew_extends_the_lock():
    clock = Clock()
    sp = make(clock, lock_duration_ms=1_000)
    sp.acquire("a", 1, 0, 1)
    clock.advance(900)
    assert sp.renew("a", 0, 0) == clock.now + 1_000
    clock.advance(900)
    sp.acknowledge("a", [(0, 0, ACCEPT)])
    assert sp.spso == 1


def test_delivery_limit_archives_the_record():
    clock = Clock()
    sp = make(clock, delivery_count_limit=3, lock_duration_ms=100)
    for n in (1, 2):
        assert sp.acquire("a", 1, 0, 1)[0] == [(0, 0, n)]
        sp.acknowledge("a", [(0, 0, RELEASE)])
    assert sp.acquire("a", 1, 0, 1)[0] == [(0, 0, 3)]
    clock.advance(100)                             # third delivery expires: archived
    assert sp.acquire("a", 1, 0, 1)[0] == []
    assert sp.spso == 1 and sp.archived_total == 1


def test_window_is_bounded_by_max_record_locks():
    sp = make(max_record_locks=4)
    assert offsets(sp.acquire("a", 10, 0, 100)[0]) == [0, 1, 2, 3]
    assert sp.acquire("b", 10, 0, 100)[0] == []
    sp.acknowledge("a", [(0, 1, ACCEPT)])
    assert offsets(sp.acquire("b", 10, 0, 100)[0]) == [4, 5]


@pytest.mark.parametrize("batches,code", [
    ([(3, 2, ACCEPT)], 42),                        # runs backwards
    ([(0, 2, ACCEPT), (2, 3, ACCEPT)], 42),        # overlaps
    ([(2, 3, ACCEPT), (0, 1, ACCEPT)], 42),        # out of order
    ([(0, 0, 7)], 42),                             # unknown type
    ([(0, 0, ACCEPT), (8, 8, ACCEPT)], 121),       # 8 was never acquired
    ([(4, 5, ACCEPT)], 121),                       # 4, 5 belong to b
    ([(0, 1, ACCEPT), (4, 4, REJECT)], 121),       # one bad batch spoils the request
])
def test_bad_acks_change_nothing(batches, code):
    sp = make()
    sp.acquire("a", 4, 0, 10)
    sp.acquire("b", 2, 0, 10)
    before = snapshot(sp)
    with pytest.raises((InvalidRequestError, InvalidRecordStateError)) as ei:
        sp.acknowledge("a", batches)
    assert ei.value.errno == code
    assert snapshot(sp) == before


def test_ack_of_a_finished_record_is_invalid_record_state():
    sp = make()
    sp.acquire("a", 2, 0, 2)
    sp.acknowledge("a", [(0, 1, ACCEPT)])
    with pytest.raises(InvalidRecordStateError):
        sp.acknowledge("a", [(0, 0, ACCEPT)])


def test_restore_makes_acquired_available_with_count_kept():
    sp = make()
    sp.restore(5, [(5, 2, 1), (6, 1, 3), (8, 4, 2)])
    assert sp.spso == 6 and sp.speo == 9
    assert sp.entry(6).state is RecordState.AVAILABLE and sp.entry(6).delivery_count == 3
    assert sp.entry(7).delivery_count == 0
    runs, _ = sp.acquire("a", 10, 0, 10)
    assert runs == [(6, 6, 4), (7, 7, 1), (9, 9, 1)]


def test_records_deleted_by_retention_are_skipped():
    sp = make()
    sp.acquire("a", 2, 0, 10)
    runs, delta = sp.acquire("a", 2, 6, 10)
    assert sp.spso == 6 and offsets(runs) == [6, 7]


# -- random sequences against a model -----------------------------------------------------
LOG_END, LIMIT, LOCK, WINDOW = 30, 3, 100, 8
MEMBERS = ["a", "b", "c"]
op = st.one_of(
    st.tuples(st.just("acquire"), st.sampled_from(MEMBERS), st.integers(1, 6)),
    st.tuples(st.just("ack"), st.sampled_from(MEMBERS), st.integers(0, LOG_END - 1),
              st.integers(0, 3), st.sampled_from([ACCEPT, RELEASE, REJECT]),
              st.booleans()),
    st.tuples(st.just("tick"), st.integers(1, 150)),
    st.tuples(st.just("leave"), st.sampled_from(MEMBERS)),
    st.tuples(st.just("failed_write"), st.sampled_from(MEMBERS), st.integers(1, 6)),
)


class Model:
    def __init__(self, clock):
        self.clock = clock
        self.held: dict[int, tuple[str, int]] = {}   # offset -> (member, deadline)
        self.counts: dict[int, int] = {}
        self.finished: set[int] = set()

    def expire(self):
        for o, (m, d) in list(self.held.items()):
            if d <= self.clock.now:
                self.unhold(o)

    def unhold(self, o):
        del self.held[o]
        if self.counts[o] >= LIMIT:
            self.finished.add(o)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=80))
def test_random_sequences_keep_the_invariants(ops):
    clock = Clock()
    sp = make(clock, delivery_count_limit=LIMIT, lock_duration_ms=LOCK,
              max_record_locks=WINDOW)
    model = Model(clock)
    for o in ops:
        model.expire()
        if o[0] == "acquire":
            _, m, n = o
            runs, _ = sp.acquire(m, n, 0, LOG_END)
            got = offsets(runs)
            assert len(got) <= n
            for x in got:
                assert x not in model.held, "a record held by two members"
                assert x not in model.finished, "a finished record delivered again"
                model.counts[x] = model.counts.get(x, 0) + 1
                model.held[x] = (m, clock.now + LOCK)
            for r in runs:
                assert r.delivery_count == model.counts[r.first_offset]
        elif o[0] == "ack":
            _, m, first, extra, kind, from_held = o
            mine = sorted(x for x, (h, _) in model.held.items() if h == m)
            if from_held and mine:
                first = mine[first % len(mine)]
            last = first + extra
            ok = all(model.held.get(x, ("", 0))[0] == m for x in range(first, last + 1))
            before = snapshot(sp)
            if ok:
                sp.acknowledge(m, [(first, last, kind)])
                for x in range(first, last + 1):
                    if kind == RELEASE:
                        model.unhold(x)
                    else:
                        del model.held[x]
                        model.finished.add(x)
            else:
                with pytest.raises(InvalidRecordStateError):
                    sp.acknowledge(m, [(first, last, kind)])
                assert snapshot(sp) == before
        elif o[0] == "failed_write":           # an acquire or an ack whose write fails
            _, m, n = o
            sp.expire()
            mine = sorted(x for x, (h, _) in model.held.items() if h == m)
            before = snapshot(sp)
            with sp.lock:
                if mine and n % 2:
                    sp.acknowledge(m, [(mine[0], mine[0], [ACCEPT, RELEASE, REJECT][n % 3])])
                else:
                    sp.acquire(m, n, 0, LOG_END)
                sp.rollback_locked()
            assert snapshot(sp) == before
        elif o[0] == "tick":
            clock.advance(o[1])
        else:
            sp.release_member(o[1])
            for x, (h, _) in list(model.held.items()):
                if h == o[1]:
                    model.unhold(x)
        check(sp, model)
    clock.advance(LOCK)
    sp.expire()
    model.expire()
    check(sp, model)
    for e in sp.window().values():
        assert e.state in (RecordState.AVAILABLE, RecordState.ACKNOWLEDGED,
                           RecordState.ARCHIVED)


def check(sp, model):
    sp.expire()                  # expiry is lazy; compare both after it
    model.expire()
    assert all(x in model.finished for x in range(0, sp.spso)), "spso passed a record"
    assert sp.speo - sp.spso <= WINDOW
    for x, e in sp.window().items():
        assert e.delivery_count == model.counts.get(x, 0) <= LIMIT
        assert (e.state is RecordState.ACQUIRED) == (e.member is not None)
        assert e.not_before == 0 or e.state is RecordState.AVAILABLE
        if e.state is RecordState.ACQUIRED:
            assert model.held[x][0] == e.member
        if e.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED):
            assert x in model.finished


def test_rollback_undoes_every_change_since_the_last_delta():
    clock = Clock()
    sp = make(clock, lock_duration_ms=100)
    sp.acquire("a", 3, 0, 10)
    before = snapshot(sp)
    with sp.lock:
        sp.acknowledge("a", [(0, 1, ACCEPT)])         # as if its write failed:
        sp.rollback_locked()
    assert snapshot(sp) == before
    with sp.lock:
        sp.acquire("b", 5, 0, 10)
        sp.rollback_locked()
    assert snapshot(sp) == before
    sp.acknowledge("a", [(0, 2, ACCEPT)])
    assert sp.spso == 3
