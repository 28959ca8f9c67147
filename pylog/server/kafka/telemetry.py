"""Client telemetry (KIP-714): GetTelemetrySubscriptions (71) and PushTelemetry (72), v0.

librdkafka ≥ 2.5 (``enable.metrics.push``, on by default) asks a broker that
advertises these APIs which metrics it wants.  pylog collects none, so it
answers as a Kafka broker with no client-metrics subscription does: the client
gets an instance id (a new one if it sent the zero UUID), subscription id 0 and
an empty ``requested_metrics`` list, which tells it to push nothing.  A push that
comes anyway is answered UNKNOWN_SUBSCRIPTION_ID (117) for any id but 0, and
otherwise accepted and dropped — never stored, never logged per push.
"""
from __future__ import annotations

import uuid

from .dispatch import ApiSpec, register
from .messages import ZERO_MS, build, error_code, ms, response_module

GET_SUBSCRIPTIONS, PUSH = 71, 72
UNKNOWN_SUBSCRIPTION_ID = 117
PUSH_INTERVAL_MS = 300_000          # Kafka's default interval when nothing is subscribed
TELEMETRY_MAX_BYTES = 1 << 20


def handle_get_telemetry_subscriptions(ctx, request):
    mod = response_module(GET_SUBSCRIPTIONS, ctx.version)
    instance = request.client_instance_id
    if instance is None or instance.int == 0:
        instance = uuid.uuid4()
    return build(mod.GetTelemetrySubscriptionsResponse, throttle_time=ZERO_MS,
                 error_code=error_code(0), client_instance_id=instance, subscription_id=0,
                 accepted_compression_types=(), push_interval=ms(PUSH_INTERVAL_MS),
                 telemetry_max_bytes=TELEMETRY_MAX_BYTES, delta_temporality=True,
                 requested_metrics=())


def handle_push_telemetry(ctx, request):
    mod = response_module(PUSH, ctx.version)
    code = 0 if request.subscription_id == 0 else UNKNOWN_SUBSCRIPTION_ID
    return build(mod.PushTelemetryResponse, throttle_time=ZERO_MS, error_code=error_code(code))


register(ApiSpec(GET_SUBSCRIPTIONS, "GetTelemetrySubscriptions", range(0, 1), 0,
                 handle_get_telemetry_subscriptions),
         ApiSpec(PUSH, "PushTelemetry", range(0, 1), 0, handle_push_telemetry))
