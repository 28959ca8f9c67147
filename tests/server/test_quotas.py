"""Client quotas (producer_byte_rate) over SASL: a user over its quota is throttled —
responses carry throttle_time_ms and its measured rate stays within 10 % of the quota —
while another user's produce rate is unaffected; quotas are set with AlterClientQuotas
(raw requests: the Python admin clients have no call for it) and listed with
DescribeClientQuotas."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer
from kafka_raw import RawClient, module, req

from pylog.security.users import UserStore
from pylog.testing import start_server

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
QUOTA = 300_000                               # bytes/s for alice


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("quota") / "data"
    store = UserStore(data)
    for name, pw in USERS.items():
        store.set_password(name, pw, mechanisms=("SCRAM-SHA-256",))
    s = start_server(data, args=["--kafka-listener",
                                 "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"])
    yield s
    assert s.stop() == 0, s.log_text()[-3000:]


def _set_quota(srv, user, rate):
    m = module(49, 1)
    with RawClient(srv.listeners["PLAINTEXT"]) as c:
        r = c.call(49, 1, req(49, 1, validate_only=False, entries=(m.EntryData(
            entity=(m.EntityData(entity_type="user", entity_name=user),),
            ops=(m.OpData(key="producer_byte_rate", value=float(rate), remove=False),)),)))
        assert r.entries[0].error_code == 0, r
        bad = c.call(49, 1, req(49, 1, validate_only=False, entries=(m.EntryData(
            entity=(m.EntityData(entity_type="user", entity_name=user),),
            ops=(m.OpData(key="request_percentage", value=5.0, remove=False),)),)))
        assert bad.entries[0].error_code == 42
        d = module(48, 1)
        listed = c.call(48, 1, req(48, 1, strict=False, components=(d.ComponentData(
            entity_type="user", match_type=0, match=user),)))
        assert [(v.key, v.value) for e in listed.entries for v in e.values] == [
            ("producer_byte_rate", float(rate))]


def _rate(srv, user, seconds=6.0) -> tuple[float, list[int]]:
    throttles: list[int] = []
    p = Producer({"bootstrap.servers": srv.listeners["SASL_PLAINTEXT"],
                  "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                  "sasl.username": user, "sasl.password": USERS[user], "linger.ms": 5,
                  "batch.size": 16384, "queue.buffering.max.kbytes": 2048,
                  "statistics.interval.ms": 500, "stats_cb": lambda s: None,
                  "throttle_cb": lambda e: throttles.append(e.throttle_time)})
    value = b"x" * 1000
    acked = [0]

    def done(err, msg):
        if err is None:
            acked[0] += len(msg.value())
    start = time.monotonic()
    p.produce("quota-t", value, on_delivery=done)
    p.flush(10)
    start, acked[0] = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        try:
            p.produce("quota-t", value, on_delivery=done)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.flush(30)
    return acked[0] / (time.monotonic() - start), throttles


def test_a_user_over_its_quota_is_throttled_and_others_are_not(srv):
    _set_quota(srv, "alice", QUOTA)
    bob_rate, bob_throttles = _rate(srv, "bob", 3.0)
    alice_rate, alice_throttles = _rate(srv, "alice", 8.0)
    assert alice_throttles, "throttle_time_ms reached the client"
    assert abs(alice_rate - QUOTA) / QUOTA < 0.10, (alice_rate, QUOTA)
    assert not bob_throttles and bob_rate > 3 * QUOTA, bob_rate
