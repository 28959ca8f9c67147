"""InitProducerId (22), v0–6: producer ids for idempotent producers.

v3+ requests may carry the producer's current id and epoch (KIP-360, asking for
an epoch bump after an error); for a producer without a transactional id Kafka
then hands out a fresh id, and so does pylog.  v6's two-phase-commit fields
(KIP-939) only apply to transactional ids.

kafka-python's default producer is idempotent and fails without this API;
librdkafka and aiokafka call it when idempotence is on (research/
kafka-protocol.md §2.5 item 4).  Each call gets a fresh id, never reused even
after a restart (``ProducerStateManager.allocate_id``), with epoch 0.

With a transactional id the transaction coordinator answers
(``log.transactions.init_producer_id``, broker/transactions.py): the id's producer
id with its epoch bumped, which fences every older producer of that id; an open
transaction of the id is aborted first (CONCURRENT_TRANSACTIONS, retriable, until its
markers are durable).  ACL: WRITE on the TRANSACTIONAL_ID (53 otherwise).
``transaction_timeout_ms`` must be within ``transaction.max.timeout.ms``
(INVALID_TRANSACTION_TIMEOUT, 50).  v6's two-phase-commit fields (KIP-939) are not
supported: ``enable_2pc`` gets UNSUPPORTED_VERSION.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError, UnsupportedVersionError

from .dispatch import ApiSpec, register
from .txn import _answer, _code
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 22
log = logging.getLogger("pylog.server.kafka")


def handle_init_producer_id(ctx, request):
    mod = response_module(API_KEY, ctx.version)
    pid, code = -1, 0
    if request.transactional_id is not None:
        return _init_transactional(ctx, mod, request)
    if not _may_write_idempotently(ctx):
        code = 31                       # CLUSTER_AUTHORIZATION_FAILED
    else:
        try:
            pid = ctx.broker.producers.allocate_id()
        except (OSError, PylogError) as exc:
            log.error("cannot allocate a producer id: %s", exc)
            code = 56                   # KAFKA_STORAGE_ERROR: the high-water file failed
    return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                 producer_id=pid, producer_epoch=0 if code == 0 else -1)


def _init_transactional(ctx, mod, request):
    def respond(code, pid=-1, epoch=-1):
        return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS,
                     error_code=error_code(code), producer_id=pid if code == 0 else -1,
                     producer_epoch=epoch if code == 0 else -1)
    txn_id = request.transactional_id
    if not ctx.allowed(4, 5, txn_id):               # WRITE on the TRANSACTIONAL_ID
        return respond(53)
    if getattr(request, "enable2_pc", False):
        return respond(UnsupportedVersionError.errno)
    try:
        pid, epoch, futures = ctx.broker.log.transactions.init_producer_id(
            txn_id, int(request.transaction_timeout.total_seconds() * 1000), getattr(request, "producer_id", -1),
            getattr(request, "producer_epoch", -1))
    except Exception as exc:                        # noqa: BLE001 -- a code for the client
        code = _code(exc, ctx, fenced_from=4)
        if code not in (51,):
            log.info("InitProducerId for transactional id %r: %s", txn_id, exc)
        return respond(code)
    return _answer(futures, lambda code: respond(code, pid, epoch))


def _may_write_idempotently(ctx) -> bool:
    """Kafka 2.8+: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic."""
    authz = ctx.broker.authorizer
    if authz is None or ctx.allowed(12, 4, "kafka-cluster"):
        return True
    return authz.allows_any(ctx.principal, getattr(ctx.auth, "host", "*") or "*", 4, 2)


register(ApiSpec(API_KEY, "InitProducerId", range(0, 7), 6, handle_init_producer_id))
