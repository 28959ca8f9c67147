"""Names and paths (storage/files.py): Kafka's topic rule, path safety, atomic writes."""
from __future__ import annotations

import os
import re
import string

import pytest
from hypothesis import given, settings, strategies as st

from pylog.errors import InvalidTopicError
from pylog.storage import files

KAFKA_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def kafka_is_valid(name: str) -> bool:
    """Kafka's Topic.validate, transcribed."""
    return (0 < len(name) <= 249 and name not in (".", "..")
            and KAFKA_LEGAL.fullmatch(name) is not None)


names = st.one_of(
    st.text(max_size=260),
    st.text(alphabet=string.ascii_letters + string.digits + "._-/\\\x00 é", max_size=12),
    st.integers(247, 251).map(lambda n: "a" * n),
    st.sampled_from([".", "..", "../x", "a/b", "/etc", "a\nb", "ok\n", "__consumer_offsets"]))


@settings(max_examples=500, deadline=None)
@given(names)
def test_topic_names_are_accepted_exactly_as_kafka_accepts_them(name):
    if kafka_is_valid(name):
        assert files.validate_topic_name(name) == name
    else:
        with pytest.raises(InvalidTopicError):
            files.validate_topic_name(name)


@settings(max_examples=200, deadline=None)
@given(names)
def test_no_topic_name_builds_a_path_outside_the_data_dir(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("data")
    try:
        path = files.partition_dir(root, name, 0)
    except InvalidTopicError:
        return
    assert path.parent == root.resolve()


def test_a_symlinked_partition_dir_escaping_the_data_dir_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "t-0")
    with pytest.raises(InvalidTopicError, match="outside"):
        files.partition_dir(tmp_path / "data", "t", 0)


def test_error_names_the_topic():
    with pytest.raises(InvalidTopicError, match="a/b"):
        files.validate_topic_name("a/b")


def test_segment_names_round_trip():
    assert files.filename_prefix(42) == "00000000000000000042"
    assert files.log_file(files.Path("/d"), 7).name == "00000000000000000007.log"
    assert files.parse_base_offset("00000000000000000042.timeindex") == (42, ".timeindex")
    for bad in ("42.log", "00000000000000000042.log.deleted", "0000000000000000004x.log",
                "00000000000000000042.txt"):
        assert files.parse_base_offset(bad) is None
    assert files.parse_partition_dir("my-topic-12") == ("my-topic", 12)
    assert files.parse_partition_dir("no_partition") is None
    assert files.parse_partition_dir("bad/name-1") is None


def test_atomic_write_replaces_the_whole_file(tmp_path):
    target = tmp_path / "f"
    files.atomic_write(target, b"one")
    files.atomic_write(target, b"two-longer")
    assert target.read_bytes() == b"two-longer"
    assert sorted(os.listdir(tmp_path)) == ["f"]
