"""Kafka's offset-checkpoint text format (storage/checkpoint.py)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pylog.storage.checkpoint import (format_offset_checkpoint, read_offset_checkpoint,
                                      write_offset_checkpoint)

topics = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=20).filter(
    lambda t: t not in (".", ".."))


def test_format_is_kafkas(tmp_path):
    path = tmp_path / "recovery-point-offset-checkpoint"
    write_offset_checkpoint(path, {("orders", 1): 42, ("orders", 0): 7})
    assert path.read_text() == "0\n2\norders 0 7\norders 1 42\n"
    assert read_offset_checkpoint(path) == ({("orders", 0): 7, ("orders", 1): 42}, None)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.tuples(topics, st.integers(0, 1000)), st.integers(0, 2**62),
                       max_size=20))
def test_round_trip(tmp_path_factory, entries):
    path = tmp_path_factory.mktemp("cp") / "cp"
    write_offset_checkpoint(path, entries)
    assert read_offset_checkpoint(path) == (entries, None)


def test_missing_file_is_empty_without_a_warning(tmp_path):
    assert read_offset_checkpoint(tmp_path / "nope") == ({}, None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_parse_or_warn_but_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cp") / "cp"
    path.write_bytes(data)
    entries, warning = read_offset_checkpoint(path)
    if warning is not None:
        assert entries == {} and "treated as absent" in warning
    else:
        assert format_offset_checkpoint(entries) == data or entries is not None


def test_malformed_files_are_reported(tmp_path):
    path = tmp_path / "cp"
    for bad in (b"1\n0\n", b"0\n2\nt 0 1\n", b"0\n1\nt 0\n", b"0\n1\n../x 0 1\n",
                b"0\n1\nt -1 5\n", b"0\nx\n", b"\xff"):
        path.write_bytes(bad)
        entries, warning = read_offset_checkpoint(path)
        assert entries == {} and warning and "cp" in warning, bad
