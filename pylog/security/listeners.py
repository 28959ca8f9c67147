"""Kafka-style listener specs: ``--kafka-listener 'PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093'``.

A spec is ``[PROTOCOL://]HOST:PORT``; PROTOCOL is Kafka's security protocol name
(PLAINTEXT when left out, so ``127.0.0.1:9092`` keeps meaning what it meant):

  PLAINTEXT       no TLS, no authentication (principal ``User:ANONYMOUS``)
  SSL             TLS; with ``ssl.client.auth=required`` the principal is the client
                  certificate's subject (``User:CN=alice,O=example``), else ANONYMOUS
  SASL_PLAINTEXT  SASL (PLAIN, SCRAM-SHA-256/512) without TLS
  SASL_SSL        SASL over TLS

Several listeners may be given, comma-separated; two may not share a port.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["ListenerSpec", "PROTOCOLS", "parse_listeners"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class ListenerSpec(NamedTuple):
    protocol: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def _one(text: str) -> ListenerSpec:
    text = text.strip()
    proto, sep, rest = text.partition("://")
    if not sep:
        proto, rest = "PLAINTEXT", text
    proto = proto.upper()
    if proto not in PROTOCOLS:
        raise ValueError(f"unknown listener protocol {proto!r} in {text!r}: use one of "
                         f"{', '.join(PROTOCOLS)}")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.strip().isdigit():
        raise ValueError(f"expected [PROTOCOL://]HOST:PORT (e.g. 127.0.0.1:9092), "
                         f"got {text!r}")
    port_n = int(port)
    if not 0 <= port_n <= 65535:
        raise ValueError(f"port {port_n} is out of range: use 0 (any free port) to 65535")
    return ListenerSpec(proto, host.strip("[]"), port_n)


def parse_listeners(text) -> list[ListenerSpec]:
    specs = [_one(part) for part in str(text).split(",") if part.strip()]
    if not specs:
        raise ValueError("no listener given")
    ports = [s.port for s in specs if s.port]
    if len(ports) != len(set(ports)):
        raise ValueError(f"two listeners share a port in {text!r}")
    return specs
