"""Process metrics for pylog-server: connections, requests, record rates, uptime.

One ``Metrics`` object per server, owned by the ``BrokerContext`` (so every
listener reaches it as ``broker.metrics``) and used only on the event-loop
thread (not thread-safe: plain integer updates, no locks).  The API is kept
tiny so a listener can bump it from one line:

    metrics.connection_opened("text")     metrics.connection_closed("text")
    metrics.request("PRODUCE", "text")    metrics.records_in(n)   metrics.records_out(n)

Rates are records per second over the last ``RATE_WINDOW_S`` seconds (or the
uptime, if shorter), kept as one counter per second in a small ring: memory is
constant however long the server runs.

``partition_state`` turns the Log and the committed offsets into the figures
the HTTP endpoint serves: per partition, log start/end offsets, bytes and the
records waiting (log end offset minus the slowest group's committed offset, or
the records retained when no group has committed); per group and partition,
the lag (log end offset minus committed offset, Kafka's definition).
"""
from __future__ import annotations

import struct
import time
from collections import Counter, deque
from typing import Callable

from pylog.errors import CoordinatorNotAvailableError, for_code

__all__ = ["Metrics", "RateCounter", "CommittedOffsets", "partition_state", "queues",
           "count_batch_records",
           "LISTENERS", "RATE_WINDOW_S"]

LISTENERS = ("kafka", "text", "http")
RATE_WINDOW_S = 60          # one minute, as `kafka-consumer-perf-test` and most dashboards show

_BATCH_LENGTH = struct.Struct(">i")     # RecordBatch v2: batchLength at byte 8
_RECORDS_COUNT = struct.Struct(">i")    # recordsCount at byte 57
_LOG_OVERHEAD, _HEADER_SIZE = 12, 61


class RateCounter:
    """A running total plus per-second buckets for the last ``window`` seconds."""

    __slots__ = ("total", "window", "_buckets", "_clock")

    def __init__(self, window: int = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.total = 0
        self.window = window
        self._buckets: deque[list[int]] = deque()      # [second, count], oldest first
        self._clock = clock

    def add(self, n: int) -> None:
        if n <= 0:
            return
        self.total += n
        now = int(self._clock())
        if self._buckets and self._buckets[-1][0] == now:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([now, n])
            self._expire(now)

    def _expire(self, now: int) -> None:
        while self._buckets and self._buckets[0][0] <= now - self.window:
            self._buckets.popleft()

    def rate(self, elapsed: float) -> float:
        """Per-second rate over the window, or over ``elapsed`` when that is shorter."""
        now = int(self._clock())
        self._expire(now)
        span = max(1.0, min(float(self.window), elapsed))
        return sum(c for _, c in self._buckets) / span


class Metrics:
    """Counters of one server process (event-loop thread only)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.started_unix = time.time()
        self.active: Counter[str] = Counter({name: 0 for name in LISTENERS})
        # HTTP connections belong to aiohttp: counted live (a gauge), not as accepted.
        self.accepted: Counter[str] = Counter({"kafka": 0, "text": 0})
        # Over max.connections, and cut off for not completing a request in time.
        self.refused: Counter[str] = Counter({name: 0 for name in LISTENERS})
        self.timed_out: Counter[str] = Counter({name: 0 for name in LISTENERS})
        self.requests: Counter[tuple[str, str]] = Counter()    # (listener, api) -> count
        self.api_versions: Counter[tuple[str, int]] = Counter()  # Kafka (api, version)
        self.produced = RateCounter(clock=clock)
        self.fetched = RateCounter(clock=clock)
        # Gauges read at collection time (e.g. aiohttp's own connection list).
        self._gauges: dict[str, Callable[[], int]] = {}
        # Other JSON-ready figures read at collection time, by section name.
        self._sections: dict[str, Callable[[], dict]] = {}

    # -- what the listeners call ----------------------------------------------------
    def connection_opened(self, listener: str) -> None:
        self.active[listener] += 1
        self.accepted[listener] += 1

    def connection_closed(self, listener: str) -> None:
        if self.active[listener] > 0:
            self.active[listener] -= 1

    def connection_refused(self, listener: str) -> None:
        self.refused[listener] += 1

    def request_timed_out(self, listener: str) -> None:
        self.timed_out[listener] += 1

    def request(self, api_name: str, listener: str = "kafka", version: int | None = None) -> None:
        self.requests[(listener, api_name)] += 1
        if version is not None:
            self.api_versions[(api_name, version)] += 1

    def records_in(self, n: int) -> None:
        self.produced.add(n)

    def records_out(self, n: int) -> None:
        self.fetched.add(n)

    def section(self, name: str, fn: Callable[[], dict]) -> None:
        """Add ``name: fn()`` to every snapshot (e.g. the fetch-session cache)."""
        self._sections[name] = fn

    def connections_gauge(self, listener: str, fn: Callable[[], int]) -> None:
        """Count ``listener``'s active connections by calling ``fn`` at collection time."""
        self._gauges[listener] = fn

    # -- what the HTTP endpoint reads -----------------------------------------------
    @property
    def uptime(self) -> float:
        return self._clock() - self.started

    def connections(self) -> dict[str, int]:
        out = dict(self.active)
        for listener, fn in self._gauges.items():
            out[listener] = int(fn())
        return out

    def snapshot(self) -> dict:
        """The counters as plain JSON-ready values."""
        uptime = self.uptime
        by_listener: dict[str, dict[str, int]] = {}
        for (listener, api), n in sorted(self.requests.items()):
            by_listener.setdefault(listener, {})[api] = n
        conns = self.connections()
        return {
            "uptime_seconds": round(uptime, 3),
            "started_at": self.started_unix,
            "active_connections": sum(conns.values()),
            "connections": conns,
            "connections_accepted": dict(self.accepted),
            "connections_refused": dict(self.refused),
            "requests_timed_out": dict(self.timed_out),
            "requests": by_listener,
            "kafka_api_versions": _by_api(self.api_versions),
            **{name: fn() for name, fn in self._sections.items()},
            "records": {
                "produced_total": self.produced.total,
                "fetched_total": self.fetched.total,
                "produce_rate": round(self.produced.rate(uptime), 3),
                "fetch_rate": round(self.fetched.rate(uptime), 3),
                "rate_window_seconds": RATE_WINDOW_S,
            },
        }


def _by_api(counts) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (api, version), n in sorted(counts.items()):
        out.setdefault(api, {})[str(version)] = n
    return out


def count_batch_records(data, max_batches: int = 64) -> int:
    """Records in the RecordBatch v2 batches of ``data``, from their headers (no CRC).

    Used by the Kafka Fetch path to count records sent without decoding them.  Walking
    headers costs ~1 µs each and a 1 MiB fetch of one-record batches holds ~6,000, so
    after ``max_batches`` the rest is estimated from the bytes left at the average
    batch size seen so far: exact for fetches of up to 64 batches, an estimate beyond
    (only the fetch rate uses it).  A trailing partial batch is not counted.
    """
    view = data if isinstance(data, (bytes, bytearray)) else memoryview(data).cast("B")
    pos, end, total, batches = 0, len(view), 0, 0
    while pos + _HEADER_SIZE <= end:
        if batches == max_batches:
            return total + int(total * (end - pos) / pos)
        length = _BATCH_LENGTH.unpack_from(view, pos + 8)[0]
        if length < _HEADER_SIZE - _LOG_OVERHEAD or pos + _LOG_OVERHEAD + length > end:
            break
        total += max(0, _RECORDS_COUNT.unpack_from(view, pos + 57)[0])
        pos += _LOG_OVERHEAD + length
        batches += 1
    return total


class _NoLoss:
    count, ranges, open_ranges = 0, (), ()


def _lost(p):
    """The partition's LostOffsets (storage/lost.py); none for a log without one."""
    return getattr(p, "lost", _NoLoss)


def partition_state(log, committed: dict[str, dict[tuple[str, int], int]],
                    internal: bool = False) -> tuple[dict, dict]:
    """Per-partition and per-group figures from the Log and committed offsets.

    committed: group -> {(topic, partition): offset}.  Returns
    ``(partitions, groups)``: partitions keyed ``"<topic>-<partition>"`` with
    log_start_offset, log_end_offset, size_bytes, records_waiting, slowest group;
    groups keyed by group id, then ``"<topic>-<partition>"`` with committed,
    log_end_offset and lag.  Internal topics (``__``) are skipped unless asked.
    """
    partitions: dict[str, dict] = {}
    ends: dict[tuple[str, int], int] = {}
    for name in sorted(log.topics()):
        if name.startswith("__") and not internal:
            continue
        try:
            topic = log.topic(name)
        except Exception:       # noqa: BLE001 -- deleted between topics() and topic()
            continue
        for i in range(topic.num_partitions):
            p = topic.partition(i)
            start, end = p.log_start_offset, p.log_end_offset
            ends[(name, i)] = end
            lost = _lost(p)
            partitions[f"{name}-{i}"] = {
                "topic": name, "partition": i,
                "log_start_offset": start, "log_end_offset": end,
                "size_bytes": int(getattr(p, "size_bytes", 0)),
                "records_retained": end - start,
                "records_waiting": end - start, "slowest_group": None,
                "lost_offsets": lost.count, "lost_ranges": len(lost.open_ranges),
                "lost": [dict(r) for r in lost.ranges],
            }
    groups: dict[str, dict] = {}
    for group in sorted(committed):
        rows = {}
        for (topic, i), offset in sorted(committed[group].items()):
            if (topic, i) not in ends:
                continue
            end = ends[(topic, i)]
            key = f"{topic}-{i}"
            rows[key] = {"topic": topic, "partition": i, "committed_offset": offset,
                         "log_end_offset": end, "lag": max(0, end - offset)}
            part = partitions[key]
            slowest = part["slowest_group"]
            if slowest is None or offset < committed[slowest][(topic, i)]:
                part["slowest_group"] = group
                # Committed offsets below the log start point at records retention
                # removed: only what is still retained can be waiting.
                part["records_waiting"] = end - max(offset, part["log_start_offset"])
        groups[group] = {"partitions": rows, "lag": sum(r["lag"] for r in rows.values())}
    return partitions, groups


def queues(partitions: dict) -> dict[str, int]:
    """``{"<topic>-<partition>": records waiting}`` — the issue's headline figure."""
    return {key: max(0, row["records_waiting"]) for key, row in partitions.items()}



class CommittedOffsets:
    """Committed offsets for the text protocol and the metrics endpoint.

    A thin view over the group coordinator (``log.groups``, pylog/broker/groups.py):
    the same store Kafka clients' OffsetCommit/OffsetFetch use, durable in
    ``__consumer_offsets``.  A text-protocol COMMIT is a non-member commit
    (generation -1), which Kafka allows only while the group has no active
    members; the coordinator's error codes come back as pylog exceptions.
    """

    def __init__(self, broker) -> None:
        self.broker = broker

    def _coordinator(self):
        coordinator = getattr(self.broker.log, "groups", None)
        if coordinator is None:
            raise CoordinatorNotAvailableError("this log has no group coordinator")
        return coordinator

    @staticmethod
    def _check(code: int, group: str) -> None:
        if code == 0:
            return
        cls = for_code(code)
        hint = _COMMIT_HINTS.get(cls.name, "")
        raise cls(f"group {group!r}: {cls.name}{hint}")

    def commit(self, group: str, topic: str, partition: int, offset: int) -> None:
        codes = self._coordinator().commit_offsets(group, -1, "",
                                                   [(topic, partition, offset, -1, None)])
        self._check(codes[0], group)

    def fetch(self, group: str, topic: str, partition: int) -> int:
        code, found = self._coordinator().fetch_offsets(group, [(topic, partition)])
        self._check(code, group)
        committed = found.get((topic, partition))
        return -1 if committed is None else committed.offset

    def groups(self) -> list[str]:
        code, rows = self._coordinator().list_groups()
        self._check(code, "*")
        return [group for group, _protocol_type in rows]

    def state(self, group: str) -> tuple[str, int]:
        """(Kafka group state, number of members); "Dead" for a group never seen."""
        code, summary = self._coordinator().describe_group(group)
        self._check(code, group)
        return summary.state or "Dead", len(summary.members)

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        code, found = self._coordinator().fetch_offsets(group, None)
        self._check(code, group)
        return {key: c.offset for key, c in found.items() if c is not None}

    def all(self) -> dict[str, dict[tuple[str, int], int]]:
        """Every group's committed offsets; empty while the coordinator is loading."""
        try:
            coordinator = self._coordinator()
        except CoordinatorNotAvailableError:
            return {}
        code, rows = coordinator.list_groups()
        if code != 0:
            return {}
        out = {}
        for group, _ in rows:
            code, found = coordinator.fetch_offsets(group, None)
            if code == 0:
                out[group] = {k: c.offset for k, c in found.items() if c is not None}
        return {g: rows for g, rows in out.items() if rows}


_COMMIT_HINTS = {
    "ILLEGAL_GENERATION": ": the group has active members; only they may commit",
    "UNKNOWN_MEMBER_ID": ": the group has active members; only they may commit",
    "REBALANCE_IN_PROGRESS": ": the group is rebalancing; retry",
    "COORDINATOR_LOAD_IN_PROGRESS": ": committed offsets are still loading; retry",
    "UNKNOWN_TOPIC_OR_PARTITION": ": unknown topic or partition",
}
