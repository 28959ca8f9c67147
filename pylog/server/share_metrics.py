"""Share-group (queue) figures for ``/metrics``: per group and partition.

JSON: the ``share_groups`` section of the metrics document (registered with
``Metrics.section`` by the BrokerContext)::

    "share_groups": {"<group>": {"<topic>-<partition>": {
        "topic", "partition", "start_offset", "end_offset",     # spso, speo
        "available", "acquired", "delayed",                      # now (available
                                                                 #  includes the log past speo)
        "acknowledged_total", "archived_total", "released_total",
        "expired_total" (lock expiry), "ttl_expired_total",
        "dead_lettered_total",                                   # since the server started
        "<each total without _total>_rate",                      # per second, last 60 s
        "oldest_available_age_ms"}}}                             # -1: nothing available

Prometheus (``families``): gauges ``pylog_share_available``, ``pylog_share_acquired``,
``pylog_share_delayed``, ``pylog_share_start_offset``,
``pylog_share_oldest_available_age_seconds``, counters
``pylog_share_<acknowledged|archived|released|expired|ttl_expired|dead_lettered>_total``
and gauges
``pylog_share_<...>_rate``, each labelled group, topic, partition.

Only share-partitions already in use are reported (``ShareGroups.existing``): a
scrape creates no share-partition, no ShareGroups when nobody used a queue, and holds
each share-partition's lock only for its ``stats()`` (a walk of its in-flight window,
at most group.share.partition.max.record.locks entries).  Rates come from the totals'
increments between collections, kept in RateCounters (metrics.py), so they are exact
to within one scrape interval.  Keys a share-partition's ``stats()`` lacks count 0
(``delayed``, ``ttl_expired_total``, ``dead_lettered_total`` come with the queue
features).  The oldest available record's age is now minus its timestamp, read from
the log at the state machine's ``oldest_available_offset`` (deliverable now) or, when
it has none, at the first AVAILABLE offset.
"""
from __future__ import annotations

import time

from pylog.errors import PylogError

from .metrics import RATE_WINDOW_S, RateCounter

__all__ = ["ShareGroupMetrics", "families", "TOTALS"]

TOTALS = ("acknowledged_total", "archived_total", "released_total", "expired_total",
          "ttl_expired_total", "dead_lettered_total")
_AVAILABLE = 0                # share_state.RecordState.AVAILABLE


class ShareGroupMetrics:
    """Collects the ``share_groups`` section (event-loop thread only)."""

    def __init__(self, log, clock=time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._started = clock()
        # (group, topic, partition) -> {total name: (last total seen, RateCounter)}
        self._rates: dict[tuple, dict[str, list]] = {}
        self._last: dict[tuple, dict] = {}        # the row of the last collection

    def collect(self) -> dict:
        coordinator = getattr(self._log, "_share_groups", None)   # None: never used
        if coordinator is None:
            return {}
        out: dict[str, dict] = {}
        elapsed = self._clock() - self._started
        for sp in sorted(coordinator.existing(), key=lambda s: (s.group, s.topic,
                                                                 s.partition)):
            try:
                p = self._log.partition(sp.topic, sp.partition)
            except PylogError:
                continue                       # topic deleted since
            row = self._row(sp, p, elapsed)
            out.setdefault(sp.group, {})[f"{sp.topic}-{sp.partition}"] = row
        return out

    def _row(self, sp, p, elapsed: float) -> dict:
        key = (sp.group, sp.topic, sp.partition)
        # never wait for a share-partition busy in a change (its state write may wait
        # for a barrier): report what the last collection saw
        if not sp.lock.acquire(blocking=False):
            return self._last.get(key) or {"topic": sp.topic, "partition": sp.partition,
                                           "busy": True}
        try:
            end = p.log_end_offset
            s = sp.stats(end if sp.initialised else None)
            # the state machine's own oldest deliverable offset when it has one
            first = (s["oldest_available_offset"] if "oldest_available_offset" in s
                     else _first_available(sp, end))
        finally:
            sp.lock.release()
        self._last[key] = row = self._figures(sp, p, s, first, elapsed)
        return row

    def _figures(self, sp, p, s: dict, first, elapsed: float) -> dict:
        row = {"topic": sp.topic, "partition": sp.partition,
               "start_offset": s.get("spso", 0), "end_offset": s.get("speo", 0),
               "available": s.get("available", 0), "acquired": s.get("acquired", 0),
               "delayed": s.get("delayed", 0)}
        rates = self._rates.setdefault((sp.group, sp.topic, sp.partition), {})
        for name in TOTALS:
            total = int(s.get(name, 0))
            # totals count since open (this process): the first sight adds them all
            last, counter = rates.setdefault(name, [0, RateCounter(clock=self._clock)])
            counter.add(total - last)
            rates[name][0] = total
            row[name] = total
            row[name[:-len("_total")] + "_rate"] = round(counter.rate(elapsed), 3)
        age = s.get("oldest_available_age_ms")
        row["oldest_available_age_ms"] = (int(age) if age is not None
                                          else _age_ms(p, first))
        return row


def _first_available(sp, end: int) -> int | None:
    """The first AVAILABLE offset (in the window, else the first past it); the
    caller holds ``sp.lock``."""
    if not sp.initialised:
        return None
    window = sp.window()
    first = next((o for o in sorted(window) if int(window[o].state) == _AVAILABLE), None)
    if first is None and sp.speo < end:
        first = sp.speo
    return first


def _age_ms(p, first: int | None) -> int:
    """Now minus the timestamp of the record at ``first``; -1 for none."""
    if first is None:
        return -1
    try:
        recs = p.read(max(first, p.log_start_offset), max_records=1)
    except PylogError:
        return -1
    if not recs:
        return -1
    return max(0, time.time_ns() // 1_000_000 - recs[0].timestamp)


def families(section: dict):
    """Prometheus metric families for the ``share_groups`` section."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    labels = ["group", "topic", "partition"]
    gauges = {
        "available": GaugeMetricFamily("pylog_share_available", "Records available to a "
                                       "share group (in flight or past it)", labels=labels),
        "acquired": GaugeMetricFamily("pylog_share_acquired", "Records held by members",
                                      labels=labels),
        "start_offset": GaugeMetricFamily("pylog_share_start_offset", "Share-partition "
                                          "start offset (all below are finished)",
                                          labels=labels),
        "delayed": GaugeMetricFamily("pylog_share_delayed", "Available records held back "
                                     "now (backoff, deliver-at)", labels=labels),
    }
    age = GaugeMetricFamily("pylog_share_oldest_available_age_seconds", "Age of the "
                            "oldest available record (-1: none)", labels=labels)
    counters, rates = {}, {}
    for name in TOTALS:
        base = name[:-len("_total")]
        counters[name] = CounterMetricFamily(f"pylog_share_{base}",
                                             f"Records {base.replace('_', '-')} since start",
                                             labels=labels)
        rates[name] = GaugeMetricFamily(f"pylog_share_{base}_rate", f"Records "
                                        f"{base.replace('_', '-')} per second (last "
                                        f"{RATE_WINDOW_S} s)", labels=labels)
    for group, parts in sorted(section.items()):
        for row in parts.values():
            if "available" not in row:
                continue                   # busy at its first collection
            key = [group, row["topic"], str(row["partition"])]
            for field, fam in gauges.items():
                fam.add_metric(key, row[field])
            ms = row["oldest_available_age_ms"]
            age.add_metric(key, ms / 1000 if ms >= 0 else -1)
            for name in TOTALS:
                counters[name].add_metric(key, row[name])
                rates[name].add_metric(key, row[name[:-len("_total")] + "_rate"])
    yield from gauges.values()
    yield age
    yield from counters.values()
    yield from rates.values()
