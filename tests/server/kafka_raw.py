"""A minimal raw Kafka client for tests: kio-encoded requests over a plain socket.

Used where real clients can't go: crafted Produce requests (retries, sequence
gaps, bad CRCs), malformed frames, and checks of exact response fields.
"""
from __future__ import annotations

import io
import socket
import struct

from kio.serial import entity_reader, entity_writer

from pylog.server.kafka.messages import request_class, response_module


def _response_class(api_key: int, version: int):
    mod = response_module(api_key, version)
    for v in vars(mod).values():
        if isinstance(v, type) and getattr(v, "__type__", None) is not None \
                and v.__type__.name == "response" and v.__module__ == mod.__name__:
            return v
    raise LookupError(mod)


class RawClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as Kafka clients
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def header(self, api_key: int, version: int, client_id: str = "raw") -> bytes:
        self.correlation_id += 1
        cid = client_id.encode()
        return struct.pack(">hhih", api_key, version, self.correlation_id, len(cid)) + cid

    def send(self, api_key: int, version: int, request, tagged: bytes = b"\0") -> int:
        """Send a request; a flexible version gets header v2, whose tagged-field
        section is ``tagged`` (default: none)."""
        buf = io.BytesIO()
        entity_writer(type(request))(buf, request)
        head = self.header(api_key, version)
        if type(request).__flexible__:
            head += tagged
        self.send_frame(head + buf.getvalue())
        return self.correlation_id

    def recv_frame(self) -> bytes:
        size = struct.unpack(">i", self._recv_exact(4))[0]
        return self._recv_exact(size)

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by server")
            out += chunk
        return bytes(out)

    def recv(self, api_key: int, version: int):
        frame = self.recv_frame()
        (cid,) = struct.unpack_from(">i", frame, 0)
        cls = _response_class(api_key, version)
        pos = 4
        if cls.__header_schema__.__version__ >= 1:     # response header v1
            assert frame[4] == 0, "response header v1 with tagged fields"
            pos = 5
        entity, size = entity_reader(cls)(frame, pos)
        assert pos + size == len(frame), f"{len(frame) - pos - size} bytes after the body"
        return cid, entity

    def call(self, api_key: int, version: int, request):
        cid = self.send(api_key, version, request)
        got, resp = self.recv(api_key, version)
        assert got == cid
        return resp

    def is_closed_by_server(self, wait: float = 2.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def req(api_key: int, version: int, **fields):
    """Build the kio request entity for (api_key, version) from field values."""
    return request_class(api_key, version)(**fields)


def module(api_key: int, version: int):
    """The kio module holding the request classes (top-level and nested) of a version."""
    import sys
    return sys.modules[request_class(api_key, version).__module__]
