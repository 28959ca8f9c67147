"""Server-side assignors of the consumer protocol (KIP-848): ``uniform`` and ``range``.

An assignor is a pure function::

    assign(members, partitions, previous) -> {member_id: {topic: frozenset(partitions)}}

``members`` maps member id → the topic names it is subscribed to, ``partitions`` maps
topic → partition count (existing topics only), ``previous`` is the last target
assignment (same shape as the result).  Every partition of a subscribed topic goes to
exactly one member subscribed to it.

* ``uniform`` (Kafka's UniformAssignor, the default): balanced (member counts differ
  by at most one when subscriptions are the same) and sticky — a member keeps what it
  had, up to its quota, so a rebalance moves only the partitions it must.
* ``range`` (Kafka's RangeAssignor): per topic, members sorted by id get consecutive
  ranges, the first ``count % members`` one partition more; members subscribed to the
  same topics get the same partition numbers of each (co-partitioning).
"""
from __future__ import annotations

from typing import Callable

Assignment = dict[str, frozenset]

__all__ = ["ASSIGNORS", "uniform", "range_assign"]


def _freeze(out: dict[str, dict[str, set]]) -> dict[str, Assignment]:
    return {m: {t: frozenset(ps) for t, ps in topics.items() if ps}
            for m, topics in out.items()}


def range_assign(members: dict[str, tuple], partitions: dict[str, int],
                 previous: dict[str, Assignment]) -> dict[str, Assignment]:
    out: dict[str, dict[str, set]] = {m: {} for m in members}
    for topic, count in sorted(partitions.items()):
        subs = sorted(m for m, topics in members.items() if topic in topics)
        if not subs:
            continue
        each, extra = divmod(count, len(subs))
        start = 0
        for i, m in enumerate(subs):
            n = each + (1 if i < extra else 0)
            out[m][topic] = set(range(start, start + n))
            start += n
    return _freeze(out)


def uniform(members: dict[str, tuple], partitions: dict[str, int],
            previous: dict[str, Assignment]) -> dict[str, Assignment]:
    out: dict[str, dict[str, set]] = {m: {} for m in members}
    counts = dict.fromkeys(members, 0)
    eligible = {m: [t for t in topics if t in partitions] for m, topics in members.items()}
    # A member's quota: its fair share (floor) of the partitions of the topics it
    # subscribes to, shared with every member subscribed to any of them; when everyone
    # subscribes to the same topics (Kafka's homogeneous case) ``total % members`` of
    # them may hold one more.
    quota = {}
    for m, topics in eligible.items():
        total = sum(partitions[t] for t in topics)
        sharers = sum(1 for o in eligible if set(eligible[o]) & set(topics)) or 1
        quota[m] = total // sharers
    same = len({frozenset(t) for t in eligible.values()}) == 1
    extras = (sum(partitions[t] for t in next(iter(eligible.values()), ())) % len(members)
              if same and members else 0)
    taken: set[tuple[str, int]] = set()

    def keep(m: str, limit: int) -> None:
        for topic, parts in sorted((previous.get(m) or {}).items()):
            if topic not in eligible[m]:
                continue
            for p in sorted(parts):
                if p < partitions[topic] and counts[m] < limit and (topic, p) not in taken:
                    out[m].setdefault(topic, set()).add(p)
                    counts[m] += 1
                    taken.add((topic, p))

    # First pass: stickiness, each member keeps its previous partitions up to its
    # quota, then the members that had the most keep one more while extras remain.
    for m in sorted(members):
        keep(m, quota[m])
    by_previous = sorted(members, key=lambda x: (-sum(map(len, (previous.get(x) or {})
                                                         .values())), x))
    for m in by_previous:
        if extras <= 0:
            break
        before = counts[m]
        keep(m, quota[m] + 1)
        extras -= counts[m] - before
    # Second pass: every other partition to the eligible member holding the fewest.
    for topic, count in sorted(partitions.items()):
        subs = sorted(m for m in members if topic in eligible[m])
        for p in range(count):
            if (topic, p) in taken or not subs:
                continue
            m = min(subs, key=lambda x: (counts[x], x))
            out[m].setdefault(topic, set()).add(p)
            counts[m] += 1
            taken.add((topic, p))
    return _freeze(out)


ASSIGNORS: dict[str, Callable] = {"uniform": uniform, "range": range_assign}
