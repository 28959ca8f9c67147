"""The HTTP listener: /metrics (JSON, Prometheus, OpenMetrics) and /healthz, after a
scripted workload over Kafka and the text protocol on a real pylog-server."""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus


def http_get(server, path: str, accept: str | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}")
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def metrics_json(server) -> dict:
    status, ctype, body = http_get(server, "/metrics")
    assert status == 200 and ctype.startswith("application/json")
    return json.loads(body)


class Text:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.rfile = self.sock.makefile("rb")

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self.rfile.readline().decode().rstrip("\n")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """A fresh server and a known workload:

    orders-0: 7 records over Kafka + 5 over text = 12; orders-1: 3 over Kafka;
    idle-0: 4 over text, no group.  Group g1 (kafka-python, assign + commit) commits
    orders-0 at 8 and orders-1 at 3; group g2 (text COMMIT) commits orders-0 at 10.
    Then 2 raw Kafka connections and 3 text connections stay open.
    """
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from pylog.testing import PylogServer
    srv = PylogServer(tmp_path_factory.mktemp("http") / "data").start()
    text = Text(srv.text_port)
    assert text.cmd("CREATE orders 2") == "OK 2"
    assert text.cmd("CREATE idle 1") == "OK 1"
    producer = KafkaProducer(bootstrap_servers=srv.bootstrap)
    for i in range(7):
        producer.send("orders", b"k%d" % i, partition=0)
    for i in range(3):
        producer.send("orders", b"j%d" % i, partition=1)
    producer.flush()
    producer.close()
    for i in range(5):
        assert text.cmd(f"PRODUCE orders 0 text-{i}") == f"OK {7 + i}"
    for i in range(4):
        assert text.cmd(f"PRODUCE idle 0 idle-{i}") == f"OK {i}"
    tp0, tp1 = TopicPartition("orders", 0), TopicPartition("orders", 1)
    consumer = KafkaConsumer(bootstrap_servers=srv.bootstrap, group_id="g1",
                             enable_auto_commit=False)
    consumer.assign([tp0, tp1])
    consumer.seek_to_beginning(tp0, tp1)
    got: dict = {tp0: [], tp1: []}
    deadline = time.monotonic() + 30
    while sum(map(len, got.values())) < 15 and time.monotonic() < deadline:
        for tp, recs in consumer.poll(timeout_ms=500).items():
            got[tp] += [r.value for r in recs]
    # Records produced over the text protocol read back through Kafka unchanged.
    assert got[tp0] == [b"k%d" % i for i in range(7)] + [b"text-%d" % i for i in range(5)]
    assert got[tp1] == [b"j%d" % i for i in range(3)]
    consumer.commit({tp0: OffsetAndMetadata(8, None, -1), tp1: OffsetAndMetadata(3, None, -1)})
    consumer.close()
    assert text.cmd("COMMIT g2 orders 0 10") == "OK"
    text.close()
    kafka_socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
    texts = [Text(srv.text_port) for _ in range(3)]
    for t in texts:
        assert t.cmd("PING") == "PONG"
    # The clients' own connections are closed server-side before we measure.
    assert wait_for(lambda: metrics_json(srv)["connections"]["kafka"] == 2), \
        metrics_json(srv)["connections"]
    yield srv
    for s in kafka_socks:
        s.close()
    for t in texts:
        t.close()
    assert srv.stop() == 0, srv.log_text()[-3000:]


def test_metrics_json_reports_exact_queue_depths_lags_and_connections(workload):
    m = metrics_json(workload)
    assert m["queues"] == {"orders-0": 4, "orders-1": 0, "idle-0": 4}
    assert m["active_connections"] == 2 + 3 + 1        # kafka + text + this HTTP request
    assert m["connections"] == {"kafka": 2, "text": 3, "http": 1}
    p0 = m["partitions"]["orders-0"]
    assert (p0["log_start_offset"], p0["log_end_offset"], p0["slowest_group"]) == (0, 12, "g1")
    assert p0["size_bytes"] > 0
    assert m["partitions"]["idle-0"]["records_retained"] == 4
    assert m["partitions"]["idle-0"]["slowest_group"] is None
    g1, g2 = m["groups"]["g1"], m["groups"]["g2"]
    assert {k: (r["committed_offset"], r["lag"]) for k, r in g1["partitions"].items()} == \
        {"orders-0": (8, 4), "orders-1": (3, 0)}
    assert g1["lag"] == 4
    assert {k: (r["committed_offset"], r["lag"]) for k, r in g2["partitions"].items()} == \
        {"orders-0": (10, 2)}
    assert "__consumer_offsets-0" not in m["partitions"]


def test_metrics_json_counts_requests_records_and_uptime(workload):
    m = metrics_json(workload)
    text = m["requests"]["text"]
    assert (text["CREATE"], text["PRODUCE"], text["COMMIT"]) == (2, 9, 1)
    assert text["PING"] == 3
    kafka = m["requests"]["kafka"]
    assert kafka["Produce"] >= 1 and kafka["Fetch"] >= 1 and kafka["OffsetCommit"] == 1
    rec = m["records"]
    assert rec["produced_total"] == 10 + 5 + 4
    assert rec["fetched_total"] >= 10              # whole batches over Kafka
    assert rec["produce_rate"] > 0 and rec["fetch_rate"] > 0
    assert m["uptime_seconds"] > 0


def _samples(families) -> dict:
    out = {}
    for family in families:
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.mark.parametrize("how", ["query", "accept-0.0.4", "accept-plain"])
def test_prometheus_text_is_parsed_by_prometheus_client(workload, how):
    path, accept = "/metrics", None
    if how == "query":
        path = "/metrics?format=prometheus"
    elif how == "accept-0.0.4":
        accept = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"
    else:
        accept = "text/plain"
    status, ctype, body = http_get(workload, path, accept)
    assert status == 200 and ctype.startswith("text/plain"), ctype
    s = _samples(parse_prometheus(body.decode()))
    assert s[("pylog_queue_records_waiting", (("partition", "0"), ("topic", "orders")))] == 4
    assert s[("pylog_queue_records_waiting", (("partition", "0"), ("topic", "idle")))] == 4
    assert s[("pylog_group_lag", (("group", "g1"), ("partition", "0"),
                                  ("topic", "orders")))] == 4
    assert s[("pylog_group_lag", (("group", "g2"), ("partition", "0"),
                                  ("topic", "orders")))] == 2
    assert s[("pylog_log_end_offset", (("partition", "0"), ("topic", "orders")))] == 12
    assert s[("pylog_active_connections", (("listener", "kafka"),))] == 2
    assert s[("pylog_active_connections", (("listener", "text"),))] == 3
    assert s[("pylog_records_produced_total", ())] == 19
    assert s[("pylog_requests_total", (("api", "PRODUCE"), ("listener", "text")))] == 9


@pytest.mark.parametrize("how", ["accept", "query"])
def test_openmetrics_is_parsed_by_the_openmetrics_parser(workload, how):
    if how == "accept":        # what a Prometheus 2.x scraper sends
        status, ctype, body = http_get(workload, "/metrics", (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
            "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"))
    else:
        status, ctype, body = http_get(workload, "/metrics?format=openmetrics")
    assert status == 200 and ctype.startswith("application/openmetrics-text"), ctype
    assert body.endswith(b"# EOF\n")
    s = _samples(parse_openmetrics(body.decode()))
    assert s[("pylog_queue_records_waiting", (("partition", "1"), ("topic", "orders")))] == 0
    assert s[("pylog_group_lag_total", (("group", "g1"),))] == 4


def test_browser_and_curl_accept_headers_get_json(workload):
    for accept in (None, "*/*", "text/html,application/xhtml+xml,*/*;q=0.8",
                   "application/json"):
        status, ctype, body = http_get(workload, "/metrics", accept)
        assert status == 200 and ctype.startswith("application/json")
        assert "queues" in json.loads(body)
    status, ctype, _ = http_get(workload, "/metrics?format=json", "text/plain")
    assert ctype.startswith("application/json")


def test_healthz_and_bad_requests(workload):
    status, ctype, body = http_get(workload, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, _, body = http_get(workload, "/metrics?format=xml")
    assert status == 400 and b"unknown format" in body
    status, _, _ = http_get(workload, "/nope")
    assert status == 404


def test_internal_topics_only_when_asked(workload):
    m = json.loads(http_get(workload, "/metrics?internal=1")[2])
    assert "__consumer_offsets-0" in m["partitions"]


def test_connection_counts_fall_when_clients_leave(workload):
    extra = [Text(workload.text_port) for _ in range(4)]
    for t in extra:
        assert t.cmd("PING") == "PONG"
    assert metrics_json(workload)["connections"]["text"] == 3 + 4
    for t in extra:
        t.close()
    assert wait_for(lambda: metrics_json(workload)["connections"]["text"] == 3)


# -- the metrics registry itself (pylog/server/metrics.py) ----------------------------
def test_count_batch_records_reads_headers_and_ignores_a_partial_tail():
    from pylog.records import encode_batch
    from pylog.server.metrics import count_batch_records
    data = encode_batch([b"a"] * 3) + encode_batch([b"b"] * 2)
    assert count_batch_records(data) == 5
    assert count_batch_records(memoryview(data + data[:70])) == 5
    assert count_batch_records(b"") == 0
    many = encode_batch([b"x" * 100]) * 1000            # past the 64-batch walk: estimated
    assert count_batch_records(many) == 1000


def test_rate_counter_averages_over_the_window_then_forgets():
    from pylog.server.metrics import RateCounter
    now = [1000.0]
    rate = RateCounter(window=60, clock=lambda: now[0])
    rate.add(30)
    now[0] += 10
    rate.add(30)
    assert rate.total == 60
    assert rate.rate(elapsed=10) == 6.0                 # younger than the window
    assert rate.rate(elapsed=3600) == 1.0               # 60 records / 60 s
    now[0] += 120
    assert rate.rate(elapsed=3600) == 0.0 and rate.total == 60


def test_records_waiting_counts_from_the_log_start_when_a_group_is_behind_retention():
    import pylog
    from pylog.server.metrics import partition_state, queues
    with pylog.open(None) as log:
        p = log.create_topic("q", 1).partition(0)
        p.append_batch([b"v"] * 10)
        parts, groups = partition_state(log, {"slow": {("q", 0): 2}, "fast": {("q", 0): 9},
                                              "gone": {("deleted", 0): 1}})
        assert queues(parts) == {"q-0": 8} and parts["q-0"]["slowest_group"] == "slow"
        assert groups["fast"]["lag"] == 1 and groups["gone"]["partitions"] == {}
        r = log.create_topic("r", 1, config={"segment.bytes": 1024, "retention.bytes": 1024})
        for _ in range(50):
            r.partition(0).append(b"v" * 100)
        log.enforce_retention()
        start = r.partition(0).log_start_offset
        assert 0 < start < 50
        parts, groups = partition_state(log, {"behind": {("r", 0): 1}})
        assert parts["r-0"]["records_waiting"] == 50 - start     # only what is retained
        assert groups["behind"]["lag"] == 49                      # Kafka's lag: LEO - committed
