"""Structured logging for pylog-server: human-readable by default, JSON lines on request.

Both formats carry the same fields: UTC time, level, logger, message, and any
``extra={...}`` values a call site passes.  JSON goes one object per line to
stderr so log shippers can read it without parsing text.
"""
from __future__ import annotations

import datetime
import json
import logging
import sys

__all__ = ["setup_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _utc(record: logging.LogRecord) -> str:
    return datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc) \
        .isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{_utc(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {"ts": _utc(record), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        obj.update({k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                    for k, v in _extras(record).items()})
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj)


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
