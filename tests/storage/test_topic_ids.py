"""Topic ids (KIP-516): one per topic, in every partition directory, kept across restarts."""
import uuid

import pytest

import pylog
from pylog.errors import StorageError, UnknownTopicIdError
from pylog.storage import partition_metadata as pm


def test_a_new_topic_gets_an_id_written_to_every_partition_directory(tmp_path):
    with pylog.open(tmp_path) as log:
        t = log.create_topic("t", partitions=3)
        assert isinstance(t.topic_id, uuid.UUID) and t.topic_id.int > 1
        for p in t.partitions:
            assert pm.read_topic_id(p.directory) == t.topic_id
            text = (p.directory / pm.PARTITION_METADATA_FILE).read_text()
            assert text == f"version: 0\ntopic_id: {pm.format_topic_id(t.topic_id)}\n"
        assert log.topic_by_id(t.topic_id) is t
        with pytest.raises(UnknownTopicIdError):
            log.topic_by_id(uuid.uuid4())
        first = t.topic_id
    with pylog.open(tmp_path) as log:
        assert log.topic("t").topic_id == first


def test_added_partitions_carry_the_topic_id(tmp_path):
    with pylog.open(tmp_path) as log:
        t = log.create_topic("t", partitions=1)
        log.create_partitions("t", 3)
        assert {pm.read_topic_id(p.directory) for p in t.partitions} == {t.topic_id}


def test_a_topic_from_before_ids_gets_one_on_open(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t", partitions=2)
    for d in tmp_path.glob("t-*"):
        (d / pm.PARTITION_METADATA_FILE).unlink()
    with pylog.open(tmp_path) as log:
        tid = log.topic("t").topic_id
        assert {pm.read_topic_id(p.directory) for p in log.topic("t").partitions} == {tid}


def test_a_recreated_topic_gets_a_new_id(tmp_path):
    with pylog.open(tmp_path) as log:
        old = log.create_topic("t").topic_id
        log.delete_topic("t")
        assert log.create_topic("t").topic_id != old


def test_directories_with_different_ids_are_refused_not_guessed(tmp_path):
    with pylog.open(tmp_path) as log:
        log.create_topic("t", partitions=2)
    pm.write_topic_id(tmp_path / "t-1", uuid.uuid4())
    with pytest.raises(StorageError, match="different topic ids"):
        pylog.open(tmp_path)


def test_a_damaged_partition_metadata_file_is_rewritten_from_the_others(tmp_path):
    with pylog.open(tmp_path) as log:
        tid = log.create_topic("t", partitions=2).topic_id
    (tmp_path / "t-1" / pm.PARTITION_METADATA_FILE).write_bytes(b"\0garbage")
    with pylog.open(tmp_path) as log:
        assert log.topic("t").topic_id == tid
    assert pm.read_topic_id(tmp_path / "t-1") == tid


@pytest.mark.parametrize("text", ["", "version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n",
                                  "version: 0\ntopic_id: not-base64!\n", "version: 0\n"])
def test_a_damaged_partition_metadata_file_is_a_storage_error_naming_it(tmp_path, text):
    (tmp_path / pm.PARTITION_METADATA_FILE).write_text(text)
    with pytest.raises(StorageError, match="partition.metadata"):
        pm.read_topic_id(tmp_path)


def test_format_and_parse_are_inverse():
    for _ in range(100):
        u = pm.new_topic_id()
        assert pm.parse_topic_id(pm.format_topic_id(u)) == u
        assert len(pm.format_topic_id(u)) == 22
