"""TLS and SASL on the Kafka listeners, with the real clients' own settings:
confluent-kafka, kafka-python, aiokafka and kcat over SSL, SASL_PLAINTEXT (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512) and SASL_SSL; mTLS with a client certificate; wrong
passwords, unknown users and wrong mechanisms get SASL_AUTHENTICATION_FAILED and a closed
connection; nothing but ApiVersions and SASL is served before authentication."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from kafka_raw import RawClient, req
from security_certs import make_ca, make_client

from pylog.security.users import UserStore
from pylog.testing import start_server

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    out = make_ca(d)
    out["client"] = make_client(d, "client", "/O=example/CN=carol")
    return out


@pytest.fixture(scope="module")
def srv(tmp_path_factory, certs):
    data = tmp_path_factory.mktemp("sec") / "data"
    data.mkdir(parents=True)
    store = UserStore(data)
    for name, pw in USERS.items():
        store.set_password(name, pw)
    listeners = ",".join(f"{p}://127.0.0.1:0" for p in
                         ("PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"))
    s = start_server(data, args=["--kafka-listener", listeners,
                                 "--ssl-certfile", str(certs["cert"]),
                                 "--ssl-keyfile", str(certs["key"]),
                                 "--ssl-cafile", str(certs["ca"]),
                                 "--ssl-client-auth", "requested",
                                 "--connection-failed-authentication-delay-ms", "10"])
    assert set(s.listeners) == {"PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"}, s.listeners
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def _conf(srv, certs, proto: str, mech: str | None = None, user="alice", password=None):
    conf = {"bootstrap.servers": srv.listeners[proto], "security.protocol": proto}
    if proto in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = str(certs["ca"])
    if mech:
        conf.update({"sasl.mechanism": mech, "sasl.username": user,
                     "sasl.password": password if password is not None else USERS[user]})
    return conf


def _roundtrip(conf: dict, topic: str, n: int = 20) -> list[bytes]:
    p = Producer(conf)
    for i in range(n):
        p.produce(topic, value=b"%s-%d" % (topic.encode(), i))
    assert p.flush(20) == 0
    c = Consumer({**conf, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    for _ in range(100):
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m.value())
        if len(got) >= n:
            break
    c.close()
    return got


CASES = [("SSL", None), ("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
         ("SASL_PLAINTEXT", "SCRAM-SHA-512"), ("SASL_SSL", "PLAIN"),
         ("SASL_SSL", "SCRAM-SHA-512")]


@pytest.mark.parametrize("proto,mech", CASES)
def test_confluent_kafka_produces_and_consumes(srv, certs, proto, mech):
    topic = f"sec-ck-{proto}-{mech or 'none'}".lower().replace("_", "-")
    got = _roundtrip(_conf(srv, certs, proto, mech), topic)
    assert len(got) == 20


def test_mtls_client_certificate(srv, certs):
    conf = _conf(srv, certs, "SSL")
    conf.update({"ssl.certificate.location": str(certs["client"]["cert"]),
                 "ssl.key.location": str(certs["client"]["key"])})
    assert len(_roundtrip(conf, "sec-mtls")) == 20


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_over_sasl(srv, certs, mech):
    from kafka import KafkaConsumer, KafkaProducer
    common = dict(bootstrap_servers=srv.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                  ssl_cafile=str(certs["ca"]), sasl_mechanism=mech,
                  sasl_plain_username="bob", sasl_plain_password=USERS["bob"])
    topic = f"sec-kp-{mech.lower()}"
    p = KafkaProducer(**common)
    for i in range(10):
        p.send(topic, b"kp-%d" % i)
    p.flush(20)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **common)
    assert len([m.value for m in c]) == 10
    c.close()


def test_aiokafka_over_sasl_scram(srv, certs):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    async def run():
        common = dict(bootstrap_servers=srv.listeners["SASL_SSL"], security_protocol="SASL_SSL",
                      ssl_context=create_ssl_context(cafile=str(certs["ca"])),
                      sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                      sasl_plain_password=USERS["alice"])
        p = AIOKafkaProducer(**common)
        await p.start()
        for i in range(10):
            await p.send_and_wait("sec-aio", b"aio-%d" % i)
        await p.stop()
        c = AIOKafkaConsumer("sec-aio", auto_offset_reset="earliest", **common)
        await c.start()
        got = []
        try:
            while len(got) < 10:
                batch = await c.getmany(timeout_ms=1000)
                for recs in batch.values():
                    got.extend(r.value for r in recs)
        finally:
            await c.stop()
        return got

    assert len(asyncio.run(asyncio.wait_for(run(), 60))) == 10


KCAT_CASES = [("SSL", None), ("SASL_PLAINTEXT", "PLAIN"), ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
              ("SASL_SSL", "SCRAM-SHA-256")]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.parametrize("proto,mech", KCAT_CASES)
def test_kcat(srv, certs, proto, mech):
    topic = f"sec-kcat-{proto}-{mech or 'x'}".lower().replace("_", "-")
    args = ["kcat", "-b", srv.listeners[proto], "-X", f"security.protocol={proto}"]
    if "SSL" in proto:
        args += ["-X", f"ssl.ca.location={certs['ca']}"]
    if mech:
        args += ["-X", f"sasl.mechanism={mech}", "-X", "sasl.username=alice",
                 "-X", f"sasl.password={USERS['alice']}"]
    subprocess.run([*args, "-P", "-t", topic], input=b"one\ntwo\n", check=True, timeout=30)
    out = subprocess.run([*args, "-C", "-t", topic, "-e", "-o", "beginning", "-q"],
                         capture_output=True, check=True, timeout=30).stdout
    assert out.split() == [b"one", b"two"]


@pytest.mark.parametrize("proto,mech", [("SSL", None), ("SASL_PLAINTEXT", "PLAIN")])
def test_kafka_python_over_ssl_and_sasl_plaintext(srv, certs, proto, mech):
    from kafka import KafkaConsumer, KafkaProducer
    common = dict(bootstrap_servers=srv.listeners[proto], security_protocol=proto)
    if proto == "SSL":
        common["ssl_cafile"] = str(certs["ca"])
    if mech:
        common.update(sasl_mechanism=mech, sasl_plain_username="bob",
                      sasl_plain_password=USERS["bob"])
    topic = f"sec-kp2-{proto.lower()}"
    p = KafkaProducer(**common)
    p.send(topic, b"kp")
    p.flush(20)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **common)
    assert [m.value for m in c] == [b"kp"]
    c.close()


@pytest.mark.parametrize("proto,mech", [("SSL", None), ("SASL_PLAINTEXT", "PLAIN"),
                                        ("SASL_SSL", "SCRAM-SHA-512")])
def test_aiokafka_protocols(srv, certs, proto, mech):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context
    topic = f"sec-aio2-{proto.lower()}".replace("_", "-")

    async def run():
        common = dict(bootstrap_servers=srv.listeners[proto], security_protocol=proto)
        if "SSL" in proto:
            common["ssl_context"] = create_ssl_context(cafile=str(certs["ca"]))
        if mech:
            common.update(sasl_mechanism=mech, sasl_plain_username="alice",
                          sasl_plain_password=USERS["alice"])
        p = AIOKafkaProducer(**common)
        await p.start()
        await p.send_and_wait(topic, b"aio")
        await p.stop()
        c = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **common)
        await c.start()
        try:
            while True:
                batch = await c.getmany(timeout_ms=1000)
                for recs in batch.values():
                    return [r.value for r in recs]
        finally:
            await c.stop()

    assert asyncio.run(asyncio.wait_for(run(), 60)) == [b"aio"]


def test_tls_garbage_is_refused_and_the_server_goes_on(srv, certs):
    import os
    import socket
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", int(srv.listeners["SSL"].rsplit(":", 1)[1])))
        s.sendall(b"\x16\x03\x01" + os.urandom(200))
        s.settimeout(5)
        try:
            s.recv(100)
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    assert len(_roundtrip(_conf(srv, certs, "SSL"), "sec-after-garbage")) == 20


def test_sighup_reloads_the_certificate(tmp_path):
    import os
    import signal
    import ssl
    import socket
    first = make_ca(tmp_path / "a")
    second = make_ca(tmp_path / "b")
    live = tmp_path / "live"
    live.mkdir()
    for name in ("cert", "key"):
        (live / f"server.{name}").write_bytes(first[name].read_bytes())
    s = start_server(tmp_path / "data", args=[
        "--kafka-listener", "SSL://127.0.0.1:0", "--ssl-certfile", str(live / "server.cert"),
        "--ssl-keyfile", str(live / "server.key")])
    port = int(s.bootstrap.rsplit(":", 1)[1])

    def handshake(ca) -> bool:
        ctx = ssl.create_default_context(cafile=str(ca))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    return True
        except ssl.SSLError:
            return False
    try:
        assert handshake(first["ca"]) and not handshake(second["ca"])
        for name in ("cert", "key"):
            (live / f"server.{name}").write_bytes(second[name].read_bytes())
        os.kill(s.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not handshake(second["ca"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert handshake(second["ca"]) and not handshake(first["ca"])
        (live / "server.key").write_bytes(b"garbage")          # a bad reload keeps the old
        os.kill(s.process.pid, signal.SIGHUP)
        time.sleep(0.5)
        assert handshake(second["ca"])
        assert "TLS reload failed" in s.log_text()
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("mech,user,password", [
    ("PLAIN", "alice", "wrong"), ("SCRAM-SHA-256", "alice", "wrong"),
    ("SCRAM-SHA-512", "nobody", "x"), ("PLAIN", "nobody", "x")])
def test_bad_credentials_are_refused(srv, certs, mech, user, password):
    conf = _conf(srv, certs, "SASL_PLAINTEXT", mech, user=user, password=password)
    errors = []
    p = Producer({**conf, "message.timeout.ms": 3000, "error_cb": errors.append})
    p.produce("sec-denied", b"x")
    p.flush(5)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


def test_nothing_but_sasl_before_authentication(srv):
    with RawClient(srv.listeners["SASL_PLAINTEXT"]) as c:
        r = c.call(18, 3, req(18, 3, client_software_name="t", client_software_version="1"))
        assert r.error_code == 0
        c.send(3, 12, req(3, 12, topics=None, allow_auto_topic_creation=False,
                          include_topic_authorized_operations=False))
        assert c.is_closed_by_server()


def test_wrong_mechanism_and_garbage_tokens(srv):
    with RawClient(srv.listeners["SASL_PLAINTEXT"]) as c:
        r = c.call(17, 1, req(17, 1, mechanism="GSSAPI"))
        assert r.error_code == 33 and "PLAIN" in r.mechanisms
        assert c.call(17, 1, req(17, 1, mechanism="SCRAM-SHA-256")).error_code == 0
        r = c.call(36, 2, req(36, 2, auth_bytes=b"\xff\xfe garbage"))
        assert r.error_code == 58
        assert c.is_closed_by_server()
    with RawClient(srv.listeners["SASL_PLAINTEXT"]) as c:
        assert c.call(17, 1, req(17, 1, mechanism="PLAIN")).error_code == 0
        r = c.call(36, 2, req(36, 2, auth_bytes=b"no-separators"))
        assert r.error_code == 58 and c.is_closed_by_server()


def test_plaintext_on_a_tls_port_is_refused_and_the_server_goes_on(srv, certs):
    with RawClient(srv.listeners["SSL"]) as c:
        c.send(18, 3, req(18, 3, client_software_name="t", client_software_version="1"))
        assert c.is_closed_by_server(5)
    assert len(_roundtrip(_conf(srv, certs, "SSL"), f"sec-after-{uuid.uuid4().hex[:6]}")) == 20


def _can_produce(srv, certs, user, password, mech="SCRAM-SHA-256") -> bool:
    errors = []
    p = Producer({**_conf(srv, certs, "SASL_PLAINTEXT", mech, user=user, password=password),
                  "message.timeout.ms": 5000, "error_cb": errors.append})
    p.produce("sec-users", b"x")
    left = p.flush(8)
    return left == 0 and not any(e.code() == KafkaError._AUTHENTICATION for e in errors)


def test_cli_users_added_while_the_server_runs(srv, certs):
    import sys
    cli = [sys.executable, "-m", "pylog.cli", "users"]
    r = subprocess.run([*cli, "add", "carol", "--password-stdin", "--data-dir",
                        str(srv.data_dir)], input="carol-pw\n", text=True, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert _can_produce(srv, certs, "carol", "carol-pw")
    listed = subprocess.run([*cli, "list", "--data-dir", str(srv.data_dir)],
                            capture_output=True, text=True).stdout
    assert "carol SCRAM-SHA-256:4096 SCRAM-SHA-512:4096" in listed
    assert b"carol-pw" not in (srv.data_dir / "users.json").read_bytes()
    r = subprocess.run([*cli, "remove", "carol", "--data-dir", str(srv.data_dir)])
    assert r.returncode == 0
    assert not _can_produce(srv, certs, "carol", "carol-pw")
    assert subprocess.run([*cli, "remove", "carol", "--data-dir",
                           str(srv.data_dir)]).returncode == 1


def test_admin_client_alters_and_describes_scram_users(srv, certs):
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)
    admin = AdminClient(_conf(srv, certs, "SASL_PLAINTEXT", "PLAIN"))
    up = UserScramCredentialUpsertion("dave", ScramCredentialInfo(
        ScramMechanism.SCRAM_SHA_512, 8192), b"dave-pw")
    for f in admin.alter_user_scram_credentials([up]).values():
        f.result(10)
    assert _can_produce(srv, certs, "dave", "dave-pw", "SCRAM-SHA-512")
    assert not _can_produce(srv, certs, "dave", "dave-pw", "SCRAM-SHA-256")  # not set
    desc = admin.describe_user_scram_credentials(["dave"])["dave"].result(10)
    assert [(i.mechanism, i.iterations) for i in desc.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 8192)]
    with pytest.raises(Exception) as err:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(10)
    assert "RESOURCE_NOT_FOUND" in str(err.value) or "does not exist" in str(err.value)
    bad = UserScramCredentialUpsertion("eve", ScramCredentialInfo(
        ScramMechanism.SCRAM_SHA_256, 100), b"pw")
    with pytest.raises(Exception):
        admin.alter_user_scram_credentials([bad])["eve"].result(10)
    gone = UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([gone])["dave"].result(10)
    assert not _can_produce(srv, certs, "dave", "dave-pw", "SCRAM-SHA-512")


def test_reauthentication_kip_368(tmp_path, certs):
    import json
    import time
    import urllib.request
    data = tmp_path / "data"
    UserStore(data).set_password("alice", USERS["alice"])
    s = start_server(data, args=["--kafka-listener", "SASL_PLAINTEXT://127.0.0.1:0",
                                 "--connections-max-reauth-ms", "1500"])
    try:
        conf = {"bootstrap.servers": s.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "alice",
                "sasl.password": USERS["alice"]}
        p = Producer(conf)
        sent = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            p.produce("sec-reauth", b"x")
            sent += 1
            p.poll(0.05)
        assert p.flush(10) == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}/metrics") as r:
            sec = json.load(r)["security"]
        assert sec["failed_authentications"] == 0
        assert sec["authentications"] >= 4, sec     # re-authenticated, kept producing
    finally:
        assert s.stop() == 0
