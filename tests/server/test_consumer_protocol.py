"""The KIP-848 consumer protocol with real clients: confluent-kafka members
(``group.protocol=consumer``, each in its own process) split partitions with the
server-side ``uniform`` and ``range`` assignors, take over from a SIGKILLed member
once its session (here 3 s, ``--group-consumer-session-timeout-ms``) expires, resume
from committed offsets, and live beside classic groups on the same server."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient
from group_clients import create_topic, produce

from pylog.testing import start_server

HERE = Path(__file__).parent
ALL = list(range(4))


class Member:
    """consumer_protocol_member.py in a subprocess: its assignment and records read."""

    def __init__(self, bootstrap: str, group: str, topic: str, assignor: str = "-",
                 commit: bool = False):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "consumer_protocol_member.py"), bootstrap, group,
             topic, assignor, "1" if commit else "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.assigned: list[int] = []
        self.records: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "assigned" in msg:
                self.assigned = msg["assigned"]
            else:
                self.records.put(tuple(msg["record"]))

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.assigned = []


def wait_for_split(members, timeout: float = 40, settle: float = 1.0,
                   partitions=ALL) -> list[list[int]]:
    start, ok_since = time.monotonic(), None
    while time.monotonic() - start < timeout:
        parts = [list(m.assigned) for m in members]
        ok = sorted(p for ps in parts for p in ps) == partitions and all(parts)
        ok_since = (ok_since or time.monotonic()) if ok else None
        if ok_since is not None and time.monotonic() - ok_since >= settle:
            return parts
        time.sleep(0.05)
    raise AssertionError(f"no clean split after {timeout} s: {[m.assigned for m in members]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("kip848") / "data",
                       args=["--group-consumer-session-timeout-ms", "3000",
                             "--group-consumer-heartbeat-interval-ms", "500"])
    yield srv
    srv.stop()


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    for m in started:
        m.stop(signal.SIGKILL)


def test_members_split_with_uniform_and_take_over_from_a_killed_member(server, members):
    b = server.bootstrap
    create_topic(b, "kip848-split")
    produce(b, "kip848-split", [b"x%d" % i for i in range(40)])
    first = Member(b, "kip848-split", "kip848-split")
    members.append(first)
    assert wait_for_split([first], settle=0.3) == [ALL]
    second = Member(b, "kip848-split", "kip848-split")
    members.append(second)
    parts = wait_for_split([first, second])
    assert sorted(map(len, parts)) == [2, 2], parts          # uniform: balanced
    third = Member(b, "kip848-split", "kip848-split")
    members.append(third)
    assert sorted(map(len, wait_for_split(members))) == [1, 1, 2]
    second.stop(signal.SIGKILL)                              # no leave: session expiry
    killed = time.monotonic()
    parts = wait_for_split([first, third])
    assert time.monotonic() - killed >= 2.0                  # not before the 3 s session
    assert sorted(map(len, parts)) == [2, 2], parts
    third.stop()                                             # leaves (epoch -1): at once
    assert wait_for_split([first], settle=0.3) == [ALL]


def test_range_assignor_gives_consecutive_ranges(server, members):
    b = server.bootstrap
    create_topic(b, "kip848-range")
    a = Member(b, "kip848-range", "kip848-range", assignor="range")
    members.append(a)
    wait_for_split([a], settle=0.3)
    c = Member(b, "kip848-range", "kip848-range", assignor="range")
    members.append(c)
    assert sorted(wait_for_split([a, c])) == [[0, 1], [2, 3]]
    admin = AdminClient({"bootstrap.servers": b})
    desc = admin.describe_consumer_groups(["kip848-range"])["kip848-range"].result(10)
    assert str(desc.type).endswith("CONSUMER") and len(desc.members) == 2
    assert desc.partition_assignor == "range"


def test_members_resume_from_committed_offsets(server, members):
    b = server.bootstrap
    create_topic(b, "kip848-commit", partitions=2)
    produce(b, "kip848-commit", [b"v%d" % i for i in range(20)], partitions=2)
    m = Member(b, "kip848-commit", "kip848-commit", commit=True)
    members.append(m)
    seen = set()
    deadline = time.monotonic() + 40
    while len(seen) < 20 and time.monotonic() < deadline:
        try:
            seen.add(m.records.get(timeout=1))
        except queue.Empty:
            pass
    assert len(seen) == 20
    m.stop()
    produce(b, "kip848-commit", [b"w%d" % i for i in range(4)], partitions=2)
    again = Member(b, "kip848-commit", "kip848-commit", commit=True)
    members.append(again)
    got = set()
    deadline = time.monotonic() + 40
    while len(got) < 4 and time.monotonic() < deadline:
        try:
            got.add(again.records.get(timeout=1))
        except queue.Empty:
            pass
    assert sorted(got) == [(0, 10), (0, 11), (1, 10), (1, 11)]   # only the new records
    time.sleep(0.5)
    assert again.records.empty()


def test_consumer_and_classic_groups_share_the_server(server, members):
    b = server.bootstrap
    create_topic(b, "kip848-mixed")
    produce(b, "kip848-mixed", [b"m%d" % i for i in range(8)])
    modern = Member(b, "kip848-modern", "kip848-mixed")
    members.append(modern)
    classic = ck.Consumer({"bootstrap.servers": b, "group.id": "kip848-classic",
                           "auto.offset.reset": "earliest"})
    classic.subscribe(["kip848-mixed"])
    n, deadline = 0, time.monotonic() + 30
    while n < 8 and time.monotonic() < deadline:
        msg = classic.poll(0.2)
        n += msg is not None and not msg.error()
    assert n == 8
    assert wait_for_split([modern], settle=0.3) == [ALL]
    admin = AdminClient({"bootstrap.servers": b})
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
    assert str(listed["kip848-modern"].type).endswith("CONSUMER")
    assert str(listed["kip848-classic"].type).endswith("CLASSIC")
    # A classic member cannot join the consumer group while it has members.
    intruder = ck.Consumer({"bootstrap.servers": b, "group.id": "kip848-modern",
                            "session.timeout.ms": 6000})
    errors = []
    intruder.subscribe(["kip848-mixed"], on_assign=lambda *_: errors.append("assigned"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not errors:
        msg = intruder.poll(0.2)
        if msg is not None and msg.error():
            errors.append(msg.error().code())
    intruder.close()
    classic.close()
    assert errors and errors[0] == ck.KafkaError.INCONSISTENT_GROUP_PROTOCOL, errors


def _drain(member, n, timeout=40.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(member.records.get(timeout=1))
        except queue.Empty:
            pass
    return got


def test_a_member_rejoins_after_a_server_restart_and_resumes_from_its_commits(
        tmp_path, members):
    srv = start_server(tmp_path / "data", args=["--group-consumer-session-timeout-ms", "3000",
                                                "--group-consumer-heartbeat-interval-ms",
                                                "500"])
    try:
        create_topic(srv.bootstrap, "kip848-restart", partitions=2)
        produce(srv.bootstrap, "kip848-restart", [b"a%d" % i for i in range(10)],
                partitions=2)
        m = Member(srv.bootstrap, "kip848-restart", "kip848-restart", commit=True)
        members.append(m)
        assert len(set(_drain(m, 10))) == 10
        time.sleep(0.5)                          # the last synchronous commit is answered
        srv.restart()                            # members and epochs are gone; offsets stay
        produce(srv.bootstrap, "kip848-restart", [b"b%d" % i for i in range(4)],
                partitions=2)
        got = _drain(m, 4, timeout=60)
        assert sorted(got) == [(0, 5), (0, 6), (1, 5), (1, 6)], got   # nothing read twice
    finally:
        srv.stop()
