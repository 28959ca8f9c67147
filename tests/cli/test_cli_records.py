"""``pylog produce`` / ``pylog consume``: keys, headers, timestamps, routing, formats,
start positions, the server line and --version, against a real server."""
from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys

import pytest

from cli_helpers import ok, refused
from pylog import __version__
from pylog.partitioner import partition_for_key


def test_version_prints_the_package_version_without_a_server():
    r = subprocess.run([sys.executable, "-m", "pylog.cli", "--version"], capture_output=True,
                       timeout=60, env={**os.environ, "PYLOG_SERVER": "127.0.0.1:1"})
    assert (r.returncode, r.stdout.decode()) == (0, f"pylog {__version__}\n"), r.stderr


def test_every_command_names_its_server_on_stderr_unless_quiet(pylog, server):
    addr = f"127.0.0.1:{server.text_port}"
    r = pylog("topics", quiet=False)
    assert r.returncode == 0 and r.stderr == f"pylog: server {addr} (--server)\n".encode()
    r = pylog("topics", quiet=False, server_flag=False, env={"PYLOG_SERVER": addr})
    assert r.returncode == 0 and r.stderr == f"pylog: server {addr} (PYLOG_SERVER)\n".encode()
    r = pylog("topics", server_flag=False, env={"PYLOG_SERVER": addr})
    assert (r.returncode, r.stderr) == (0, b"")
    # --server and -q also work after the command
    r = subprocess.run([sys.executable, "-m", "pylog.cli", "topics", "list", "--server", addr,
                        "-q"], capture_output=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, b"")
    env = {k: v for k, v in os.environ.items() if k != "PYLOG_SERVER"}
    r = subprocess.run([sys.executable, "-m", "pylog.cli", "topics"], capture_output=True,
                       timeout=60, env=env)
    assert r.stderr.startswith(b"pylog: server 127.0.0.1:3000 (default)\n")


def test_keyed_records_go_where_a_confluent_kafka_murmur2_producer_puts_them(
        pylog, new_topic, server):
    import confluent_kafka as ck
    partitions = 7
    topic = new_topic(partitions)
    rng = random.Random(14)
    keys = [b"", b"a", b"customer-42", "ключ-ü".encode()] + \
        [bytes(rng.randrange(33, 127) for _ in range(rng.randrange(1, 40)))
         .replace(b":", b"_") for _ in range(200)]
    producer = ck.Producer({"bootstrap.servers": server.bootstrap,
                            "partitioner": "murmur2_random", "linger.ms": 5})
    theirs = {}

    def delivered(err, msg):
        assert err is None, err
        theirs[msg.key()] = msg.partition()

    for k in keys:
        producer.produce(topic, key=k, value=b"ck", on_delivery=delivered)
    assert producer.flush(30) == 0 and len(theirs) == len(set(keys))
    r = pylog("produce", topic, "-K", ":", input=b"".join(k + b":cli\n" for k in keys))
    ours = [int(line.split(b"\t")[0]) for line in ok(r).splitlines()]
    assert ours == [theirs[k] for k in keys]
    assert ours == [partition_for_key(k, partitions) for k in keys]
    # -k KEY routes the same way
    out = ok(pylog("produce", topic, "-k", "customer-42", "hello", "world"))
    assert int(out.split(b"\t")[0]) == theirs[b"customer-42"]


def test_null_keys_spread_over_partitions(pylog, new_topic):
    topic = new_topic(3)
    out = ok(pylog("produce", topic, input=b"".join(b"v%d\n" % i for i in range(30))))
    used = {int(line.split(b"\t")[0]) for line in out.splitlines()}
    assert used == {0, 1, 2}


def test_keys_headers_and_timestamps_arrive_as_kafka_record_fields(pylog, new_topic, server):
    import confluent_kafka as ck
    topic = new_topic(1)
    ok(pylog("produce", topic, "0", "-k", "k1", "-H", "source=web", "-H", "trace=a=b",
             "--timestamp", "1700000000123", "hello", "there"))
    c = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": f"g-{topic}"})
    c.assign([ck.TopicPartition(topic, 0, 0)])
    try:
        m = c.poll(15)
        assert m is not None and m.error() is None
        assert (m.key(), m.value()) == (b"k1", b"hello there")
        assert m.headers() == [("source", b"web"), ("trace", b"a=b")]
        assert m.timestamp() == (ck.TIMESTAMP_CREATE_TIME, 1700000000123)
    finally:
        c.close()


def test_consume_formats_value_key_value_and_json_with_base64_for_non_utf8(pylog,
                                                                           new_topic):
    topic = new_topic(1)
    ok(pylog("produce", topic, "0", "-k", "k1", "-H", "h=v", "--timestamp", "5", "plain"))
    ok(pylog("produce", topic, "0", "-K", "|", input=b"\xff\xfe|\x00bin\x9f\n|empty-key\n"
             b"no-key\n"))
    assert ok(pylog("consume", topic)) == b"plain\n\x00bin\x9f\nempty-key\nno-key\n"
    assert ok(pylog("consume", topic, "0", "-f", "key:value")) == \
        b"k1:plain\n\xff\xfe:\x00bin\x9f\n:empty-key\n:no-key\n"
    rows = [json.loads(line) for line in ok(pylog("consume", topic, "-f", "json")).splitlines()]
    assert rows[0] == {"topic": topic, "partition": 0, "offset": 0, "timestamp": 5,
                       "key": "k1", "value": "plain", "headers": [["h", "v"]]}
    assert rows[1]["key"] == {"base64": base64.b64encode(b"\xff\xfe").decode()}
    assert rows[1]["value"] == {"base64": base64.b64encode(b"\x00bin\x9f").decode()}
    assert (rows[2]["key"], rows[3]["key"]) == ("", None)
    assert [r["offset"] for r in rows] == [0, 1, 2, 3]


def test_consume_all_partitions_from_offset_time_and_last(pylog, new_topic):
    topic = new_topic(2)
    for p in (0, 1):
        ok(pylog("produce", topic, str(p), "--timestamp", "1000", f"p{p}-old"))
        for i in range(3):
            ok(pylog("produce", topic, str(p), "--timestamp", str(2000 + i), f"p{p}-{i}"))
    everything = ok(pylog("consume", topic)).splitlines()
    assert sorted(everything) == sorted(b"p%d-%s" % (p, s) for p in (0, 1)
                                        for s in (b"old", b"0", b"1", b"2"))
    assert ok(pylog("consume", topic, "--last", "1", "--show-offsets")) == \
        b"0\t3\tp0-2\n1\t3\tp1-2\n"
    assert ok(pylog("consume", topic, "1", "--last", "2")) == b"p1-1\np1-2\n"
    assert ok(pylog("consume", topic, "0", "--from", "3")) == b"p0-2\n"
    assert ok(pylog("consume", topic, "--from", "3")) == b"p0-2\np1-2\n"
    assert ok(pylog("consume", topic, "--from", "99")) == b""      # kept within range
    assert ok(pylog("consume", topic, "0", "--from-time", "2001")) == b"p0-1\np0-2\n"
    assert ok(pylog("consume", topic, "1", "--from-time", "1970-01-01T00:00:02.002Z")) == \
        b"p1-2\n"
    assert ok(pylog("consume", topic, "--from-time", "9999999999999")) == b""
    assert ok(pylog("consume", topic, "-n", "3")).count(b"\n") == 3


def test_consume_all_partitions_with_a_group_commits_each(pylog, new_topic):
    topic = new_topic(2)
    ok(pylog("produce", topic, "0", input=b"a\nb\n"))
    ok(pylog("produce", topic, "1", input=b"c\n"))
    group = f"g-{topic}"
    assert sorted(ok(pylog("consume", topic, "-g", group)).split()) == [b"a", b"b", b"c"]
    ok(pylog("produce", topic, "1", "d"))
    assert ok(pylog("consume", topic, "-g", group)) == b"d\n"


@pytest.mark.parametrize("args, code, text", [
    (("produce", "no-such-topic", "-k", "k", "x"), 1, "UNKNOWN_TOPIC_OR_PARTITION"),
    (("consume", "no-such-topic"), 1, "UNKNOWN_TOPIC_OR_PARTITION"),
    (("consume", "no-such-topic", "--from-time", "5"), 1, "UNKNOWN_TOPIC_OR_PARTITION"),
    (("produce", "t", "-p", "-2", "x"), 2, "--partition must be -1"),
    (("produce", "t", "0", "-H", "novalue", "x"), 2, "--header must be NAME=VALUE"),
    (("produce", "t", "0", "--timestamp", "soon", "x"), 2, "not an integer"),
    (("consume", "t", "--from-time", "yesterday"), 2, "not a time"),
    (("consume", "t", "--last", "1", "--from", "0"), 2, "not allowed with"),
    (("consume", "t", "-f", "xml"), 2, "invalid choice"),
    (("consume", "t", "-f", "json", "--show-offsets"), 2, "--show-offsets is for"),
])
def test_bad_input_is_a_clear_message_and_a_nonzero_exit(pylog, args, code, text):
    assert text in refused(pylog(*args), code)


@pytest.mark.parametrize("command", [(), ("produce",), ("consume",), ("topics",), ("groups",)])
def test_help_of_every_command_exits_0(command):
    r = subprocess.run([sys.executable, "-m", "pylog.cli", *command, "--help"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(b"usage: pylog"), r.stderr
    if not command:
        assert b"exit status: 0 ok; 1 refused" in r.stdout and b"docs/cli.md" in r.stdout
