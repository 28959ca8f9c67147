"""Credentials and TLS for the ``pylog`` CLI, for a server started with
``--text-security SSL | SASL_PLAINTEXT | SASL_SSL`` (docs/security.md).

From, first found wins: flags (``--tls``, ``--cafile``, ``--user``, ``--password-file``),
the environment (``PYLOG_TLS=1``, ``PYLOG_CAFILE``, ``PYLOG_USER``, ``PYLOG_PASSWORD``),
then a TOML file (``--cli-config``, env ``PYLOG_CLI_CONFIG``, default
``~/.config/pylog/cli.toml``) with the keys ``server``, ``tls``, ``cafile``, ``user``,
``password`` or ``password_file``.  With a user, the CLI sends ``AUTH <user> <password>``
right after connecting; a password given on the command line itself is not accepted
(it would show in ``ps``).
"""
from __future__ import annotations

import os
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .client import Usage

__all__ = ["Credentials", "add_arguments", "resolve"]

DEFAULT_CONFIG = Path("~/.config/pylog/cli.toml")


@dataclass
class Credentials:
    server: str | None = None
    tls: bool = False
    cafile: str | None = None
    user: str | None = None
    password: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.cafile)
        return ctx


def add_arguments(parser) -> None:
    import argparse
    s = argparse.SUPPRESS
    parser.add_argument("--tls", action="store_true", default=s,
                        help="TLS to the text listener (env PYLOG_TLS=1)")
    parser.add_argument("--cafile", default=s, metavar="PEM",
                        help="CA certificates to check the server with (env PYLOG_CAFILE)")
    parser.add_argument("--user", default=s, help="authenticate as this user (env PYLOG_USER)")
    parser.add_argument("--password-file", default=s, metavar="PATH",
                        help="the password, first line of this file (env PYLOG_PASSWORD)")
    parser.add_argument("--cli-config", default=s, metavar="TOML",
                        help="settings file (env PYLOG_CLI_CONFIG; default "
                             "~/.config/pylog/cli.toml)")


def _read_password(path: str) -> str:
    try:
        return Path(path).expanduser().read_text().splitlines()[0]
    except (OSError, IndexError) as exc:
        raise Usage(f"cannot read the password from {path}: {exc}") from None


def resolve(args, environ=os.environ) -> Credentials:
    path = getattr(args, "cli_config", None) or environ.get("PYLOG_CLI_CONFIG")
    conf: dict = {}
    file = Path(path).expanduser() if path else DEFAULT_CONFIG.expanduser()
    if path or file.exists():
        try:
            conf = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Usage(f"cannot read {file}: {exc}") from None
    c = Credentials()
    c.server = conf.get("server")
    c.tls = bool(getattr(args, "tls", False) or environ.get("PYLOG_TLS") in ("1", "true")
                 or conf.get("tls", False))
    c.cafile = getattr(args, "cafile", None) or environ.get("PYLOG_CAFILE") or \
        conf.get("cafile")
    c.user = getattr(args, "user", None) or environ.get("PYLOG_USER") or conf.get("user")
    if getattr(args, "password_file", None):
        c.password = _read_password(args.password_file)
    elif environ.get("PYLOG_PASSWORD") is not None:
        c.password = environ["PYLOG_PASSWORD"]
    elif conf.get("password") is not None:
        c.password = str(conf["password"])
    elif conf.get("password_file"):
        c.password = _read_password(conf["password_file"])
    if c.user and c.password is None:
        raise Usage(f"user {c.user} needs a password: --password-file, PYLOG_PASSWORD or "
                    f"the config file's password")
    return c
