"""Share-group administration: start offsets (Describe/Alter/DeleteShareGroupOffsets,
Kafka APIs 90–92) and deleting a share group (DeleteGroups).

Works on ``log.share_groups`` (its share-partitions and store) and ``log.share_members``.
Changing or deleting state needs the group to be empty — no Kafka member heartbeating and
no embedded ``log.queue`` open — as Kafka requires (NON_EMPTY_GROUP otherwise): nobody then
holds a record whose state would be rewritten under them.
"""
from __future__ import annotations

from pylog.errors import InvalidRequestError, NonEmptyGroupError, PylogError

__all__ = ["is_empty", "start_offset", "alter_start_offset", "delete_state",
           "delete_group", "has_state"]


def is_empty(log_, group: str) -> bool:
    sg = log_.share_groups
    with sg._lock:
        embedded = bool(sg._members.get(group))
    return not embedded and not log_.share_members.has_members(group)


def _check_empty(log_, group: str) -> None:
    if not is_empty(log_, group):
        raise NonEmptyGroupError(f"share group {group} has members; stop them first")


def has_state(log_, group: str) -> bool:
    sg = log_.share_groups
    return any(g == group for g, _t, _p in sg.store.keys()) or \
        any(g == group for g, _t, _p in list(sg._partitions))


def start_offset(log_, group: str, topic: str, partition: int) -> tuple[int, int]:
    """(share-partition start offset, lag) — records at or above the start not yet
    acknowledged or archived; (-1, -1) if the share-partition was never used."""
    sg = log_.share_groups
    p = log_.partition(topic, partition)            # UnknownTopicError, as Kafka
    sp = sg._partitions.get((group, topic, partition))
    if sp is not None and sp.initialised:
        with sp.lock:
            finished = sum(1 for e in sp.window().values() if e.state in (2, 4))
            return sp.spso, max(0, p.log_end_offset - sp.spso - finished)
    stored = sg.store.state(group, topic, partition)
    if stored is None:
        return -1, -1
    start, triples = stored
    finished = sum(1 for _o, s, _c in triples if s in (2, 4))
    return start, max(0, p.log_end_offset - start - finished)


def alter_start_offset(log_, group: str, topic: str, partition: int, offset: int) -> None:
    """Move the share-partition's start to ``offset`` (within the log); every record
    from there on is available again with delivery count 0."""
    from pylog.broker.share_state import Delta
    _check_empty(log_, group)
    p = log_.partition(topic, partition)
    if not p.log_start_offset <= offset <= p.log_end_offset:
        raise InvalidRequestError(f"start offset {offset} of {topic}-{partition} is outside "
                                  f"the log [{p.log_start_offset}, {p.log_end_offset}]")
    sg = log_.share_groups
    sg.wait_loaded()
    with sg._lock:
        sg._partitions.pop((group, topic, partition), None)
        sg.store.delete(group, topic, partition)
        sg.store.write(group, topic, partition, Delta(offset, (), True)).result()


def delete_state(log_, group: str, topic: str) -> int:
    """Forget the group's state for every partition of ``topic``; returns how many
    share-partitions had state."""
    _check_empty(log_, group)
    sg = log_.share_groups
    sg.wait_loaded()
    n, last = 0, None
    with sg._lock:
        keys = {k for k in sg.store.keys() if k[0] == group and k[1] == topic}
        keys |= {k for k in sg._partitions if k[0] == group and k[1] == topic}
        for k in sorted(keys):
            sg._partitions.pop(k, None)
            last = sg.store.delete(*k)
            n += 1
    if last is not None:
        last.result()
    return n


def delete_group(log_, group: str) -> bool:
    """Delete an empty share group's state and configs; False if it had none."""
    _check_empty(log_, group)
    topics = {t for g, t, _p in log_.share_groups.store.keys() if g == group}
    topics |= {t for g, t, _p in list(log_.share_groups._partitions) if g == group}
    for t in sorted(topics):
        delete_state(log_, group, t)
    log_.share_members.forget(group)
    try:
        if log_.group_configs.get(group):
            log_.group_configs.alter(group, {}, replace=True)
    except PylogError:
        pass
    return bool(topics)
