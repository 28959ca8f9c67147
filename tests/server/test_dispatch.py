"""Request decoding: headers, version table, ApiVersions fallback, and a fuzzed decoder."""
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pylog.errors import ProtocolError
from pylog.server.kafka.dispatch import (API_TABLE, UnsupportedRequestError, decode_request)
from pylog.server.kafka.messages import decode_header, encode_response


def header(key, version, cid=7, client=b"t"):
    return struct.pack(">hhih", key, version, cid, len(client)) + client


def test_every_api_is_advertised_up_to_the_highest_version_kio_has():
    from kio.index import UnknownEntity
    from pylog.server.kafka.messages import request_class
    for key, spec in API_TABLE.items():
        assert spec.advertised_max == spec.versions[-1], spec.name
        request_class(key, spec.advertised_max)
        with pytest.raises(UnknownEntity):           # nothing newer left unserved
            request_class(key, spec.advertised_max + 1)


def test_api_versions_above_4_is_decoded_without_reading_the_body():
    req = decode_request(header(18, 5) + b"\x00garbage-tagged-fields")
    assert req.body is None and req.spec.name == "ApiVersions"


def test_flexible_request_header_tagged_fields_are_skipped():
    # ApiVersions v3: header v2 = v1 + tagged fields (2 fields, ascending tags), then
    # the body: compact strings "a" and "1", empty body tagged fields.
    tags = b"\x02" + b"\x00\x02zz" + b"\x05\x00"
    req = decode_request(header(18, 3) + tags + b"\x02a\x021\x00")
    assert (req.body.client_software_name, req.body.client_software_version) == ("a", "1")


@pytest.mark.parametrize("tags", [b"\x01\x00\x09ab", b"\x02\x03\x00\x01\x00",
                                  b"\x01", b"\xff\xff\xff\xff\xff\x0f",
                                  b"\x01\x00\xff\xff\xff\xff\x07"])
def test_bad_header_tagged_fields_are_protocol_errors(tags):
    """Sizes past the end, descending tags, truncation, over-long varints, huge sizes."""
    with pytest.raises(ProtocolError):
        decode_request(header(18, 3) + tags + b"\x02a\x021\x00")


def test_flexible_response_has_header_v1_but_api_versions_keeps_v0():
    from kio.schema.api_versions.v3.response import ApiVersionsResponse
    from kio.schema.heartbeat.v4.response import HeartbeatResponse
    from kio.schema.errors import ErrorCode
    hb = b"".join(encode_response(5, HeartbeatResponse(error_code=ErrorCode.none,
                                                       throttle_time=__import__("datetime")
                                                       .timedelta(0))))
    assert hb[8] == 0 and len(hb) == 4 + 4 + 1 + 4 + 2 + 1   # size, cid, tags, body
    av = b"".join(encode_response(5, ApiVersionsResponse(
        error_code=ErrorCode.none, api_keys=(), throttle_time=__import__("datetime")
        .timedelta(0))))
    assert struct.unpack_from(">h", av, 8)[0] == 0           # error_code right after cid


@pytest.mark.parametrize("key,version", [(0, 2), (1, 3), (2, 0), (0, 14), (1, 19), (3, 14),
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
