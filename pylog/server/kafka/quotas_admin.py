"""DescribeClientQuotas (48) and AlterClientQuotas (49), v0–1, over
``broker.quotas`` (pylog/security/quotas.py).  Keys served: producer_byte_rate and
consumer_byte_rate (others: INVALID_REQUEST).  With ACLs on, describing needs
DESCRIBE_CONFIGS and altering ALTER_CONFIGS on the cluster."""
from __future__ import annotations

from pylog.security.quotas import entity_of

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

DESCRIBE, ALTER = 48, 49
INVALID_REQUEST, CLUSTER_AUTH_FAILED = 42, 31
EXACT, DEFAULT, SPECIFIED = 0, 1, 2


def _matches(entity: dict, components, strict: bool) -> bool:
    for c in components:
        present = c.entity_type in entity
        name = entity.get(c.entity_type)
        if c.match_type == EXACT and not (present and name == c.match):
            return False
        if c.match_type == DEFAULT and not (present and name is None):
            return False
        if c.match_type == SPECIFIED and not present:
            return False
    if strict and set(entity) != {c.entity_type for c in components}:
        return False
    return True


def handle_describe(ctx, request):
    mod = response_module(DESCRIBE, ctx.version)
    if not ctx.allowed(10, 4, "kafka-cluster"):
        return build(mod.DescribeClientQuotasResponse, throttle_time=ZERO_MS,
                     error_code=error_code(CLUSTER_AUTH_FAILED),
                     error_message="not authorized", entries=None)
    entries = []
    for entity, values in ctx.broker.quotas.describe():
        if not _matches(entity, request.components, request.strict):
            continue
        entries.append(build(mod.EntryData, entity=tuple(
            build(mod.EntityData, entity_type=t, entity_name=n) for t, n in entity.items()),
            values=tuple(build(mod.ValueData, key=k, value=v) for k, v in values.items())))
    return build(mod.DescribeClientQuotasResponse, throttle_time=ZERO_MS,
                 error_code=error_code(0), error_message=None, entries=tuple(entries))


def handle_alter(ctx, request):
    mod = response_module(ALTER, ctx.version)
    allowed = ctx.allowed(11, 4, "kafka-cluster")
    out = []
    for e in request.entries:
        code, msg = (CLUSTER_AUTH_FAILED, "not authorized") if not allowed else (0, None)
        if not code:
            try:
                ctx.broker.quotas.alter(entity_of(e.entity),
                                        [(o.key, o.value, o.remove) for o in e.ops],
                                        validate_only=request.validate_only)
            except ValueError as exc:
                code, msg = INVALID_REQUEST, str(exc)
        out.append(build(mod.EntryData, error_code=error_code(code), error_message=msg,
                         entity=tuple(build(mod.EntityData, entity_type=x.entity_type,
                                            entity_name=x.entity_name) for x in e.entity)))
    return build(mod.AlterClientQuotasResponse, throttle_time=ZERO_MS, entries=tuple(out))


register(
    ApiSpec(DESCRIBE, "DescribeClientQuotas", range(0, 2), 1, handle_describe),
    ApiSpec(ALTER, "AlterClientQuotas", range(0, 2), 1, handle_alter),
)
