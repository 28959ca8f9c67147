"""``pylog``: produce, consume, and manage topics and groups over the text protocol.

    pylog produce orders 0 "hello world"               # partition 0; prints the offset
    pylog produce orders -k customer-42 "hello"        # routed by key (murmur2, as Kafka)
    printf 'k1:a\\nk2:b\\n' | pylog produce orders -K:   # KEY:VALUE lines; prints PARTITION OFFSET
    pylog produce orders 1 -H source=web --timestamp 1700000000000 "hi"
    pylog consume orders [PARTITION] [--from N | --from-time MS|ISO | --last N]
                  [-f value|key:value|json] [--follow] [--group billing] [-n N]
    pylog topics [list] | create orders -p 3 -c retention.ms=86400000 | describe orders
    pylog topics alter orders -c retention.ms=3600000 | add-partitions orders --total 6
    pylog topics delete orders
    pylog groups [list] | describe billing | delete billing
    pylog groups seek billing --topic orders --to earliest|latest|offset:N|time:MS [--dry-run]
    pylog queue receive workers orders -n 10 --wait 5000 --ack | stats workers orders
    pylog queue dlq list orders | dlq requeue orders.dlq 0 17 | dlq requeue orders.dlq --all
    pylog users add alice --data-dir ./data | users remove alice | users list   # SASL users
    pylog acls add --allow User:alice --operation READ --topic orders | acls list | acls remove
    pylog --server host:3000 ... | PYLOG_SERVER=host:3000 pylog ...   # default 127.0.0.1:3000
    pylog --version

Every command first says on stderr which server it talks to (``pylog: server
127.0.0.1:3000 (default)``; ``-q`` drops that line).  Records go as PRODUCEX
(length-prefixed key, value and headers, so any bytes arrive unchanged); stdin
lines are sent pipelined.  Without a partition (or with ``-p -1``) the server
routes each record as Kafka's default partitioner does: murmur2 of the key (the
Java client's default; set ``partitioner: murmur2_random`` on librdkafka clients,
whose default is CRC32 ``consistent_random``), null keys round-robin.
``consume`` stops at the log end it saw unless ``--follow``; with ``--group`` it
starts at the group's committed offsets and commits after every batch written.
docs/cli.md is the full reference.

Exit status: 0 done; 1 the server refused a request (its error name and message
on stderr) or what was named does not exist (``groups describe`` of an unknown
group), or ``groups seek``/``delete`` of a group with active members; 2 usage
error; 3 cannot connect or the connection was lost; 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from . import acls, consume, credentials, groups, produce, queue, topics, users
from .client import (DEFAULT_SERVER, EXIT_CONNECTION, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED,
                     ConnectionLost, Refused, ServerError, TextClient, Usage)

__all__ = ["main", "TextClient", "ServerError"]


def _version() -> str:
    from pylog import __version__
    return f"pylog {__version__}"


def _parser() -> argparse.ArgumentParser:
    # --server and -q are accepted before or after the command (SUPPRESS: an option
    # given before is not reset by the subcommand's default).
    common = argparse.ArgumentParser(add_help=False)
    credentials.add_arguments(common)
    common.add_argument("--server", default=argparse.SUPPRESS, metavar="HOST:PORT",
                        help="the server's text listener (env PYLOG_SERVER; default "
                             f"{DEFAULT_SERVER})")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="do not print which server is used")
    examples = (__doc__ or "\n\n\n").split("\n\n")[1]    # None under python -OO
    p = argparse.ArgumentParser(
        prog="pylog", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="pylog client over pylog-server's text protocol; `pylog COMMAND -h` "
        "for each command.",
        epilog=f"examples:\n{examples}\n\nexit status: 0 ok; 1 refused by the server (its "
        "Kafka error name on stderr) or not found;\n2 usage error; 3 cannot connect or "
        "connection lost; 130 interrupted.\nReference: docs/cli.md")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (produce, consume, topics, groups, queue, users, acls):
        module.add_parser(sub, common)
    return p


def _server(args, creds=None) -> tuple[str, str]:
    if getattr(args, "server", None):
        return args.server, "--server"
    if os.environ.get("PYLOG_SERVER"):
        return os.environ["PYLOG_SERVER"], "PYLOG_SERVER"
    if creds is not None and creds.server:
        return creds.server, "config file"
    return DEFAULT_SERVER, "default"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "produce" and not any(x.startswith("-") for x in extra):
        args.words += extra             # message words after an option: -k K hello world
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)     # `pylog consume ... | head` ends quietly
    if getattr(args, "offline", False):                # works on files: no server
        try:
            return args.run(None, args)
        except Usage as exc:
            parser.error(str(exc))
    try:
        creds = credentials.resolve(args)
    except Usage as exc:
        parser.error(str(exc))
    address, source = _server(args, creds)
    if not getattr(args, "quiet", False):
        print(f"pylog: server {address} ({source})", file=sys.stderr)
    try:
        client = TextClient(address, tls=creds.ssl_context(), user=creds.user,
                            password=creds.password)
    except ServerError as exc:
        print(f"pylog: {exc.name}: {exc.text}", file=sys.stderr)
        return EXIT_REFUSED
    except ValueError as exc:
        parser.error(str(exc))
    except ConnectionLost as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    try:
        return args.run(client, args)
    except Usage as exc:
        parser.error(str(exc))
    except ServerError as exc:
        print(f"pylog: {exc.name}: {exc.text}", file=sys.stderr)
        return EXIT_REFUSED
    except Refused as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ConnectionLost as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        client.close()
    return EXIT_OK
