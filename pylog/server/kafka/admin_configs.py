"""Config admin APIs: DescribeConfigs (32) v1–4, AlterConfigs (33) v0–2,
IncrementalAlterConfigs (44) v0–1, for TOPIC (2), BROKER (4) and GROUP (32) resources.

Where each resource's configs live:
  TOPIC    the topic's own keys (topic-metadata.json), validated by ``TopicConfig``,
           applied live to its partitions (``Log.alter_topic_config``);
  BROKER   "" = the cluster-wide dynamic defaults, "0" (node.id) = this node's
           (pylog/broker/broker_configs.py, broker-configs.json), applied live;
  GROUP    per-group keys (pylog/broker/group_configs.py, group-configs.json).

AlterConfigs replaces the whole set of a resource's dynamic configs (keys not named
revert to their default); IncrementalAlterConfigs applies SET 0 / DELETE 1 / APPEND 2
/ SUBTRACT 3 to the current set (APPEND and SUBTRACT only on list-typed keys). Each
resource is validated whole, then written and applied, or with ``validate_only``
only validated.  As Kafka's ConfigAdminManager: a resource named twice fails both
times ("Each resource must appear at most once."), a key named twice, a null value
(but for DELETE) or an unknown operation is INVALID_REQUEST, a bad key or value
INVALID_CONFIG.  One failing resource never fails the others.  ``__consumer_offsets``
keeps the configs its coordinator gave it (POLICY_VIOLATION, 44).

DescribeConfigs gives each key's source (Kafka's ConfigSource), synonyms when asked
(most specific first: topic override, node, cluster default, static, built-in
default), its type (v3+) and its documentation when asked (v3+).
"""
from __future__ import annotations

import logging

from pylog.broker.broker_configs import (BROKER_TO_TOPIC, DYNAMIC_KEYS, LIST_KEYS,
                                         SETTINGS_KEYS, TOPIC_SYNONYMS)
from pylog.broker.group_configs import GROUP_CONFIG_KEYS
from pylog.broker.offsets import OFFSETS_TOPIC
from pylog.config import TOPIC_CONFIG_SPECS, TopicConfig
from pylog.errors import (InvalidConfigError, InvalidRequestError, PolicyViolationError,
                          PylogError)

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

log = logging.getLogger("pylog.server.kafka")
DESCRIBE_CONFIGS, ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS = 32, 33, 44
RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_GROUP = 2, 4, 8, 32
# Kafka's DescribeConfigsResponse.ConfigSource
(SOURCE_TOPIC, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT, SOURCE_STATIC, SOURCE_DEFAULT,
 SOURCE_GROUP) = 1, 2, 3, 4, 5, 8
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
_OP_NAMES = {OP_APPEND: "append", OP_SUBTRACT: "subtract"}
# Kafka's ConfigEntry.ConfigType
TYPE_BOOLEAN, TYPE_STRING, TYPE_INT, TYPE_LONG, TYPE_DOUBLE, TYPE_LIST = 1, 2, 3, 5, 6, 7
_TYPES = {"bool": TYPE_BOOLEAN, "str": TYPE_STRING, "int": TYPE_INT, "long": TYPE_LONG,
          "double": TYPE_DOUBLE, "list": TYPE_LIST}
_SPECS = {s.name: s for s in TOPIC_CONFIG_SPECS}
_SETTING_DOCS = {
    "node.id": "The node id of this broker (a single node: 0).",
    "num.partitions": "The default number of partitions of an auto-created topic.",
    "auto.create.topics.enable": "Create a topic when a client asks for an unknown one.",
    "socket.request.max.bytes": "The largest request the broker accepts.",
    "group.initial.rebalance.delay.ms": "How long a new group waits for more members "
                                        "before its first rebalance.",
    "default.replication.factor": "The replication factor of a topic (a single node: 1).",
}


def _short(text: str | None, n: int = 100) -> str:
    text = "" if text is None else text
    return text if len(text) <= n else text[:n] + "..."


def _doc(spec) -> str:
    return ("Accepted and reported; pylog does not act on it yet." if spec.doc.startswith(
        "stored") else spec.doc or f"Kafka's topic config {spec.name}.")


def _value_type(value: str | None) -> int:
    if value in ("true", "false"):
        return TYPE_BOOLEAN
    try:
        n = int(value or "", 10)
    except ValueError:
        return TYPE_STRING
    return TYPE_INT if -(1 << 31) <= n < (1 << 31) else TYPE_LONG


# ---- the resources: current configs, list keys, commit -------------------------------
class _Topic:
    def __init__(self, broker, name: str) -> None:
        self.broker, self.name = broker, name
        self.topic = broker.topic(name)           # UnknownTopicError / InvalidTopicError
        if name == OFFSETS_TOPIC:
            # Its retention keeps offset snapshots (pylog/broker/offsets.py): a changed
            # retention.ms, or AlterConfigs dropping it, could delete committed offsets.
            raise PolicyViolationError(f"the configs of {OFFSETS_TOPIC} are managed by the "
                                       "group coordinator and cannot be altered")

    def current(self) -> dict[str, str | None]:
        return {k: v for k, v, dflt in self.topic.config.describe() if not dflt}

    def base(self, key: str) -> str:
        """A list key's value for APPEND / SUBTRACT when the resource does not set it."""
        return ",".join(self.topic.config.get(key))

    def is_list(self, key: str) -> bool:
        spec = _SPECS.get(key)
        if spec is None:
            raise InvalidConfigError(f"Unknown topic config name: {_short(key)}")
        return spec.type == "list"

    def commit(self, new: dict, validate_only: bool) -> None:
        TopicConfig.from_dict(new)                # InvalidConfigError names the key
        if not validate_only:
            self.broker.log.alter_topic_config(self.name, new, replace=True)
            log.info("topic %s configs set to %s", self.name, new or "{}")


class _Broker:
    def __init__(self, broker, name: str) -> None:
        self.configs = broker.configs
        self.layer = self.configs.layer_for(name)

    def current(self) -> dict[str, str]:
        return dict(self.configs.layers[self.layer])

    def base(self, key: str) -> str:
        merged = self.configs.effective()
        if key in merged:
            return merged[key]
        return ",".join(_SPECS[BROKER_TO_TOPIC[key]].default)

    def is_list(self, key: str) -> bool:
        self.configs.check_keys([key])
        return key in LIST_KEYS

    def commit(self, new: dict, validate_only: bool) -> None:
        self.configs.alter(self.layer, new, validate_only)
        if not validate_only:
            log.info("dynamic broker configs (%s) set to %s", self.layer, new or "{}")


class _Group:
    def __init__(self, broker, name: str) -> None:
        self.configs = broker.log.group_configs
        self.name = name
        if not name:
            raise InvalidRequestError("Group name must not be empty")

    def current(self) -> dict[str, str]:
        return self.configs.get(self.name)

    def base(self, key: str) -> str:             # pragma: no cover - no list keys
        return ""

    def is_list(self, key: str) -> bool:
        if key not in GROUP_CONFIG_KEYS:
            raise InvalidConfigError(f"Unknown group config name: {_short(key)}")
        return False

    def commit(self, new: dict, validate_only: bool) -> None:
        self.configs.alter(self.name, new, replace=True, validate_only=validate_only)
        if not validate_only:
            log.info("group %s configs set to %s", self.name, new or "{}")


_RESOURCES = {RESOURCE_TOPIC: _Topic, RESOURCE_BROKER: _Broker, RESOURCE_GROUP: _Group}


def _resource(broker, res):
    kind = _RESOURCES.get(res.resource_type)
    if kind is None:
        raise InvalidRequestError(f"Unknown resource type {res.resource_type}"
                                  + (" (BROKER_LOGGER is not supported by pylog)"
                                     if res.resource_type == RESOURCE_BROKER_LOGGER else ""))
    return kind(broker, res.resource_name)


def _check_allowed(ctx, res, operation: int) -> None:
    """ACLs: DESCRIBE_CONFIGS (10) / ALTER_CONFIGS (11) on the topic, the group, or the
    cluster for a broker resource; the Kafka error of each kind otherwise."""
    from pylog.errors import (ClusterAuthorizationFailedError,
                              GroupAuthorizationFailedError,
                              TopicAuthorizationFailedError)
    if res.resource_type == RESOURCE_TOPIC:
        if not ctx.allowed(operation, 2, res.resource_name):
            raise TopicAuthorizationFailedError(f"{ctx.principal} may not see or change "
                                                f"the configs of {res.resource_name!r}")
    elif res.resource_type == RESOURCE_GROUP:
        if not ctx.allowed(operation, 3, res.resource_name):
            raise GroupAuthorizationFailedError(f"{ctx.principal} may not see or change "
                                                f"the configs of group {res.resource_name!r}")
    elif not ctx.allowed(operation, 4, "kafka-cluster"):
        raise ClusterAuthorizationFailedError(f"{ctx.principal} may not see or change the "
                                              f"broker configs")


def _check_entries(res, incremental: bool) -> None:
    names = [c.name for c in res.configs]
    if len(set(names)) != len(names):
        raise InvalidRequestError("Error due to duplicate config keys")
    nulls = [c.name for c in res.configs if c.value is None
             and not (incremental and c.config_operation == OP_DELETE)]
    if nulls:
        raise InvalidRequestError("Null value not supported for : "
                                  + ", ".join(_short(n) for n in nulls))
    if incremental:
        for c in res.configs:
            if c.config_operation not in (OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT):
                raise InvalidRequestError(f"Unknown operations type {c.config_operation}")


def _incremental(target, configs) -> dict:
    """The resource's new set of configs after SET / DELETE / APPEND / SUBTRACT."""
    new = target.current()
    for c in configs:
        op = c.config_operation
        if op == OP_SET:
            new[c.name] = c.value
        elif op == OP_DELETE:
            target.is_list(c.name)                # refuses an unknown key
            new.pop(c.name, None)
        else:
            if not target.is_list(c.name):
                raise InvalidConfigError(f"Config value {_OP_NAMES[op]} is not allowed for "
                                         f"config key: {_short(c.name)}")
            base = new.get(c.name)
            items = [i.strip() for i in (target.base(c.name) if base is None else base)
                     .split(",") if i.strip()]
            given = [i.strip() for i in c.value.split(",") if i.strip()]
            if op == OP_APPEND:
                items += [i for i in given if i not in items]
            else:
                items = [i for i in items if i not in given]
            new[c.name] = ",".join(items)
    return new


def _alter(ctx, request, api_key: int, incremental: bool):
    broker = ctx.broker
    mod = response_module(api_key, ctx.version)
    seen: dict = {}
    for res in request.resources:
        key = (res.resource_type, res.resource_name)
        seen[key] = seen.get(key, 0) + 1
    results = []
    for res in request.resources:
        code, message = 0, None
        try:
            if seen[(res.resource_type, res.resource_name)] > 1:
                raise InvalidRequestError("Each resource must appear at most once.")
            _check_allowed(ctx, res, 11)
            _check_entries(res, incremental)
            target = _resource(broker, res)
            new = (_incremental(target, res.configs) if incremental
                   else {c.name: c.value for c in res.configs})
            target.commit(new, request.validate_only)
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        results.append(build(mod.AlterConfigsResourceResponse, error_code=error_code(code),
                             error_message=message, resource_type=res.resource_type,
                             resource_name=res.resource_name))
    return build(getattr(mod, "IncrementalAlterConfigsResponse" if incremental
                         else "AlterConfigsResponse"),
                 throttle_time=ZERO_MS, responses=tuple(results))


def handle_alter_configs(ctx, request):
    return _alter(ctx, request, ALTER_CONFIGS, incremental=False)


def handle_incremental_alter_configs(ctx, request):
    return _alter(ctx, request, INCREMENTAL_ALTER_CONFIGS, incremental=True)


# ---- DescribeConfigs ----------------------------------------------------------------
class _Entry:
    __slots__ = ("name", "value", "source", "read_only", "type", "doc", "synonyms")

    def __init__(self, name, value, source, read_only, type_, doc, synonyms):
        self.name, self.value, self.source, self.read_only = name, value, source, read_only
        self.type, self.doc, self.synonyms = type_, doc, synonyms


def _broker_layers(configs, key: str) -> list[tuple[str, str, int]]:
    """The dynamic synonyms of a broker key, most specific first."""
    out = []
    if key in configs.layers["node"]:
        out.append((key, configs.layers["node"][key], SOURCE_DYNAMIC_BROKER))
    if key in configs.layers["cluster"]:
        out.append((key, configs.layers["cluster"][key], SOURCE_DYNAMIC_DEFAULT))
    return out


def _fmt(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _topic_entries(broker, name: str) -> list[_Entry]:
    topic = broker.topic(name)
    out = []
    for k, v, is_default in topic.config.describe():
        spec = _SPECS[k]
        bkey = TOPIC_SYNONYMS.get(k)
        synonyms = [(k, v, SOURCE_TOPIC)] if not is_default else []
        if bkey is not None:
            synonyms += _broker_layers(broker.configs, bkey)
        synonyms.append((bkey or k, _fmt(spec.default), SOURCE_DEFAULT))
        out.append(_Entry(k, v, synonyms[0][2], False, _TYPES[spec.type], _doc(spec),
                          synonyms))
    return out


def _broker_entries(broker, name: str) -> list[_Entry]:
    configs = broker.configs
    if configs.layer_for(name) == "cluster":   # "": the cluster-wide dynamic defaults
        return [_Entry(k, v, SOURCE_DYNAMIC_DEFAULT, False, _key_type(k, v), _key_doc(k),
                       [(k, v, SOURCE_DYNAMIC_DEFAULT)])
                for k, v in sorted(configs.layers["cluster"].items())]
    out = []
    for k, v in sorted(broker.settings.describe().items()):
        synonyms = _broker_layers(configs, k)
        static = configs.static.get(k, v) if k in SETTINGS_KEYS else v
        synonyms.append((k, _fmt(static), SOURCE_STATIC))
        out.append(_Entry(k, v, synonyms[0][2], k not in DYNAMIC_KEYS, _key_type(k, v),
                          _key_doc(k), synonyms))
    for k in sorted(BROKER_TO_TOPIC):
        spec = _SPECS[BROKER_TO_TOPIC[k]]
        synonyms = _broker_layers(configs, k) + [(k, _fmt(spec.default), SOURCE_DEFAULT)]
        out.append(_Entry(k, synonyms[0][1], synonyms[0][2], False, _TYPES[spec.type],
                          _doc(spec), synonyms))
    return out


def _key_type(key: str, value) -> int:
    if key in BROKER_TO_TOPIC:
        return _TYPES[_SPECS[BROKER_TO_TOPIC[key]].type]
    return _value_type(value)


def _key_doc(key: str) -> str:
    if key in BROKER_TO_TOPIC:
        return _doc(_SPECS[BROKER_TO_TOPIC[key]]) + f" (default of topic config " \
            f"{BROKER_TO_TOPIC[key]})"
    return _SETTING_DOCS.get(key, f"Kafka's broker config {key}.")


def _group_entries(broker, name: str) -> list[_Entry]:
    if not name:
        raise InvalidRequestError("Group name must not be empty")
    out = []
    for k, v, is_default in broker.log.group_configs.describe(name):
        source = SOURCE_DEFAULT if is_default else SOURCE_GROUP
        synonyms = [] if is_default else [(k, v, SOURCE_GROUP)]
        synonyms.append((k, str(GROUP_CONFIG_KEYS[k].default), SOURCE_DEFAULT))
        out.append(_Entry(k, v, source, False, TYPE_INT, GROUP_CONFIG_KEYS[k].doc, synonyms))
    return out


_DESCRIBERS = {RESOURCE_TOPIC: _topic_entries, RESOURCE_BROKER: _broker_entries,
               RESOURCE_GROUP: _group_entries}


def handle_describe_configs(ctx, request):
    broker = ctx.broker
    mod = response_module(DESCRIBE_CONFIGS, ctx.version)
    with_synonyms = bool(getattr(request, "include_synonyms", False))
    with_docs = bool(getattr(request, "include_documentation", False))
    results = []
    for res in request.resources:
        code, message, entries = 0, None, []
        try:
            describe = _DESCRIBERS.get(res.resource_type)
            if describe is None:
                raise InvalidRequestError(f"Unsupported resource type: {res.resource_type}")
            _check_allowed(ctx, res, 10)
            entries = describe(broker, res.resource_name)
        except PylogError as exc:
            code, message = exc.errno, str(exc)
        keys = res.configuration_keys
        configs = tuple(
            build(mod.DescribeConfigsResourceResult, name=e.name, value=e.value,
                  read_only=e.read_only, config_source=e.source, is_sensitive=False,
                  is_default=e.source == SOURCE_DEFAULT,
                  synonyms=tuple(build(mod.DescribeConfigsSynonym, name=n, value=v, source=s)
                                 for n, v, s in e.synonyms) if with_synonyms else (),
                  config_type=e.type, documentation=e.doc if with_docs else None)
            for e in entries if not keys or e.name in keys)      # none or empty: all
        results.append(build(mod.DescribeConfigsResult, error_code=error_code(code),
                             error_message=message, resource_type=res.resource_type,
                             resource_name=res.resource_name, configs=configs))
    return build(mod.DescribeConfigsResponse, throttle_time=ZERO_MS, results=tuple(results))


register(ApiSpec(DESCRIBE_CONFIGS, "DescribeConfigs", range(1, 5), 4, handle_describe_configs),
         ApiSpec(ALTER_CONFIGS, "AlterConfigs", range(0, 3), 2, handle_alter_configs),
         ApiSpec(INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs", range(0, 2), 1,
                 handle_incremental_alter_configs))
