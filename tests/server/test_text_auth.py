"""The text protocol with --text-security SASL_SSL and --authorizer acl: TLS from the
Kafka listeners' certificate, AUTH before anything else, the same users and ACLs as the
Kafka API (a principal refused there is refused here the same way)."""
from __future__ import annotations

import socket
import ssl
import time

import pytest
from security_certs import make_ca

from pylog.security.acls import AclBinding, Authorizer
from pylog.security.users import UserStore
from pylog.testing import start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    certs = make_ca(tmp_path_factory.mktemp("tcerts"))
    data = tmp_path_factory.mktemp("tauth") / "data"
    store = UserStore(data)
    store.set_password("alice", "alice-pw")
    s = start_server(data, args=["--text-security", "SASL_SSL", "--ssl-certfile",
                                 str(certs["cert"]), "--ssl-keyfile", str(certs["key"]),
                                 "--authorizer", "acl", "--super-users", "User:admin",
                                 "--connection-failed-authentication-delay-ms", "0"])
    s.certs = certs
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


class Text:
    def __init__(self, srv):
        ctx = ssl.create_default_context(cafile=str(srv.certs["ca"]))
        raw = socket.create_connection(("127.0.0.1", srv.text_port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.f = self.sock.makefile("rb")

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self.f.readline().decode().rstrip("\n")

    def closed(self) -> bool:
        return self.f.readline() == b""


def test_auth_first_then_acls(srv):
    t = Text(srv)
    assert t.cmd("PING") == "PONG"                   # no AUTH needed
    assert t.cmd("TOPICS").startswith("ERR SASL_AUTHENTICATION_FAILED")
    assert t.cmd("AUTH alice alice-pw") == "OK User:alice"
    assert t.cmd("CREATE t-auth 1").startswith("ERR CLUSTER_AUTHORIZATION_FAILED")
    assert t.cmd("PRODUCE t-auth 0 hi").startswith("ERR TOPIC_AUTHORIZATION_FAILED")
    Authorizer(srv.data_dir).create([AclBinding(4, "kafka-cluster", 3, "User:alice", "*", 5,
                                                3),
                                     AclBinding(2, "t-auth", 3, "User:alice", "*", 4, 3)])
    time.sleep(1.2)                                  # picked up within a second
    assert t.cmd("CREATE t-auth 1").startswith("OK")
    assert t.cmd("PRODUCE t-auth 0 hi").startswith("OK")
    assert t.cmd("CONSUME t-auth 0").startswith("ERR TOPIC_AUTHORIZATION_FAILED")


def test_a_wrong_password_is_refused_and_closes(srv):
    t = Text(srv)
    assert t.cmd("AUTH alice nope").startswith("ERR SASL_AUTHENTICATION_FAILED")
    assert t.closed()


def test_a_refused_binary_produce_closes_instead_of_reading_its_payload(srv):
    t = Text(srv)
    reply = t.cmd("PRODUCEB t-auth 0 5")
    assert reply.startswith("ERR SASL_AUTHENTICATION_FAILED")
    assert t.closed()


def test_plaintext_on_the_tls_text_port_is_refused(srv):
    s = socket.create_connection(("127.0.0.1", srv.text_port), timeout=5)
    s.sendall(b"PING\n")
    try:
        got = s.recv(100)
    except ConnectionResetError:
        got = b""
    s.close()
    assert b"PONG" not in got                         # no plaintext answer
    assert Text(srv).cmd("PING") == "PONG"            # still serving


def test_the_cli_authenticates_from_flags_env_or_a_config_file(srv, tmp_path):
    import subprocess
    import sys
    Authorizer(srv.data_dir).create([AclBinding(2, "t-cli", 3, "User:alice", "*", op, 3)
                                     for op in (4, 3, 8)] +
                                    [AclBinding(4, "kafka-cluster", 3, "User:alice", "*", 5, 3)])
    time.sleep(1.2)
    pw = tmp_path / "pw"
    pw.write_text("alice-pw\n")
    server = f"127.0.0.1:{srv.text_port}"
    cli = [sys.executable, "-m", "pylog.cli", "--server", server, "-q"]
    flags = ["--tls", "--cafile", str(srv.certs["ca"]), "--user", "alice",
             "--password-file", str(pw)]
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PYLOG_")}
    r = subprocess.run([*cli, *flags, "topics", "create", "t-cli"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, *flags, "produce", "t-cli", "0", "hello"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    env2 = dict(env, PYLOG_TLS="1", PYLOG_CAFILE=str(srv.certs["ca"]), PYLOG_USER="alice",
                PYLOG_PASSWORD="alice-pw")
    r = subprocess.run([*cli, "consume", "t-cli", "0"], capture_output=True, text=True,
                       env=env2)
    assert r.returncode == 0 and "hello" in r.stdout, r.stderr
    conf = tmp_path / "cli.toml"
    conf.write_text(f'server = "{server}"\ntls = true\ncafile = "{srv.certs["ca"]}"\n'
                    f'user = "alice"\npassword_file = "{pw}"\n')
    r = subprocess.run([sys.executable, "-m", "pylog.cli", "-q", "--cli-config", str(conf),
                        "consume", "t-cli", "0"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "hello" in r.stdout, r.stderr
    r = subprocess.run([*cli, "--tls", "--cafile", str(srv.certs["ca"]), "--user", "alice",
                        "consume", "t-cli", "0"], capture_output=True, text=True,
                       env=dict(env, PYLOG_PASSWORD="wrong"))
    assert r.returncode == 1 and "SASL_AUTHENTICATION_FAILED" in r.stderr, r.stderr
