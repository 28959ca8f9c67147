"""ApiVersions (18): v0–2 served; any higher version answered in the v0 layout.

librdkafka sends v3 and kafka-python v4 (flexible) first.  Kafka answers an
ApiVersions version it does not know with response header v0 and a **v0
layout** body: error_code 35 and the api_keys array, so any client can parse
it (research/kafka-protocol.md §2.5; a flexible-layout answer would make
kafka-python misparse it).  The clients then retry with v2 (kafka-python) or
v0 (librdkafka).
"""
from __future__ import annotations

from .dispatch import API_TABLE, ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 18
UNSUPPORTED_VERSION = 35


def _advertised(mod) -> tuple:
    return tuple(build(mod.ApiVersion, api_key=spec.key, min_version=0,
                       max_version=spec.advertised_max)
                 for spec in sorted(API_TABLE.values(), key=lambda s: s.key))


def handle_api_versions(ctx, request):
    version = ctx.version
    if request is None:                     # v3+: v0 layout, UNSUPPORTED_VERSION
        mod = response_module(API_KEY, 0)
        return mod.ApiVersionsResponse(error_code=error_code(UNSUPPORTED_VERSION),
                                       api_keys=_advertised(mod))
    mod = response_module(API_KEY, version)
    return build(mod.ApiVersionsResponse, error_code=error_code(0),
                 api_keys=_advertised(mod), throttle_time=ZERO_MS)


register(ApiSpec(API_KEY, "ApiVersions", range(0, 3), 2, handle_api_versions))
