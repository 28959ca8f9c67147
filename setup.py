# Wires the C core: pylog._core through cffi (csrc/build_ffi.py) and pylog._speedups,
# a small CPython extension for the per-record hot paths (csrc/pyext.c), linked with
# the same core sources.  Everything else is in pyproject.toml.
import pathlib
import sys

from setuptools import Extension, setup

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "csrc"))
from build_ffi import CFLAGS, HEADERS, SOURCES  # noqa: E402

setup(
    cffi_modules=["csrc/build_ffi.py:ffibuilder"],
    ext_modules=[Extension(
        "pylog._speedups",
        sources=["csrc/pyext.c"] + [f"csrc/{s}" for s in SOURCES],
        include_dirs=["csrc"],
        depends=[f"csrc/{h}" for h in HEADERS],
        extra_compile_args=CFLAGS,
    )],
)
