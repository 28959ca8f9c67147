"""``pylog queue`` against a real server: receive (+ ack / release / reject), stats,
settling from another process (refused), dead letters listed and requeued."""
from __future__ import annotations

import json

from pylog.broker.dead_letters import DeadLetterOrigin, dlq_headers

from cli_helpers import ok, refused


def _produce(pylog, topic, *values):
    for v in values:
        ok(pylog("produce", topic, "0", v))


def test_receive_ack_then_nothing_is_left(pylog, new_topic):
    topic = new_topic(1)
    ok(pylog("queue", "receive", "cq1", topic))          # first use: starts at the end
    _produce(pylog, topic, "a", "b", "c")
    out = ok(pylog("queue", "receive", "cq1", topic, "-n", "2", "--ack"))
    assert out == b"a\nb\n"
    rows = ok(pylog("queue", "receive", "cq1", topic, "-f", "json", "--ack")).splitlines()
    assert [(r["offset"], r["value"], r["delivery_count"]) for r in map(json.loads, rows)] \
        == [(2, "c", 1)]
    assert ok(pylog("queue", "receive", "cq1", topic)) == b""
    stats = ok(pylog("queue", "stats", "cq1", topic)).decode().splitlines()
    head = stats[0].split("\t")
    row = dict(zip(head, stats[1].split("\t")))
    assert row["partition"] == "0" and row["acknowledged_total"] == "3"


def test_receive_without_ack_gives_the_records_back(pylog, new_topic):
    topic = new_topic(1)
    ok(pylog("queue", "receive", "cq2", topic))
    _produce(pylog, topic, "x")
    assert ok(pylog("queue", "receive", "cq2", topic)) == b"x\n"
    rows = ok(pylog("queue", "receive", "cq2", topic, "-f", "json", "--release"))
    assert json.loads(rows)["delivery_count"] == 2
    rows = ok(pylog("queue", "receive", "cq2", topic, "-f", "json", "--reject"))
    assert json.loads(rows)["delivery_count"] == 3
    assert ok(pylog("queue", "receive", "cq2", topic)) == b""


def test_settling_from_another_process_is_refused(pylog, new_topic):
    topic = new_topic(1)
    ok(pylog("queue", "receive", "cq3", topic))
    _produce(pylog, topic, "x")
    err = refused(pylog("queue", "ack", "cq3", topic, "0", "0"))
    assert "UNKNOWN_MEMBER_ID" in err
    assert ok(pylog("queue", "receive", "cq3", topic, "--ack")) == b"x\n"
    assert "INVALID_REQUEST" in refused(pylog("queue", "ack", "cq3", topic, "0", "9-2"))
    assert "UNKNOWN_TOPIC" in refused(pylog("queue", "stats", "cq3", "no-such-topic"))
    refused(pylog("queue", "receive", "cq3", topic, "-n", "0"), code=2)


def test_dlq_list_and_requeue(pylog, new_topic, server):
    from pylog.cli.client import TextClient
    topic = new_topic(1)
    ok(pylog("topics", "create", topic + ".dlq", "--partitions", "1"))
    client = TextClient(f"127.0.0.1:{server.text_port}")
    try:
        for i in range(3):
            origin = DeadLetterOrigin("cq4", topic, 0, i, 5, "rejected", 1_700_000_000_000)
            client.send(client.produce_frame(topic + ".dlq", 0, b"dead%d" % i, None,
                                             [(k.encode(), v) for k, v in dlq_headers(origin)]))
            client.line()
    finally:
        client.close()
    rows = ok(pylog("queue", "dlq", "list", topic)).decode().splitlines()
    assert len(rows) == 4
    assert rows[1].split("\t") == ["0", "0", "cq4", topic, "0", "0", "5", "rejected",
                                   "1700000000000", "dead0"]
    out = ok(pylog("queue", "dlq", "requeue", topic + ".dlq", "0", "1")).decode()
    assert out.strip() == f"{topic}.dlq 0 1 -> {topic} 0 0"
    out = ok(pylog("queue", "dlq", "requeue", topic + ".dlq", "--all")).decode()
    assert out.splitlines()[1] == f"{topic}.dlq 0 1 -> {topic} 0 0"      # not twice
    assert [line.split()[-1] for line in out.splitlines()] == ["1", "0", "2"]
    refused(pylog("queue", "dlq", "requeue", topic + ".dlq"), code=2)
    assert "OFFSET_OUT_OF_RANGE" in refused(
        pylog("queue", "dlq", "requeue", topic + ".dlq", "0", "77"))
