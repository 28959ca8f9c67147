"""Delivery hints, backoff and share group configs (pylog/broker/share_delivery.py,
group_configs.py): parsing, bounds, and the errors bad values get."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from pylog.broker.group_configs import GroupConfigs, validate
from pylog.broker.share_delivery import (DEFAULT_PRIORITY, NO_HINTS, Backoff, Hints,
                                         parse_auto_offset_reset, parse_hints,
                                         parse_iso_duration)
from pylog.errors import InvalidConfigError, InvalidRecordError

TS = 1_700_000_000_000


def test_a_record_without_pylog_headers_has_no_hints():
    assert parse_hints(None, TS) is NO_HINTS
    assert parse_hints([("trace", b"x"), ("pylog-msg-id", b"1")], TS) is NO_HINTS
    assert parse_hints([("pylog-priority", b"4")], TS) is NO_HINTS    # the default


def test_each_header_sets_its_hint():
    h = parse_hints([("pylog-deliver-at", b"%d" % (TS + 5000))], TS)
    assert h == Hints(deliver_at=TS + 5000)
    assert parse_hints([("pylog-delay-ms", b"250")], TS).deliver_at == TS + 250
    assert parse_hints([("pylog-ttl-ms", b"1000")], TS).expires_at == TS + 1000
    assert parse_hints([("pylog-priority", b"9")], TS).priority == 9
    both = parse_hints([("pylog-deliver-at", b"%d" % (TS + 10)),
                        ("pylog-delay-ms", b"20")], TS)
    assert both.deliver_at == TS + 20                        # the later of the two
    last = parse_hints([("pylog-priority", b"1"), ("pylog-priority", b"7")], TS)
    assert last.priority == 7                                # the last one wins


def test_topic_ttl_applies_unless_the_header_says_otherwise():
    assert parse_hints(None, TS, 60_000).expires_at == TS + 60_000
    assert parse_hints(None, TS, -1) is NO_HINTS
    assert parse_hints([("pylog-ttl-ms", b"5")], TS, 60_000).expires_at == TS + 5
    assert parse_hints([("pylog-ttl-ms", b"-1")], TS, 60_000) is NO_HINTS


@pytest.mark.parametrize("name,value", [
    ("pylog-priority", b"10"), ("pylog-priority", b"-1"), ("pylog-priority", b"high"),
    ("pylog-delay-ms", b"-5"), ("pylog-delay-ms", b"1e3"), ("pylog-deliver-at", b""),
    ("pylog-ttl-ms", b"-2"), ("pylog-ttl-ms", None), ("pylog-deliver-at", b"\xff1"),
    ("pylog-delay-ms", b"99999999999999999999"),
])
def test_a_bad_value_is_invalid_record_naming_the_header(name, value):
    with pytest.raises(InvalidRecordError) as ei:
        parse_hints([(name, value)], TS)
    assert ei.value.errno == 87 and name in str(ei.value)


@given(st.lists(st.tuples(st.sampled_from(["pylog-priority", "pylog-delay-ms",
                                           "pylog-ttl-ms", "pylog-deliver-at", "x"]),
                          st.one_of(st.none(), st.binary(max_size=24)))),
       st.integers(0, 1 << 62))
def test_parse_hints_raises_only_invalid_record(headers, ts):
    try:
        h = parse_hints(headers, ts)
    except InvalidRecordError:
        return
    assert 0 <= h.priority <= 9 and h.deliver_at >= 0


def test_backoff_grows_to_its_cap_and_jitter_only_shortens_it():
    b = Backoff(100, 1000, 2.0, 0.0)
    assert [b.delay_ms(n, 0.5) for n in (1, 2, 3, 4, 5, 50)] == [100, 200, 400, 800,
                                                                 1000, 1000]
    j = Backoff(1000, 1000, 2.0, 0.25)
    assert j.delay_ms(1, 0.0) == 1000 and j.delay_ms(1, 0.999) >= 750
    assert Backoff().delay_ms(3, 0.5) == 0                   # Kafka: at once


def test_iso_durations_and_auto_offset_reset():
    assert parse_iso_duration("PT1H") == 3_600_000
    assert parse_iso_duration("P1DT2H3M4.5S") == ((26 * 60 + 3) * 60 + 4) * 1000 + 500
    assert parse_auto_offset_reset("by_duration:PT30S") == 30_000
    assert parse_auto_offset_reset("EARLIEST") == "earliest"
    for bad in ("P", "PT", "1H", "-PT1H", "by_duration:", "newest"):
        with pytest.raises(InvalidConfigError):
            parse_auto_offset_reset(bad if bad == "newest" or bad.startswith("by")
                                    else "by_duration:" + bad)


def test_share_group_configs_are_checked_with_kafkas_bounds():
    ok = validate({"share.delivery.count.limit": "10", "share.auto.offset.reset":
                   "by_duration:PT1H", "share.redelivery.backoff.ms": "100",
                   "share.redelivery.backoff.multiplier": "1.5",
                   "errors.deadletterqueue.enable": "FALSE",
                   "errors.deadletterqueue.topic.name": "dead.orders",
                   "share.expired.action": "dlq", "share.priority.window.records": "1"})
    assert ok["errors.deadletterqueue.enable"] == "false"
    for name, value, why in [
            ("share.delivery.count.limit", "1", "greater than or equal to 2"),
            ("share.delivery.count.limit", "11", "less than or equal to 10"),
            ("share.auto.offset.reset", "newest", "by_duration"),
            ("share.redelivery.backoff.multiplier", "0.5", "between"),
            ("share.redelivery.backoff.jitter", "x", "DOUBLE"),
            ("errors.deadletterqueue.enable", "yes", "true or false"),
            ("errors.deadletterqueue.topic.name", "no/slash", "illegal"),
            ("share.expired.action", "drop", "archive, dlq"),
            ("share.priority.window.records", "0", "greater than or equal to 1")]:
        with pytest.raises(InvalidConfigError, match=why) as ei:
            validate({name: value})
        assert name in str(ei.value)
    with pytest.raises(InvalidConfigError, match="must not be greater"):
        validate({"share.redelivery.backoff.ms": "5000",
                  "share.redelivery.backoff.max.ms": "1000"})


def test_share_configs_persist_and_describe_with_defaults(tmp_path):
    c = GroupConfigs(tmp_path)
    c.alter("g", {"share.expired.action": "dlq", "share.delivery.count.limit": "3"})
    got = {k: (v, d) for k, v, d in GroupConfigs(tmp_path).describe("g")}
    assert got["share.expired.action"] == ("dlq", False)
    assert got["share.delivery.count.limit"] == ("3", False)
    assert got["errors.deadletterqueue.enable"] == ("true", True)
    assert got["share.redelivery.backoff.ms"] == ("0", True)
    assert got["share.priority.window.records"] == ("200", True)
    assert DEFAULT_PRIORITY == 4
