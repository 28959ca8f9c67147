"""TopicConfig: Kafka's keys and defaults, string values as the admin API sends them,
InvalidConfigError naming the key, round trips through to_dict/JSON, describe()."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from pylog.config import TOPIC_CONFIG_SPECS, TopicConfig
from pylog.errors import InvalidConfigError


def test_defaults_follow_kafka_and_pylog_flush_policy():
    c = TopicConfig()
    assert c.segment_bytes == 1 << 30
    assert c.segment_ms == 7 * 24 * 3600 * 1000
    assert c.segment_index_bytes == 10 << 20
    assert c.index_interval_bytes == 4096
    assert c.retention_ms == 604_800_000 and c.retention_bytes == -1
    assert c.flush_messages is None and c.flush_ms == 1000
    assert c.max_message_bytes == 1_048_588
    assert c.message_timestamp_type == "CreateTime"
    assert c.cleanup_policy == ("delete",)
    assert not c.flush_every_message and c.explicit == frozenset()


def test_string_values_are_accepted_like_kafka():
    c = TopicConfig.from_dict({"retention.ms": "1000", "segment.bytes": " 1024 ",
                               "flush.messages": "1", "cleanup.policy": " delete",
                               "preallocate": "false", "min.cleanable.dirty.ratio": "0.5",
                               "message.timestamp.type": "LogAppendTime"})
    assert (c.retention_ms, c.segment_bytes, c.flush_messages) == (1000, 1024, 1)
    assert c.cleanup_policy == ("delete",) and c.preallocate is False
    assert c.min_cleanable_dirty_ratio == 0.5 and c.flush_every_message
    assert c.message_timestamp_type == "LogAppendTime"


@pytest.mark.parametrize("key, value", [
    ("no.such.key", 1),
    ("segment.bytes", 13),                 # Kafka's minimum is 14
    ("segment.bytes", 1 << 31),            # int32
    ("retention.ms", -2),
    ("retention.ms", "7 days"),
    ("retention.ms", 1.5),
    ("flush.messages", 0),
    ("flush.ms", True),
    ("max.message.bytes", None),
    ("message.timestamp.type", "Now"),
    ("cleanup.policy", "delete,forever"),
    ("cleanup.policy", ""),
    ("preallocate", "yes"),
    ("min.cleanable.dirty.ratio", "1.5"),
])
def test_invalid_config_names_the_key(key, value):
    with pytest.raises(InvalidConfigError, match=key.replace(".", r"\.")):
        TopicConfig.from_dict({key: value})


def test_nullable_flush_keys_reset_to_never():
    c = TopicConfig.from_dict({"flush.ms": None, "flush.messages": "null"})
    assert c.flush_ms is None and c.flush_messages is None


def test_to_dict_round_trips_through_json():
    c = TopicConfig.from_dict({"retention.bytes": 1 << 40, "cleanup.policy": "delete",
                               "flush.ms": None})
    again = TopicConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and hash(again) == hash(c)
    assert c.to_dict(only_explicit=True) == {"retention.bytes": 1 << 40, "flush.ms": None,
                                             "cleanup.policy": "delete"}
    assert set(c.to_dict()) == {s.name for s in TOPIC_CONFIG_SPECS}


def test_describe_reports_strings_and_defaults():
    rows = {n: (v, d) for n, v, d in TopicConfig.from_dict(
        {"retention.ms": 5, "preallocate": False}).describe()}
    assert rows["retention.ms"] == ("5", False)
    assert rows["preallocate"] == ("false", False)
    assert rows["segment.bytes"] == ("1073741824", True)
    assert rows["flush.messages"] == (None, True)
    assert rows["cleanup.policy"] == ("delete", True)


def test_config_is_immutable_and_updates_make_copies():
    c = TopicConfig()
    with pytest.raises(AttributeError):
        c.retention_ms = 5
    d = c.with_updates({"retention.ms": "5"})
    assert (c.retention_ms, d.retention_ms) == (604_800_000, 5)
    assert d.get("retention.ms") == 5 and d.explicit == {"retention.ms"}
    with pytest.raises(InvalidConfigError, match="nope"):
        d.get("nope")
    assert TopicConfig(retention_ms=7).retention_ms == 7


@given(seg=st.integers(14, (1 << 31) - 1), ret=st.integers(-1, (1 << 63) - 1),
       interval=st.integers(0, 1 << 20))
def test_valid_numbers_round_trip_as_ints_and_strings(seg, ret, interval):
    d = {"segment.bytes": seg, "retention.ms": ret, "index.interval.bytes": interval}
    c = TopicConfig.from_dict({k: str(v) for k, v in d.items()})
    assert {k: c.get(k) for k in d} == d == {k: TopicConfig.from_dict(d).get(k) for k in d}
