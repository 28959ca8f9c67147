"""cffi build script for pylog._core (out-of-line API mode).

The cdef is derived from pylog.h itself so the two cannot drift: comments,
preprocessor guards and the _Static_assert block are dropped, and every
``#define PL_X value`` becomes ``#define PL_X ...`` so the C compiler supplies the
value (cffi then checks each struct's layout against the real header too).

Used by setup.py (``cffi_modules=["csrc/build_ffi.py:ffibuilder"]``); can also be
run directly: ``python csrc/build_ffi.py`` builds pylog/_core*.so in place.
"""
from __future__ import annotations

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["crc32c.c", "batch.c", "io.c", "index.c", "timeindex.c", "segment.c", "scan.c", "verify.c",
           "compact.c", "txn.c"]
# Headers (and this script) as `depends`: rebuilt when they change, shipped in sdists.
HEADERS = ["pylog.h", "pl_internal.h", "crc32c_table.h"]
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


def cdef_from_header(text: str) -> str:
    """pylog.h minus what cffi's parser does not take, constants as ``...``."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#ifndef PL_NO_STATIC_ASSERTS"):
            skipping = True
            continue
        if skipping:
            skipping = not stripped.startswith("#endif")
            continue
        m = re.match(r"#define\s+(PL_\w+)\s+\S+", stripped)
        if m:
            out.append(f"#define {m.group(1)} ...")
        elif stripped.startswith("#"):
            continue
        else:
            out.append(line)
    return "\n".join(out)


ffibuilder = FFI()
ffibuilder.cdef(cdef_from_header((HERE / "pylog.h").read_text()))
ffibuilder.set_source(
    "pylog._core",
    '#include "pylog.h"',
    sources=[f"csrc/{s}" for s in SOURCES],
    include_dirs=["csrc"],
    depends=[f"csrc/{h}" for h in HEADERS] + ["csrc/build_ffi.py"],
    extra_compile_args=CFLAGS,
)

if __name__ == "__main__":
    import os

    os.chdir(HERE.parent)
    ffibuilder.compile(tmpdir=".", verbose=False)
