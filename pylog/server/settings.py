"""pylog-server configuration: command-line flags > ``PYLOG_*`` environment > TOML file.

Every option has one name used three ways: ``--num-partitions`` on the command
line, ``PYLOG_NUM_PARTITIONS`` in the environment, ``num_partitions`` in the
TOML file given by ``--config`` (or ``PYLOG_CONFIG``).  Kafka's name for the
same setting is given in the help text.  Unknown TOML keys are an error naming
the key, so a typo is not silently ignored.

Every value is checked here, before the server binds a port or touches the data
directory, against the bounds in ``SETTINGS`` (one table: the help text, the
generated docs/configuration.md and the checks all read it).  A bad value is a
``ConfigError`` whose message names where it came from and what is allowed, in an
operator's words; ``pylog-server`` prints it and exits 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import tomllib
from dataclasses import dataclass, fields
from typing import Any

from pylog.config import MAX_PARTITIONS

__all__ = ["ServerConfig", "Setting", "SETTINGS", "parse_config", "ConfigError",
           "env_name", "flag_name"]

_INT32_MAX = (1 << 31) - 1


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
    raise ValueError(f"expected true or false, got {text!r}")


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
    group_share_record_lock_duration_ms: int = 30_000   # group.share.record.lock.duration.ms
    group_share_delivery_count_limit: int = 5           # group.share.delivery.count.limit
    group_share_session_timeout_ms: int = 45_000        # group.share.session.timeout.ms
    group_share_heartbeat_interval_ms: int = 5000       # group.share.heartbeat.interval.ms
    transaction_max_timeout_ms: int = 900_000           # transaction.max.timeout.ms
    transaction_abort_check_interval_ms: int = 10_000   # transaction.abort.timed.out...
    offsets_retention_minutes: int = 10080      # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600_000   # offsets.retention.check.interval.ms
    max_request_bytes: int = 104_857_600        # socket.request.max.bytes
    idle_ms: int = 600_000                      # connections.max.idle.ms
    request_timeout_ms: int = 30_000            # a request's deadline from its first byte
    max_connections: int | None = None          # max.connections (None: from RLIMIT_NOFILE)
    max_connections_per_ip: int | None = None   # max.connections.per.ip (None: no limit)
    shutdown_timeout_ms: int = 10_000           # in-flight drain at shutdown
    retention_check_interval_ms: int = 30_000   # log.retention.check.interval.ms
    log_cleaner_enable: bool = True             # log.cleaner.enable (compaction)
    log_cleaner_backoff_ms: int = 15_000        # log.cleaner.backoff.ms
    log_level: str = "INFO"
    log_json: bool = False
    ssl_certfile: str | None = None             # PEM chain (ssl.keystore.certificate.chain)
    ssl_keyfile: str | None = None              # PEM key (ssl.keystore.key)
    ssl_cafile: str | None = None               # client CAs (ssl.truststore.certificates)
    ssl_client_auth: str = "NONE"               # ssl.client.auth
    sasl_enabled_mechanisms: str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    connections_max_reauth_ms: int = 0          # connections.max.reauth.ms (KIP-368)
    connection_failed_authentication_delay_ms: int = 100
    allow_insecure: bool = False                # serve a non-loopback address without auth
    authorizer: str = "NONE"                    # authorizer.class.name: NONE or ACL
    text_security: str = "PLAINTEXT"            # the text listener's protocol
    http_security: str = "PLAINTEXT"            # the HTTP listener's protocol
    super_users: str = ""                       # super.users, ';'-separated principals
    allow_everyone_if_no_acl_found: bool = False

    def __post_init__(self) -> None:
        _check_group_settings(self)
        _check_security_settings(self)

    @property
    def kafka_address(self) -> tuple[str, int]:
        """Host and port of the first Kafka listener (the text and HTTP host)."""
        first = self.kafka_listeners[0]
        return first.host, first.port

    @property
    def kafka_listeners(self):
        from pylog.security.listeners import parse_listeners
        return parse_listeners(self.kafka_listener)


@dataclass(frozen=True)
class Setting:
    """One server setting: its type, bounds and help (flag, env and TOML names derive
    from ``name``)."""
    name: str
    kind: str                    # "int", "bool", "str", "listener", "choice"
    help: str
    kafka: str = ""              # Kafka's name for the same setting
    lo: int | None = None
    hi: int | None = None
    choices: tuple[str, ...] = ()
    default_doc: str = ""        # the default in words, when it is not a plain value


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("data_dir", "str", "data directory (created if missing)"),
    Setting("kafka_listener", "listener", "the Kafka listeners, comma-separated "
            "[PROTOCOL://]HOST:PORT with PROTOCOL one of PLAINTEXT (the default), SSL, "
            "SASL_PLAINTEXT, SASL_SSL; port 0 = any free port", kafka="listeners"),
    Setting("text_port", "int", "port of the line-oriented text protocol, on the Kafka "
            "listener's host (0 = any free port, -1 = disabled)", lo=-1, hi=65535,
            default_doc="3000, skipped with a warning if taken"),
    Setting("http_port", "int", "port of the HTTP listener (/metrics, /healthz), on the "
            "Kafka listener's host (0 = any free port, -1 = disabled)", lo=-1, hi=65535,
            default_doc="8081, skipped with a warning if taken"),
    Setting("advertised_host", "str", "host given to clients in Metadata",
            kafka="advertised.listeners", default_doc="the address they connected to"),
    Setting("advertised_port", "int", "port given to clients in Metadata", lo=1, hi=65535,
            kafka="advertised.listeners", default_doc="the port they connected to"),
    Setting("num_partitions", "int", "partitions of auto-created topics (and of CREATE "
            "without a count)", kafka="num.partitions", lo=1, hi=MAX_PARTITIONS),
    Setting("auto_create_topics", "bool", "create unknown topics on Metadata requests",
            kafka="auto.create.topics.enable"),
    Setting("group_initial_rebalance_delay_ms", "int", "how long a new group waits for "
            "more members before its first rebalance",
            kafka="group.initial.rebalance.delay.ms", lo=0, hi=3_600_000),
    Setting("group_min_session_timeout_ms", "int", "smallest session timeout a classic "
            "group member may ask for", kafka="group.min.session.timeout.ms", lo=1,
            hi=_INT32_MAX),
    Setting("group_max_session_timeout_ms", "int", "largest session timeout a classic "
            "group member may ask for", kafka="group.max.session.timeout.ms", lo=1,
            hi=_INT32_MAX),
    Setting("group_max_size", "int", "members a group may have",
            kafka="group.max.size", lo=1, hi=_INT32_MAX),
    Setting("group_consumer_session_timeout_ms", "int", "session timeout of "
            "consumer-protocol (KIP-848) members", kafka="group.consumer.session.timeout.ms",
            lo=1, hi=_INT32_MAX),
    Setting("group_consumer_heartbeat_interval_ms", "int", "heartbeat interval told to "
            "consumer-protocol members (below their session timeout)",
            kafka="group.consumer.heartbeat.interval.ms", lo=1, hi=_INT32_MAX),
    Setting("group_consumer_assignors", "str", "server-side assignors of the consumer "
            "protocol, comma-separated (uniform, range); the first is the default",
            kafka="group.consumer.assignors"),
    Setting("group_share_record_lock_duration_ms", "int", "how long a share-group "
            "member holds a record it was given before it comes back (the default of "
            "the group config share.record.lock.duration.ms)",
            kafka="group.share.record.lock.duration.ms", lo=1000, hi=3_600_000),
    Setting("group_share_delivery_count_limit", "int", "deliveries of a record before "
            "a share group gives up on it (default of share.delivery.count.limit)",
            kafka="group.share.delivery.count.limit", lo=2, hi=10),
    Setting("group_share_session_timeout_ms", "int", "a share-group member that does not "
            "heartbeat this long is removed and its records released",
            kafka="group.share.session.timeout.ms", lo=1, hi=_INT32_MAX),
    Setting("group_share_heartbeat_interval_ms", "int", "heartbeat interval told to "
            "share-group members (below their session timeout)",
            kafka="group.share.heartbeat.interval.ms", lo=1, hi=_INT32_MAX),
    Setting("transaction_max_timeout_ms", "int", "the largest transaction.timeout.ms a "
            "transactional producer may ask for (INVALID_TRANSACTION_TIMEOUT above it)",
            kafka="transaction.max.timeout.ms", lo=1, hi=_INT32_MAX),
    Setting("transaction_abort_check_interval_ms", "int", "how often open transactions "
            "past their timeout are looked for and aborted",
            kafka="transaction.abort.timed.out.transaction.cleanup.interval.ms", lo=1,
            hi=_INT32_MAX),
    Setting("offsets_retention_minutes", "int", "committed offsets of a group empty this "
            "long are deleted", kafka="offsets.retention.minutes", lo=1, hi=_INT32_MAX),
    Setting("offsets_retention_check_interval_ms", "int", "how often expired committed "
            "offsets are looked for", kafka="offsets.retention.check.interval.ms", lo=1,
            hi=_INT32_MAX),
    Setting("max_request_bytes", "int", "largest request accepted",
            kafka="socket.request.max.bytes", lo=1024, hi=_INT32_MAX),
    Setting("idle_ms", "int", "close connections idle this long",
            kafka="connections.max.idle.ms", lo=1, hi=_INT32_MAX),
    Setting("request_timeout_ms", "int", "close a connection whose request is not "
            "complete this long after its first byte (every listener)",
            kafka="request.timeout.ms", lo=1, hi=_INT32_MAX),
    Setting("max_connections", "int", "open connections over all listeners; more are "
            "refused", kafka="max.connections", lo=1, hi=10_000_000,
            default_doc="the open-files limit minus a quarter (at least 64 kept for "
                        "segment files)"),
    Setting("max_connections_per_ip", "int", "connections one client address may have "
            "open over all listeners; more are refused as over max_connections",
            kafka="max.connections.per.ip", lo=1, hi=_INT32_MAX, default_doc="no limit"),
    Setting("shutdown_timeout_ms", "int", "how long shutdown waits for in-flight "
            "requests", lo=0, hi=3_600_000),
    Setting("retention_check_interval_ms", "int", "how often retention deletes old "
            "segments", kafka="log.retention.check.interval.ms", lo=1, hi=_INT32_MAX),
    Setting("log_cleaner_enable", "bool", "run the log cleaner (compaction of "
            "cleanup.policy=compact topics)", kafka="log.cleaner.enable"),
    Setting("log_cleaner_backoff_ms", "int", "how long the log cleaner sleeps when "
            "nothing is cleanable", kafka="log.cleaner.backoff.ms", lo=1, hi=_INT32_MAX),
    Setting("log_level", "choice", "log level", choices=("DEBUG", "INFO", "WARNING",
                                                         "ERROR")),
    Setting("log_json", "bool", "log one JSON object per line instead of text"),
    Setting("ssl_certfile", "str", "PEM certificate chain of the SSL and SASL_SSL listeners",
            kafka="ssl.keystore.certificate.chain", default_doc="none"),
    Setting("ssl_keyfile", "str", "PEM private key of that certificate (if not in the "
            "certificate file)", kafka="ssl.keystore.key", default_doc="none"),
    Setting("ssl_cafile", "str", "PEM CA certificates that client certificates must chain "
            "to", kafka="ssl.truststore.certificates", default_doc="none"),
    Setting("ssl_client_auth", "choice", "ask for client certificates (mTLS; the "
            "principal is the certificate subject)", kafka="ssl.client.auth",
            choices=("NONE", "REQUESTED", "REQUIRED")),
    Setting("sasl_enabled_mechanisms", "str", "SASL mechanisms offered, comma-separated "
            "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", kafka="sasl.enabled.mechanisms"),
    Setting("connections_max_reauth_ms", "int", "SASL session lifetime: clients "
            "re-authenticate before it ends (0 = never)", kafka="connections.max.reauth.ms",
            lo=0, hi=_INT32_MAX),
    Setting("connection_failed_authentication_delay_ms", "int", "how long a failed "
            "authentication waits before its answer", lo=0, hi=60_000,
            kafka="connection.failed.authentication.delay.ms"),
    Setting("text_security", "choice", "how the text listener treats clients: PLAINTEXT, "
            "SSL (the Kafka listeners' certificate), SASL_PLAINTEXT or SASL_SSL (AUTH <user> "
            "<password> first)", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    Setting("http_security", "choice", "how the HTTP listener treats clients: PLAINTEXT, "
            "SSL (the Kafka listeners' certificate), SASL_PLAINTEXT or SASL_SSL (HTTP Basic, "
            "a Bearer token or a dashboard login)",
            choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    Setting("authorizer", "choice", "ACL authorization of every request (ACL) or none; "
            "ACLs live in <data>/acls.json (pylog acls, CreateAcls)",
            kafka="authorizer.class.name", choices=("NONE", "ACL")),
    Setting("super_users", "str", "principals allowed everything, ';'-separated (e.g. "
            "User:admin;User:ops)", kafka="super.users", default_doc="none"),
    Setting("allow_everyone_if_no_acl_found", "bool", "allow a request on a resource no "
            "ACL names", kafka="allow.everyone.if.no.acl.found"),
    Setting("allow_insecure", "bool", "allow a listener on a non-loopback address that "
            "authenticates nobody (PLAINTEXT, or SSL without client certificates)"),
)}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    return "PYLOG_" + name.upper()


def default_text(name: str) -> str:
    """The default as the docs and --help show it."""
    spec = SETTINGS[name]
    if spec.default_doc:
        return spec.default_doc
    value = ServerConfig.__dataclass_fields__[name].default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bounds_text(spec: Setting) -> str:
    if spec.kind == "int":
        return f"an integer from {spec.lo} to {spec.hi}"
    if spec.kind == "bool":
        return "true or false"
    if spec.kind == "choice":
        return "one of " + ", ".join(spec.choices)
    if spec.kind == "listener":
        return "[PROTOCOL://]HOST:PORT[,...]"
    return "a non-empty string"


def _is_loopback(host: str) -> bool:
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False                 # a name: it may resolve to anything


def _check_security_settings(c: "ServerConfig") -> None:
    """Listeners need what their protocol uses; an address reachable from elsewhere
    must authenticate its clients unless ``allow_insecure`` says otherwise."""
    try:
        listeners = c.kafka_listeners
    except ValueError as exc:
        raise ConfigError(f"kafka_listener: {exc}") from None
    if any(spec.tls for spec in listeners) and not c.ssl_certfile:
        raise ConfigError("an SSL or SASL_SSL listener needs ssl_certfile (and ssl_keyfile "
                          "unless the key is in the same file)")
    if c.ssl_client_auth.upper() != "NONE" and not c.ssl_cafile:
        raise ConfigError("ssl_client_auth needs ssl_cafile (the CAs of client certificates)")
    from pylog.security.sasl import ALL_MECHANISMS
    mechs = [m.strip().upper() for m in c.sasl_enabled_mechanisms.split(",") if m.strip()]
    bad = [m for m in mechs if m not in ALL_MECHANISMS]
    if bad or not mechs:
        raise ConfigError(f"sasl_enabled_mechanisms {c.sasl_enabled_mechanisms!r}: known "
                          f"mechanisms are {', '.join(ALL_MECHANISMS)}")
    text = c.text_security.upper()
    if (text in ("SSL", "SASL_SSL") or c.http_security.upper() in ("SSL", "SASL_SSL")) \
            and not c.ssl_certfile:
        raise ConfigError("text_security / http_security SSL or SASL_SSL needs ssl_certfile")
    host = listeners[0].host                 # the text and HTTP listeners' host too
    if not _is_loopback(host) and not c.allow_insecure:
        if c.text_port != -1 and (text == "PLAINTEXT" or (
                text == "SSL" and c.ssl_client_auth.upper() != "REQUIRED")):
            raise ConfigError(f"the text listener on {host} would let anyone read and write "
                              f"every topic: set --text-security SASL_SSL (or "
                              f"SASL_PLAINTEXT), --text-port -1, or --allow-insecure")
        http = c.http_security.upper()
        if c.http_port != -1 and (http == "PLAINTEXT" or (
                http == "SSL" and c.ssl_client_auth.upper() != "REQUIRED")):
            raise ConfigError(f"the HTTP listener on {host} would let anyone read and write "
                              f"every topic: set --http-security SASL_SSL (or "
                              f"SASL_PLAINTEXT), --http-port -1, or --allow-insecure")
    for spec in listeners:
        open_to_all = spec.protocol == "PLAINTEXT" or (
            spec.protocol == "SSL" and c.ssl_client_auth.upper() != "REQUIRED")
        if open_to_all and not _is_loopback(spec.host) and not c.allow_insecure:
            raise ConfigError(
                f"listener {spec} would let anyone who can reach {spec.host} read and write "
                f"every topic: use SASL_SSL:// or SASL_PLAINTEXT:// (users: pylog users "
                f"add), SSL:// with ssl_client_auth=required, or pass --allow-insecure")


def _check_group_settings(c: "ServerConfig") -> None:
    """The group settings' relations, as Kafka checks them at startup (each value's
    bounds are in SETTINGS); ConfigError names them."""
    from pylog.broker.assignors import ASSIGNORS
    if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms:
        raise ConfigError("group_min_session_timeout_ms must not exceed "
                          "group_max_session_timeout_ms")
    if c.group_consumer_heartbeat_interval_ms >= c.group_consumer_session_timeout_ms:
        raise ConfigError("group_consumer_heartbeat_interval_ms must be below "
                          "group_consumer_session_timeout_ms")
    if c.group_share_heartbeat_interval_ms >= c.group_share_session_timeout_ms:
        raise ConfigError("group_share_heartbeat_interval_ms must be below "
                          "group_share_session_timeout_ms")
    names = [a.strip() for a in c.group_consumer_assignors.split(",") if a.strip()]
    if not names or any(a not in ASSIGNORS for a in names):
        raise ConfigError(f"group_consumer_assignors {c.group_consumer_assignors!r}: "
                          f"known assignors are {', '.join(ASSIGNORS)}")


def _convert(name: str, raw: Any, source: str) -> Any:
    """One raw value (a string from a flag or the environment, or a TOML value) in its
    type, checked against its bounds; ConfigError naming ``source`` otherwise."""
    spec = SETTINGS[name]
    try:
        if spec.kind == "bool":
            return _bool(raw)
        if spec.kind == "int":
            if isinstance(raw, bool) or isinstance(raw, float):
                raise ValueError(f"expected {bounds_text(spec)}, got {raw!r}")
            text = raw if isinstance(raw, int) else str(raw).strip()
            if isinstance(text, str) and not text.lstrip("-").isdigit():
                raise ValueError(f"expected {bounds_text(spec)}, got {raw!r}")
            value = int(text)
            if not spec.lo <= value <= spec.hi:
                raise ValueError(f"{value} is out of range: expected {bounds_text(spec)}")
            return value
        if not isinstance(raw, str):
            raise ValueError(f"expected {bounds_text(spec)}, got {raw!r}")
        value = raw.strip()
        if spec.kind == "listener":
            from pylog.security.listeners import parse_listeners
            parse_listeners(value)
        elif spec.kind == "choice":
            if value.upper() not in spec.choices:
                raise ValueError(f"expected {bounds_text(spec)}, got {raw!r}")
            value = value.upper()
        elif not value:
            raise ValueError("expected a non-empty value")
        return value
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check_data_dir(path: str, source: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{source}: {path} exists and is not a directory")


def _help(spec: Setting) -> str:
    kafka = f"; Kafka: {spec.kafka}" if spec.kafka else ""
    return (f"{spec.help} ({bounds_text(spec)}{kafka}) "
            f"[env {env_name(spec.name)}, TOML {spec.name}, default: {default_text(spec.name)}]")


class _Reference(argparse.Action):
    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from .reference import config_reference
        print(config_reference(), end="")
        parser.exit(0)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("pylog")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    def error(self, message):                   # exit 2 as argparse does, with pylog's words
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pylog-server",
                description="pylog broker speaking the Kafka protocol, a text protocol "
                            "and HTTP (/metrics, /healthz).",
                epilog="Precedence: flags > PYLOG_* environment > --config file.toml. "
                       "Exit codes: 0 stopped cleanly (SIGTERM/SIGINT), 1 cannot start or "
                       "failed while running (port in use, data directory locked or "
                       "unreadable), 2 bad configuration or usage. Every setting and topic "
                       "config: docs/configuration.md (pylog-server "
                       "--print-config-reference).")
    p.add_argument("--version", action="version", version=f"pylog-server {version()}")
    p.add_argument("--config", help="TOML configuration file [env PYLOG_CONFIG]")
    p.add_argument("--print-config-reference", action=_Reference,
                   help="print the configuration reference (Markdown) and exit")
    for f in fields(ServerConfig):
        spec = SETTINGS[f.name]
        if spec.kind == "bool":
            p.add_argument(flag_name(f.name), dest=f.name, default=None,
                           action=argparse.BooleanOptionalAction, help=_help(spec))
        else:
            p.add_argument(flag_name(f.name), dest=f.name, default=None, help=_help(spec),
                           metavar=f.name.split("_")[-1].upper())
    return p


def parse_config(argv: list[str] | None = None,
                 environ: dict[str, str] | None = None) -> ServerConfig:
    """Merge defaults < TOML < environment < flags into a checked ServerConfig."""
    environ = os.environ if environ is None else environ
    args = _parser().parse_args(argv)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = args.config or environ.get("PYLOG_CONFIG")
    if path:
        try:
            with open(path, "rb") as f:
                table = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
        for key, raw in table.items():
            name = key.replace("-", "_")
            if name not in SETTINGS:
                raise ConfigError(f"config file {path}: unknown key {key!r} (the keys are "
                                  f"listed by pylog-server --help)")
            sources[name] = f"config file {path}: {key}"
            values[name] = _convert(name, raw, sources[name])
    for name in SETTINGS:
        env = env_name(name)
        if env in environ:
            sources[name] = f"environment {env}"
            values[name] = _convert(name, environ[env], sources[name])
    for name in SETTINGS:
        raw = getattr(args, name)
        if raw is not None:
            sources[name] = flag_name(name)
            values[name] = _convert(name, raw, sources[name])
    config = ServerConfig(**values)
    _check_data_dir(config.data_dir, sources.get("data_dir", "--data-dir"))
    return config


def effective(config: ServerConfig) -> list[tuple[str, Any]]:
    """(name, value) of every setting, for the start-up log."""
    return [(f.name, getattr(config, f.name)) for f in fields(ServerConfig)]
