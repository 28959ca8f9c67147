"""SaslHandshake (17, v1) and SaslAuthenticate (36, v0–2): SASL on the Kafka listener.

The connection's ``ConnectionAuth`` (pylog/security/sasl.py) does the work.  Version 0
of SaslHandshake (raw SASL tokens after the handshake, outside Kafka framing) is not
served: every current client uses v1 and wraps tokens in SaslAuthenticate.  A failed
authentication is answered (SASL_AUTHENTICATION_FAILED, 58, after
``connection.failed.authentication.delay.ms``) and the connection is then closed.
On a listener without SASL both are ILLEGAL_SASL_STATE (34).
"""
from __future__ import annotations

import asyncio
import datetime

from pylog.security.sasl import ILLEGAL_SASL_STATE, SaslFailure

from .dispatch import ApiSpec, register
from .messages import build, error_code, response_module

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36


def handle_sasl_handshake(ctx, request):
    mod = response_module(SASL_HANDSHAKE, ctx.version)
    auth = ctx.auth
    security = getattr(auth, "security", None)
    code = auth.handshake(request.mechanism) if auth is not None else ILLEGAL_SASL_STATE
    return build(mod.SaslHandshakeResponse, error_code=error_code(code),
                 mechanisms=tuple(security.mechanisms) if security is not None else ())


async def handle_sasl_authenticate(ctx, request):
    mod = response_module(SASL_AUTHENTICATE, ctx.version)
    auth = ctx.auth
    try:
        if auth is None or not auth.sasl:
            raise SaslFailure(ILLEGAL_SASL_STATE, "this listener does not use SASL")
        reply, lifetime = auth.authenticate(bytes(request.auth_bytes))
    except SaslFailure as exc:
        if auth is not None and auth.security is not None:
            await asyncio.sleep(auth.security.failed_auth_delay_s)
        if auth is not None:
            auth.close_after_response = True
        return build(mod.SaslAuthenticateResponse, error_code=error_code(exc.code),
                     error_message=str(exc), auth_bytes=b"",
                     session_lifetime=datetime.timedelta(0))
    return build(mod.SaslAuthenticateResponse, error_code=error_code(0), error_message=None,
                 auth_bytes=reply, session_lifetime=datetime.timedelta(milliseconds=lifetime))


register(
    ApiSpec(SASL_HANDSHAKE, "SaslHandshake", range(1, 2), 1, handle_sasl_handshake),
    ApiSpec(SASL_AUTHENTICATE, "SaslAuthenticate", range(0, 3), 2, handle_sasl_authenticate),
)
