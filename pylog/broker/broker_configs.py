"""Dynamic broker configs (Kafka's BROKER config resource), applied live and persisted.

    <data>/broker-configs.json    {"version": 1, "cluster": {key: value},
                                   "node": {key: value}}

Two layers, as Kafka's: ``cluster`` holds the cluster-wide defaults (resource name
"", source DYNAMIC_DEFAULT_BROKER_CONFIG) and ``node`` this broker's own (resource
name "0", DYNAMIC_BROKER_CONFIG), which wins.  Under them: the server's static
settings (STATIC_BROKER_CONFIG) and the built-in defaults (DEFAULT_CONFIG).

What can change without a restart (``DYNAMIC_KEYS``):
  - the ``log.*`` broker defaults of topic configs (Kafka's topic config synonyms:
    ``log.retention.ms`` for ``retention.ms`` ...): every topic that does not set the
    key itself takes the new value at once (``Log.apply_topic_defaults``);
  - ``num.partitions`` and ``auto.create.topics.enable`` (BrokerSettings; Kafka
    reads them only at startup, pylog at each auto-creation).
Any other broker config is refused with INVALID_REQUEST "Cannot update these configs
dynamically" (Kafka's DynamicBrokerConfig); a key pylog does not know is
INVALID_CONFIG.  Every change is validated whole before it is written or applied.

``Log`` reads the topic defaults at open (``read_topic_defaults``), before its first
retention check, so an embedded ``pylog.open`` of the directory keeps what the broker
was told (``log.retention.ms=-1`` must not become 7 days).  A damaged file is a
StorageError naming it: guessing defaults could delete data.

Event-loop thread only (BrokerContext), like the settings it changes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pylog.config import TOPIC_CONFIG_SPECS, TopicConfig, parse_value
from pylog.errors import InvalidConfigError, InvalidRequestError, PylogError, StorageError
from pylog.storage.files import atomic_write

__all__ = ["BrokerConfigs", "read_topic_defaults", "TOPIC_SYNONYMS", "DYNAMIC_KEYS",
           "BROKER_CONFIGS_FILE", "MAX_PARTITIONS"]

BROKER_CONFIGS_FILE = "broker-configs.json"
VERSION = 1
MAX_PARTITIONS = 10_000      # as the text protocol's CREATE: each is a directory + files

# Topic config -> the broker config that gives its default (Kafka's
# ServerTopicConfigSynonyms, the primary synonym of each).
TOPIC_SYNONYMS: dict[str, str] = {
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "segment.jitter.ms": "log.roll.jitter.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
    "index.interval.bytes": "log.index.interval.bytes",
    "retention.ms": "log.retention.ms",
    "retention.bytes": "log.retention.bytes",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "max.message.bytes": "message.max.bytes",
    "message.timestamp.type": "log.message.timestamp.type",
    "cleanup.policy": "log.cleanup.policy",
    "compression.type": "compression.type",
    "file.delete.delay.ms": "log.segment.delete.delay.ms",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.insync.replicas": "min.insync.replicas",
    "unclean.leader.election.enable": "unclean.leader.election.enable",
    "preallocate": "log.preallocate",
}
BROKER_TO_TOPIC = {b: t for t, b in TOPIC_SYNONYMS.items()}
_SPECS = {s.name: s for s in TOPIC_CONFIG_SPECS}


def _parse_setting(name: str, value: Any) -> Any:
    text = str(value).strip()
    if name == "auto.create.topics.enable":
        if text.lower() not in ("true", "false"):
            raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                     "Expected value to be either true or false")
        return text.lower() == "true"
    try:
        n = int(text, 10)
    except ValueError:
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 "Not a number of type INT") from None
    if not 1 <= n <= MAX_PARTITIONS:
        raise InvalidConfigError(f"Invalid value {value!r} for configuration {name}: "
                                 f"must be from 1 to {MAX_PARTITIONS}")
    return n


# Broker config -> BrokerSettings attribute, for the settings that change live.
SETTINGS_KEYS = {"num.partitions": "num_partitions",
                 "auto.create.topics.enable": "auto_create_topics"}
DYNAMIC_KEYS = frozenset(BROKER_TO_TOPIC) | frozenset(SETTINGS_KEYS)
LIST_KEYS = frozenset(b for b, t in BROKER_TO_TOPIC.items() if _SPECS[t].type == "list")


def parse(name: str, value: Any) -> Any:
    """Validate one dynamic broker config value (InvalidConfigError naming it)."""
    if name in SETTINGS_KEYS:
        return _parse_setting(name, value)
    try:
        return parse_value(BROKER_TO_TOPIC[name], value)
    except InvalidConfigError as e:
        raise InvalidConfigError(f"broker config {name!r}: {e}") from None


def _read_layers(path: Path | None, known=()) -> dict[str, dict[str, str]]:
    """Both layers from the file (empty when there is none); StorageError naming the
    file for anything a broker would not have written."""
    layers = {layer: {} for layer in BrokerConfigs.LAYERS}
    if path is None:
        return layers
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return layers
    except (OSError, ValueError) as e:
        raise StorageError(f"{path}: unreadable broker configs ({e})") from e
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise StorageError(f"{path}: unsupported broker configs version")
    for layer in BrokerConfigs.LAYERS:
        entries = doc.get(layer) or {}
        try:
            if not isinstance(entries, dict):
                raise InvalidConfigError(f"{layer} is not an object")
            check_keys(entries, known)
            for k, v in entries.items():
                parse(k, v)
        except PylogError as e:
            raise StorageError(f"{path}: {e}") from e
        layers[layer] = {str(k): str(v) for k, v in entries.items()}
    return layers


def read_topic_defaults(data_dir: Path | None) -> dict[str, str]:
    """The topic-key defaults the file gives (for ``Log`` at open, before anything can
    apply retention with the built-in ones)."""
    path = None if data_dir is None else Path(data_dir) / BROKER_CONFIGS_FILE
    layers = _read_layers(path)
    merged = {**layers["cluster"], **layers["node"]}
    return {BROKER_TO_TOPIC[k]: v for k, v in merged.items() if k in BROKER_TO_TOPIC}


def check_keys(names, known=()) -> None:
    """Refuse what cannot change live (INVALID_REQUEST: ``known`` broker configs) or is
    unknown (INVALID_CONFIG)."""
    fixed = sorted(n for n in names if n not in DYNAMIC_KEYS and n in known)
    if fixed:
        raise InvalidRequestError("Cannot update these configs dynamically: "
                                  + ", ".join(fixed))
    unknown = sorted(n for n in names if n not in DYNAMIC_KEYS)
    if unknown:
        raise InvalidConfigError("Unknown broker config name: "
                                 + ", ".join(u[:100] for u in unknown))


class BrokerConfigs:
    """The two dynamic layers; ``alter`` validates, persists, then applies."""

    LAYERS = ("cluster", "node")

    def __init__(self, log, settings) -> None:
        self._log = log
        self._settings = settings
        data_dir = getattr(log, "data_dir", None)
        self._path = None if data_dir is None else Path(data_dir) / BROKER_CONFIGS_FILE
        self.static = {k: getattr(settings, a) for k, a in SETTINGS_KEYS.items()}
        self.layers: dict[str, dict[str, str]] = self._load()
        self._apply()

    # ---- resource names ------------------------------------------------------------
    def layer_for(self, resource_name: str | None) -> str:
        """"" is the cluster default, this node's id its own; anything else is
        INVALID_REQUEST (Kafka's validateResourceNameIsCurrentNodeId)."""
        if not resource_name:
            return "cluster"
        node = self._settings.node_id
        try:
            n = int(resource_name)
        except ValueError:
            raise InvalidRequestError(f"Node id must be an integer, but it is: "
                                      f"{resource_name[:60]}") from None
        if n != node:
            raise InvalidRequestError(f"Unexpected broker id, expected {node} or empty "
                                      f"string, but received {resource_name[:60]}")
        return "node"

    # ---- read ----------------------------------------------------------------------
    def effective(self) -> dict[str, str]:
        return {**self.layers["cluster"], **self.layers["node"]}

    def topic_defaults(self, merged: dict[str, str] | None = None) -> dict[str, str]:
        merged = self.effective() if merged is None else merged
        return {BROKER_TO_TOPIC[k]: v for k, v in merged.items() if k in BROKER_TO_TOPIC}

    # ---- change --------------------------------------------------------------------
    def check_keys(self, names) -> None:
        check_keys(names, self._settings.describe())

    def alter(self, layer: str, new: dict[str, str], validate_only: bool = False) -> None:
        """Make ``new`` the whole content of ``layer`` (the caller computed it from the
        old one for an incremental change)."""
        self.check_keys(new)
        clean = {k: str(v).strip() for k, v in new.items()}
        for k, v in clean.items():
            parse(k, v)
        layers = {**self.layers, layer: clean}
        merged = {**layers["cluster"], **layers["node"]}
        try:        # the defaults whole, as a topic would get them
            TopicConfig().with_defaults(self.topic_defaults(merged))
        except InvalidConfigError as e:
            raise InvalidConfigError(f"broker configs: {e}") from None
        if validate_only:
            return
        self._write(layers)
        self.layers = layers
        self._apply()

    def _apply(self) -> None:
        merged = self.effective()
        for key, attr in SETTINGS_KEYS.items():
            value = parse(key, merged[key]) if key in merged else self.static[key]
            setattr(self._settings, attr, value)
        self._log.apply_topic_defaults(self.topic_defaults(merged))

    # ---- file ----------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, str]]:
        return _read_layers(self._path, self._settings.describe())

    def _write(self, layers: dict) -> None:
        if self._path is None:
            return
        doc = {"version": VERSION, **layers}
        try:
            atomic_write(self._path, (json.dumps(doc, indent=1, sort_keys=True)
                                      + "\n").encode())
        except OSError as e:
            raise StorageError(f"cannot write {self._path}: {e}") from e
