"""Topic configuration, named and defaulted after Kafka's topic-level configs.

``TopicConfig.from_dict({"retention.ms": "86400000"})`` validates Kafka-named keys
(strings are accepted as Kafka's admin API sends them) and raises InvalidConfigError
naming the key for an unknown key, a bad type or an out-of-range value.  Defaults
follow Kafka's LogConfig except the flush policy, which is pylog's durability
choice (DESIGN section 3): ``flush.messages`` None = never by count, ``flush.ms``
1000 (None = never by time).

Keys marked "stored" in _SPECS are accepted and reported by DescribeConfigs so
Kafka tools that set them work, but pylog's engine does not act on them yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pylog.errors import InvalidConfigError

__all__ = ["TopicConfig", "ConfigSpec", "TOPIC_CONFIG_SPECS", "parse_value"]

_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1
_DAY_MS = 24 * 3600 * 1000


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


TOPIC_CONFIG_SPECS: tuple[ConfigSpec, ...] = (
    ConfigSpec("segment.bytes", "segment_bytes", "int", 1 << 30, 14, _INT32_MAX,
               doc="Roll the active segment when it would exceed this size."),
    ConfigSpec("segment.ms", "segment_ms", "long", 7 * _DAY_MS, 1, _INT64_MAX,
               doc="Roll the active segment after this age."),
    ConfigSpec("segment.jitter.ms", "segment_jitter_ms", "long", 0, 0, _INT64_MAX,
               doc="stored"),
    ConfigSpec("segment.index.bytes", "segment_index_bytes", "int", 10 << 20, 4,
               _INT32_MAX, doc="Preallocated size of .index/.timeindex; full = roll."),
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
               choices=("CreateTime", "LogAppendTime")),
    ConfigSpec("cleanup.policy", "cleanup_policy", "list", ("delete",),
               choices=("delete", "compact")),
    ConfigSpec("compression.type", "compression_type", "str", "producer",
               choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
               doc="stored"),
    ConfigSpec("file.delete.delay.ms", "file_delete_delay_ms", "long", 60000, 0,
               _INT64_MAX, doc="stored"),
    ConfigSpec("delete.retention.ms", "delete_retention_ms", "long", _DAY_MS, 0,
               _INT64_MAX, doc="stored"),
    ConfigSpec("min.compaction.lag.ms", "min_compaction_lag_ms", "long", 0, 0,
               _INT64_MAX, doc="stored"),
    ConfigSpec("max.compaction.lag.ms", "max_compaction_lag_ms", "long", _INT64_MAX, 1,
               _INT64_MAX, doc="stored"),
    ConfigSpec("min.cleanable.dirty.ratio", "min_cleanable_dirty_ratio", "double", 0.5,
               0.0, 1.0, doc="stored"),
    ConfigSpec("min.insync.replicas", "min_insync_replicas", "int", 1, 1, _INT32_MAX,
               doc="stored (single broker)"),
    ConfigSpec("unclean.leader.election.enable", "unclean_leader_election_enable",
               "bool", False, doc="stored (single broker)"),
    ConfigSpec("preallocate", "preallocate", "bool", False, doc="stored"),
    ConfigSpec("pylog.lost.offsets.policy", "lost_offsets_policy", "str", "skip",
               choices=("skip", "raise"),
               doc="A read across offsets lost to corruption (lost-offsets.json): skip "
                   "them with a logged warning, or raise CorruptRecordError."),
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


def parse_value(name: str, value: Any) -> Any:
    """Validate one Kafka-named config value; return it in its Python type."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise InvalidConfigError(f"unknown topic config {name!r}")
    if value is None or (spec.nullable and isinstance(value, str)
                         and value.strip().lower() in ("", "none", "null")):
        if spec.nullable:
            return None
        raise _bad(name, value, "a value is required")
    return _PARSERS[spec.type](spec, value)


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

    def with_updates(self, d: dict[str, Any]) -> "TopicConfig":
        """A copy with the Kafka-named keys in d set (None resets a nullable key)."""
        if not isinstance(d, dict):
            raise InvalidConfigError(f"topic config must be a dict, not {type(d).__name__}")
        new = object.__new__(TopicConfig)
        for spec in TOPIC_CONFIG_SPECS:
            object.__setattr__(new, spec.attr, getattr(self, spec.attr))
        explicit = set(self.explicit)
        for name, value in d.items():
            parsed = parse_value(name, value)        # raises for an unknown name
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
            raise InvalidConfigError(f"unknown topic config {name!r}")
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
