"""The simple queue routes end to end on a real server: produce → consume → ack with
accept, release (redelivered) and reject (archived; dead-lettered once share groups
write dead letters), the /dashboard figures moving with them; member ids; the
OpenAPI document and route page; cross-site refusal."""
from __future__ import annotations

import base64
import inspect
import json

import pytest


def dlq_written_by_broker() -> bool:
    """Whether share groups produce rejected records to <topic>.dlq (the queue
    features' work; not on every branch yet)."""
    import pylog.broker.queues as queues
    return "errors.deadletterqueue.enable" in inspect.getsource(queues)


def queue_row(http, group: str, topic: str) -> dict:
    _s, _h, doc = http.get("/dashboard")
    return next(q for q in doc["queues"] if q["group"] == group and q["topic"] == topic)


def test_produce_consume_ack_accept_release_reject(http):
    assert http.post("/topics", {"topic": "jobs", "partitions": 1})[0] == 201
    status, _h, doc = http.post("/produce", {"topic": "jobs", "key": "a",
                                             "payload": {"job": 1}})
    assert status == 200 and doc["offsets"] == [{"partition": 0, "offset": 0}]
    status, _h, doc = http.post("/produce", {"topic": "jobs", "messages": [
        {"payload": {"job": 2}}, {"value": base64.b64encode(b"\xffraw").decode(),
                                  "headers": {"h": "v"}}]})
    assert [o["offset"] for o in doc["offsets"]] == [1, 2]

    status, headers, got = http.get("/consume?topic=jobs&group=workers&max=10")
    assert status == 200 and headers["X-Pylog-Member"] == got["member"] == "http"
    recs = got["records"]
    assert [r["offset"] for r in recs] == [0, 1, 2]
    assert recs[0]["payload"] == {"job": 1} and recs[0]["key"] == "a"
    assert base64.b64decode(recs[2]["value"]) == b"\xffraw" and "payload" not in recs[2]
    assert recs[2]["headers"] == [["h", "v"]] and recs[0]["delivery_count"] == 1
    row = queue_row(http, "workers", "jobs")
    assert (row["acquired"], row["available"]) == (3, 0)
    # Nothing more to acquire while they are held.
    assert http.get("/consume?topic=jobs&group=workers")[2]["records"] == []

    status, _h, doc = http.post("/ack", {"group": "workers", "topic": "jobs", "acks": [
        {"partition": 0, "offset": 0, "type": "accept"},
        {"partition": 0, "offset": 1, "type": "release"},
        {"partition": 0, "offset": 2, "type": "reject"}]})
    assert status == 200 and doc["errors"] == 0, doc
    row = queue_row(http, "workers", "jobs")
    assert row["acknowledged"] == 1 and row["released"] == 1 and row["acquired"] == 0
    assert row["archived"] == 1 and row["available"] == 1

    # Released: delivered again, with its delivery count up.
    again = http.get("/consume?topic=jobs&group=workers&max=10")[2]["records"]
    assert [(r["offset"], r["delivery_count"]) for r in again] == [(1, 2)]
    assert http.post("/ack", {"group": "workers", "topic": "jobs", "acks": [
        {"partition": 0, "offset": 1}]})[2]["errors"] == 0          # type defaults: accept
    assert queue_row(http, "workers", "jobs")["acknowledged"] == 2

    # A second ack of the same record is refused, per record.
    doc = http.post("/ack", {"group": "workers", "topic": "jobs", "acks": [
        {"partition": 0, "offset": 0, "type": "accept"}]})[2]
    assert doc["errors"] == 1 and doc["results"][0]["error"].startswith("INVALID_RECORD_STATE")

    if dlq_written_by_broker():
        row = queue_row(http, "workers", "jobs")
        assert row["dead_lettered"] == 1
        _s, _h, dead = http.get("/api/dlq?topic=jobs.dlq&partition=0")
        origin = dead["records"][0]["origin"]
        assert (origin["topic"], origin["offset"], origin["reason"]) == ("jobs", 2, "rejected")
    else:
        pytest.skip("share groups do not write dead letters on this branch yet: reject "
                    "archived the record (checked above); the DLQ assertion waits for it")


def test_consume_long_polls_and_named_members(http):
    import threading
    http.post("/topics", {"topic": "waits", "partitions": 2})
    later = threading.Timer(0.3, lambda: http.post("/produce", {"topic": "waits",
                                                                "payload": "late"}))
    later.start()
    status, headers, doc = http.get("/consume?topic=waits&group=w2&wait_ms=10000",
                                    headers={"X-Pylog-Member": "client-7"})
    later.join()
    assert status == 200 and doc["member"] == "client-7" and headers["X-Pylog-Member"] == \
        "client-7"
    assert [r["payload"] for r in doc["records"]] == ["late"]
    off = doc["records"][0]
    # Only the member that holds it may ack it.
    bad = http.post("/ack", {"group": "w2", "topic": "waits", "member": "someone-else",
                             "acks": [{"partition": off["partition"],
                                       "offset": off["offset"]}]})[2]
    assert bad["errors"] == 1
    good = http.post("/ack", {"group": "w2", "topic": "waits", "acks": [
        {"partition": off["partition"], "offset": off["offset"]}]},
        headers={"X-Pylog-Member": "client-7"})[2]
    assert good["errors"] == 0


@pytest.mark.parametrize("path, body, status, code", [
    ("/produce", {"topic": "nope", "payload": 1}, 404, 40401),
    ("/produce", {"topic": "jobs"}, 422, 422),
    ("/produce", {"topic": "jobs", "payload": 1, "partition": 9}, 404, 40402),
    ("/produce", {"topic": "jobs", "value": "!!"}, 422, 422),
    ("/ack", {"group": "workers", "topic": "jobs", "acks": [{"offset": 0, "type": "eat"}]},
     422, 422),
    ("/topics", {"topic": "bad/name"}, 422, 422),
    ("/topics", {"topic": "jobs"}, 409, 40900),
])
def test_simple_route_errors(http, path, body, status, code):
    if http.get("/topics/jobs")[0] == 404:
        http.post("/topics", {"topic": "jobs"})
    before = http.get("/topics/jobs/partitions/0/offsets")[2]["end_offset"]
    got, _h, doc = http.post(path, body)
    assert (got, doc["error_code"]) == (status, code), doc
    assert http.get("/topics/jobs/partitions/0/offsets")[2]["end_offset"] == before


def test_consume_parameter_errors(http):
    status, _h, doc = http.get("/consume?topic=nope&group=g")
    assert (status, doc["error_code"]) == (404, 40401)
    http.post("/topics", {"topic": "params"})
    status, _h, doc = http.get("/consume?topic=params&group=g&max=0")
    assert status == 400
    status, _h, doc = http.get("/consume?topic=params&group=")
    assert status == 422


def test_openapi_lists_every_route_and_the_page_shows_them(server, http):
    status, _h, spec = http.get("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    served = set()
    from aiohttp import web  # noqa: F401 -- the table is the app's; compare with it
    from pylog.server.http.routing import AREAS
    assert "rest_v2" in AREAS
    for path, ops in spec["paths"].items():
        for method in ops:
            served.add((method.upper(), path))
    for method, path in [("GET", "/topics"), ("POST", "/topics/{topic}"),
                         ("POST", "/consumers/{group}"), ("GET", "/consume"),
                         ("POST", "/ack"), ("GET", "/dashboard"), ("GET", "/metrics"),
                         ("GET", "/api/live/topics/{topic}"), ("POST", "/api/dlq/requeue"),
                         ("GET", "/consumers/{group}/instances/{name}/records")]:
        assert (method, path) in served
    # every path in the document answers something other than 405 (it is routed)
    for method, path in served:
        if method == "GET" and "{" not in path and path not in ("/api/live/metrics",):
            assert http.get(path)[0] != 405, path
    status, headers, page = http.get("/routes")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert page.count("<tr>") == len(served) + 1


def test_cross_site_mutations_are_refused(http):
    http.post("/topics", {"topic": "csrf"})
    before = http.get("/topics/csrf/partitions/0/offsets")[2]["end_offset"]
    for headers in ({"Origin": "http://evil.example"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": http.base},                      # own origin, no token
                    {"Origin": http.base, "X-Pylog-CSRF": "guess"}):
        status, _h, doc = http.post("/produce", {"topic": "csrf", "payload": 1},
                                    headers=headers)
        assert status == 403 and doc["error_code"] in (40301, 40302), headers
    status, _h, page = http.get("/")
    token = page.split('name="pylog-csrf" content="')[1].split('"')[0]
    status, _h, doc = http.post("/produce", {"topic": "csrf", "payload": 1},
                                headers={"Origin": http.base, "X-Pylog-CSRF": token,
                                         "Sec-Fetch-Site": "same-origin"})
    assert status == 200, doc
    assert http.get("/topics/csrf/partitions/0/offsets")[2]["end_offset"] == before + 1
    # A form post from another site (text/plain, no preflight) is refused too.
    status, _h, doc = http.call("POST", "/produce", json.dumps({"topic": "csrf"}).encode(),
                                ctype="text/plain", headers={"Origin": "http://evil.example"})
    assert status == 403
