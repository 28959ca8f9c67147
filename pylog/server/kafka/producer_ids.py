"""InitProducerId (22), v0–6: producer ids for idempotent producers.

v3+ requests may carry the producer's current id and epoch (KIP-360, asking for
an epoch bump after an error); for a producer without a transactional id Kafka
then hands out a fresh id, and so does pylog.  v6's two-phase-commit fields
(KIP-939) only apply to transactional ids.

kafka-python's default producer is idempotent and fails without this API;
librdkafka and aiokafka call it when idempotence is on (research/
kafka-protocol.md §2.5 item 4).  Each call gets a fresh id, never reused even
after a restart (``ProducerStateManager.allocate_id``), with epoch 0.
Transactions are not supported: a request with a transactional id gets
UNSUPPORTED_VERSION (35), which clients report as an unsupported feature
instead of retrying forever.
"""
from __future__ import annotations

import logging

from pylog.errors import PylogError, UnsupportedVersionError

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 22
log = logging.getLogger("pylog.server.kafka")


def handle_init_producer_id(ctx, request):
    mod = response_module(API_KEY, ctx.version)
    pid, code = -1, 0
    if request.transactional_id is not None:
        code = UnsupportedVersionError.errno
        log.info("InitProducerId for transactional id %r refused: transactions are not "
                 "supported", request.transactional_id)
    elif not _may_write_idempotently(ctx):
        code = 31                       # CLUSTER_AUTHORIZATION_FAILED
    else:
        try:
            pid = ctx.broker.producers.allocate_id()
        except (OSError, PylogError) as exc:
            log.error("cannot allocate a producer id: %s", exc)
            code = 56                   # KAFKA_STORAGE_ERROR: the high-water file failed
    return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS, error_code=error_code(code),
                 producer_id=pid, producer_epoch=0 if code == 0 else -1)


def _may_write_idempotently(ctx) -> bool:
    """Kafka 2.8+: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic."""
    authz = ctx.broker.authorizer
    if authz is None or ctx.allowed(12, 4, "kafka-cluster"):
        return True
    return authz.allows_any(ctx.principal, getattr(ctx.auth, "host", "*") or "*", 4, 2)


register(ApiSpec(API_KEY, "InitProducerId", range(0, 7), 6, handle_init_producer_id))
