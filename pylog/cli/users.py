"""``pylog users``: the SASL users of a data directory (``<data>/users.json``).

    pylog users add alice --data-dir ./data            # asks for the password (twice)
    echo "$PW" | pylog users add alice --password-stdin --data-dir ./data
    pylog users remove alice --data-dir ./data [--mechanism SCRAM-SHA-512]
    pylog users list --data-dir ./data                 # name and mechanisms (iterations)

Works on the file directly, with or without the server running (a running server
picks up the change at the next authentication).  Only salted SCRAM keys are stored
(SCRAM-SHA-256 and SCRAM-SHA-512 by default); SASL/PLAIN is checked against them.
Through a running server, Kafka admin clients use AlterUserScramCredentials instead.
"""
from __future__ import annotations

import getpass
import os
import sys

from .client import EXIT_OK, EXIT_REFUSED, Usage

ACTIONS = ("list", "add", "remove")


def add_parser(sub, common) -> None:
    p = sub.add_parser("users", parents=[common], help="add, remove or list SASL users of a "
                       "data directory (works on the files; no server needed)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--data-dir", default=os.environ.get("PYLOG_DATA_DIR", "./data"),
                   help="the server's data directory (env PYLOG_DATA_DIR; default ./data)")
    p.add_argument("--password-stdin", action="store_true",
                   help="add: read the password from the first line of stdin")
    p.add_argument("--mechanism", action="append", choices=("SCRAM-SHA-256", "SCRAM-SHA-512"),
                   help="add: only these mechanisms (default both); remove: only this one")
    p.add_argument("--iterations", type=int, default=4096, help="add: PBKDF2 iterations "
                   "(4096-16384, default 4096)")
    p.set_defaults(run=run, offline=True)


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get("PYLOG_USER_PASSWORD"):
        return os.environ["PYLOG_USER_PASSWORD"]
    if not sys.stdin.isatty():
        raise Usage("no password: use --password-stdin or PYLOG_USER_PASSWORD")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise Usage("the passwords differ")
    return first


def run(_client, args) -> int:
    from pylog.security.users import UserStore
    from pylog.errors import StorageError
    if args.action != "list" and not args.name:
        raise Usage(f"users {args.action} needs a user name")
    try:
        store = UserStore(args.data_dir)
        if args.action == "list":
            for name, mechs in store.users().items():
                print(name, " ".join(f"{m}:{i}" for m, i in mechs.items()))
            return EXIT_OK
        if args.action == "add":
            store.set_password(args.name, _password(args),
                               mechanisms=tuple(args.mechanism or ("SCRAM-SHA-256",
                                                                   "SCRAM-SHA-512")),
                               iterations=args.iterations)
            print(f"user {args.name} saved in {store._path}", file=sys.stderr)
            return EXIT_OK
        mech = args.mechanism[0] if args.mechanism else None
        if not store.remove(args.name, mech):
            print(f"pylog: no user {args.name}" + (f" with {mech}" if mech else ""),
                  file=sys.stderr)
            return EXIT_REFUSED
        return EXIT_OK
    except (ValueError, StorageError, OSError) as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_REFUSED
