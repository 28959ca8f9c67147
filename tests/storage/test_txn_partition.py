"""The partition side of transactions (storage/transactions.py, txn_index.py,
csrc/txn.c): markers, the last stable offset, the aborted list, read_committed
reads and consumers, restart (clean and kill -9), .txnindex rebuilds, retention and
compaction of aborted records."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pylog
from pylog.errors import InvalidRecordError
from pylog.records import (ATTR_CONTROL, ATTR_TRANSACTIONAL, decode_batch, encode_batch,
                           iter_batches, valid_headers)
from pylog.storage import transactions, txn_index

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000_000


def _open(path, **kw):
    return pylog.open(path, log_cleaner_enable=False, **kw)


def txn_batch(pid, values, keys=None, epoch=0):
    return encode_batch(values, keys, producer_id=pid, producer_epoch=epoch,
                        base_sequence=0, attributes=ATTR_TRANSACTIONAL)


def _values(recs):
    return [r.value for r in recs]


def oracle(directory):
    """Replay every .log of a partition directory with the pure-Python codec:
    (ongoing, aborted [(pid, first, last)])."""
    ongoing, aborted = {}, []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".log"):
            continue
        data = Path(directory, name).read_bytes()
        for pos, h in valid_headers(data):        # the valid prefix (a zero tail after)
            if not h.is_transactional:
                continue
            recs = decode_batch(data, pos)[1]
            if not h.is_control:
                ongoing.setdefault(h.producer_id, h.base_offset)
                continue
            kind = int.from_bytes(recs[0].key[2:4], "big")
            first = ongoing.pop(h.producer_id, None)
            if first is not None and kind == 0:
                aborted.append((h.producer_id, first, recs[0].offset))
    return ongoing, aborted


@pytest.fixture
def part(tmp_path):
    log = _open(tmp_path)
    p = log.create_topic("t", partitions=1).partition(0)
    yield log, p
    if not log.closed:
        log.close()


# ---- markers --------------------------------------------------------------------
def test_marker_is_kafkas_control_batch(part):
    _, p = part
    p.append_raw(txn_batch(7, [b"a"]))
    res = p.write_txn_marker(7, 3, commit=True, coordinator_epoch=9)
    assert res.base_offset == res.last_offset == 1
    h, recs = decode_batch(bytes(p.read_raw(1)))
    assert h.attributes & 0x30 == 0x30 and h.base_sequence == -1
    assert (h.producer_id, h.producer_epoch, h.records_count) == (7, 3, 1)
    assert recs[0].key == b"\x00\x00\x00\x01"                 # version 0, COMMIT
    assert recs[0].value == b"\x00\x00\x00\x00\x00\x09"       # version 0, epoch 9


def test_client_control_batch_still_refused(part):
    _, p = part
    bad = encode_batch([b"x"], producer_id=1, producer_epoch=0,
                       attributes=ATTR_TRANSACTIONAL | ATTR_CONTROL)
    with pytest.raises(InvalidRecordError):
        p.append_raw(bad)
    assert p.log_end_offset == 0


def test_marker_without_open_transaction_is_written_and_changes_nothing(part):
    _, p = part
    p.write_txn_marker(5, 0, commit=False)
    assert p.log_end_offset == 1
    assert p.ongoing_transactions() == {} and p.aborted_transactions(0, 10) == []
    assert p.last_stable_offset == 1


def test_embedded_reads_never_return_control_records(part):
    _, p = part
    p.append(b"plain")
    p.append_raw(txn_batch(1, [b"t1", b"t2"]))
    p.write_txn_marker(1, 0, commit=True)
    p.append(b"after")
    assert _values(p.read(0)) == [b"plain", b"t1", b"t2", b"after"]
    assert _values(p.iter(0)) == [b"plain", b"t1", b"t2", b"after"]
    assert p.read(3) == [p.read(4)[0]]              # from the marker: the next record
    cols = p.read_columns(0)
    assert list(cols.offsets) == [0, 1, 2, 4]


def test_non_transactional_partition_has_no_state_and_no_file(part):
    log, p = part
    p.append(b"a")
    p.append_raw(encode_batch([b"b"]))
    assert p._txn is None and p.last_stable_offset == p.log_end_offset == 2
    assert not (p.directory / txn_index.SNAPSHOT_FILE).exists()
    log.close()


# ---- LSO and the aborted list ---------------------------------------------------------
def test_lso_with_interleaved_producers(part):
    _, p = part
    p.append(b"x")                                   # 0
    p.append_raw(txn_batch(1, [b"a"]))               # 1: pid 1 opens
    assert p.last_stable_offset == 1
    p.append_raw(txn_batch(2, [b"b"]))               # 2: pid 2 opens
    p.append_raw(txn_batch(1, [b"c"]))               # 3: pid 1 again (still open at 1)
    assert p.ongoing_transactions() == {1: 1, 2: 2}
    p.write_txn_marker(1, 0, commit=True)            # 4
    assert p.last_stable_offset == 2
    p.append(b"y")                                   # 5
    p.write_txn_marker(2, 0, commit=False)           # 6
    assert p.last_stable_offset == p.log_end_offset == 7
    assert p.aborted_transactions(0, 100) == [(2, 2)]


def test_aborted_list_filters_by_last_and_first_offset(part):
    _, p = part
    p.append_raw(txn_batch(1, [b"a", b"b"]))         # 0-1
    p.write_txn_marker(1, 0, commit=False)           # 2: aborted (1, 0..2)
    p.append_raw(txn_batch(2, [b"c"]))               # 3
    p.write_txn_marker(2, 0, commit=False)           # 4: aborted (2, 3..4)
    assert p.aborted_transactions(0, 10) == [(1, 0), (2, 3)]
    assert p.aborted_transactions(3, 10) == [(2, 3)]     # last 2 < start 3
    assert p.aborted_transactions(2, 3) == [(1, 0)]      # first 3 is not < end 3
    assert p.aborted_transactions(5, 10) == []
    entries, problem = txn_index.read_index(p.directory, 0)
    assert problem is None and [tuple(e) for e in entries] == [(1, 0, 2, 3), (2, 3, 4, 5)]


def test_txnindex_entry_lso_is_the_lso_after_the_abort(part):
    _, p = part
    p.append_raw(txn_batch(1, [b"a"]))               # 0
    p.append_raw(txn_batch(2, [b"b"]))               # 1
    p.write_txn_marker(2, 0, commit=False)           # 2: pid 1 still open at 0
    (entry,), _ = txn_index.read_index(p.directory, 0)
    assert entry == (2, 1, 2, 0)


# ---- read_committed -----------------------------------------------------------------
def test_read_committed_stops_at_lso_and_skips_aborted(part):
    _, p = part
    p.append(b"p0")                                  # 0
    p.append_raw(txn_batch(1, [b"a1", b"a2"]))       # 1-2 aborted later
    p.append_raw(txn_batch(2, [b"c1"]))              # 3 committed later
    p.write_txn_marker(1, 0, commit=False)           # 4
    p.append(b"p5")                                  # 5
    assert _values(p.read(0, committed=True)) == [b"p0"]          # LSO = 3
    assert p.read(3, committed=True) == []
    p.write_txn_marker(2, 0, commit=True)            # 6
    assert _values(p.read(0, committed=True)) == [b"p0", b"c1", b"p5"]
    assert _values(p.iter(0, committed=True)) == [b"p0", b"c1", b"p5"]
    assert _values(p.read(0)) == [b"p0", b"a1", b"a2", b"c1", b"p5"]
    recs, nxt = p.read_stable(4)
    assert _values(recs) == [b"p5"] and nxt == 6


def test_read_stable_steps_over_aborted_only_reads(part):
    _, p = part
    p.append_raw(txn_batch(1, [b"x"]))
    p.write_txn_marker(1, 0, commit=False)
    recs, nxt = p.read_stable(0)
    assert recs == [] and nxt == 2
    assert list(p.iter(0, committed=True)) == []


def test_read_raw_committed_returns_whole_batches_below_lso(part):
    _, p = part
    p.append(b"a")                                   # 0
    p.append(b"b")                                   # 1
    p.append_raw(txn_batch(1, [b"t"]))               # 2: open
    p.append(b"c")                                   # 3
    view = p.read_raw(0, committed=True)
    assert [h.base_offset for h, _ in iter_batches(bytes(view))] == [0, 1]
    assert len(p.read_raw(2, committed=True)) == 0
    assert len(p.read_raw(3, committed=True)) == 0
    assert len(bytes(p.read_raw(0))) > len(bytes(view))


def test_consumer_read_committed(tmp_path):
    with _open(tmp_path) as log:
        p = log.create_topic("o", partitions=1).partition(0)
        p.append(b"plain")
        p.append_raw(txn_batch(1, [b"aborted"]))
        p.write_txn_marker(1, 0, commit=False)
        p.append_raw(txn_batch(2, [b"open"]))
        with pytest.raises(ValueError, match="isolation_level"):
            log.consumer("g0", ["o"], isolation_level="committed")
        rc = log.consumer("g1", ["o"], isolation_level="read_committed")
        ru = log.consumer("g2", ["o"])
        assert [r.value for r in rc.poll()] == [b"plain"]
        assert [r.value for r in ru.poll()] == [b"plain", b"aborted", b"open"]
        assert rc.poll() == []
        p.write_txn_marker(2, 0, commit=True)
        assert [r.value for r in rc.poll(timeout=1)] == [b"open"]
        assert rc.poll() == []                   # steps over the trailing marker
        assert rc.position("o", 0) == p.log_end_offset
        rc.close()
        ru.close()


def test_table_is_read_committed(tmp_path):
    with _open(tmp_path) as log:
        p = log.create_topic("kv", partitions=1).partition(0)
        p.append(b"v1", key=b"k")
        p.append_raw(txn_batch(1, [b"bad"], [b"k"]))
        p.write_txn_marker(1, 0, commit=False)
        p.append_raw(txn_batch(2, [b"v2"], [b"j"]))
        t = log.table("kv")
        assert dict(t.items()) == {b"k": b"v1"}
        p.write_txn_marker(2, 0, commit=True)
        assert dict(t.items()) == {b"k": b"v1", b"j": b"v2"}
        t.close()


# ---- restart -------------------------------------------------------------------------
def _state(p):
    return p.ongoing_transactions(), p.aborted_transactions(0, 1 << 62), \
        p.last_stable_offset


def _scenario(p):
    p.append_raw(txn_batch(1, [b"a"]))
    p.append_raw(txn_batch(2, [b"b"]))
    p.write_txn_marker(1, 0, commit=False)
    p.append_raw(txn_batch(3, [b"c"]))
    p.roll()
    p.write_txn_marker(3, 0, commit=True)
    p.append_raw(txn_batch(4, [b"d"]))


def _run_scenario(tmp_path, stop="close"):
    """_scenario on a new log, stopped cleanly or as kill -9 would: (state, dir)."""
    log = _open(tmp_path)
    p = log.create_topic("t", partitions=1).partition(0)
    _scenario(p)
    before, d = _state(p), p.directory
    log.close() if stop == "close" else log._simulate_crash()
    return before, d


def _reopened_state(tmp_path):
    with _open(tmp_path) as log:
        return _state(log.topic("t").partition(0))


def test_clean_restart_keeps_state_without_a_scan(tmp_path, monkeypatch):
    before, _ = _run_scenario(tmp_path)
    monkeypatch.setattr(transactions, "_replay", lambda *a: pytest.fail("scanned"))
    assert _reopened_state(tmp_path) == before


def test_restart_after_crash_rebuilds_state(tmp_path):
    before, _ = _run_scenario(tmp_path, stop="crash")
    assert before[0] == {2: 1, 4: 5}
    assert _reopened_state(tmp_path) == before


def test_deleted_or_garbage_txnindex_is_rebuilt(tmp_path):
    before, d = _run_scenario(tmp_path)
    path = txn_index.index_path(d, 0)
    good = path.read_bytes()
    path.unlink()
    assert _reopened_state(tmp_path) == before
    assert path.read_bytes() == good
    path.write_bytes(b"\x07" * 40)
    assert _reopened_state(tmp_path) == before
    assert path.read_bytes() == good


def test_garbage_snapshot_means_a_full_rebuild(tmp_path):
    before, d = _run_scenario(tmp_path)
    (d / txn_index.SNAPSHOT_FILE).write_bytes(b"junk")
    assert _reopened_state(tmp_path) == before


_CHILD = r"""
import os, sys
sys.path.insert(0, {root!r})
import pylog
from pylog.records import encode_batch
log = pylog.open(sys.argv[1], log_cleaner_enable=False)
t = log.topic("k") if log.has_topic("k") else log.create_topic(
    "k", partitions=1, config={{"segment.bytes": 8192}})
p = t.partition(0)
i = 0
while True:
    pid = 100 + i % 5
    if i % 4 == 3:
        p.write_txn_marker(pid, 0, commit=i % 8 == 3)
    else:
        p.append_raw(encode_batch([b"v%d" % i], producer_id=pid, producer_epoch=0,
                                  base_sequence=0, attributes=0x10))
    if i % 11 == 0:
        p.append(b"plain")
    i += 1
    if i == int(sys.argv[2]):
        os._exit(0)
"""


@pytest.mark.parametrize("stop", ["exit", "sigkill"])
def test_kill_at_any_point_leaves_a_consistent_state(tmp_path, stop):
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(root=str(ROOT)))
    data = tmp_path / "data"
    for round_ in range(3):
        if stop == "exit":
            subprocess.run([sys.executable, str(script), str(data), str(300 + 37 * round_)],
                           check=True, timeout=60)
        else:
            child = subprocess.Popen([sys.executable, str(script), str(data), "-1"])
            time.sleep(0.6 + 0.2 * round_)
            child.send_signal(signal.SIGKILL)
            child.wait()
        with _open(data) as log:
            p = log.topic("k").partition(0)
            ongoing, aborted = oracle(p.directory)
            assert p.ongoing_transactions() == ongoing
            assert p.aborted_transactions(0, 1 << 62) == [(a, b) for a, b, _ in aborted]
            assert p.last_stable_offset == min(ongoing.values(), default=p.log_end_offset)


# ---- retention, compaction --------------------------------------------------------------
def test_retention_drops_segments_and_their_entries(part):
    _, p = part
    p.append_raw(txn_batch(1, [b"a"]))
    p.write_txn_marker(1, 0, commit=False)
    p.roll()
    p.append_raw(txn_batch(2, [b"b"]))
    p.write_txn_marker(2, 0, commit=False)
    p.roll()
    p.barrier()
    assert p.aborted_transactions(0, 100) == [(1, 0), (2, 2)]
    p.delete_records(3)
    assert p.aborted_transactions(0, 100) == [(2, 2)]
    assert not txn_index.index_path(p.directory, 0).exists()
    assert txn_index.index_path(p.directory, 2).exists()


def _compacted(log, name="c"):
    return log.create_topic(name, partitions=1, config={
        "cleanup.policy": "compact", "segment.bytes": 4096, "min.cleanable.dirty.ratio": 0.01})


def test_compaction_drops_aborted_records_and_keeps_markers(tmp_path):
    with _open(tmp_path) as log:
        p = _compacted(log).partition(0)
        p.append(b"committed", key=b"K")                    # 0
        p.append_raw(txn_batch(1, [b"aborted"], [b"K"]))    # 1
        p.write_txn_marker(1, 0, commit=False)              # 2
        p.append_raw(txn_batch(2, [b"c2"], [b"J"]))         # 3
        p.write_txn_marker(2, 0, commit=True)               # 4
        p.roll()
        p.barrier()
        st_ = log.cleaner.clean_once(NOW) if log.cleaner else None
        if st_ is None:
            from pylog.storage import compaction
            c = compaction.cleanable(p, None, NOW)
            compaction.clean(p, c, NOW)
        recs = [(r.offset, r.key, r.value) for r in p.iter()]
        assert recs == [(0, b"K", b"committed"), (3, b"J", b"c2")]
        headers = list(p.iter_batch_headers())
        assert sum(1 for h in headers if h.is_control) == 2
        assert p.aborted_transactions(0, 100) == [(1, 1)]
        d = p.directory
    with _open(tmp_path) as log:                            # the index survived the swap
        p = log.topic("c").partition(0)
        assert p.aborted_transactions(0, 100) == [(1, 1)]
        assert [r.value for r in p.iter(committed=True)] == [b"committed", b"c2"]
    assert txn_index.read_index(d, 0)[1] is None


def test_cleaner_never_cleans_at_or_past_the_lso(tmp_path):
    from pylog.storage import compaction
    with _open(tmp_path) as log:
        p = _compacted(log).partition(0)
        p.append(b"v1", key=b"K")
        p.roll()
        p.append_raw(txn_batch(1, [b"open"], [b"K"]))     # open: LSO = 1
        p.roll()
        p.append(b"v3", key=b"K")
        p.roll()
        p.barrier()
        c = compaction.cleanable(p, None, NOW)
        assert [s.base_offset for s in c.segments] == [0]


# ---- the model ---------------------------------------------------------------------------
ops = st.lists(st.one_of(
    st.tuples(st.just("data"), st.integers(1, 4)),
    st.tuples(st.just("commit"), st.integers(1, 4)),
    st.tuples(st.just("abort"), st.integers(1, 4)),
    st.tuples(st.just("plain"), st.just(0)),
    st.tuples(st.just("roll"), st.just(0))), max_size=40)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, crash=st.booleans())
def test_state_matches_a_model_and_survives_restart(tmp_path_factory, ops, crash):
    d = tmp_path_factory.mktemp("m")
    log = _open(d)
    p = log.create_topic("m", partitions=1).partition(0)
    ongoing, aborted = {}, []
    for op, pid in ops:
        if op == "data":
            base = p.append_raw(txn_batch(pid, [b"x", b"y"])).base_offset
            ongoing.setdefault(pid, base)
        elif op in ("commit", "abort"):
            off = p.write_txn_marker(pid, 0, commit=op == "commit").base_offset
            first = ongoing.pop(pid, None)
            if first is not None and op == "abort":
                aborted.append((pid, first))
        elif op == "plain":
            p.append(b"p")
        else:
            p.roll()
        assert p.ongoing_transactions() == ongoing
        assert p.last_stable_offset == min(ongoing.values(), default=p.log_end_offset)
    assert p.aborted_transactions(0, 1 << 40) == aborted
    committed = [r.offset for r in p.iter(0, committed=True)]
    if crash:
        log._simulate_crash()
    else:
        log.close()
    with _open(d) as log:
        p = log.topic("m").partition(0)
        assert p.ongoing_transactions() == ongoing
        assert p.aborted_transactions(0, 1 << 40) == aborted
        assert [r.offset for r in p.iter(0, committed=True)] == committed


class _Stop(Exception):
    pass


@pytest.mark.parametrize("step", ["cleaned", "indexed", "swap"])
def test_kill_mid_swap_keeps_the_txnindex(tmp_path, step):
    from pylog.storage import compaction
    log = _open(tmp_path)
    p = _compacted(log).partition(0)
    p.append_raw(txn_batch(1, [b"x"], [b"K"]))
    p.write_txn_marker(1, 0, commit=False)             # 1
    p.roll()
    p.append(b"v", key=b"K")                           # 2
    p.append_raw(txn_batch(2, [b"y"], [b"J"]))         # 3
    p.write_txn_marker(2, 0, commit=False)             # 4
    p.roll()
    p.barrier()

    def hook(at):
        if at == step:
            raise _Stop(at)
    with pytest.raises(_Stop):
        compaction.clean(p, compaction.cleanable(p, None, NOW), NOW, crash_hook=hook)
    log._simulate_crash()
    with _open(tmp_path) as log:
        p = log.topic("c").partition(0)
        assert p.aborted_transactions(0, 100) == [(1, 0), (2, 3)]
        assert [r.value for r in p.iter(committed=True)] == [b"v"]
        names = sorted(os.listdir(p.directory))
        assert not [n for n in names if n.endswith((".swap", ".cleaned"))]


def test_c_constants_match_the_format():
    from pylog._ffi import lib
    assert lib.PL_TXN_ENTRY_SIZE == txn_index.ENTRY_SIZE == 34
    assert (lib.PL_TXN_ABORT, lib.PL_TXN_COMMIT) == (transactions.ABORT, transactions.COMMIT)
    assert lib.PL_CONTROL_KEY_SIZE == 4 and lib.PL_CONTROL_VALUE_SIZE == 6


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), control=st.booleans())
def test_txn_scan_and_control_parse_never_crash(data, control):
    """Hostile bytes: only status codes come back (the fuzz contract of STYLE.md)."""
    from pylog._ffi import ffi, lib
    buf = ffi.from_buffer("uint8_t[]", data) if data else ffi.new("uint8_t[]", 1)
    out = ffi.new("pl_txn_batch[]", 4)
    n, pos = ffi.new("uint32_t *"), ffi.new("uint64_t *")
    rc = lib.pl_txn_scan(buf, 0, len(data), out, 4, n, pos)
    assert rc in (0, lib.PL_EBADLEN, lib.PL_ENOSPACE_CAP) and pos[0] <= len(data)
    h = ffi.new("pl_batch_header *")
    h.records_count, h.last_offset_delta = 1, 0
    t, ce, off = ffi.new("int16_t *"), ffi.new("int32_t *"), ffi.new("int64_t *")
    rc = lib.pl_control_parse(buf, len(data), h, t, ce, off)
    assert rc in (0, lib.PL_EBADRECORD)
