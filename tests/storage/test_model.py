"""A partition against an in-memory model (hypothesis state machine): appends, rolls,
retention, clean restarts and kill -9 style restarts, with reads and time lookups
checked after every step (research/reliability.md T14, short CI tier)."""
from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pylog

CFG = {"segment.bytes": 2048, "index.interval.bytes": 128, "retention.bytes": 6000}
values = st.binary(max_size=120)
keys = st.none() | st.binary(max_size=8)
stamps = st.integers(0, 10_000)


class PartitionModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None   # fsync-free
        self.dir = tempfile.mkdtemp(prefix="pylog-model-", dir=shm)
        self.log = pylog.open(self.dir)
        self.p = self.log.create_topic("m", config=CFG).partition(0)
        self.model: dict[int, tuple] = {}          # offset -> (key, value, timestamp)
        self.end = 0

    def teardown(self):
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(value=values, key=keys, ts=stamps)
    def append(self, value, key, ts):
        off = self.p.append(value, key=key, timestamp=ts)
        assert off == self.end
        self.model[off] = (key, value, ts)
        self.end += 1

    @rule(batch=st.lists(st.tuples(values, keys, stamps), min_size=1, max_size=8))
    def append_batch(self, batch):
        base = self.p.append_batch([v for v, _, _ in batch], keys=[k for _, k, _ in batch],
                                   timestamps=[t for _, _, t in batch])
        assert base == self.end
        for i, (v, k, t) in enumerate(batch):
            self.model[base + i] = (k, v, t)
        self.end += len(batch)

    @rule()
    def roll(self):
        self.p.roll()

    @rule()
    def retention(self):
        self.p.enforce_retention()
        start = self.p.log_start_offset
        assert start <= self.end
        for off in [o for o in self.model if o < start]:
            del self.model[off]

    def _reopen(self):
        self.log = pylog.open(self.dir)
        self.p = self.log.topic("m").partition(0)
        assert self.p.log_end_offset == self.end

    @rule()
    def clean_restart(self):
        self.log.close()
        self._reopen()
        assert self.log.recovery_reports[0].mode == "clean"

    @rule()
    def crash_restart(self):
        self.log._simulate_crash()
        self._reopen()
        assert not self.log.recovery_reports[0].lost_data

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def read_from_anywhere(self, data):
        start = self.p.log_start_offset
        off = data.draw(st.integers(start, self.end))
        n = data.draw(st.integers(1, 40))
        got = self.p.read(off, max_records=n)
        want = [(o, *self.model[o]) for o in range(off, min(off + n, self.end))]
        assert [(r.offset, r.key, r.value, r.timestamp) for r in got] == want

    @precondition(lambda self: self.model)
    @rule(ts=stamps)
    def offset_for_time(self, ts):
        expect = next((o for o in sorted(self.model) if self.model[o][2] >= ts), None)
        assert self.p.offset_for_time(ts) == expect

    @invariant()
    def offsets_are_consistent(self):
        assert self.p.log_end_offset == self.end
        assert sorted(self.model) == list(range(self.p.log_start_offset, self.end))


TestPartitionModel = PartitionModel.TestCase
TestPartitionModel.settings = settings(max_examples=20, stateful_step_count=30,
                                       deadline=None)
