"""SharePartition with hints, backoff and dead letters (no I/O): random sequences keep
the invariants, and what is handed out is deliverable, by priority within the window."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pylog.broker.share_delivery import NO_HINTS, Backoff, Hints
from pylog.broker.share_state import AcknowledgeType, RecordState, SharePartition

LOG_END, LIMIT, LOCK, WINDOW, PRIO_WINDOW = 40, 3, 100, 8, 5
TS = 1_000_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


hint = st.one_of(st.just(NO_HINTS), st.builds(
    Hints, st.sampled_from([0, 0, TS + 50, TS + 400]),
    st.sampled_from([None, None, TS + 30, TS + 300]), st.integers(0, 9)))
op = st.one_of(
    st.tuples(st.just("acquire"), st.sampled_from("ab"), st.integers(1, 6)),
    st.tuples(st.just("ack"), st.sampled_from("ab"), st.integers(0, 7),
              st.sampled_from(list(AcknowledgeType))),
    st.tuples(st.just("tick"), st.integers(1, 120)),
    st.tuples(st.just("failed"), st.sampled_from("ab"), st.integers(1, 6)),
)


@settings(max_examples=250, deadline=None)
@given(st.lists(hint, min_size=LOG_END, max_size=LOG_END), st.lists(op, max_size=60))
def test_hinted_sequences_hand_out_only_deliverable_records(hints, ops):
    clock, wall = Clock(1_000), Clock(TS)
    sp = SharePartition("g", "t", 0, clock=clock, wall_clock=wall,
                        auto_offset_reset="earliest", delivery_count_limit=LIMIT,
                        lock_duration_ms=LOCK, max_record_locks=WINDOW,
                        priority_window=PRIO_WINDOW, backoff=Backoff(20, 200, 2.0, 0.5),
                        dead_letters=True, expired_action="dlq")
    sp.track_hints = True
    finished: set[int] = set()
    dead: list[int] = []
    for o in ops:
        with sp.lock:
            lo, hi = sp.hint_range_locked(0, LOG_END)
            sp.set_hints_locked(hi, {x: hints[x] for x in range(lo, hi)
                                     if hints[x] is not NO_HINTS})
        if o[0] == "acquire":
            before = {x: (e.state, e.not_before) for x, e in sp.window().items()}
            spso = sp.spso
            runs, _ = sp.acquire(o[1], o[2], 0, LOG_END)
            got = [x for r in runs for x in range(r.first_offset, r.last_offset + 1)]
            assert got == sorted(got) and len(got) <= o[2]
            for x in got:
                assert x not in finished
                assert hints[x].deliver_at <= wall.now, "delivered before deliver-at"
                exp = hints[x].expires_at
                assert exp is None or exp > wall.now, "delivered after its TTL"
                if x in before:
                    assert before[x][1] <= clock.now, "delivered during its backoff"
            # priority: when it took all it could, nothing deliverable left in the
            # priority window outranks what it took there
            base = sp.spso
            inwin = [x for x in got if x < base + PRIO_WINDOW]
            if len(got) == o[2] and inwin:
                worst = min(hints[x].priority for x in inwin)
                for x in range(base, min(base + PRIO_WINDOW, LOG_END)):
                    e, was = sp.entry(x), before.get(x)
                    candidate = (was is None or (was[0] is RecordState.AVAILABLE
                                                 and was[1] <= clock.now)) \
                        and hints[x].deliver_at <= wall.now
                    if x not in got and candidate and (
                            e is None or e.state is RecordState.AVAILABLE):
                        assert hints[x].priority <= worst
        elif o[0] == "ack":
            sp.expire()                        # lazy lock expiry first
            with sp.lock:
                dead.extend(d.offset for d in sp.take_dead_letters_locked())
            mine = sorted(x for x, e in sp.window().items()
                          if e.state is RecordState.ACQUIRED and e.member == o[1])
            if mine:
                x = mine[o[2] % len(mine)]
                sp.acknowledge(o[1], [(x, x, o[3])])
        elif o[0] == "failed":             # an acquire whose write failed
            sp.expire()
            with sp.lock:
                dead.extend(d.offset for d in sp.take_dead_letters_locked())
                snap = {x: (e.state, e.delivery_count, e.member, e.not_before)
                        for x, e in sp.window().items()}
                window = (sp.spso, sp.speo)
                sp.acquire(o[1], o[2], 0, LOG_END)
                sp.rollback_locked()
                assert sp.take_dead_letters_locked() == []
            assert (sp.spso, sp.speo) == window
            assert {x: (e.state, e.delivery_count, e.member, e.not_before)
                    for x, e in sp.window().items()} == snap
        else:
            clock.now += o[1]
            wall.now += o[1]
        with sp.lock:
            dead.extend(d.offset for d in sp.take_dead_letters_locked())
        assert sp.speo - sp.spso <= WINDOW
        for x, e in sp.window().items():
            assert e.delivery_count <= LIMIT
            assert (e.state is RecordState.ACQUIRED) == (e.member is not None)
            assert e.not_before == 0 or e.state is RecordState.AVAILABLE
            if e.state in (RecordState.ACKNOWLEDGED, RecordState.ARCHIVED):
                finished.add(x)
        finished.update(range(sp.spso))
    assert len(dead) == len(set(dead)), "a record dead-lettered twice"
