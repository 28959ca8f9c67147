"""TLS for the listeners (Python's ``ssl``): one server context, reloadable.

Settings (Kafka's names in brackets): ``ssl_certfile`` and ``ssl_keyfile`` — the server's
PEM certificate chain and key [ssl.keystore.certificate.chain / ssl.keystore.key with
ssl.keystore.type=PEM]; ``ssl_cafile`` — CAs that sign client certificates
[ssl.truststore.certificates]; ``ssl_client_auth`` — none | requested | required
[ssl.client.auth].  TLS 1.2 is the floor.  ``reload()`` (SIGHUP) loads the files again
into the same context: new handshakes use them, open connections keep theirs; a
reload that fails keeps the old certificates and says why.
"""
from __future__ import annotations

import logging
import ssl

__all__ = ["TlsConfig", "principal_from_cert"]

log = logging.getLogger("pylog.security")
CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL,
               "required": ssl.CERT_REQUIRED}


class TlsConfig:
    def __init__(self, certfile: str, keyfile: str | None = None, cafile: str | None = None,
                 client_auth: str = "none") -> None:
        if client_auth not in CLIENT_AUTH:
            raise ValueError(f"ssl_client_auth must be none, requested or required, not "
                             f"{client_auth!r}")
        if client_auth != "none" and not cafile:
            raise ValueError("ssl_client_auth needs ssl_cafile (the CAs of client "
                             "certificates)")
        self.certfile, self.keyfile, self.cafile = certfile, keyfile, cafile
        self.client_auth = client_auth
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.verify_mode = CLIENT_AUTH[client_auth]
        self._load(self.context)

    def _load(self, ctx: ssl.SSLContext) -> None:
        try:
            ctx.load_cert_chain(self.certfile, self.keyfile)
            if self.cafile:
                ctx.load_verify_locations(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"TLS certificate or key not usable ({self.certfile}, "
                             f"{self.keyfile or 'key in the same file'}): {exc}") from None

    def reload(self) -> bool:
        """Load the files again (SIGHUP); False (and a WARNING) if they don't load."""
        try:
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._load(probe)                # check first: never break the live context
            self._load(self.context)
        except ValueError as exc:
            log.warning("TLS reload failed, keeping the old certificates: %s", exc)
            return False
        log.info("TLS certificates reloaded from %s", self.certfile)
        return True


def principal_from_cert(cert: dict | None) -> str | None:
    """Kafka's default SSL principal: ``User:`` + the subject DN, RFC 2253 order
    (most specific first, e.g. ``User:CN=alice,OU=eng,O=example``)."""
    if not cert or "subject" not in cert:
        return None
    parts = []
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
             "emailAddress": "EMAILADDRESS", "domainComponent": "DC"}
    for rdn in reversed(cert["subject"]):
        for key, value in rdn:
            value = value.replace("\\", "\\\\").replace(",", "\\,").replace("+", "\\+")
            parts.append(f"{short.get(key, key)}={value}")
    return "User:" + ",".join(parts) if parts else None
