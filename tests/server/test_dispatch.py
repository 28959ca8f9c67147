"""Request decoding: headers, version table, ApiVersions fallback, and a fuzzed decoder."""
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pylog.errors import ProtocolError
from pylog.server.kafka.dispatch import (API_TABLE, UnsupportedRequestError, decode_request)
from pylog.server.kafka.messages import decode_header, encode_response


def header(key, version, cid=7, client=b"t"):
    return struct.pack(">hhih", key, version, cid, len(client)) + client


def test_every_api_is_advertised_from_version_zero_up_to_its_non_flexible_max():
    expected = {0: 8, 1: 11, 2: 5, 3: 8, 8: 7, 9: 5, 10: 2, 11: 5, 12: 3, 13: 3, 14: 3,
                15: 4, 16: 2, 18: 2, 19: 4, 20: 3, 22: 1, 32: 3}
    assert {k: s.advertised_max for k, s in API_TABLE.items()} == expected


def test_api_versions_v3_is_decoded_without_reading_the_flexible_body():
    req = decode_request(header(18, 3) + b"\x00garbage-tagged-fields")
    assert req.body is None and req.spec.name == "ApiVersions"


@pytest.mark.parametrize("key,version", [(0, 2), (1, 3), (2, 0), (0, 9), (1, 12), (3, 9),
                                         (999, 0), (17, 0), (-1, 0)])
def test_unserved_api_or_version_is_refused(key, version):
    with pytest.raises(UnsupportedRequestError):
        decode_request(header(key, version) + b"\0" * 32)


def test_array_claiming_2_pow_31_elements_in_a_tiny_body_is_refused_quickly():
    # Metadata v1: topics array length INT32_MAX, 10 bytes of body.
    with pytest.raises(ProtocolError):
        decode_request(header(3, 1) + struct.pack(">i", 2**31 - 1) + b"\0" * 10)


def test_truncated_header_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        decode_header(b"\0\x03\0")
    with pytest.raises(ProtocolError):
        decode_header(struct.pack(">hhih", 3, 1, 1, 50) + b"short")


def test_response_frame_carries_size_and_correlation_id():
    from kio.schema.heartbeat.v0.response import HeartbeatResponse
    from kio.schema.errors import ErrorCode
    parts = encode_response(42, HeartbeatResponse(error_code=ErrorCode.none))
    data = b"".join(bytes(p) for p in parts)
    assert struct.unpack(">ii", data[:8]) == (len(data) - 4, 42)


_served = sorted((k, v) for k, s in API_TABLE.items() for v in s.versions)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(_served), body=st.binary(max_size=200),
       client=st.binary(max_size=8))
def test_random_bodies_for_every_served_version_raise_only_protocol_error(target, body, client):
    try:
        decode_request(header(target[0], target[1], client=client) + body)
    except ProtocolError:
        pass


@settings(max_examples=1500, deadline=None)
@given(frame=st.binary(max_size=300))
def test_random_frames_raise_only_protocol_error(frame):
    try:
        decode_request(frame)
    except ProtocolError:
        pass


def test_every_served_version_has_kio_request_and_response_classes():
    from pylog.server.kafka.messages import request_class, response_module
    for key, spec in API_TABLE.items():
        for v in spec.versions:
            assert request_class(key, v).__version__ == v
            assert response_module(key, v) is not None
