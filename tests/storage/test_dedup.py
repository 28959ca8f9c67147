"""Dedup ids (storage/dedup.py): a record with a pylog-msg-id seen within the window is
answered with the first copy's offset and not stored again."""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pylog
from pylog.records import decode_batch, encode_batch
from pylog.storage import dedup

ID = dedup.MSG_ID_HEADER


def _h(i):
    return [(ID, i)] if i is not None else [("other", b"x")]


class Clock:
    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now


def _partition(log, name="t", **config):
    return log.create_topic(name, partitions=1, config=config).partition(0)


def _values(p):
    return [(r.offset, r.value) for r in p.read(p.log_start_offset, max_records=10_000)]


# ---- the model: ids within the window are stored once ------------------------------
ops = st.lists(st.tuples(st.sampled_from([None, b"a", b"b", b"c", b"d"]),
                         st.integers(0, 400), st.booleans()), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_appends_match_a_model_of_the_window(seq):
    with pylog.open(None) as log:
        p = _partition(log, **{"dedup.window.ms": 1000})
        clock = Clock()
        dedup.table(p).clock = clock
        model: dict[bytes, tuple[int, int]] = {}
        stored = []
        for n, (mid, advance, raw) in enumerate(seq):
            clock.now += advance
            value = b"v%d" % n
            if raw:
                got = p.append_raw(encode_batch([value], headers=[_h(mid)])).base_offset
            else:
                got = p.append(value, headers=_h(mid))
            first = model.get(mid) if mid is not None else None
            if first is not None and first[1] >= clock.now - 1000:
                assert got == first[0]
                continue
            assert got == p.log_end_offset - 1
            stored.append((got, value))
            if mid is not None:
                model[mid] = (got, clock.now)
        assert _values(p) == stored


def test_batch_with_duplicates_keeps_the_rest_in_order():
    with pylog.open(None) as log:
        p = _partition(log)
        assert p.append(b"a", headers=[(ID, b"1")]) == 0
        base, offsets = dedup.append_batch(
            p, [b"x", b"y", b"z", b"w"], None,
            [[(ID, b"1")], [(ID, b"2")], [], [(ID, b"2")]], None)
        # base = stored base - leading duplicates (storage/dedup.py): base + 1, + 2 exact
        assert (base, offsets) == (0, [0, 1, 2, 1])
        assert _values(p) == [(0, b"a"), (1, b"y"), (2, b"z")]
        # every record a duplicate: nothing stored, the first copy's offset
        assert p.append_batch([b"q", b"r"], headers=[[(ID, b"2")], [(ID, b"1")]]) == 1
        assert p.log_end_offset == 3


def test_raw_batch_with_duplicates_is_reencoded():
    with pylog.open(None) as log:
        p = _partition(log)
        p.append_raw(encode_batch([b"a", b"b"], headers=[[(ID, b"1")], [(ID, b"2")]]))
        sent = encode_batch([b"a", b"c", b"b", b"d"], keys=[b"k1", b"k2", b"k3", None],
                            headers=[[(ID, b"1")], [(ID, b"3"), ("h", b"v")], [(ID, b"2")],
                                     []],
                            timestamps=[1000, 1001, 1002, 1003])
        res = p.append_raw(sent)
        assert (res.base_offset, res.last_offset, res.stored) == (1, 3, 2)
        recs = p.read(0)
        assert [(r.offset, r.key, r.value, r.timestamp) for r in recs[2:]] == [
            (2, b"k2", b"c", 1001), (3, None, b"d", 1003)]
        assert recs[2].headers == ((ID, b"3"), ("h", b"v"))
        again = p.append_raw(sent)          # three are duplicates; d has no id: stored
        assert (again.base_offset, again.stored) == (4 - 3, 1)
        assert p.log_end_offset == 5


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_compressed_batches_are_checked(codec):
    with pylog.open(None) as log:
        p = _partition(log)
        batch = encode_batch([b"a", b"b"], headers=[[(ID, b"1")], [(ID, b"2")]],
                             compression=codec)
        assert p.append_raw(batch).base_offset == 0
        assert p.append_raw(batch).stored == 0
        mixed = encode_batch([b"a", b"c"], headers=[[(ID, b"1")], [(ID, b"9")]],
                             compression=codec)
        assert p.append_raw(mixed).base_offset == 2 - 1
        raw = bytes(p.read_raw(2))
        h, recs = decode_batch(raw)
        assert h.attributes & 0x07 == codec and [r.value for r in recs] == [b"c"]


def test_idempotent_batch_keeps_its_last_sequence():
    with pylog.open(None) as log:
        p = _partition(log)
        p.append(b"a", headers=[(ID, b"1")])
        sent = encode_batch([b"a", b"b", b"c"], headers=[[(ID, b"1")], [], []],
                            producer_id=7, producer_epoch=0, base_sequence=10)
        p.append_raw(sent)
        h, _ = decode_batch(bytes(p.read_raw(1)))
        assert (h.producer_id, h.base_sequence, h.last_offset_delta) == (7, 11, 1)


def test_window_zero_turns_dedup_off_and_applies_live():
    with pylog.open(None) as log:
        p = _partition(log, **{"dedup.window.ms": 0})
        assert [p.append(b"v", headers=[(ID, b"1")]) for _ in range(2)] == [0, 1]
        log.alter_topic_config("t", {"dedup.window.ms": 60_000})
        p = log.partition("t", 0)
        assert [p.append(b"v", headers=[(ID, b"2")]) for _ in range(2)] == [2, 2]


def test_window_expiry_drops_entries():
    with pylog.open(None) as log:
        p = _partition(log, **{"dedup.window.ms": 100})
        clock = Clock()
        t = dedup.table(p)
        t.clock = clock
        assert p.append(b"v", headers=[(ID, b"1")]) == 0
        clock.now += 100
        assert p.append(b"v", headers=[(ID, b"1")]) == 0       # at the edge: still in
        clock.now += 1
        assert p.append(b"v", headers=[(ID, b"1")]) == 1       # expired: stored again
        assert len(t) == 1


def test_hash_collisions_never_dedup_different_ids():
    with pylog.open(None) as log:
        p = _partition(log)
        t = dedup.table(p)
        t._hash = lambda b: 42                       # every id in one bucket
        offsets = [p.append(b"v", headers=[(ID, i)]) for i in (b"x", b"y", b"z", b"y")]
        assert offsets == [0, 1, 2, 1]
        assert len(t._by_hash[42]) == 3


def test_ids_survive_a_restart(tmp_path):
    with pylog.open(tmp_path) as log:
        p = _partition(log)
        p.append(b"old", headers=[(ID, b"old")], timestamp=int(time.time() * 1000) - 600_000)
        for i in range(50):
            p.append(b"v%d" % i, headers=[(ID, b"id%d" % i)])
        p.append_raw(encode_batch([b"z"] * 3, headers=[[(ID, b"r%d" % i)] for i in range(3)],
                                  compression=3))
        p.append_batch([b"n"] * 500)                 # batches without ids are skipped
    with pylog.open(tmp_path) as log:
        p = log.partition("t", 0)
        end = p.log_end_offset
        assert p.append(b"again", headers=[(ID, b"id7")]) == 8
        assert p.append_raw(encode_batch([b"z"], headers=[[(ID, b"r2")]])).base_offset == 53
        # the record older than the window is not in the rebuilt table
        assert p.append(b"old", headers=[(ID, b"old")]) == end
        assert len(dedup.table(p)) == 54


def test_unkept_batch_still_waits_for_durability(tmp_path):
    with pylog.open(tmp_path) as log:
        p = _partition(log, **{"flush.messages": 1})
        assert p.append(b"a", headers=[(ID, b"1")]) == 0
        assert p.append(b"a", headers=[(ID, b"1")]) == 0
        assert p.recovery_point >= 1


def test_bad_batches_are_refused_whole():
    with pylog.open(None) as log:
        p = _partition(log)
        good = bytearray(encode_batch([b"a"], headers=[[(ID, b"1")]]))
        good[-1] ^= 0xFF                              # CRC no longer matches
        with pytest.raises(pylog.errors.CorruptRecordError):
            p.append_raw(bytes(good))
        assert p.log_end_offset == 0
        assert p.append(b"a", headers=[(ID, b"1")]) == 0        # nothing remembered


batches = st.lists(st.lists(st.sampled_from([None, b"a", b"b", b"c", b"d", b"e"]),
                            min_size=1, max_size=6), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_batches_store_each_id_once_and_offsets_point_at_it(seq):
    with pylog.open(None) as log:
        p = _partition(log)
        first: dict[bytes, int] = {}
        for n, ids in enumerate(seq):
            values = [b"%d-%d" % (n, j) for j in range(len(ids))]
            _, offsets = dedup.append_batch(p, values, None, [_h(i) for i in ids], None)
            by_offset = {r.offset: r for r in p.read(0, max_records=10_000)}
            for i, v, o in zip(ids, values, offsets):
                if i is None:
                    assert by_offset[o].value == v
                else:
                    first.setdefault(i, o)
                    assert o == first[i] and dedup.msg_id(by_offset[o].headers) == i
        ids_stored = [dedup.msg_id(r.headers) for r in p.read(0, max_records=10_000)]
        ids_stored = [i for i in ids_stored if i is not None]
        assert len(ids_stored) == len(set(ids_stored))


def test_only_the_exact_header_name_is_an_id():
    """The C walk (PL_APPEND_MSG_IDS) compares whole names: look-alikes are not ids."""
    with pylog.open(None) as log:
        p = _partition(log)
        for name in ("pylog-msg-idx", "pylog-msg-i", "PYLOG-MSG-ID", "x-pylog-msg-id"):
            batch = encode_batch([b"v"], headers=[[("a", b"1"), (name, b"same")]])
            assert p.append_raw(batch).stored is None
            assert p.append_raw(batch).stored is None
        assert p.log_end_offset == 8 and len(dedup.table(p)) == 0
        # an id in the second of two batches of one request (embedded append_raw)
        two = encode_batch([b"a"]) + encode_batch([b"b", b"c"],
                                                  headers=[[], [("h", b""), (ID, b"z")]])
        assert p.append_raw(two).base_offset == 8
        assert p.append_raw(two).stored == 2 and p.log_end_offset == 13


def test_a_bytes_header_name_is_an_id_too():
    with pylog.open(None) as log:
        p = _partition(log)
        assert p.append(b"a", headers=[(ID.encode(), b"1")]) == 0
        assert p.append(b"b", headers=[(ID, b"1")]) == 0
        assert p.append_batch([b"c"], headers=[[("other", b""), (ID.encode(), b"1")]]) == 0
        assert p.log_end_offset == 1


def test_ids_survive_a_crash(tmp_path):
    log = pylog.open(tmp_path)
    p = _partition(log, **{"flush.messages": 1})
    for i in range(20):
        p.append(b"v", headers=[(ID, b"c%d" % i)])
    log._simulate_crash()
    with pylog.open(tmp_path) as log:
        p = log.partition("t", 0)
        assert [p.append(b"v", headers=[(ID, b"c%d" % i)]) for i in (3, 19)] == [3, 19]
        assert p.log_end_offset == 20


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches, st.sampled_from([0, 1, 3]))
def test_raw_batches_store_new_records_in_order(seq, codec):
    """append_raw (Kafka, text): what is stored is exactly the records whose id is new
    (or who have none), in order, and an answer's base offset follows dedup.py's rule."""
    with pylog.open(None) as log:
        p = _partition(log)
        seen: dict[bytes, int] = {}
        expect = []
        for n, ids in enumerate(seq):
            values = [b"%d-%d" % (n, j) for j in range(len(ids))]
            end = p.log_end_offset
            res = p.append_raw(encode_batch(values, headers=[_h(i) for i in ids],
                                            compression=codec))
            new = [(i, v) for i, v in zip(ids, values)
                   if i is None or (i not in seen and seen.setdefault(i, -1) == -1)]
            lead = next((k for k, i in enumerate(ids) if i is None or seen.get(i) == -1),
                        None)
            for k, (i, v) in enumerate(new):
                if i is not None:
                    seen[i] = end + k
                expect.append((end + k, v))
            if new:
                assert res.base_offset == end - lead
            else:
                assert res.base_offset == seen[ids[0]] and res.stored == 0
            assert p.log_end_offset == end + len(new)
        assert _values(p) == expect
