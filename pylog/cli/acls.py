"""``pylog acls``: the ACLs of a data directory (``<data>/acls.json``), Kafka's model.

    pylog acls add --allow User:alice --operation READ --operation DESCRIBE --topic orders
    pylog acls add --allow User:alice --operation READ --group billing
    pylog acls add --deny User:mallory --operation ALL --topic pay --prefixed
    pylog acls add --allow User:ops --operation ALTER --cluster
    pylog acls list [--principal User:alice] [--topic orders]
    pylog acls remove --principal User:alice --topic orders     # every match

Works on the file (a running server picks changes up within a second); through a
running server Kafka admin clients use CreateAcls / DescribeAcls / DeleteAcls.
The server enforces ACLs only with ``--authorizer acl``.
"""
from __future__ import annotations

import os
import sys

from .client import EXIT_OK, EXIT_REFUSED, Usage

ACTIONS = ("list", "add", "remove")


def add_parser(sub, common) -> None:
    p = sub.add_parser("acls", parents=[common], help="add, remove or list ACLs of a data "
                       "directory (works on the files; no server needed)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    p.add_argument("--data-dir", default=os.environ.get("PYLOG_DATA_DIR", "./data"))
    who = p.add_mutually_exclusive_group()
    who.add_argument("--allow", metavar="PRINCIPAL", help="add: allow this principal")
    who.add_argument("--deny", metavar="PRINCIPAL", help="add: deny this principal")
    p.add_argument("--principal", help="list/remove: only this principal")
    p.add_argument("--operation", action="append", type=str.upper,
                   help="READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, "
                        "ALTER_CONFIGS, IDEMPOTENT_WRITE or ALL (repeatable)")
    p.add_argument("--host", default=None, help="the client address (default *)")
    res = p.add_mutually_exclusive_group()
    res.add_argument("--topic")
    res.add_argument("--group")
    res.add_argument("--transactional-id")
    res.add_argument("--cluster", action="store_true")
    p.add_argument("--prefixed", action="store_true", help="the name is a prefix")
    p.set_defaults(run=run, offline=True)


def _resource(args):
    from pylog.security.acls import CLUSTER_NAME, RESOURCE
    if args.topic is not None:
        return RESOURCE["TOPIC"], args.topic
    if args.group is not None:
        return RESOURCE["GROUP"], args.group
    if args.transactional_id is not None:
        return RESOURCE["TRANSACTIONAL_ID"], args.transactional_id
    if args.cluster:
        return RESOURCE["CLUSTER"], CLUSTER_NAME
    return None, None


def run(_client, args) -> int:
    from pylog.errors import StorageError
    from pylog.security.acls import (ANY, LITERAL, OPERATION, PERMISSION, PREFIXED,
                                     AclBinding, AclFilter, Authorizer)
    try:
        authz = Authorizer(args.data_dir)
        rtype, name = _resource(args)
        pattern = PREFIXED if args.prefixed else LITERAL
        if args.action == "add":
            principal = args.allow or args.deny
            if not principal or rtype is None or not args.operation:
                raise Usage("acls add needs --allow/--deny PRINCIPAL, --operation and one "
                            "of --topic/--group/--transactional-id/--cluster")
            bad = [o for o in args.operation if o not in OPERATION or o == "ANY"]
            if bad:
                raise Usage(f"unknown operation(s) {', '.join(bad)}")
            perm = PERMISSION["ALLOW" if args.allow else "DENY"]
            errors = authz.create([AclBinding(rtype, name, pattern, principal,
                                              args.host or "*", OPERATION[o], perm)
                                   for o in args.operation])
            for e in errors:
                if e:
                    print(f"pylog: {e}", file=sys.stderr)
            return EXIT_REFUSED if any(errors) else EXIT_OK
        flt = AclFilter(rtype or ANY, name, pattern if rtype else ANY, args.principal,
                        args.host, ANY if not args.operation else OPERATION[args.operation[0]])
        if args.action == "list":
            for b in authz.describe(flt):
                print(b.describe())
            return EXIT_OK
        gone = authz.delete([flt])[0]
        for b in gone:
            print("removed:", b.describe())
        return EXIT_OK if gone else EXIT_REFUSED
    except (ValueError, StorageError, OSError) as exc:
        print(f"pylog: {exc}", file=sys.stderr)
        return EXIT_REFUSED
