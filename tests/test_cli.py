"""The ``pylog`` command line as a subprocess against a real pylog-server."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pylog.testing import PylogServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("cli") / "data").start()
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture
def pylog(server):
    def run(*args, input: bytes | None = None, server_addr: str | None = None,
            env: dict | None = None, timeout: float = 60,
            quiet: bool = True) -> subprocess.CompletedProcess:
        addr = server_addr or f"127.0.0.1:{server.text_port}"
        return subprocess.run([sys.executable, "-m", "pylog.cli", "--server", addr,
                               *(["-q"] if quiet else []), *args],
                              input=input, capture_output=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    return run


_names = iter(range(10**6))


@pytest.fixture
def topic(pylog):
    name = f"cli-{next(_names)}"
    r = pylog("topics", "create", name, "--partitions", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"created topic {name} with 2 partition(s)\n".encode()
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_produce_a_message_prints_its_offset_and_consume_prints_it(pylog, topic):
    r = pylog("produce", topic, "0", "hello", "world")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"0\n", b"")
    assert pylog("produce", topic, "0", "again").stdout == b"1\n"
    r = pylog("consume", topic, "0")
    assert (r.returncode, r.stdout) == (0, b"hello world\nagain\n")


def test_produce_from_stdin_sends_one_binary_safe_record_per_line(pylog, topic):
    lines = [b"plain", b"tab\there", b"nul\0byte", b"", b"\xff\xfe not utf-8", b"last"]
    r = pylog("produce", topic, "1", input=b"\n".join(lines) + b"\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(i).encode() for i in range(len(lines))]
    r = pylog("consume", topic, "1", "--show-offsets")
    assert r.stdout == b"".join(b"%d\t%s\n" % (i, v) for i, v in enumerate(lines))


def test_produce_many_lines_from_stdin_pipelined(pylog, topic):
    data = b"".join(b"record-%d\n" % i for i in range(3000))
    r = pylog("produce", topic, "0", input=data)
    assert r.returncode == 0 and len(r.stdout.split()) == 3000
    r = pylog("consume", topic, "0", "--from", "2990")
    assert r.stdout.splitlines() == [b"record-%d" % i for i in range(2990, 3000)]


def test_consume_from_offset_and_max_records(pylog, topic):
    pylog("produce", topic, "0", input=b"a\nb\nc\nd\n")
    assert pylog("consume", topic, "0", "--from", "2").stdout == b"c\nd\n"
    assert pylog("consume", topic, "0", "--from", "latest").stdout == b""
    assert pylog("consume", topic, "0", "-n", "3").stdout == b"a\nb\nc\n"


def test_consume_follow_prints_new_records_and_stops_after_the_idle_timeout(server, topic,
                                                                           pylog):
    pylog("produce", topic, "0", "before")
    proc = subprocess.Popen([sys.executable, "-m", "pylog.cli", "--server",
                             f"127.0.0.1:{server.text_port}", "consume", topic, "0",
                             "--follow", "--timeout", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"before\n"
        assert pylog("produce", topic, "0", "during").returncode == 0
        assert proc.stdout.readline() == b"during\n"
        assert proc.wait(30) == 0                  # 3 s without a record
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_consume_follow_ends_with_130_on_ctrl_c(server, topic, pylog):
    pylog("produce", topic, "1", "x")
    proc = subprocess.Popen([sys.executable, "-m", "pylog.cli", "--server",
                             f"127.0.0.1:{server.text_port}", "consume", topic, "1", "-F"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"x\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_consume_with_a_group_resumes_after_its_commit_and_groups_show_it(pylog, topic):
    pylog("produce", topic, "0", input=b"".join(b"m%d\n" % i for i in range(6)))
    group = f"grp-{topic}"
    assert pylog("consume", topic, "0", "--group", group, "-n", "4").stdout == \
        b"m0\nm1\nm2\nm3\n"
    r = pylog("groups")
    assert r.returncode == 0 and group.encode() in r.stdout.split()
    r = pylog("groups", "describe", group)
    assert r.stdout.splitlines() == [f"group {group}: Empty, 0 member(s)".encode(),
                                     b"topic\tpartition\tcommitted\tlog_end\tlag",
                                     f"{topic}\t0\t4\t6\t2".encode()]
    assert pylog("consume", topic, "0", "--group", group).stdout == b"m4\nm5\n"
    assert pylog("consume", topic, "0", "--group", group, "--from", "5").stdout == b"m5\n"


def test_topics_list_describe_delete(pylog, topic):
    pylog("produce", topic, "1", "one")
    r = pylog("topics")
    assert f"{topic}\t2".encode() in r.stdout.splitlines()
    assert pylog("topics", "list").stdout == r.stdout
    r = pylog("topics", "describe", topic)
    rows = [row.split(b"\t") for row in r.stdout.splitlines()]
    assert rows[0] == [b"partition", b"log_start", b"log_end", b"bytes", b"records"]
    assert rows[1][:3] == [b"0", b"0", b"0"] and rows[2][:3] == [b"1", b"0", b"1"]
    assert pylog("topics", "delete", topic).stdout == f"deleted topic {topic}\n".encode()
    assert f"{topic}\t".encode() not in pylog("topics").stdout


def test_server_refusals_exit_1_with_the_kafka_error_name(pylog, topic):
    r = pylog("produce", "no-such-topic", "0", "x")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.startswith(b"pylog: UNKNOWN_TOPIC_OR_PARTITION: unknown topic")
    r = pylog("consume", topic, "5")
    assert r.returncode == 1 and b"UNKNOWN_TOPIC_OR_PARTITION" in r.stderr
    r = pylog("consume", topic, "0", "--from", "99")
    assert r.returncode == 1 and b"OFFSET_OUT_OF_RANGE" in r.stderr
    r = pylog("topics", "create", topic)
    assert r.returncode == 1 and b"TOPIC_ALREADY_EXISTS" in r.stderr
    r = pylog("topics", "create", "bad/name")
    assert r.returncode == 1 and b"INVALID_TOPIC_EXCEPTION" in r.stderr


def test_stdin_produce_reports_refused_records_and_exits_1(pylog):
    r = pylog("produce", "no-such-topic", "0", input=b"a\nb\n")
    assert r.returncode == 1
    assert b"2 of 2 records refused" in r.stderr and b"UNKNOWN_TOPIC_OR_PARTITION" in r.stderr


def test_connection_refused_is_a_clear_message_and_exit_3(pylog):
    r = pylog("topics", server_addr=f"127.0.0.1:{free_port()}")
    assert r.returncode == 3 and r.stdout == b""
    assert b"cannot connect to 127.0.0.1:" in r.stderr and b"connection refused" in r.stderr
    assert b"Traceback" not in r.stderr


@pytest.mark.parametrize("args", [
    ("consume", "t", "zero"), ("consume", "t", "-1"), ("consume", "t", "0", "--from", "x"),
    ("topics", "create"), ("topics", "frobnicate"), ("groups", "describe"), ("nothing",), (),
])
def test_usage_errors_exit_2_without_a_traceback(pylog, args):
    r = pylog(*args)
    assert r.returncode == 2 and b"usage:" in r.stderr and b"Traceback" not in r.stderr


def test_bad_server_address_is_a_usage_error(pylog):
    r = pylog("topics", server_addr="localhost")
    assert r.returncode == 2 and b"HOST:PORT" in r.stderr


def test_server_address_from_the_environment(server):
    r = subprocess.run([sys.executable, "-m", "pylog.cli", "topics"], capture_output=True,
                       timeout=60, env={**os.environ,
                                        "PYLOG_SERVER": f"127.0.0.1:{server.text_port}"})
    assert r.returncode == 0, r.stderr


def test_installed_console_script_runs(server):
    script = Path(sys.executable).with_name("pylog")
    if not script.exists():
        script = shutil.which("pylog")
    if not script:
        pytest.skip("pylog console script not installed")
    r = subprocess.run([str(script), "--server", f"127.0.0.1:{server.text_port}", "topics"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
