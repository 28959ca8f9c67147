"""CreateAcls (30), DescribeAcls (29), DeleteAcls (31), v1–3: Kafka's ACL admin API
over ``broker.authorizer`` (pylog/security/acls.py).  Creating and deleting needs ALTER
on the cluster, describing DESCRIBE (CLUSTER_AUTHORIZATION_FAILED, 31, otherwise).
Without an authorizer (``--authorizer none``) every call gets SECURITY_DISABLED (54), as
Kafka answers a broker without one."""
from __future__ import annotations

from pylog.security.acls import CLUSTER_NAME, AclBinding, AclFilter

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
SECURITY_DISABLED, CLUSTER_AUTH_FAILED, INVALID_REQUEST = 54, 31, 42
ALTER, DESCRIBE, CLUSTER = 7, 8, 4


def _denied(ctx, operation: int) -> tuple[int, str] | None:
    if ctx.broker.authorizer is None:
        return SECURITY_DISABLED, "no authorizer is configured (--authorizer acl)"
    if not ctx.allowed(operation, CLUSTER, CLUSTER_NAME):
        return CLUSTER_AUTH_FAILED, f"{ctx.principal} may not change or read ACLs"
    return None


def _filter(f) -> AclFilter:
    return AclFilter(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter,
                     f.principal_filter, f.host_filter, f.operation, f.permission_type)


def handle_create_acls(ctx, request):
    mod = response_module(CREATE_ACLS, ctx.version)
    denied = _denied(ctx, ALTER)
    if denied:
        results = [denied] * len(request.creations)
    else:
        bindings = [AclBinding(c.resource_type, c.resource_name, c.resource_pattern_type,
                               c.principal, c.host, c.operation, c.permission_type)
                    for c in request.creations]
        results = [(0, None) if e is None else (INVALID_REQUEST, e)
                   for e in ctx.broker.authorizer.create(bindings)]
    return build(mod.CreateAclsResponse, throttle_time=ZERO_MS, results=tuple(
        build(mod.AclCreationResult, error_code=error_code(c), error_message=m)
        for c, m in results))


def handle_describe_acls(ctx, request):
    mod = response_module(DESCRIBE_ACLS, ctx.version)
    denied = _denied(ctx, DESCRIBE)
    if denied:
        return build(mod.DescribeAclsResponse, throttle_time=ZERO_MS,
                     error_code=error_code(denied[0]), error_message=denied[1], resources=())
    found = ctx.broker.authorizer.describe(_filter(request))
    by_resource: dict = {}
    for b in found:
        by_resource.setdefault((b.resource_type, b.name, b.pattern_type), []).append(b)
    resources = tuple(build(
        mod.DescribeAclsResource, resource_type=rt, resource_name=name, pattern_type=pt,
        acls=tuple(build(mod.AclDescription, principal=b.principal, host=b.host,
                         operation=b.operation, permission_type=b.permission) for b in bs))
        for (rt, name, pt), bs in by_resource.items())
    return build(mod.DescribeAclsResponse, throttle_time=ZERO_MS, error_code=error_code(0),
                 error_message=None, resources=resources)


def handle_delete_acls(ctx, request):
    mod = response_module(DELETE_ACLS, ctx.version)
    denied = _denied(ctx, ALTER)
    if denied:
        results = [(denied, [])] * len(request.filters)
    else:
        matched = ctx.broker.authorizer.delete([_filter(f) for f in request.filters])
        results = [((0, None), m) for m in matched]
    return build(mod.DeleteAclsResponse, throttle_time=ZERO_MS, filter_results=tuple(
        build(mod.DeleteAclsFilterResult, error_code=error_code(c), error_message=msg,
              matching_acls=tuple(build(
                  mod.DeleteAclsMatchingAcl, error_code=error_code(0), error_message=None,
                  resource_type=b.resource_type, resource_name=b.name,
                  pattern_type=b.pattern_type, principal=b.principal, host=b.host,
                  operation=b.operation, permission_type=b.permission) for b in m))
        for (c, msg), m in results))


register(
    ApiSpec(DESCRIBE_ACLS, "DescribeAcls", range(1, 4), 3, handle_describe_acls),
    ApiSpec(CREATE_ACLS, "CreateAcls", range(1, 4), 3, handle_create_acls),
    ApiSpec(DELETE_ACLS, "DeleteAcls", range(1, 4), 3, handle_delete_acls),
)
