"""Members of one group, each a real client in its own process, split a 4-partition
topic with no overlap: one, two, three, then four (confluent-kafka, kafka-python,
aiokafka, kcat -G); a member killed with SIGKILL has its partitions moved to the others once
its session (6 s) expires; a member that leaves (SIGTERM: close → LeaveGroup) at once."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from group_clients import SESSION_MS, create_topic, produce

HERE = Path(__file__).parent
ALL = list(range(4))


class Member:
    """A group member subprocess (group_clients.main) and its latest reported assignment."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str):
        self.client = client
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), *sys.path]))
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "group_clients.py"), client, bootstrap, group, topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.assigned: list[int] = []
        self.updates: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.assigned = json.loads(line)["assigned"]
            self.updates.put(self.assigned)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.assigned = []


class KcatMember(Member):
    """``kcat -G`` as a member: its rebalance lines on stderr give the assignment."""

    _EVENT = re.compile(r"rebalanced \(memberid [^)]*\): (assigned|revoked): ?(.*)")

    def __init__(self, bootstrap: str, group: str, topic: str):
        self.client = "kcat"
        self.proc = subprocess.Popen(
            ["kcat", "-b", bootstrap, "-G", group, "-f", "", "-X",
             f"session.timeout.ms={SESSION_MS}", "-X", "heartbeat.interval.ms=1000", topic],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.assigned = []
        self.updates = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            m = self._EVENT.search(raw.decode(errors="replace"))
            if m:
                parts = [int(x) for x in re.findall(r"\[(\d+)\]", m.group(2))]
                self.assigned = sorted(parts) if m.group(1) == "assigned" else []
                self.updates.put(self.assigned)


def wait_for_split(members: list[Member], timeout: float, settle: float = 1.0) -> float:
    """Wait until the members' partitions are disjoint, cover the topic and every member
    has some, steadily for ``settle`` s; returns the time it took."""
    start = time.monotonic()
    ok_since = None
    while time.monotonic() - start < timeout:
        parts = [m.assigned for m in members]
        flat = [p for ps in parts for p in ps]
        ok = sorted(flat) == ALL and all(parts)
        if ok and ok_since is None:
            ok_since = time.monotonic()
        elif not ok:
            ok_since = None
        if ok_since is not None and time.monotonic() - ok_since >= settle:
            return ok_since - start
        time.sleep(0.05)
    raise AssertionError(f"no clean split after {timeout} s: "
                         f"{[(m.client, m.assigned) for m in members]}")


@pytest.fixture
def members():
    started: list[Member] = []
    yield started
    for m in started:
        m.stop(signal.SIGKILL)


def test_members_split_partitions_and_take_over_from_killed_and_leaving_ones(
        bootstrap, members):
    topic = group = "split"
    create_topic(bootstrap, topic)
    produce(bootstrap, topic, [b"x%d" % i for i in range(40)])

    a = Member("confluent-kafka", bootstrap, group, topic)
    members.append(a)
    wait_for_split([a], 30, settle=0.2)
    b = Member("kafka-python", bootstrap, group, topic)
    members.append(b)
    wait_for_split([a, b], 30)
    c = Member("aiokafka", bootstrap, group, topic)
    members.append(c)
    wait_for_split([a, b, c], 30)
    d = KcatMember(bootstrap, group, topic)
    members.append(d)
    wait_for_split([a, b, c, d], 30)              # one partition each

    b.stop(signal.SIGKILL)                        # no LeaveGroup: the session must expire
    moved = wait_for_split([a, c, d], SESSION_MS / 1000 + 15)
    print(f"killed member partitions moved after {moved:.2f} s")
    assert moved >= SESSION_MS / 1000 - 1.5       # not before the session timeout ...
    assert moved <= SESSION_MS / 1000 + 6         # ... and soon after it

    c.stop(signal.SIGTERM)                        # close(): LeaveGroup, no waiting
    left = wait_for_split([a, d], 10)
    assert left < SESSION_MS / 1000


def test_cooperative_sticky_members_split_and_take_back_partitions(bootstrap):
    """librdkafka's incremental (cooperative) rebalancing runs over the same classic
    protocol: the broker only sees more JoinGroup/SyncGroup rounds."""
    import confluent_kafka as ck
    topic = group = "coop"
    create_topic(bootstrap, topic)
    conf = {"bootstrap.servers": bootstrap, "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500}
    a, b = ck.Consumer(conf), ck.Consumer(conf)

    def until(cond, consumers, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in consumers:
                c.poll(0.05)
            parts = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
            if cond(parts):
                return parts
        raise AssertionError(f"assignments never settled: {parts}")

    try:
        a.subscribe([topic])
        until(lambda ps: ps[0] == ALL, [a])
        b.subscribe([topic])
        pa, pb = until(lambda ps: all(ps) and sorted(ps[0] + ps[1]) == ALL, [a, b])
        assert not set(pa) & set(pb)
        b.close()
        until(lambda ps: ps[0] == ALL, [a])
    finally:
        a.close()
        b.close()
