"""What incremental fetch sessions (KIP-227) save: a consumer of 1,000 partitions with
traffic on one, fetching with and without a session.

    python -m bench.fetch_sessions [--partitions 1000] [--fetches 2000]

A raw client (kio-encoded Fetch v18 over a socket, like tests/server/kafka_raw.py)
sends ``--fetches`` fetches in each mode against one pylog-server; between fetches a
record is produced to partition 0, so every fetch has news on exactly one partition.
Sessionless: every fetch names all partitions and gets all back.  Session: the first
fetch opens it, each later one names only partition 0 (its offset moved).  Reported
per fetch: request bytes, response bytes, and broker CPU (user + system time of the
server process from /proc, divided by the fetches).
"""
from __future__ import annotations

import argparse
import datetime
import io
import os
import socket
import struct
import sys
import tempfile
import time

from kio.serial import entity_reader, entity_writer

from pylog.records import encode_batch
from pylog.server.kafka.messages import request_class, response_module
from pylog.testing import PylogServer

MS = datetime.timedelta(milliseconds=1)
FETCH, PRODUCE, CREATE, METADATA = 1, 0, 19, 3


class Conn:
    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cid = 0
        self.sent = self.received = 0

    def call(self, key: int, version: int, body):
        self.cid += 1
        buf = io.BytesIO()
        entity_writer(type(body))(buf, body)
        head = struct.pack(">hhih", key, version, self.cid, 5) + b"bench"
        if type(body).__flexible__:
            head += b"\0"
        payload = head + buf.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        self.sent += 4 + len(payload)
        size = struct.unpack(">i", self._exact(4))[0]
        frame = self._exact(size)
        self.received += 4 + size
        mod = response_module(key, version)
        cls = next(v for v in vars(mod).values() if isinstance(v, type)
                   and getattr(v, "__type__", None) is not None
                   and v.__type__.name == "response" and v.__module__ == mod.__name__)
        pos = 5 if cls.__header_schema__.__version__ >= 1 else 4
        return entity_reader(cls)(frame, pos)[0]

    def _exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return bytes(out)


def _mod(key, version):
    return sys.modules[request_class(key, version).__module__]


def _cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fetch_req(topic_id, partitions, offsets, session_id, epoch):
    m = _mod(FETCH, 18)
    parts = tuple(m.FetchPartition(partition=p, fetch_offset=offsets[p],
                                   partition_max_bytes=1 << 20) for p in partitions)
    topics = (m.FetchTopic(topic_id=topic_id, partitions=parts),) if parts else ()
    return m.FetchRequest(max_wait=0 * MS, min_bytes=0, max_bytes=50 << 20, isolation_level=0,
                          session_id=session_id, session_epoch=epoch, rack_id="",
                          topics=topics, forgotten_topics_data=())


def _produce(conn, topic_id) -> None:
    m = _mod(PRODUCE, 13)
    conn.call(PRODUCE, 13, m.ProduceRequest(transactional_id=None, acks=1, timeout=5000 * MS,
              topic_data=(m.TopicProduceData(topic_id=topic_id, partition_data=(
                  m.PartitionProduceData(index=0, records=encode_batch([b"v" * 100])),)),)))


def run(conn, producer, pid, topic_id, n_parts, fetches, sessions: bool) -> dict:
    offsets = {p: 0 for p in range(n_parts)}
    sid, epoch = 0, (0 if sessions else -1)
    conn.sent = conn.received = 0
    cpu0 = _cpu_s(pid)
    t0 = time.perf_counter()
    for i in range(fetches):
        _produce(producer, topic_id)
        names = range(n_parts) if (not sessions or i == 0) else [0]
        resp = conn.call(FETCH, 18, _fetch_req(topic_id, names, offsets, sid, epoch))
        if resp.error_code:
            raise RuntimeError(f"fetch error {resp.error_code}")
        for t in resp.responses:
            for p in t.partitions:
                offsets[p.partition_index] = p.high_watermark
        if sessions:
            sid, epoch = resp.session_id, epoch + 1
    wall = time.perf_counter() - t0
    cpu = _cpu_s(pid) - cpu0
    return {"request_bytes": conn.sent / fetches, "response_bytes": conn.received / fetches,
            "broker_cpu_us": cpu / fetches * 1e6, "wall_us": wall / fetches * 1e6}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--fetches", type=int, default=2000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d, PylogServer(os.path.join(d, "data")).start() as srv:
        conn, producer = Conn(srv.bootstrap), Conn(srv.bootstrap)
        m = _mod(CREATE, 7)
        conn.call(CREATE, 7, m.CreateTopicsRequest(timeout=30000 * MS, validate_only=False,
                  topics=(m.CreatableTopic(name="fs", num_partitions=args.partitions,
                                           replication_factor=1, assignments=(),
                                           configs=()),)))
        mm = _mod(METADATA, 13)
        md = conn.call(METADATA, 13, mm.MetadataRequest(
            topics=(mm.MetadataRequestTopic(topic_id=None, name="fs"),),
            allow_auto_topic_creation=False, include_topic_authorized_operations=False))
        tid = md.topics[0].topic_id
        pid = srv.process.pid
        print(f"{args.partitions} partitions, traffic on 1, {args.fetches} fetches per mode")
        print(f"{'mode':<12}{'request B':>12}{'response B':>12}{'broker CPU µs':>15}"
              f"{'wall µs':>10}")
        for name, sessions in (("sessionless", False), ("session", True)):
            r = run(conn, producer, pid, tid, args.partitions, args.fetches, sessions)
            print(f"{name:<12}{r['request_bytes']:>12.0f}{r['response_bytes']:>12.0f}"
                  f"{r['broker_cpu_us']:>15.0f}{r['wall_us']:>10.0f}")


if __name__ == "__main__":
    main()
