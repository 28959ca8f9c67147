"""Confluent REST Proxy v2 routes on a real pylog-server, driven over HTTP, with
confluent-kafka on the other side: produce here, read there, and the reverse; commits
over REST seen by a Kafka consumer of the same group; every error's status and body,
and nothing stored after one."""
from __future__ import annotations

import base64
import json
import time

import pytest
from http_client import BINARY_V2, JSON_V2, V2


def ends(http, topic: str) -> list[int]:
    _s, _h, parts = http.get(f"/topics/{topic}/partitions")
    return [http.get(f"/topics/{topic}/partitions/{p['partition']}/offsets")[2]["end_offset"]
            for p in parts]


def make_topic(http, name: str, partitions: int = 1) -> None:
    status, _h, doc = http.post("/topics", {"topic": name, "partitions": partitions})
    assert status == 201, doc


def test_topic_metadata_routes(http):
    make_topic(http, "meta", 3)
    status, headers, names = http.get("/topics")
    assert status == 200 and "meta" in names and headers["Content-Type"].startswith(V2)
    assert not any(n.startswith("__") for n in names)
    status, _h, doc = http.get("/topics/meta")
    assert doc["name"] == "meta" and [p["partition"] for p in doc["partitions"]] == [0, 1, 2]
    assert doc["configs"]["max.message.bytes"] == "1048588"
    assert doc["partitions"][0]["replicas"] == [{"broker": 0, "leader": True, "in_sync": True}]
    assert http.get("/topics/meta/partitions/2")[2]["partition"] == 2
    assert http.get("/topics/meta/partitions/2/offsets")[2] == {"beginning_offset": 0,
                                                                "end_offset": 0}


@pytest.mark.parametrize("path, code", [("/topics/absent", 40401),
                                        ("/topics/absent/partitions", 40401),
                                        ("/topics/meta/partitions/3", 40402),
                                        ("/topics/meta/partitions/x", 40402)])
def test_metadata_errors_have_rest_proxy_bodies(http, path, code):
    make_topic(http, "meta", 3) if http.get("/topics/meta")[0] == 404 else None
    status, headers, doc = http.get(path)
    assert status == 404 and doc["error_code"] == code and doc["message"]
    assert headers["Content-Type"].startswith("application/json")


def test_produce_json_and_binary_read_back_by_confluent_kafka(server, http):
    from confluent_kafka import Consumer, TopicPartition
    make_topic(http, "rest-in", 2)
    status, _h, doc = http.post("/topics/rest-in", {"records": [
        {"key": "k1", "value": {"n": 1}},
        {"value": [1, 2, 3], "partition": 1},
        {"key": None, "value": "text", "partition": 0,
         "headers": [{"name": "h", "value": "v"}]}]}, ctype=JSON_V2)
    assert status == 200, doc
    assert doc["key_schema_id"] is None and len(doc["offsets"]) == 3
    assert all(o["error_code"] is None and o["offset"] is not None for o in doc["offsets"])
    raw = bytes(range(256))
    status, _h, doc = http.post("/topics/rest-in/partitions/1", {"records": [
        {"key": base64.b64encode(b"\x00key").decode(), "value": base64.b64encode(raw).decode()}]},
        ctype=BINARY_V2)
    assert status == 200 and doc["offsets"][0]["partition"] == 1, doc
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rest-in-reader",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition("rest-in", 0, 0), TopicPartition("rest-in", 1, 0)])
    got, deadline = [], time.monotonic() + 30
    while len(got) < 4 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    c.close()
    by_value = {m.value(): m for m in got}
    assert by_value[b'{"n":1}'].key() == b'"k1"'         # JSON key: its JSON text
    assert by_value[b"[1,2,3]"].partition() == 1
    assert by_value[b'"text"'].headers() == [("h", b"v")]
    assert by_value[raw].key() == b"\x00key" and by_value[raw].partition() == 1


@pytest.mark.parametrize("case", ["unknown topic", "bad content type", "malformed json",
                                  "partition out of range", "record partition out of range",
                                  "oversized body", "bad base64", "no records key",
                                  "too many records"])
def test_produce_errors_store_nothing(http, case):
    if http.get("/topics/errs")[0] == 404:
        make_topic(http, "errs", 2)
    before = ends(http, "errs")
    path, body, ctype = "/topics/errs", {"records": [{"value": 1}]}, JSON_V2
    expect = {"unknown topic": (404, 40401), "bad content type": (415, 415),
              "malformed json": (400, 400), "partition out of range": (404, 40402),
              "record partition out of range": (404, 40402), "oversized body": (413, 413),
              "bad base64": (422, 422), "no records key": (422, 422),
              "too many records": (422, 42201)}[case]
    if case == "unknown topic":
        path = "/topics/no-such-topic"
    elif case == "bad content type":
        ctype = "application/x-www-form-urlencoded"
    elif case == "malformed json":
        body = b'{"records": [{"value": 1}'
    elif case == "partition out of range":
        path = "/topics/errs/partitions/2"
    elif case == "record partition out of range":
        body = {"records": [{"value": 1}, {"value": 2, "partition": 7}]}
    elif case == "oversized body":
        body = {"records": [{"value": "x" * (9 << 20)}]}
    elif case == "bad base64":
        body, ctype = {"records": [{"value": "aGk="}, {"value": "not base64!"}]}, BINARY_V2
    elif case == "no records key":
        body = {"value": 1}
    elif case == "too many records":
        body = {"records": [{"value": i} for i in range(10_001)]}
    status, _h, doc = http.post(path, body, ctype=ctype)
    assert (status, doc["error_code"]) == expect, doc
    assert isinstance(doc["message"], str) and doc["message"]
    assert ends(http, "errs") == before


def test_record_over_max_message_bytes_is_422_42201(http):
    http.post("/topics", {"topic": "small-msgs", "partitions": 1,
                          "configs": {"max.message.bytes": "1000"}})
    status, _h, doc = http.post("/topics/small-msgs", {"records": [{"value": "y" * 2000}]},
                                ctype=JSON_V2)
    assert (status, doc["error_code"]) == (422, 42201)
    assert ends(http, "small-msgs") == [0]


def consumer(http, group: str, name: str, fmt: str = "json", reset: str = "earliest",
             auto_commit: str = "false") -> str:
    status, _h, doc = http.post(f"/consumers/{group}", {
        "name": name, "format": fmt, "auto.offset.reset": reset,
        "auto.commit.enable": auto_commit}, ctype=V2)
    assert status == 200, doc
    assert doc["instance_id"] == name
    return f"/consumers/{group}/instances/{name}"


def records(http, base: str, fmt: str = "json", timeout: int = 2000, want: int = 1):
    got, deadline = [], time.monotonic() + 20
    while len(got) < want and time.monotonic() < deadline:
        status, _h, doc = http.get(f"{base}/records?timeout={timeout}",
                                   headers={"Accept": f"application/vnd.kafka.{fmt}.v2+json"})
        assert status == 200, doc
        got += doc
    return got


def test_consumer_instance_reads_kafka_records_and_commit_is_seen_by_confluent_kafka(
        server, http):
    from confluent_kafka import Consumer, Producer, TopicPartition
    make_topic(http, "to-rest", 1)
    p = Producer({"bootstrap.servers": server.bootstrap})
    for i in range(10):
        p.produce("to-rest", key=b"k%d" % i, value=b'{"i": %d}' % i, partition=0)
    p.flush(10)
    status, headers, doc = http.post("/consumers/rg1", {"name": "a", "format": "json",
                                                        "auto.offset.reset": "earliest",
                                                        "auto.commit.enable": "false"},
                                     ctype=V2, headers={"Host": "proxy.example:9999"})
    assert doc["base_uri"] == "http://proxy.example:9999/consumers/rg1/instances/a"
    base = "/consumers/rg1/instances/a"
    assert http.post(base + "/subscription", {"topics": ["to-rest"]}, ctype=V2)[0] == 204
    assert http.get(base + "/subscription")[2] == {"topics": ["to-rest"]}
    assert http.get(base + "/assignments")[2] == {"partitions": [{"topic": "to-rest",
                                                                  "partition": 0}]}
    got = records(http, base, want=10)
    assert [r["value"] for r in got] == [{"i": i} for i in range(10)]
    assert got[3]["key"] == "k3" and got[3]["offset"] == 3    # not JSON: shown as text
    # Commit offset 6 explicitly: a confluent-kafka consumer of rg1 resumes there.
    status, _h, doc = http.post(base + "/offsets", {"offsets": [
        {"topic": "to-rest", "partition": 0, "offset": 6}]}, ctype=V2)
    assert status == 200, doc
    assert http.get(base + "/offsets")[2]["offsets"][0]["offset"] == 6
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rg1",
                  "enable.auto.commit": False})
    committed = c.committed([TopicPartition("to-rest", 0)], timeout=10)
    assert committed[0].offset == 6
    c.close()
    assert http.delete(base)[0] == 204
    assert http.get(base + "/records")[2]["error_code"] == 40403


def test_kafka_commit_is_where_a_new_rest_instance_starts(server, http):
    from confluent_kafka import Consumer, Producer, TopicPartition
    make_topic(http, "resume", 1)
    p = Producer({"bootstrap.servers": server.bootstrap})
    for i in range(5):
        p.produce("resume", value=b"%d" % i, partition=0)
    p.flush(10)
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rg2"})
    c.commit(offsets=[TopicPartition("resume", 0, 3)], asynchronous=False)
    c.close()
    base = consumer(http, "rg2", "b", fmt="binary")
    assert http.post(base + "/assignments", {"partitions": [{"topic": "resume",
                                                             "partition": 0}]},
                     ctype=V2)[0] == 204
    got = records(http, base, fmt="binary", want=2)
    assert [base64.b64decode(r["value"]) for r in got] == [b"3", b"4"]
    # No body: commit every position fetched (5).
    assert http.post(base + "/offsets", None, ctype=V2)[0] == 200
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rg2"})
    assert c.committed([TopicPartition("resume", 0)], timeout=10)[0].offset == 5
    c.close()


def test_positions_seek_and_long_poll(server, http):
    make_topic(http, "seeks", 1)
    http.post("/topics/seeks", {"records": [{"value": i} for i in range(5)]}, ctype=JSON_V2)
    base = consumer(http, "rg3", "c", reset="latest")
    tp = {"topic": "seeks", "partition": 0}
    assert http.post(base + "/assignments", {"partitions": [tp]}, ctype=V2)[0] == 204
    assert http.post(base + "/positions", {"offsets": [{**tp, "offset": 2}]}, ctype=V2)[0] == 204
    assert [r["value"] for r in records(http, base, want=3)] == [2, 3, 4]
    assert http.post(base + "/positions/beginning", {"partitions": [tp]}, ctype=V2)[0] == 204
    assert [r["value"] for r in records(http, base, want=5)] == [0, 1, 2, 3, 4]
    assert http.post(base + "/positions/end", {"partitions": [tp]}, ctype=V2)[0] == 204
    t0 = time.monotonic()
    status, _h, doc = http.get(base + "/records?timeout=300",
                               headers={"Accept": JSON_V2})
    assert status == 200 and doc == [] and time.monotonic() - t0 >= 0.25
    # A long poll answers when a record arrives.
    import threading
    later = threading.Timer(0.3, lambda: http.post("/topics/seeks", {"records": [
        {"value": "late"}]}, ctype=JSON_V2))
    later.start()
    status, _h, doc = http.get(base + "/records?timeout=10000", headers={"Accept": JSON_V2})
    later.join()
    assert [r["value"] for r in doc] == ["late"]


def test_consumer_errors(http):
    make_topic(http, "cerr", 1)
    base = consumer(http, "rg4", "d", fmt="binary")
    status, _h, doc = http.post("/consumers/rg4", {"name": "d", "format": "binary"}, ctype=V2)
    assert (status, doc["error_code"]) == (409, 40902)
    status, _h, doc = http.post("/consumers/rg4", {"format": "avro"}, ctype=V2)
    assert (status, doc["error_code"]) == (422, 422)
    status, _h, doc = http.get(base + "/records", headers={"Accept": JSON_V2})
    assert (status, doc["error_code"]) == (406, 40601)
    status, _h, doc = http.post(base + "/assignments", {"partitions": [
        {"topic": "cerr", "partition": 4}]}, ctype=V2)
    assert (status, doc["error_code"]) == (404, 40402)
    status, _h, doc = http.post(base + "/subscription", b"{nope", ctype=V2)
    assert (status, doc["error_code"]) == (400, 400)
    status, _h, doc = http.get("/consumers/rg4/instances/ghost/assignments")
    assert (status, doc["error_code"]) == (404, 40403)
    status, _h, doc = http.get(base + "/records?timeout=abc", headers={"Accept": BINARY_V2})
    assert status == 400


def test_idle_instances_expire():
    """consumer.instance.timeout.ms: the sweep deletes an instance idle longer."""
    from pylog.server.http.rest_consumers import INSTANCE_TIMEOUT_MS, ConsumerInstances
    assert INSTANCE_TIMEOUT_MS == 300_000
    now = [1000.0]
    reg = ConsumerInstances(ctx=None, timeout_ms=5_000, clock=lambda: now[0])
    reg.create("g", "old", "json", "earliest", False)
    now[0] += 3
    reg.create("g", "young", "json", "earliest", False)
    now[0] += 3
    assert reg.expire() == [("g", "old")]
    reg.get("g", "young")          # a request resets its idle clock
    now[0] += 4
    assert reg.expire() == []
    now[0] += 6
    assert reg.expire() == [("g", "young")]


def test_random_produce_bodies_answer_an_error_body_or_offsets(http):
    """Whatever JSON a client sends: 200 with one offset per record, or a 4xx with the
    REST error body and nothing stored -- never a 500."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    make_topic(http, "fuzz", 2)
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=8))
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)
    record = st.fixed_dictionaries({}, optional={
        "key": values, "value": values, "partition": st.one_of(st.integers(-1, 3), values),
        "headers": st.one_of(values, st.lists(st.fixed_dictionaries(
            {"name": st.one_of(st.text(max_size=4), values)},
            optional={"value": st.one_of(st.none(), st.text(max_size=6), values)}),
            max_size=2))})
    bodies = st.one_of(values, st.fixed_dictionaries({"records": st.one_of(
        values, st.lists(st.one_of(record, values), max_size=4))}))

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=bodies, binary=st.booleans())
    def check(body, binary):
        before = ends(http, "fuzz")
        status, _h, doc = http.post("/topics/fuzz", json.dumps(body).encode(),
                                    ctype=BINARY_V2 if binary else JSON_V2)
        assert status in (200, 400, 404, 422), (status, doc)
        if status == 200:
            assert len(doc["offsets"]) == len(body["records"])
            assert sum(ends(http, "fuzz")) == sum(before) + len(body["records"])
        else:
            assert isinstance(doc["error_code"], int) and doc["message"]
            assert ends(http, "fuzz") == before

    check()


def test_partition_records_and_brokers(http):
    """Redpanda's GET /topics/{t}/partitions/{p}/records and GET /brokers."""
    make_topic(http, "direct", 1)
    http.post("/topics/direct", {"records": [{"key": "k", "value": {"v": i}} for i in range(4)]},
              ctype=JSON_V2)
    status, headers, doc = http.get("/topics/direct/partitions/0/records?offset=1&timeout=0"
                                    "&max_bytes=100000", headers={"Accept": JSON_V2})
    assert status == 200 and [r["value"] for r in doc["records"]] == [{"v": 1}, {"v": 2},
                                                                      {"v": 3}]
    assert doc["records"][0]["key"] == "k" and doc["records"][0]["offset"] == 1
    status, _h, doc = http.get("/topics/direct/partitions/0/records?offset=3",
                               headers={"Accept": BINARY_V2})
    assert base64.b64decode(doc["records"][0]["value"]) == b'{"v":3}'
    status, _h, doc = http.get("/topics/direct/partitions/0/records?offset=9")
    assert (status, doc["error_code"]) == (422, 42202)
    assert http.get("/brokers")[2] == {"brokers": [0]}


def test_rest_commit_refused_while_kafka_members_are_active(server, http):
    from confluent_kafka import Consumer
    make_topic(http, "busy", 1)
    http.post("/topics/busy", {"records": [{"value": 1}]}, ctype=JSON_V2)
    k = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "rg-busy",
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    k.subscribe(["busy"])
    deadline = time.monotonic() + 30
    while not k.assignment() and time.monotonic() < deadline:
        k.poll(0.2)
    assert k.assignment()
    base = consumer(http, "rg-busy", "r")
    status, _h, doc = http.post(base + "/offsets", {"offsets": [
        {"topic": "busy", "partition": 0, "offset": 1}]}, ctype=V2)
    assert status == 409 and doc["kafka_error"] in ("ILLEGAL_GENERATION",
                                                    "UNKNOWN_MEMBER_ID"), doc
    k.close()
    status, _h, doc = http.post(base + "/offsets", {"offsets": [
        {"topic": "busy", "partition": 0, "offset": 1}]}, ctype=V2)
    assert status == 200, doc
