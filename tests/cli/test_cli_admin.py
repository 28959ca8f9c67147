"""``pylog topics`` and ``pylog groups`` against a real server (and real Kafka clients
where the broker's view must agree)."""
from __future__ import annotations

import pytest

from cli_helpers import ok, refused, wait_until


def _describe(pylog, topic: str):
    """(partition rows, {config: (value, source)}) from `topics describe`."""
    text = ok(pylog("topics", "describe", topic)).decode()
    table, configs = text.split("\n\n")
    rows = [line.split("\t") for line in table.splitlines()]
    assert rows[0] == ["partition", "log_start", "log_end", "bytes", "records"]
    conf = [line.split("\t") for line in configs.splitlines()]
    assert conf[0] == ["config", "value", "source"]
    return [list(map(int, r)) for r in rows[1:]], {k: (v, s) for k, v, s in conf[1:]}


def test_topics_create_with_configs_describe_alter_grow_delete(pylog, new_topic, server):
    topic = new_topic(2, "retention.ms=3600000", "max.message.bytes=2048")
    assert f"{topic}\t2" in ok(pylog("topics")).decode().splitlines()
    ok(pylog("produce", topic, "1", input=b"a\nbb\n"))
    parts, conf = _describe(pylog, topic)
    assert [p[:3] for p in parts] == [[0, 0, 0], [1, 0, 2]]
    assert parts[1][3] > 0 and parts[1][4] == 2 and parts[0][3:] == [0, 0]
    assert conf["retention.ms"] == ("3600000", "set")
    assert conf["max.message.bytes"] == ("2048", "set")
    assert conf["segment.bytes"][1] == "default"
    assert ok(pylog("topics", "alter", topic, "-c", "retention.ms=60000")) == \
        f"altered topic {topic}: retention.ms=60000\n".encode()
    assert _describe(pylog, topic)[1]["retention.ms"] == ("60000", "set")
    # applied live: the new max.message.bytes refuses a larger record at once
    ok(pylog("topics", "alter", topic, "--config", "max.message.bytes=100"))
    assert "MESSAGE_TOO_LARGE" in refused(pylog("produce", topic, "0", "x" * 200))
    assert ok(pylog("topics", "add-partitions", topic, "--total", "4")) == \
        f"topic {topic} now has 4 partition(s)\n".encode()
    assert len(_describe(pylog, topic)[0]) == 4
    from confluent_kafka.admin import AdminClient, ConfigResource
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 4
    res = ConfigResource("topic", topic)
    seen = admin.describe_configs([res])[res].result(10)
    assert seen["retention.ms"].value == "60000"
    assert ok(pylog("topics", "delete", topic)) == f"deleted topic {topic}\n".encode()
    assert f"{topic}\t" not in ok(pylog("topics")).decode()


@pytest.mark.parametrize("args, code, text", [
    (("topics", "create", "x", "--config", "retention.ms"), 2, "--config must be NAME=VALUE"),
    (("topics", "create", "x", "--config", "=5"), 2, "--config must be NAME=VALUE"),
    (("topics", "create", "bad-cfg", "--config", "no.such.key=1"), 1, "INVALID_CONFIG"),
    (("topics", "create", "bad-val", "--config", "retention.ms=soon"), 1, "INVALID_CONFIG"),
    (("topics", "describe", "no-such-topic"), 1, "UNKNOWN_TOPIC_OR_PARTITION"),
    (("topics", "delete", "no-such-topic"), 1, "UNKNOWN_TOPIC_OR_PARTITION"),
    (("topics", "alter", "no-such-topic", "-c", "retention.ms=1"), 1,
     "UNKNOWN_TOPIC_OR_PARTITION"),
    (("topics", "add-partitions", "no-such-topic", "--total", "3"), 1,
     "UNKNOWN_TOPIC_OR_PARTITION"),
    (("topics", "alter", "x"), 2, "needs at least one --config"),
    (("topics", "add-partitions", "x"), 2, "needs --total"),
    (("topics", "describe"), 2, "needs a topic name"),
    (("topics", "list", "-c", "a=b"), 2, "--config is for"),
    (("groups", "seek", "g"), 2, "needs --topic"),
    (("groups", "seek", "g", "--topic", "t", "--to", "yesterday"), 2, "--to must be"),
    (("groups", "describe", "g", "--dry-run"), 2, "are for groups seek"),
])
def test_bad_admin_input_is_a_clear_message_and_a_nonzero_exit(pylog, args, code, text):
    assert text in refused(pylog(*args), code)


def test_bad_config_values_and_shrinking_are_refused_and_change_nothing(pylog, new_topic):
    topic = new_topic(3)
    assert "INVALID_CONFIG" in refused(pylog("topics", "alter", topic, "-c", "nope=1"))
    assert "INVALID_CONFIG" in refused(pylog("topics", "alter", topic, "-c",
                                             "retention.ms=-7x"))
    assert "INVALID_PARTITIONS" in refused(pylog("topics", "add-partitions", topic,
                                                 "--total", "2"))
    parts, conf = _describe(pylog, topic)
    assert len(parts) == 3 and conf["retention.ms"][1] == "default"
    assert "bad-cfg" not in ok(pylog("topics")).decode()


def test_groups_list_describe_and_a_missing_group(pylog, new_topic):
    topic = new_topic(2)
    ok(pylog("produce", topic, "0", input=b"a\nb\nc\n"))
    group = f"g-{topic}"
    ok(pylog("consume", topic, "0", "-g", group, "-n", "2"))
    assert group in ok(pylog("groups")).decode().split()
    assert ok(pylog("groups", "describe", group)).decode().splitlines() == [
        f"group {group}: Empty, 0 member(s)", "topic\tpartition\tcommitted\tlog_end\tlag",
        f"{topic}\t0\t2\t3\t1"]
    r = pylog("groups", "describe", "no-such-group")
    assert r.stdout == b""
    assert refused(r) == "pylog: group 'no-such-group' does not exist\n"


def test_groups_seek_to_each_target_with_a_dry_run(pylog, new_topic):
    topic = new_topic(2)
    for p in (0, 1):
        ok(pylog("produce", topic, str(p), "--timestamp", "1000", "old"))
        ok(pylog("produce", topic, str(p), "--timestamp", "5000", "new"))
        ok(pylog("produce", topic, str(p), "--timestamp", "9000", "newer"))
    group = f"g-{topic}"
    ok(pylog("consume", topic, "0", "-g", group, "-n", "1"))

    def committed():
        out = ok(pylog("groups", "describe", group)).decode().splitlines()[2:]
        return {int(r.split("\t")[1]): int(r.split("\t")[2]) for r in out}

    out = ok(pylog("groups", "seek", group, "--topic", topic, "--to", "latest", "--dry-run"))
    assert out.decode().splitlines() == [f"{topic}\t0\t1 -> 3", f"{topic}\t1\t- -> 3",
                                         "dry run: nothing committed"]
    assert committed() == {0: 1}
    ok(pylog("groups", "seek", group, "--topic", topic, "--to", "latest"))
    assert committed() == {0: 3, 1: 3}
    out = ok(pylog("groups", "seek", group, "--topic", topic, "--to", "earliest"))
    assert out.decode().splitlines()[:2] == [f"{topic}\t0\t3 -> 0", f"{topic}\t1\t3 -> 0"]
    assert committed() == {0: 0, 1: 0}
    ok(pylog("groups", "seek", group, "--topic", topic, "--to", "offset:2"))
    assert committed() == {0: 2, 1: 2}
    ok(pylog("groups", "seek", group, "--topic", topic, "--to", "offset:99"))
    assert committed() == {0: 3, 1: 3}                  # kept within the log
    ok(pylog("groups", "seek", group, "--topic", topic, "--to", "time:4000"))
    assert committed() == {0: 1, 1: 1}
    ok(pylog("groups", "seek", group, "--topic", topic, "--to",
             "time:1970-01-01T00:00:06Z"))
    assert committed() == {0: 2, 1: 2}
    assert ok(pylog("consume", topic, "-g", group)).split() == [b"newer", b"newer"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in refused(
        pylog("groups", "seek", group, "--topic", "no-such-topic", "--to", "earliest"))


def test_groups_delete_and_both_refusals_while_a_kafka_consumer_is_active(pylog, new_topic,
                                                                          server):
    import confluent_kafka as ck
    topic = new_topic(1)
    ok(pylog("produce", topic, "0", input=b"a\nb\n"))
    group = f"g-{topic}"
    c = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    c.subscribe([topic])
    try:
        wait_until(lambda: c.poll(0.2) is not None, what="a record")
        c.commit(asynchronous=False)
        wait_until(lambda: b"Stable, 1 member(s)" in pylog("groups", "describe", group).stdout,
                   what="a Stable group")
        out = ok(pylog("groups", "describe", group)).decode()
        assert "\n\nmember\tclient_id\thost\n" in out
        text = refused(pylog("groups", "seek", group, "--topic", topic, "--to", "earliest"))
        assert "1 active member(s)" in text and "stop its consumers" in text
        text = refused(pylog("groups", "delete", group))
        assert "NON_EMPTY_GROUP" in text
    finally:
        c.close()
    wait_until(lambda: b"Empty, 0 member(s)" in pylog("groups", "describe", group).stdout,
               what="the group to empty")
    out = ok(pylog("groups", "delete", group)).decode()
    assert out.startswith(f"deleted group {group} (")
    assert group not in ok(pylog("groups")).decode().split()
    assert "does not exist" in refused(pylog("groups", "describe", group))
    assert "GROUP_ID_NOT_FOUND" in refused(pylog("groups", "delete", group))
