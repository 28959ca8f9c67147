"""Hostile lengths in flexible requests: refused with ProtocolError before kio decodes.

kio's native reader reserves memory for a compact array before reading it; a huge
claimed length used to abort the whole server (``memory allocation of 34359738352
bytes failed``).  Each mutation is decoded in a child process, so a regression
shows as a crashed child, not a crashed test run.
"""
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, given, settings, strategies as st

from flexible_samples import samples
from pylog.errors import ProtocolError
from pylog.server.kafka.dispatch import decode_request

HUGE = b"\xfe\xff\xff\xff\x0f"          # uvarint 2**32 - 2: a compact length of 2**32 - 3


def test_samples_decode():
    for f in samples():
        assert decode_request(f).body is not None


def test_a_huge_compact_length_at_every_position_never_kills_the_process():
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, "tests/server")
        from flexible_samples import samples
        from pylog.errors import ProtocolError
        from pylog.server.kafka.dispatch import decode_request
        HUGE = %r
        refused = decoded = 0
        for f in samples():
            for i in range(14, len(f)):
                for mutated in (f[:i] + HUGE + f[i:], f[:i] + HUGE + f[i + len(HUGE):]):
                    try:
                        decode_request(mutated)
                        decoded += 1
                    except ProtocolError:
                        refused += 1
        print(refused, decoded)
    """ % HUGE)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    refused, decoded = map(int, out.stdout.split())
    assert refused > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 5), pos=st.integers(0, 400), junk=st.binary(min_size=1,
                                                                        max_size=8))
def test_random_splices_raise_only_protocol_error(which, pos, junk):
    f = samples()[which]
    pos = 14 + pos % max(1, len(f) - 14)
    try:
        decode_request(f[:pos] + junk + f[pos:])
    except ProtocolError:
        pass
