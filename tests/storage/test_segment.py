"""Segment mapping ownership: zero-copy views outlive the segment, its files and the log."""
from __future__ import annotations

import gc

import numpy as np

import pylog


def test_views_stay_valid_after_retention_deletes_the_segment(tmp_path):
    with pylog.open(tmp_path) as log:
        p = log.create_topic("t", config={"segment.bytes": 4096}).partition(0)
        for i in range(100):
            p.append(b"%04d" % i * 10)
        raw = p.read_raw(0, 1 << 20)
        cols = p.read_columns(0)
        first = bytes(raw)
        expect = [cols.value(i) for i in range(len(cols))]
        old_path = p.segments[0].log_path
        p.enforce_retention(now_ms=1 << 60)              # everything is "old"
        assert not old_path.exists() and p.log_start_offset > 0
        gc.collect()
        assert bytes(raw) == first                       # the unlinked file is still mapped
        assert [cols.value(i) for i in range(len(cols))] == expect


def test_views_stay_valid_after_the_log_is_closed_and_deleted(tmp_path):
    log = pylog.open(None)
    p = log.create_topic("t").partition(0)
    p.append_batch([b"abc", b"defg"])
    raw = p.read_raw(0)
    cols = p.read_columns(0)
    offsets, times = p.index_arrays()
    snapshot = bytes(raw)
    log.close()                                          # in-memory: directory removed
    del p, log
    gc.collect()
    assert bytes(raw) == snapshot
    assert bytes(cols.values[cols.value_starts[1]:][:4]) == b"defg"
    assert isinstance(offsets, np.ndarray) and len(offsets) == 0


def test_views_are_read_only(tmp_path):
    with pylog.open(tmp_path) as log:
        p = log.create_topic("t").partition(0)
        p.append(b"x")
        raw = p.read_raw(0)
        assert raw.readonly
        try:
            raw[0] = 1
        except TypeError:
            pass
        else:
            raise AssertionError("wrote through a read view")
