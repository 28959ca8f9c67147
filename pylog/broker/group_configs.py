"""Dynamic group configs (Kafka's GROUP config resource, KIP-848 / KIP-932).

    <data>/group-configs.json     {"version": 1, "groups": {group_id: {key: value}}}

Set by AlterConfigs / IncrementalAlterConfigs on a GROUP resource and read by the
group coordinators (``log.group_configs.get(group_id)``).  Keys, defaults and bounds
are Kafka's GroupConfig with the broker's default limits
(``group.consumer.min.session.timeout.ms`` 45000 ... ``max`` 60000, heartbeat 5000
... 15000, the same for share groups; record lock 15000 ... 60000), and a session
timeout must exceed its heartbeat interval.  Values are kept as the strings given;
``get`` answers only the keys set for the group (the caller applies its own default).

Written with ``atomic_write`` (temp file, fsync, rename, fsync of the directory) on
every change; a memory log (no data directory) keeps them in memory.  Thread-safe
(one lock).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import NamedTuple

from pylog.errors import InvalidConfigError, InvalidRequestError, StorageError
from pylog.storage.files import atomic_write

__all__ = ["GroupConfigs", "GroupConfigKey", "GROUP_CONFIG_KEYS", "GROUP_CONFIGS_FILE"]

GROUP_CONFIGS_FILE = "group-configs.json"
VERSION = 1


class GroupConfigKey(NamedTuple):
    name: str
    default: int
    lo: int            # the broker's group.*.min... limit (Kafka's default)
    hi: int
    doc: str


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
)}
# (session key, heartbeat key): the session timeout must be greater.
_PAIRS = (("consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"),
          ("share.session.timeout.ms", "share.heartbeat.interval.ms"))


def _parse(name: str, value) -> int:
    key = GROUP_CONFIG_KEYS.get(name)
    if key is None:
        raise InvalidConfigError(f"Unknown group config name: {name}")
    try:
        n = int(str(value).strip(), 10)
    except ValueError:
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 "Not a number of type INT") from None
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
    return out


class GroupConfigs:
    """Per-group dynamic configs, persisted in ``<data>/group-configs.json``."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self._path = None if data_dir is None else Path(data_dir) / GROUP_CONFIGS_FILE
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, str]] = self._load()

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
