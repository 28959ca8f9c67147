"""CRC-32C: the check value, the pure-Python table vs the crc32c package, and the C
core's pl_crc32c (hardware and software paths) when pylog._ffi is built."""
from __future__ import annotations

import crc32c as crc32c_pkg
import pytest
from hypothesis import given, strategies as st

from pylog import crc


def test_check_value_123456789():
    assert crc.crc32c_py(b"123456789") == 0xE3069283
    assert crc.crc32c(b"123456789") == 0xE3069283
    assert crc.crc32c(b"") == 0


@given(st.binary(max_size=2000))
def test_pure_python_matches_crc32c_package(data):
    assert crc.crc32c_py(data) == crc32c_pkg.crc32c(data)
    assert crc.crc32c(memoryview(bytearray(data))) == crc32c_pkg.crc32c(data)


def test_c_core_agrees_when_built():
    try:
        from pylog._ffi import ffi, lib
    except Exception:
        pytest.skip("pylog._ffi is not built")
    assert crc.using_c_core()
    data = bytes(range(256)) * 41 + b"tail"
    for fn in (lib.pl_crc32c, lib.pl_crc32c_sw):
        assert fn(0, ffi.from_buffer(data), len(data)) == crc32c_pkg.crc32c(data)
