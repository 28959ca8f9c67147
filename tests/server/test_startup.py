"""pylog-server start-up as an operator sees it: every bad flag / env / TOML value exits 2
with one line naming it (no traceback, nothing created); a port in use exits 1 and leaves
no data directory behind; one stdout line names every listener; the effective
configuration is logged; /healthz says starting, then ready; --version; recovery after
kill -9 logs what it scanned and dropped."""
from __future__ import annotations

import asyncio
import json
import re
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from hypothesis import given, settings, strategies as st

from pylog.server.settings import SETTINGS, ConfigError, parse_config
from pylog.testing import PylogServer

SERVER = [sys.executable, "-m", "pylog.server.main"]


def run_server(args, tmp_path, env=None, timeout=30):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(SERVER + args, capture_output=True, text=True, timeout=timeout,
                          env=e, cwd=tmp_path, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args,env,needle", [
    (["--num-partitions", "0"], {}, "--num-partitions: 0 is out of range: expected an "
                                    "integer from 1 to 10000"),
    (["--num-partitions", "-3"], {}, "--num-partitions: -3 is out of range"),
    (["--num-partitions", "ten"], {}, "--num-partitions: expected an integer from 1 to "
                                      "10000, got 'ten'"),
    ([], {"PYLOG_NUM_PARTITIONS": "100000"}, "environment PYLOG_NUM_PARTITIONS: 100000"),
    (["--kafka-listener", "127.0.0.1:port"], {}, "--kafka-listener: expected [PROTOCOL://]HOST:PORT"),
    (["--kafka-listener", "TLS://127.0.0.1:1"], {}, "unknown listener protocol 'TLS'"),
    (["--kafka-listener", "0.0.0.0:0"], {}, "on 0.0.0.0 would let anyone read and write"),
    (["--kafka-listener", "0.0.0.0:0", "--text-port", "-1", "--http-port", "-1"], {},
     "would let anyone who can reach 0.0.0.0"),
    (["--kafka-listener", "SSL://127.0.0.1:0"], {}, "needs ssl_certfile"),
    (["--kafka-listener", "127.0.0.1:70000"], {}, "port 70000 is out of range"),
    (["--text-port", "-2"], {}, "--text-port: -2 is out of range"),
    (["--idle-ms", "0"], {}, "--idle-ms: 0 is out of range"),
    (["--max-request-bytes", "1"], {}, "--max-request-bytes: 1 is out of range"),
    (["--log-level", "LOUD"], {}, "--log-level: expected one of DEBUG"),
    ([], {"PYLOG_AUTO_CREATE_TOPICS": "perhaps"}, "PYLOG_AUTO_CREATE_TOPICS: expected "
                                                  "true or false"),
])
def test_bad_value_exits_2_with_one_operator_line_and_creates_nothing(tmp_path, args, env,
                                                                       needle):
    data = tmp_path / "data"
    proc = run_server(["--data-dir", str(data), *args], tmp_path, env)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "invalid literal" not in proc.stderr
    assert proc.stdout == "" and not data.exists()


def test_bad_toml_value_and_unknown_key_exit_2(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("num_partitions = 0\n")
    proc = run_server(["--config", str(f), "--data-dir", str(tmp_path / "d")], tmp_path)
    assert proc.returncode == 2 and f"config file {f}: num_partitions: 0 is out of range" \
        in proc.stderr
    f.write_text("num_partitons = 3\n")
    proc = run_server(["--config", str(f)], tmp_path)
    assert proc.returncode == 2 and "unknown key 'num_partitons'" in proc.stderr
    f.write_text("num_partitions = [\n")
    proc = run_server(["--config", str(f)], tmp_path)
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "data").exists()


def test_data_dir_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_server(["--data-dir", str(tmp_path / "file")], tmp_path)
    assert proc.returncode == 2 and "is not a directory" in proc.stderr


@given(st.integers(-10**6, 10**6))
@settings(max_examples=60, deadline=None)
def test_num_partitions_bounds_are_the_documented_ones(n):
    try:
        c = parse_config(["--num-partitions", str(n)], environ={})
    except ConfigError as exc:
        assert not 1 <= n <= 10_000 and "from 1 to 10000" in str(exc)
    else:
        assert 1 <= n <= 10_000 and c.num_partitions == n


@given(name=st.sampled_from(sorted(n for n, s in SETTINGS.items() if s.kind == "int")),
       junk=st.text(min_size=1, max_size=8).filter(lambda t: not t.strip().lstrip("-")
                                                   .isdigit()))
@settings(max_examples=60, deadline=None)
def test_any_non_integer_is_refused_with_the_bounds(name, junk):
    with pytest.raises(ConfigError) as err:
        parse_config(["--" + name.replace("_", "-") + "=" + junk], environ={})
    assert "expected an integer from" in str(err.value)


def _taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


@pytest.mark.parametrize("which", ["kafka", "text", "http"])
def test_port_in_use_exits_1_and_leaves_no_data_dir(tmp_path, which):
    with _taken_port() as s:
        port = s.getsockname()[1]
        args = {"kafka": ["--kafka-listener", f"127.0.0.1:{port}"],
                "text": ["--kafka-listener", "127.0.0.1:0", "--text-port", str(port)],
                "http": ["--kafka-listener", "127.0.0.1:0", "--text-port", "0",
                         "--http-port", str(port)]}[which]
        proc = run_server(["--data-dir", str(tmp_path / "new"), *args], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot start: {which} listener 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()


def test_one_line_names_every_listener_and_config_is_logged(tmp_path):
    srv = PylogServer(tmp_path / "data", args=["--num-partitions", "3"]).start()
    try:
        assert srv.text_port and srv.http_port
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/healthz",
                                    timeout=10) as r:
            assert r.status == 200 and json.loads(r.read())["status"] == "ready"
    finally:
        assert srv.stop() == 0
    log = srv.log_text()
    assert "effective configuration:" in log
    assert re.search(r"^  num_partitions +\= 3$", log, re.M)      # aligned: any width
    assert re.search(r"^  text_port +\= 0$", log, re.M)


def test_listening_line_format(tmp_path):
    proc = subprocess.Popen(SERVER + ["--data-dir", str(tmp_path / "d"), "--kafka-listener",
                                      "127.0.0.1:0", "--text-port", "0", "--http-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    import re
    assert re.fullmatch(r"pylog-server: kafka listening on 127\.0\.0\.1:\d+, text on "
                        r"127\.0\.0\.1:\d+, http on 127\.0\.0\.1:\d+ \(data .*\)\n", line), line


def test_version_flags(tmp_path):
    from importlib.metadata import version
    v = version("pylog")
    proc = run_server(["--version"], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"pylog-server {v}"
    proc = subprocess.run([sys.executable, "-c", "import sys, pylog.fsck; "
                           "sys.exit(pylog.fsck.main(['--version']))"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.strip() == f"pylog-fsck {v}"


def test_healthz_starting_then_ready(tmp_path):
    import aiohttp

    import pylog
    from pylog.server.http import HttpServer
    from pylog.server.kafka.context import BrokerContext
    from pylog.server.metrics import CommittedOffsets

    async def scenario():
        with pylog.open(tmp_path / "d") as log:
            broker = BrokerContext(log)
            http = HttpServer(broker, "127.0.0.1", 0, offsets=CommittedOffsets(broker))
            await http.start()
            url = f"http://127.0.0.1:{http.port}/healthz"
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.get(url) as r:
                        body = await r.json()
                        assert r.status == 503 and body["status"] == "starting"
                        assert "listeners" in body["waiting_for"]
                    http.ready = True
                    log.start_groups().wait_loaded(10)
                    async with session.get(url) as r:
                        assert r.status == 200 and (await r.json())["status"] == "ready"
            finally:
                await http.shutdown(1)
    asyncio.run(scenario())


def test_recovery_after_kill_logs_what_it_scanned_and_dropped(tmp_path):
    import confluent_kafka as ck
    srv = PylogServer(tmp_path / "data").start()
    p = ck.Producer({"bootstrap.servers": srv.bootstrap})
    for i in range(20):
        p.produce("rec", value=b"v%d" % i)
    assert p.flush(20) == 0
    srv.kill()
    seg = next((tmp_path / "data" / "rec-0").glob("*.log"))
    with open(seg, "r+b") as f:                 # a torn tail: half a batch of garbage
        f.seek(0, 2)
        size = f.tell()
    # a batch header claiming more bytes than follow, after the valid batches
    with open(seg, "r+b") as f:
        data = f.read()
        end = len(data.rstrip(b"\0"))
        f.seek(end)
        f.write((0).to_bytes(8, "big") + (500).to_bytes(4, "big") + b"\x01" * 40)
    assert size > 0
    srv.restart()
    try:
        log = srv.log_text()
    finally:
        assert srv.stop() == 0
    lines = [ln for ln in log.splitlines() if "recovery of rec-0 after an unclean stop" in ln]
    assert lines, log[-3000:]
    assert "INFO" in lines[0] and "scanned" in lines[0] and "dropped:" in lines[0]
    assert "bytes of torn tail cut" in lines[0], lines[0]
