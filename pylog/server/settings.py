"""pylog-server configuration: command-line flags > ``PYLOG_*`` environment > TOML file.

Every option has one name used three ways: ``--num-partitions`` on the command
line, ``PYLOG_NUM_PARTITIONS`` in the environment, ``num_partitions`` in the
TOML file given by ``--config`` (or ``PYLOG_CONFIG``).  Kafka's name for the
same setting is given in the help text.  Unknown TOML keys are an error naming
the key, so a typo is not silently ignored.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib          # type: ignore[no-redef]

__all__ = ["ServerConfig", "parse_config", "ConfigError"]


class ConfigError(ValueError):
    """A bad configuration value; the message names the option and its source."""


def _bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _listener(text: Any) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port_n = int(port)
    if not 0 <= port_n <= 65535:
        raise ValueError(f"port {port_n} out of range")
    return host.strip("[]"), port_n


@dataclass
class ServerConfig:
    data_dir: str = "./data"
    kafka_listener: str = "127.0.0.1:9092"      # listeners (PLAINTEXT)
    text_port: int | None = None                # text protocol (None: 3000 if free); -1 = off
    http_port: int | None = None                # HTTP /metrics, /healthz (None: 8081 if free)
    advertised_host: str | None = None          # advertised.listeners host
    advertised_port: int | None = None
    num_partitions: int = 1                     # num.partitions
    auto_create_topics: bool = True             # auto.create.topics.enable
    group_initial_rebalance_delay_ms: int = 0   # group.initial.rebalance.delay.ms
    group_min_session_timeout_ms: int = 6000    # group.min.session.timeout.ms
    group_max_session_timeout_ms: int = 1_800_000   # group.max.session.timeout.ms
    group_max_size: int = 2_147_483_647         # group.max.size
    group_consumer_session_timeout_ms: int = 45_000   # group.consumer.session.timeout.ms
    group_consumer_heartbeat_interval_ms: int = 5000  # group.consumer.heartbeat.interval.ms
    group_consumer_assignors: str = "uniform,range"   # group.consumer.assignors
    offsets_retention_minutes: int = 10080      # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600_000   # offsets.retention.check.interval.ms
    max_request_bytes: int = 104_857_600        # socket.request.max.bytes
    idle_ms: int = 600_000                      # connections.max.idle.ms
    request_timeout_ms: int = 30_000            # a request's deadline from its first byte
    max_connections: int | None = None          # max.connections (None: from RLIMIT_NOFILE)
    shutdown_timeout_ms: int = 10_000           # in-flight drain at shutdown
    log_level: str = "INFO"
    log_json: bool = False

    def __post_init__(self) -> None:
        _check_group_settings(self)

    @property
    def kafka_address(self) -> tuple[str, int]:
        return _listener(self.kafka_listener)


def _check_group_settings(c: "ServerConfig") -> None:
    """The group settings, as Kafka checks them at startup (ConfigError names them)."""
    from pylog.broker.assignors import ASSIGNORS
    for name in ("group_min_session_timeout_ms", "group_max_session_timeout_ms",
                 "group_max_size", "group_consumer_session_timeout_ms",
                 "group_consumer_heartbeat_interval_ms", "offsets_retention_minutes",
                 "offsets_retention_check_interval_ms"):
        if getattr(c, name) < 1:
            raise ConfigError(f"{name}: must be at least 1, got {getattr(c, name)}")
    if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms:
        raise ConfigError("group_min_session_timeout_ms must not exceed "
                          "group_max_session_timeout_ms")
    if c.group_consumer_heartbeat_interval_ms >= c.group_consumer_session_timeout_ms:
        raise ConfigError("group_consumer_heartbeat_interval_ms must be below "
                          "group_consumer_session_timeout_ms")
    names = [a.strip() for a in c.group_consumer_assignors.split(",") if a.strip()]
    if not names or any(a not in ASSIGNORS for a in names):
        raise ConfigError(f"group_consumer_assignors {c.group_consumer_assignors!r}: "
                          f"known assignors are {', '.join(ASSIGNORS)}")


_HELP = {
    "data_dir": "data directory (created if missing)",
    "kafka_listener": "HOST:PORT of the Kafka listener (Kafka: listeners); port 0 = any",
    "text_port": "port of the line-oriented text protocol, on the Kafka listener's host "
                 "(default 3000, skipped with a warning if taken; 0 = any free port, "
                 "-1 = disabled)",
    "http_port": "port of the HTTP listener (/metrics, /healthz), on the Kafka listener's "
                 "host (default 8081, skipped with a warning if taken; 0 = any free port, "
                 "-1 = disabled)",
    "advertised_host": "host given to clients in Metadata (default: the address they "
                       "connected to)",
    "advertised_port": "port given to clients in Metadata",
    "num_partitions": "partitions of auto-created topics (Kafka: num.partitions)",
    "auto_create_topics": "create unknown topics on Metadata requests "
                          "(Kafka: auto.create.topics.enable)",
    "group_initial_rebalance_delay_ms": "how long a new group waits for more members before "
                                        "its first rebalance "
                                        "(Kafka: group.initial.rebalance.delay.ms)",
    "group_min_session_timeout_ms": "smallest session timeout a classic member may ask for "
                                    "(Kafka: group.min.session.timeout.ms)",
    "group_max_session_timeout_ms": "largest session timeout a classic member may ask for "
                                    "(Kafka: group.max.session.timeout.ms)",
    "group_max_size": "members a group may have (Kafka: group.max.size)",
    "group_consumer_session_timeout_ms": "session timeout of consumer-protocol (KIP-848) "
                                         "members (Kafka: group.consumer.session.timeout.ms)",
    "group_consumer_heartbeat_interval_ms": "heartbeat interval told to consumer-protocol "
                                            "members (Kafka: group.consumer.heartbeat.interval.ms)",
    "group_consumer_assignors": "server-side assignors, comma-separated, the first is the "
                                "default (Kafka: group.consumer.assignors)",
    "offsets_retention_minutes": "committed offsets of a group empty this long are deleted "
                                 "(Kafka: offsets.retention.minutes)",
    "offsets_retention_check_interval_ms": "how often expired offsets are looked for "
                                           "(Kafka: offsets.retention.check.interval.ms)",
    "max_request_bytes": "largest request accepted (Kafka: socket.request.max.bytes)",
    "idle_ms": "close connections idle this long (Kafka: connections.max.idle.ms)",
    "request_timeout_ms": "close a connection whose request is not complete this long after "
                          "its first byte (every listener; Kafka: request.timeout.ms)",
    "max_connections": "open connections over all listeners; more are refused (Kafka: "
                       "max.connections; default: the open-files limit minus a quarter, "
                       "at least 64, kept for segment files)",
    "shutdown_timeout_ms": "how long shutdown waits for in-flight requests",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_json": "log one JSON object per line instead of human-readable text",
}


def _convert(name: str, raw: Any, source: str) -> Any:
    default = ServerConfig.__dataclass_fields__[name].default
    kind = type(default) if default is not None else (
        int if name.endswith("port") or name == "max_connections" else str)
    try:
        if kind is bool:
            return _bool(raw)
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError("not an integer")
            value = int(raw)
            if name in ("text_port", "http_port") and not -1 <= value <= 65535:
                raise ValueError(f"port {value} out of range (-1 disables)")
            if name in ("max_connections", "request_timeout_ms", "idle_ms") and value < 1:
                raise ValueError(f"must be at least 1, got {value}")
            return value
        value = str(raw)
        if name == "kafka_listener":
            _listener(value)
        if name == "log_level" and value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"unknown level {value!r}")
        return value.upper() if name == "log_level" else value
    except ValueError as exc:
        raise ConfigError(f"{name} from {source}: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylog-server",
                                description="pylog broker speaking the Kafka protocol")
    p.add_argument("--config", help="TOML configuration file (env PYLOG_CONFIG)")
    for f in fields(ServerConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                           help=_HELP[f.name])
        else:
            p.add_argument(flag, dest=f.name, default=None, help=_HELP[f.name])
    return p


def parse_config(argv: list[str] | None = None,
                 environ: dict[str, str] | None = None) -> ServerConfig:
    """Merge defaults < TOML < environment < flags into a ServerConfig."""
    environ = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    values: dict[str, Any] = {}
    path = args.config or environ.get("PYLOG_CONFIG")
    if path:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        known = {f.name for f in fields(ServerConfig)}
        for key, raw in table.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"config file {path}: unknown key {key!r}")
            values[name] = _convert(name, raw, f"config file {path}")
    for f in fields(ServerConfig):
        env = "PYLOG_" + f.name.upper()
        if env in environ:
            values[f.name] = _convert(f.name, environ[env], f"environment {env}")
    for f in fields(ServerConfig):
        raw = getattr(args, f.name)
        if raw is not None:
            values[f.name] = _convert(f.name, raw, "--" + f.name.replace("_", "-"))
    return ServerConfig(**values)
