"""``pylog groups``: list, describe, seek (reset committed offsets), delete."""
from __future__ import annotations

import argparse

from .client import EXIT_OK, Refused, TextClient, Usage, parse_time

ACTIONS = ("list", "describe", "seek", "delete")


def _target(text: str):
    """--to: ("earliest"|"latest", None), ("offset", N) or ("time", ms)."""
    if text in ("earliest", "latest"):
        return text, None
    kind, _, value = text.partition(":")
    if kind == "offset" and value.isdigit():
        return kind, int(value)
    if kind == "time" and value:
        return kind, parse_time(value)         # ArgumentTypeError names the problem
    raise argparse.ArgumentTypeError(
        f"--to must be earliest, latest, offset:N or time:MS|ISO8601, got {text!r}")


def add_parser(sub, common) -> None:
    gr = sub.add_parser(
        "groups", parents=[common], help="list, describe, reset or delete consumer groups",
        description="list (default): one group id per line. describe GROUP: state, "
        "members, and per partition committed offset, log end and lag (a group that "
        "does not exist: exit 1). seek GROUP --topic T --to earliest|latest|offset:N|"
        "time:MS|time:ISO8601 [--dry-run]: reset the group's committed offsets for every "
        "partition of T, printing 'topic partition old -> new' (offset:N is kept within "
        "each partition's range; refused while the group has active members, as "
        "kafka-consumer-groups --reset-offsets is). delete GROUP: delete its committed "
        "offsets (refused while it has active members).")
    gr.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    gr.add_argument("name", nargs="?")
    gr.add_argument("--topic", "-t", help="seek: the topic whose offsets to reset")
    gr.add_argument("--to", type=_target, help="seek: earliest, latest, offset:N, time:MS")
    gr.add_argument("--dry-run", action="store_true", help="seek: show, commit nothing")
    gr.set_defaults(run=run)


def _need(name: str | None, what: str) -> str:
    if not name:
        raise Usage(f"groups {what} needs a group id")
    return name


def _describe(client: TextClient, group: str) -> int:
    state, members, committed = client.group_state(group)
    if state == "Dead" and not committed:
        raise Refused(f"group {group!r} does not exist")
    print(f"group {group}: {state}, {members} member(s)")
    print("topic\tpartition\tcommitted\tlog_end\tlag")
    for row in committed:
        print("\t".join(map(str, row)))
    if members:
        print()
        print("member\tclient_id\thost")
        for row in client.listing(f"MEMBERS {group}"):
            print("\t".join(row.split()[1:]))
    return EXIT_OK


def _seek(client: TextClient, args, group: str) -> int:
    if not args.topic or args.to is None:
        raise Usage("groups seek needs --topic T and --to earliest|latest|offset:N|time:MS")
    kind, value = args.to
    state, members, _ = client.group_state(group)
    if members:
        raise Refused(f"group {group!r} has {members} active member(s) ({state}); stop its "
                      f"consumers before resetting its offsets")
    plan = []
    for p, start, end, _size in client.partitions(args.topic):
        old = client.committed(group, args.topic, p)
        new = {"earliest": start, "latest": end}.get(kind)
        if kind == "offset":
            new = min(max(value, start), end)
        elif kind == "time":
            new = client.time_offset(args.topic, p, value)
        plan.append((p, old, new))
    for p, old, new in plan:
        print(f"{args.topic}\t{p}\t{'-' if old < 0 else old} -> {new}")
    if args.dry_run:
        print("dry run: nothing committed")
        return EXIT_OK
    for p, _old, new in plan:
        client.request(f"COMMIT {group} {args.topic} {p} {new}")
    print(f"committed {len(plan)} offset(s) for group {group}")
    return EXIT_OK


def run(client: TextClient, args) -> int:
    action = args.action
    if action != "seek" and (args.topic or args.to is not None or args.dry_run):
        raise Usage("--topic, --to and --dry-run are for groups seek")
    if action == "list":
        for row in client.listing("GROUPS"):
            print(row.split(" ", 1)[1])
        return EXIT_OK
    group = _need(args.name, action)
    if action == "describe":
        return _describe(client, group)
    if action == "seek":
        return _seek(client, args, group)
    deleted = client.request(f"DELETEGROUP {group}").split()[1]
    print(f"deleted group {group} ({deleted} committed offset(s))")
    return EXIT_OK
