"""The configuration reference, generated from the code: every pylog-server setting
(``settings.SETTINGS``) and every topic config (``pylog.config.TOPIC_CONFIG_SPECS``).

``config_reference()`` is what ``pylog-server --print-config-reference`` prints and
what docs/configuration.md holds; tests/test_config_reference.py checks the file is
up to date.  Regenerate it with::

    pylog-server --print-config-reference > docs/configuration.md
"""
from __future__ import annotations

from dataclasses import fields

from pylog.config import MAX_PARTITIONS, TOPIC_CONFIG_SPECS, ConfigSpec

from .settings import (SETTINGS, ServerConfig, bounds_text, default_text, env_name,
                       flag_name)

__all__ = ["config_reference"]

_INT64_MAX = (1 << 63) - 1
_INT32_MAX = (1 << 31) - 1


def _num(v) -> str:
    if v == _INT64_MAX:
        return "2^63-1"
    if v == _INT32_MAX:
        return "2^31-1"
    return str(v)


def _topic_default(spec: ConfigSpec) -> str:
    v = spec.default
    if v is None:
        return "none (never)"
    if isinstance(v, bool):
        return "false" if not v else "true"
    if isinstance(v, tuple):
        return ",".join(v)
    return _num(v)


def _topic_values(spec: ConfigSpec) -> str:
    if spec.unimplemented:
        return f"only `{_topic_default(spec)}`"
    if spec.type in ("int", "long", "double"):
        text = f"{_num(spec.lo)} to {_num(spec.hi)}"
        return text + (", or none" if spec.nullable else "")
    if spec.type == "bool":
        return "true, false"
    return ", ".join(spec.choices)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def config_reference() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the code by `pylog-server --print-config-reference` "
        "(pylog/server/reference.py); `tests/test_config_reference.py` fails when this "
        "file is out of date. Regenerate it with "
        "`pylog-server --print-config-reference > docs/configuration.md`.",
        "",
        "## pylog-server settings",
        "",
        "Each setting has one name used three ways: a flag, a `PYLOG_*` environment "
        "variable and a key of the TOML file given by `--config` (or `PYLOG_CONFIG`). "
        "Precedence: flags > environment > file > default. Every value is checked "
        "before the server binds a port or touches the data directory; a bad one (or "
        "an unknown TOML key) prints one line naming it and exits 2.",
        "",
        "| flag | environment | TOML key | default | values | Kafka name | what it does |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in fields(ServerConfig):
        s = SETTINGS[f.name]
        flag = flag_name(f.name)
        if s.kind == "bool":
            flag += f" / --no-{flag[2:]}"
        lines.append(f"| `{flag}` | `{env_name(f.name)}` | `{f.name}` | "
                     f"{_cell(default_text(f.name))} | {_cell(bounds_text(s))} | "
                     f"{('`' + s.kafka + '`') if s.kafka else '–'} | {_cell(s.help)} |")
    lines += [
        "",
        "Not settable: `log.retention.check.interval.ms` (retention runs every 30 s; "
        "embedded: `pylog.open(path, retention_check_interval_ms=...)`), "
        "`default.replication.factor` (1: a single node).",
        "",
        "## Topic configs",
        "",
        "Kafka's names and defaults, set with `pylog.open(...).create_topic(name, "
        "partitions, config={...})`, Kafka's CreateTopics (`kafka-topics.sh --config`, "
        "admin clients) or `pylog topics create --config k=v`. Values may be strings as "
        "Kafka's admin API sends them. A key pylog does not know, a value out of range, "
        "or a value pylog would not act on is refused with INVALID_CONFIG (40) and a "
        "message naming the key: nothing is accepted and then ignored. Keys marked "
        "*only the default* are Kafka features pylog does not implement (their default "
        "describes what pylog does). \"Applies\" says when a change to an existing "
        f"topic takes effect. Partitions per topic: 1 to {MAX_PARTITIONS}.",
        "",
        "| key | default | values | applies | what it does |",
        "|---|---|---|---|---|",
    ]
    for spec in TOPIC_CONFIG_SPECS:
        what = spec.doc
        applies = spec.applies
        if spec.unimplemented:
            what = f"{spec.doc} Not implemented: {spec.unimplemented}."
            applies = "–"
        lines.append(f"| `{spec.name}` | `{_topic_default(spec)}` | "
                     f"{_cell(_topic_values(spec))} | {applies} | {_cell(what)} |")
    lines += [
        "",
        "Retention (time and size, the check interval, segment granularity): "
        "`docs/retention.md`.",
        "",
    ]
    return "\n".join(lines)
