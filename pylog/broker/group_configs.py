"""Dynamic group configs (Kafka's GROUP config resource, KIP-848 / KIP-932).

    <data>/group-configs.json     {"version": 1, "groups": {group_id: {key: value}}}

Set by AlterConfigs / IncrementalAlterConfigs on a GROUP resource and read by the
group coordinators (``log.group_configs.get(group_id)``).  Keys, defaults and bounds
are Kafka's GroupConfig with the broker's default limits
(``group.consumer.min.session.timeout.ms`` 45000 ... ``max`` 60000, heartbeat 5000
... 15000, the same for share groups; record lock 15000 ... 60000), and a session
timeout must exceed its heartbeat interval.  Share groups also take Kafka's
``share.delivery.count.limit`` (2 ... 10) and ``share.auto.offset.reset``, and pylog's
own share keys (redelivery backoff, dead letters, TTL action, priority window; see the
table and pylog/broker/share_delivery.py), typed int, double, bool or str.  Values are
kept as the (normalised) strings given; ``get`` answers only the keys set for the group
(the caller applies its own default; ``typed`` converts a value).

Written with ``atomic_write`` (temp file, fsync, rename, fsync of the directory) on
every change; a memory log (no data directory) keeps them in memory.  Thread-safe
(one lock).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, NamedTuple

from pylog.broker.share_delivery import parse_auto_offset_reset
from pylog.errors import (InvalidConfigError, InvalidRequestError, InvalidTopicError,
                          StorageError)
from pylog.storage.files import atomic_write, validate_topic_name

__all__ = ["GroupConfigs", "GroupConfigKey", "GROUP_CONFIG_KEYS", "GROUP_CONFIGS_FILE"]

GROUP_CONFIGS_FILE = "group-configs.json"
VERSION = 1


class GroupConfigKey(NamedTuple):
    name: str
    default: int | float | str | bool
    lo: int | float    # the broker's group.*.min... limit (Kafka's default); numbers
    hi: int | float
    doc: str
    type: str = "int"  # "int", "double", "bool", "str"; a "str" is checked by ``check``
    check: Callable[[str], object] | None = None


GROUP_CONFIG_KEYS: dict[str, GroupConfigKey] = {k.name: k for k in (
    GroupConfigKey("consumer.session.timeout.ms", 45000, 45000, 60000,
                   "The timeout to detect client failures when using the consumer group "
                   "protocol."),
    GroupConfigKey("consumer.heartbeat.interval.ms", 5000, 5000, 15000,
                   "The heartbeat interval given to the members of a consumer group."),
    GroupConfigKey("share.session.timeout.ms", 45000, 45000, 60000,
                   "The timeout to detect client failures when using the share group "
                   "protocol."),
    GroupConfigKey("share.heartbeat.interval.ms", 5000, 5000, 15000,
                   "The heartbeat interval given to the members of a share group."),
    GroupConfigKey("share.record.lock.duration.ms", 30000, 15000, 60000,
                   "The record acquisition lock duration in milliseconds for share groups."),
    GroupConfigKey("share.delivery.count.limit", 5, 2, 10,
                   "The maximum number of delivery attempts for a record delivered to a "
                   "share group; past it the record is archived (or dead-lettered)."),
    GroupConfigKey("share.auto.offset.reset", "latest", 0, 0,
                   "Where a share group starts on a partition it has no state for: "
                   "latest, earliest, or by_duration:<ISO-8601 duration> (the first "
                   "record no older than that, e.g. by_duration:PT1H).",
                   "str", parse_auto_offset_reset),
    # pylog's own (issue 12 part 3; pylog/broker/share_delivery.py)
    GroupConfigKey("share.redelivery.backoff.ms", 0, 0, 3_600_000,
                   "pylog: initial delay before a released or lock-expired record is "
                   "delivered again; 0 = at once (Kafka's behaviour)."),
    GroupConfigKey("share.redelivery.backoff.max.ms", 60_000, 0, 86_400_000,
                   "pylog: the redelivery backoff never exceeds this."),
    GroupConfigKey("share.redelivery.backoff.multiplier", 2.0, 1.0, 100.0,
                   "pylog: the backoff after the n-th delivery is initial * "
                   "multiplier^(n-1), capped at the max.", "double"),
    GroupConfigKey("share.redelivery.backoff.jitter", 0.2, 0.0, 1.0,
                   "pylog: a random fraction up to this much is taken off each backoff.",
                   "double"),
    GroupConfigKey("errors.deadletterqueue.enable", "true", 0, 0,
                   "pylog: rejected and delivery-limit records (and expired ones with "
                   "share.expired.action=dlq) are produced to the dead-letter topic "
                   "before they are archived; false = only archived (Kafka's "
                   "behaviour).", "bool"),
    GroupConfigKey("errors.deadletterqueue.topic.name", "", 0, 0,
                   "The dead-letter topic (KIP-1191's name); empty = <topic>.dlq. "
                   "Created on first use with the origin topic's partition count.",
                   "str", lambda v: v and validate_topic_name(v)),
    GroupConfigKey("share.expired.action", "archive", 0, 0,
                   "pylog: what becomes of a record whose TTL (pylog-ttl-ms header or "
                   "the topic's message.ttl.ms) passed before delivery: archive or dlq.",
                   "str", lambda v: _choice("share.expired.action", v, ("archive", "dlq"))),
    GroupConfigKey("share.priority.window.records", 200, 1, 10_000,
                   "pylog: pylog-priority orders the records among the next this many "
                   "from the share-partition start offset (capped at "
                   "group.share.partition.max.record.locks, 200); 1 = FIFO."),
)}
# (session key, heartbeat key): the session timeout must be greater.
_PAIRS = (("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"),
          ("share.session.timeout.ms", "share.heartbeat.interval.ms"))


def _choice(name: str, value: str, choices: tuple) -> str:
    if value not in choices:
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 f"must be one of {', '.join(choices)}")
    return value


def _parse(name: str, value) -> int | float | str:
    key = GROUP_CONFIG_KEYS.get(name)
    if key is None:
        raise InvalidConfigError(f"Unknown group config name: {name}")
    if key.type == "str":
        text = str(value).strip()
        try:
            norm = key.check(text)
        except (InvalidConfigError, InvalidTopicError, ValueError) as e:
            msg = str(e)
            raise InvalidConfigError(msg if name in msg else
                                     f"Invalid value {text!r} for configuration "
                                     f"{name}: {msg}") from None
        return norm if isinstance(norm, str) else text
    if key.type == "bool":
        text = str(value).strip().lower()
        if text not in ("true", "false"):
            raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                     "Expected value to be either true or false")
        return text
    try:
        n = (float if key.type == "double" else int)(str(value).strip())
    except ValueError:
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 f"Not a number of type {key.type.upper()}") from None
    if key.type == "double":
        if not key.lo <= n <= key.hi:
            raise InvalidConfigError(f"{name} must be between {key.lo} and {key.hi}")
        return n
    if not -(1 << 31) <= n < (1 << 31):
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 "Not a number of type INT")
    if n < key.lo:
        raise InvalidConfigError(f"{name} must be greater than or equal to {key.lo} "
                                 "(the broker's limit)")
    if n > key.hi:
        raise InvalidConfigError(f"{name} must be less than or equal to {key.hi} "
                                 "(the broker's limit)")
    return n


def validate(configs: dict[str, str]) -> dict[str, str]:
    """The group's whole set of configs checked as Kafka's GroupConfig.validate does;
    returns it with values normalised ("  5000" -> "5000")."""
    out = {name: str(_parse(name, value)) for name, value in configs.items()}
    for session, heartbeat in _PAIRS:
        s = int(out.get(session, GROUP_CONFIG_KEYS[session].default))
        h = int(out.get(heartbeat, GROUP_CONFIG_KEYS[heartbeat].default))
        if s <= h:
            raise InvalidConfigError(f"{session} must be greater than {heartbeat}")
    lo, hi = "share.redelivery.backoff.ms", "share.redelivery.backoff.max.ms"
    if int(out.get(lo, 0)) > int(out.get(hi, GROUP_CONFIG_KEYS[hi].default)):
        raise InvalidConfigError(f"{lo} must not be greater than {hi}")
    return out


def typed(name: str, value: str) -> int | float | str | bool:
    """A stored (validated) value as its type: "true" -> True, "2.0" -> 2.0."""
    key = GROUP_CONFIG_KEYS[name]
    if key.type == "bool":
        return str(value).lower() == "true"
    if key.type == "double":
        return float(value)
    if key.type == "int":
        return int(value)
    return str(value)


class GroupConfigs:
    """Per-group dynamic configs, persisted in ``<data>/group-configs.json``."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self._path = None if data_dir is None else Path(data_dir) / GROUP_CONFIGS_FILE
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, str]] = self._load()
        self.version = 0               # +1 on every change (readers cache by it)

    def _load(self) -> dict[str, dict[str, str]]:
        if self._path is None:
            return {}
        try:
            doc = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise StorageError(f"{self._path}: unreadable group configs ({e})") from e
        if not isinstance(doc, dict) or doc.get("version") != VERSION \
                or not isinstance(doc.get("groups"), dict):
            raise StorageError(f"{self._path}: unsupported group configs version "
                               f"{doc.get('version') if isinstance(doc, dict) else doc!r}")
        groups = {}
        for g, c in doc["groups"].items():
            try:
                if not isinstance(c, dict):
                    raise InvalidConfigError("not an object")
                groups[str(g)] = validate({str(k): str(v) for k, v in c.items()})
            except InvalidConfigError as e:
                raise StorageError(f"{self._path}: group {g[:100]!r}: {e}") from e
        return groups

    def get(self, group_id: str) -> dict[str, str]:
        """The configs set for ``group_id`` (only those set; empty if none)."""
        with self._lock:
            return dict(self._groups.get(group_id, {}))

    def alter(self, group_id: str, updates: dict[str, str | None], *,
              replace: bool = False, validate_only: bool = False) -> dict[str, str]:
        """Set keys (a None value deletes one); ``replace`` drops every key not named
        (AlterConfigs).  The result is validated whole before anything is written;
        InvalidConfigError / InvalidRequestError name the problem.  Returns it."""
        if not group_id:
            raise InvalidRequestError("Group name must not be empty")
        with self._lock:
            new = {} if replace else dict(self._groups.get(group_id, {}))
            for name, value in updates.items():
                if value is None:
                    if name not in GROUP_CONFIG_KEYS:
                        raise InvalidConfigError(f"Unknown group config name: {name}")
                    new.pop(name, None)
                else:
                    new[name] = value
            new = validate(new)
            if validate_only:
                return new
            groups = dict(self._groups)
            if new:
                groups[group_id] = new
            else:
                groups.pop(group_id, None)
            self._write(groups)
            self._groups = groups
            self.version += 1
            return dict(new)

    def describe(self, group_id: str) -> list[tuple[str, str, bool]]:
        """(name, value, is_default) for every group config key."""
        if not group_id:
            raise InvalidRequestError("Group name must not be empty")
        mine = self.get(group_id)
        return [(k.name, mine.get(k.name, str(k.default)), k.name not in mine)
                for k in GROUP_CONFIG_KEYS.values()]

    def _write(self, groups: dict) -> None:
        if self._path is None:
            return
        doc = {"version": VERSION, "groups": groups}
        try:
            atomic_write(self._path, (json.dumps(doc, indent=1, sort_keys=True)
                                      + "\n").encode())
        except OSError as e:
            raise StorageError(f"cannot write {self._path}: {e}") from e
