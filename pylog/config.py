"""Topic configuration, named and defaulted after Kafka's topic-level configs.

``TopicConfig.from_dict({"retention.ms": "86400000"})`` validates Kafka-named keys
(strings are accepted as Kafka's admin API sends them) and raises InvalidConfigError
(Kafka INVALID_CONFIG, 40) naming the key for an unknown key, a bad type or an
out-of-range value.  Defaults follow Kafka's LogConfig except the flush policy, which
is pylog's durability choice: ``flush.messages`` None = never by count, ``flush.ms``
1000 (None = never by time).

No silent no-ops: every key is either applied by the engine or, when pylog does not
implement what it asks for, accepted only at its default value (which describes what
pylog does) and refused otherwise.  ``TopicConfig.from_stored`` is the one lenient
door, for topic-metadata.json written by an older pylog (it keeps what is stored and
returns the refusals for the caller to log).  docs/configuration.md is generated
from TOPIC_CONFIG_SPECS (pylog/server/reference.py).
"""
from __future__ import annotations

from dataclasses import dataclass
import difflib
from typing import Any, Callable

from pylog.errors import InvalidConfigError

__all__ = ["TopicConfig", "ConfigSpec", "TOPIC_CONFIG_SPECS", "parse_value", "refusal",
           "MAX_PARTITIONS"]

_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1
_DAY_MS = 24 * 3600 * 1000
# Partitions of one topic, everywhere (pylog.open, CreateTopics, the text protocol,
# --num-partitions): each partition is a directory and open files.
MAX_PARTITIONS = 10_000


@dataclass(frozen=True)
class ConfigSpec:
    """One topic config: Kafka key, attribute name, type, default and legal range."""
    name: str
    attr: str
    type: str                      # "int", "long", "double", "bool", "str", "list"
    default: Any
    lo: float | None = None        # inclusive bounds for numbers
    hi: float | None = None
    choices: tuple | None = None   # legal values for "str" / items of "list"
    nullable: bool = False         # None is legal (and means "never")
    doc: str = ""
    applies: str = "live"          # when a change takes effect: "live", "next segment"
    unimplemented: str = ""        # why only the default is accepted ("" = applied)


TOPIC_CONFIG_SPECS: tuple[ConfigSpec, ...] = (
    ConfigSpec("segment.bytes", "segment_bytes", "int", 1 << 30, 14, _INT32_MAX,
               doc="Roll the active segment when it would exceed this size."),
    ConfigSpec("segment.ms", "segment_ms", "long", 7 * _DAY_MS, 1, _INT64_MAX,
               doc="Roll the active segment after this age."),
    ConfigSpec("segment.jitter.ms", "segment_jitter_ms", "long", 0, 0, _INT64_MAX,
               doc="Random jitter subtracted from segment.ms.",
               unimplemented="segments roll at exactly segment.ms"),
    ConfigSpec("segment.index.bytes", "segment_index_bytes", "int", 10 << 20, 4,
               _INT32_MAX, doc="Preallocated size of .index/.timeindex; full = roll.",
               applies="next segment"),
    ConfigSpec("index.interval.bytes", "index_interval_bytes", "int", 4096, 0,
               _INT32_MAX, doc="Add an offset-index entry after more than this many bytes."),
    ConfigSpec("retention.ms", "retention_ms", "long", 7 * _DAY_MS, -1, _INT64_MAX,
               doc="Delete segments older than this; -1 keeps forever."),
    ConfigSpec("retention.bytes", "retention_bytes", "long", -1, -1, _INT64_MAX,
               doc="Delete oldest segments while the log exceeds this; -1 unlimited."),
    ConfigSpec("flush.messages", "flush_messages", "long", None, 1, _INT64_MAX,
               nullable=True, doc="Barrier after this many messages; 1 = durable acks."),
    ConfigSpec("flush.ms", "flush_ms", "long", 1000, 0, _INT64_MAX, nullable=True,
               doc="Barrier at most this many ms after an append; None = never."),
    ConfigSpec("max.message.bytes", "max_message_bytes", "int", 1048588, 0, _INT32_MAX,
               doc="Largest batch accepted (12 + batchLength)."),
    ConfigSpec("message.timestamp.type", "message_timestamp_type", "str", "CreateTime",
               choices=("CreateTime", "LogAppendTime"),
               doc="LogAppendTime: the broker's clock stamps every batch."),
    ConfigSpec("cleanup.policy", "cleanup_policy", "list", ("delete",),
               choices=("delete", "compact"),
               doc="delete: retention.ms / retention.bytes delete old segments; "
                   "compact: the log cleaner keeps the latest record per key "
                   "(docs/retention.md); both: compacted and retention applied."),
    ConfigSpec("compression.type", "compression_type", "str", "producer",
               choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
               doc="producer: batches are stored as the producer compressed them.",
               unimplemented="pylog stores batches as the producer compressed them "
                             "(no recompression)"),
    ConfigSpec("file.delete.delay.ms", "file_delete_delay_ms", "long", 60000, 0,
               _INT64_MAX, doc="Delay before a deleted segment's files are removed.",
               unimplemented="the delay is not configurable"),
    ConfigSpec("delete.retention.ms", "delete_retention_ms", "long", _DAY_MS, 0,
               _INT64_MAX, doc="Compaction: how long tombstones are kept."),
    ConfigSpec("min.compaction.lag.ms", "min_compaction_lag_ms", "long", 0, 0,
               _INT64_MAX, doc="Compaction: minimum age before a record is compacted."),
    ConfigSpec("max.compaction.lag.ms", "max_compaction_lag_ms", "long", _INT64_MAX, 1,
               _INT64_MAX, doc="Compaction: maximum age before a record is compacted."),
    ConfigSpec("min.cleanable.dirty.ratio", "min_cleanable_dirty_ratio", "double", 0.5,
               0.0, 1.0, doc="Compaction: dirty ratio that triggers cleaning."),
    ConfigSpec("min.insync.replicas", "min_insync_replicas", "int", 1, 1, _INT32_MAX,
               doc="Replicas that must have a write for acks=all.",
               unimplemented="pylog is a single node: every partition has one replica"),
    ConfigSpec("unclean.leader.election.enable", "unclean_leader_election_enable",
               "bool", False, doc="Elect an out-of-sync replica as leader.",
               unimplemented="pylog is a single node: there is no election"),
    ConfigSpec("preallocate", "preallocate", "bool", False,
               doc="Preallocate the whole segment file when it is created.",
               unimplemented="segment files grow in chunks as they fill"),
    ConfigSpec("dedup.window.ms", "dedup_window_ms", "long", 120_000, 0, 7 * _DAY_MS,
               doc="A record whose pylog-msg-id header was stored in the partition "
                   "within this many ms is acknowledged with the first copy's offset "
                   "and not stored again (NATS JetStream's duplicate window); 0 = off."),
    ConfigSpec("pylog.lost.offsets.policy", "lost_offsets_policy", "str", "skip",
               choices=("skip", "raise"),
               doc="A read across offsets lost to corruption (lost-offsets.json): skip "
                   "them with a logged warning, or raise CorruptRecordError."),
    ConfigSpec("message.ttl.ms", "message_ttl_ms", "long", -1, -1, _INT64_MAX,
               doc="pylog: share groups never deliver a record older than this (record "
                   "timestamp + ttl; archived or dead-lettered per share.expired.action); "
                   "a pylog-ttl-ms header overrides it; -1 = no TTL.  Consumer groups "
                   "and plain reads are not affected."),
)
_BY_NAME = {s.name: s for s in TOPIC_CONFIG_SPECS}


def _bad(name: str, value: Any, why: str) -> InvalidConfigError:
    return InvalidConfigError(f"invalid value {value!r} for topic config {name!r}: {why}")


def _parse_number(spec: ConfigSpec, value: Any) -> int | float:
    if isinstance(value, bool):
        raise _bad(spec.name, value, f"expected {spec.type}, got a bool")
    if spec.type == "double":
        try:
            v = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise _bad(spec.name, value, "expected a number") from None
        if v != v:
            raise _bad(spec.name, value, "NaN is not allowed")
    elif isinstance(value, int):
        v = value
    elif isinstance(value, str):
        try:
            v = int(value.strip(), 10)
        except ValueError:
            raise _bad(spec.name, value, f"expected an integer ({spec.type})") from None
    else:
        raise _bad(spec.name, value, f"expected an integer ({spec.type})")
    if (spec.lo is not None and v < spec.lo) or (spec.hi is not None and v > spec.hi):
        raise _bad(spec.name, value, f"must be in [{spec.lo}, {spec.hi}]")
    return v


def _parse_bool(spec: ConfigSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _bad(spec.name, value, "expected true or false")


def _parse_str(spec: ConfigSpec, value: Any) -> str:
    if not isinstance(value, str) or value.strip() not in spec.choices:
        raise _bad(spec.name, value, f"expected one of {', '.join(spec.choices)}")
    return value.strip()


def _parse_list(spec: ConfigSpec, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        parsed = tuple(sorted({str(i).strip() for i in items}))
    except TypeError:
        raise _bad(spec.name, value, "expected a comma-separated list") from None
    if not parsed or any(i not in spec.choices for i in parsed):
        raise _bad(spec.name, value, f"expected a list of {', '.join(spec.choices)}")
    return parsed


_PARSERS: dict[str, Callable[[ConfigSpec, Any], Any]] = {
    "int": _parse_number, "long": _parse_number, "double": _parse_number,
    "bool": _parse_bool, "str": _parse_str, "list": _parse_list,
}


def _unknown(name: Any) -> InvalidConfigError:
    close = difflib.get_close_matches(str(name), list(_BY_NAME), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InvalidConfigError(f"unknown topic config {name!r}{hint}; the topic configs "
                              f"pylog knows are listed in docs/configuration.md")


def refusal(name: str, value: Any) -> str | None:
    """Why a parsed value asks for something pylog does not do, or None if applied."""
    spec = _BY_NAME[name]
    if not spec.unimplemented or value == spec.default:
        return None
    shown = ",".join(value) if isinstance(value, tuple) else _format(value)
    if spec.name == "cleanup.policy":
        return f"cleanup.policy={shown}: {spec.unimplemented}"
    return (f"{name}={shown}: not implemented ({spec.unimplemented}); pylog accepts only "
            f"the default, {_format(spec.default)}")


def parse_value(name: str, value: Any, strict: bool = True) -> Any:
    """Validate one Kafka-named config value; return it in its Python type.

    ``strict`` (everywhere but loading what a data directory already holds) also
    refuses a value pylog would not act on (see ``refusal``)."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise _unknown(name)
    if value is None or (spec.nullable and isinstance(value, str)
                         and value.strip().lower() in ("", "none", "null")):
        if spec.nullable:
            return None
        raise _bad(name, value, "a value is required")
    parsed = _PARSERS[spec.type](spec, value)
    if strict:
        why = refusal(name, parsed)
        if why is not None:
            raise InvalidConfigError(why)
    return parsed


def _format(value: Any) -> str | None:
    """A value as Kafka's DescribeConfigs shows it (None stays None = unset)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


class TopicConfig:
    """A topic's validated configuration; immutable (``with_updates`` makes a new one).

    Attributes use Python names (``segment_bytes``); dict keys use Kafka's
    (``segment.bytes``).  ``explicit`` is the set of keys given by the user, which
    DescribeConfigs reports as not-default.
    """

    __slots__ = tuple(s.attr for s in TOPIC_CONFIG_SPECS) + ("explicit",)

    def __init__(self, **overrides: Any):
        values = {s.name: s.default for s in TOPIC_CONFIG_SPECS}
        explicit = set()
        for attr, value in overrides.items():
            name = attr.replace("_", ".") if attr not in _BY_NAME else attr
            values[name] = parse_value(name, value)
            explicit.add(name)
        for spec in TOPIC_CONFIG_SPECS:
            object.__setattr__(self, spec.attr, values[spec.name])
        object.__setattr__(self, "explicit", frozenset(explicit))

    def __setattr__(self, name, value):
        raise AttributeError("TopicConfig is immutable; use with_updates()")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TopicConfig":
        """Build from Kafka-named keys; InvalidConfigError names a bad key."""
        cfg = cls()
        return cfg.with_updates(d or {})

    @classmethod
    def from_stored(cls, d: dict[str, Any] | None) -> tuple["TopicConfig", list[str]]:
        """Build from a data directory's topic-metadata.json: values an older pylog
        accepted and this one refuses (``refusal``) are kept, and returned as messages
        for the caller to log; anything else invalid still raises."""
        cfg = cls()._updated(d or {}, strict=False)
        return cfg, [why for name in sorted(cfg.explicit)
                     if (why := refusal(name, cfg.get(name))) is not None]

    def with_updates(self, d: dict[str, Any]) -> "TopicConfig":
        """A copy with the Kafka-named keys in d set (None resets a nullable key)."""
        return self._updated(d, strict=True)

    def _updated(self, d: dict[str, Any], strict: bool) -> "TopicConfig":
        if not isinstance(d, dict):
            raise InvalidConfigError(f"topic config must be a dict, not {type(d).__name__}")
        new = object.__new__(TopicConfig)
        for spec in TOPIC_CONFIG_SPECS:
            object.__setattr__(new, spec.attr, getattr(self, spec.attr))
        explicit = set(self.explicit)
        for name, value in d.items():
            parsed = parse_value(name, value, strict)    # raises for an unknown name
            object.__setattr__(new, _BY_NAME[name].attr, parsed)
            explicit.add(name)
        object.__setattr__(new, "explicit", frozenset(explicit))
        return new

    def with_defaults(self, defaults: dict[str, Any]) -> "TopicConfig":
        """A copy whose keys not set on the topic (not in ``explicit``) take their value
        from ``defaults`` (Kafka-named keys: the broker's dynamic ``log.*`` configs)
        or else from the built-in default; explicit keys are kept.  InvalidConfigError
        for a bad default."""
        new = object.__new__(TopicConfig)
        for spec in TOPIC_CONFIG_SPECS:
            value = getattr(self, spec.attr)
            if spec.name not in self.explicit:
                value = (parse_value(spec.name, defaults[spec.name])
                         if spec.name in defaults else spec.default)
            object.__setattr__(new, spec.attr, value)
        object.__setattr__(new, "explicit", self.explicit)
        return new

    def get(self, name: str) -> Any:
        """Value of a Kafka-named key."""
        spec = _BY_NAME.get(name)
        if spec is None:
            raise _unknown(name)
        return getattr(self, spec.attr)

    def to_dict(self, only_explicit: bool = False) -> dict[str, Any]:
        """Kafka-named keys → JSON-friendly values; from_dict(to_dict()) == self."""
        out = {}
        for spec in TOPIC_CONFIG_SPECS:
            if only_explicit and spec.name not in self.explicit:
                continue
            v = getattr(self, spec.attr)
            out[spec.name] = ",".join(v) if isinstance(v, tuple) else v
        return out

    def describe(self) -> list[tuple[str, str | None, bool]]:
        """(name, value as a string or None, is_default) per key, for DescribeConfigs."""
        return [(s.name, _format(getattr(self, s.attr)), s.name not in self.explicit)
                for s in TOPIC_CONFIG_SPECS]

    @property
    def flush_every_message(self) -> bool:
        """True when every append must be behind a barrier before it is acked."""
        return self.flush_messages == 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().items()))

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.to_dict(only_explicit=True).items())
        return f"TopicConfig({items})"
