"""ApiVersions (18), v0–4: what this broker serves, and its feature levels.

Every API is advertised with min 0 and max = the highest version served
(dispatch.py says why min is 0).  v3+ requests are flexible (request header v2,
client software name and version in the body); the response keeps header v0 at
every version, as Kafka's does, so any client can read it.

v3+ answers also carry the features (KIP-584) a single-node Kafka 4.x reports:
``supported_features`` (what this build can do) and ``finalized_features`` (what
is enabled), with ``finalized_features_epoch`` 0.  Only features whose behaviour
pylog has are listed (``FEATURES``): a client gates APIs on them, so advertising
a level means serving it.

A version above 4 (a newer client) is answered as Kafka answers an ApiVersions
version it does not know: response header v0, a **v0 layout** body with error 35
(UNSUPPORTED_VERSION) and the api_keys array; the client then retries with the
highest version advertised there.
"""
from __future__ import annotations

from .dispatch import API_TABLE, ApiSpec, register
from .messages import ZERO_MS, build, error_code, response_module

API_KEY = 18
UNSUPPORTED_VERSION = 35

# name -> (supported min, supported max, finalized level).  metadata.version 25 is
# IBP_4_0_IV3, Kafka 4.0's production level (7 = 3.3-IV3, the lowest KRaft level);
# kraft.version 1 (KIP-853) is what a new 4.x node formats with.  group.version 1
# (KIP-848 consumer groups) is added by the module that serves them.
FEATURES: dict[str, tuple[int, int, int]] = {
    "metadata.version": (7, 25, 25),
    "kraft.version": (0, 1, 1),
}


def add_feature(name: str, supported_min: int, supported_max: int, level: int) -> None:
    """Called by the module that serves a feature (e.g. groups: ``group.version``)."""
    FEATURES[name] = (supported_min, supported_max, level)


def _advertised(mod) -> tuple:
    return tuple(build(mod.ApiVersion, api_key=spec.key, min_version=0,
                       max_version=spec.advertised_max)
                 for spec in sorted(API_TABLE.values(), key=lambda s: s.key))


def _features(mod) -> dict:
    if not hasattr(mod, "SupportedFeatureKey"):
        return {}
    items = sorted(FEATURES.items())
    return {
        "supported_features": tuple(build(mod.SupportedFeatureKey, name=n, min_version=lo,
                                          max_version=hi) for n, (lo, hi, _) in items),
        "finalized_features_epoch": 0,
        "finalized_features": tuple(build(mod.FinalizedFeatureKey, name=n,
                                          max_version_level=lvl, min_version_level=lvl)
                                    for n, (_, _, lvl) in items if lvl > 0),
        "zk_migration_ready": False,
    }


def handle_api_versions(ctx, request):
    version = ctx.version
    if request is None:                     # newer than we serve: v0 layout, error 35
        mod = response_module(API_KEY, 0)
        return mod.ApiVersionsResponse(error_code=error_code(UNSUPPORTED_VERSION),
                                       api_keys=_advertised(mod))
    mod = response_module(API_KEY, version)
    return build(mod.ApiVersionsResponse, error_code=error_code(0),
                 api_keys=_advertised(mod), throttle_time=ZERO_MS, **_features(mod))


register(ApiSpec(API_KEY, "ApiVersions", range(0, 5), 4, handle_api_versions))
