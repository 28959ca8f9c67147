"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), v0: SCRAM users
managed through the Kafka admin API (KIP-554), in the users file the SASL listeners
read (pylog/security/users.py).

Kafka's mechanism ids: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.  Errors as Kafka's:
RESOURCE_NOT_FOUND (91) for a user or credential that is not there,
DUPLICATE_RESOURCE (92) for a user named twice in one request, UNSUPPORTED_SASL_MECHANISM
(33), UNACCEPTABLE_CREDENTIAL (93) for an empty name, iterations outside 4096–16384 or
an empty salt or salted password.  The client sends the salted password (PBKDF2 done on
its side); the server keeps only the derived StoredKey and ServerKey.
"""
from __future__ import annotations

from pylog.security.scram import MAX_ITERATIONS, MIN_ITERATIONS, credential_from_salted

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

DESCRIBE, ALTER = 50, 51
MECH_IDS = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
MECH_NUM = {v: k for k, v in MECH_IDS.items()}
ALGOS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE, UNSUPPORTED_MECH, UNACCEPTABLE = 91, 92, 33, 93


def _users(ctx):
    sec = ctx.broker.security
    if sec is None:
        raise RuntimeError("no security configured")
    return sec.users


def handle_describe(ctx, request):
    mod = response_module(DESCRIBE, ctx.version)
    if not ctx.allowed(8, 4, "kafka-cluster"):                   # DESCRIBE on the cluster
        return build(mod.DescribeUserScramCredentialsResponse, throttle_time=ZERO_MS,
                     error_code=error_code(31), error_message=f"{ctx.principal} may not "
                     "describe users", results=())
    users = _users(ctx).users()
    names = list(users) if request.users is None else [u.name for u in request.users]
    results, seen = [], set()
    for name in names:
        if name in seen:
            code, msg, infos = DUPLICATE_RESOURCE, f"user {name} named twice", ()
        elif name not in users:
            code, msg, infos = RESOURCE_NOT_FOUND, f"attempt to describe a user credential " \
                f"that does not exist: {name}", ()
        else:
            code, msg = 0, None
            infos = tuple(build(mod.CredentialInfo, mechanism=MECH_NUM[m], iterations=i)
                          for m, i in sorted(users[name].items()))
        seen.add(name)
        results.append(build(mod.DescribeUserScramCredentialsResult, user=name,
                             error_code=error_code(code), error_message=msg,
                             credential_infos=infos))
    return build(mod.DescribeUserScramCredentialsResponse, throttle_time=ZERO_MS,
                 error_code=error_code(0), error_message=None, results=tuple(results))


def handle_alter(ctx, request):
    mod = response_module(ALTER, ctx.version)
    store = _users(ctx)
    if not ctx.allowed(7, 4, "kafka-cluster"):                   # ALTER on the cluster
        names = dict.fromkeys(i.name for i in (*request.deletions, *request.upsertions))
        return build(mod.AlterUserScramCredentialsResponse, throttle_time=ZERO_MS,
                     results=tuple(build(mod.AlterUserScramCredentialsResult, user=n,
                                         error_code=error_code(31),
                                         error_message="not authorized") for n in names))
    counts: dict[str, int] = {}
    for item in (*request.deletions, *request.upsertions):
        counts[item.name] = counts.get(item.name, 0) + 1
    results: dict[str, tuple[int, str | None]] = {}
    for d in request.deletions:
        results[d.name] = _delete(store, d, counts)
    for u in request.upsertions:
        if results.get(u.name, (0, None))[0]:
            continue
        results[u.name] = _upsert(store, u, counts)
    return build(mod.AlterUserScramCredentialsResponse, throttle_time=ZERO_MS,
                 results=tuple(build(mod.AlterUserScramCredentialsResult, user=n,
                                     error_code=error_code(c), error_message=m)
                               for n, (c, m) in results.items()))


def _check(item, counts) -> tuple[int, str | None]:
    """What every deletion and upsertion must be: a name, a known mechanism, once."""
    if not item.name:
        return UNACCEPTABLE, "username must not be empty"
    if item.mechanism not in MECH_IDS:
        return UNSUPPORTED_MECH, f"unknown SCRAM mechanism {item.mechanism}"
    if counts[item.name] > 1:
        return DUPLICATE_RESOURCE, f"user {item.name} appears more than once"
    return 0, None


def _delete(store, d, counts) -> tuple[int, str | None]:
    bad = _check(d, counts)
    if bad[0]:
        return bad
    mech = MECH_IDS[d.mechanism]
    if not store.remove(d.name, mech):
        return RESOURCE_NOT_FOUND, f"attempt to delete a user credential that does not " \
            f"exist: {d.name} {mech}"
    return 0, None


def _upsert(store, u, counts) -> tuple[int, str | None]:
    bad = _check(u, counts)
    if bad[0]:
        return bad
    mech = MECH_IDS[u.mechanism]
    if not MIN_ITERATIONS <= u.iterations <= MAX_ITERATIONS:
        return UNACCEPTABLE, f"iterations must be {MIN_ITERATIONS}-{MAX_ITERATIONS}"
    if not u.salt or not u.salted_password:
        return UNACCEPTABLE, "salt and salted password must not be empty"
    try:
        store.upsert(u.name, {mech: credential_from_salted(
            bytes(u.salted_password), bytes(u.salt), u.iterations, ALGOS[mech])})
    except ValueError as exc:
        return UNACCEPTABLE, str(exc)
    return 0, None


register(
    ApiSpec(DESCRIBE, "DescribeUserScramCredentials", range(0, 1), 0, handle_describe),
    ApiSpec(ALTER, "AlterUserScramCredentials", range(0, 1), 0, handle_alter),
)
