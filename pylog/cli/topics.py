"""``pylog topics``: list, create, describe, alter, add-partitions, delete."""
from __future__ import annotations

from .client import EXIT_OK, TextClient, Usage, parse_config, positive

ACTIONS = ("list", "create", "describe", "alter", "add-partitions", "delete")


def add_parser(sub, common) -> None:
    to = sub.add_parser(
        "topics", parents=[common], help="list, create, describe, alter, grow or delete topics",
        description="list (default): NAME<TAB>PARTITIONS per topic. create NAME "
        "[--partitions N] [--config K=V ...]. describe NAME: per partition its log "
        "start and end offsets, bytes and records, then every topic config with its "
        "source (set or default). alter NAME --config K=V ... (applies live). "
        "add-partitions NAME --total N (keyed records route differently afterwards, "
        "as in Kafka). delete NAME.")
    to.add_argument("action", nargs="?", choices=ACTIONS, default="list")
    to.add_argument("name", nargs="?")
    to.add_argument("--partitions", "-p", type=positive, default=None,
                    help="create: number of partitions (default: the server's num.partitions)")
    to.add_argument("--config", "-c", type=parse_config, action="append", default=[],
                    metavar="NAME=VALUE", help="create, alter: a topic config, Kafka's "
                    "names (retention.ms=86400000); repeatable")
    to.add_argument("--total", type=positive, default=None,
                    help="add-partitions: the new total number of partitions")
    to.set_defaults(run=run)


def _need(name: str | None, what: str) -> str:
    if not name:
        raise Usage(f"topics {what} needs a topic name")
    return name


def _configs(args) -> str:
    return "".join(f" {k}={v}" for k, v in args.config)


def run(client: TextClient, args) -> int:
    action = args.action
    if args.config and action not in ("create", "alter"):
        raise Usage(f"--config is for topics create and topics alter, not {action}")
    if action == "list":
        for row in client.listing("TOPICS"):
            _, name, partitions = row.split()
            print(f"{name}\t{partitions}")
    elif action == "create":
        name = _need(args.name, action)
        n = f" {args.partitions}" if args.partitions is not None else ""
        count = client.request(f"CREATE {name}{n}{_configs(args)}").split()[1]
        print(f"created topic {name} with {count} partition(s)")
    elif action == "delete":
        client.request(f"DELETE {_need(args.name, action)}")
        print(f"deleted topic {args.name}")
    elif action == "alter":
        name = _need(args.name, action)
        if not args.config:
            raise Usage("topics alter needs at least one --config NAME=VALUE")
        client.request(f"ALTER {name}{_configs(args)}")
        print(f"altered topic {name}: " + ", ".join(f"{k}={v}" for k, v in args.config))
    elif action == "add-partitions":
        name = _need(args.name, action)
        if args.total is None:
            raise Usage("topics add-partitions needs --total N (the new partition count)")
        count = client.request(f"PARTITIONS {name} {args.total}").split()[1]
        print(f"topic {name} now has {count} partition(s)")
    else:
        name = _need(args.name, action)
        rows = client.partitions(name)
        print("partition\tlog_start\tlog_end\tbytes\trecords")
        for p, start, end, size in rows:
            print(f"{p}\t{start}\t{end}\t{size}\t{end - start}")
        print()
        print("config\tvalue\tsource")
        for row in client.listing(f"CONFIGS {name}"):
            _, key, source, *value = row.split(" ", 3)
            print(f"{key}\t{value[0] if value else ''}\t{source}")
    return EXIT_OK
