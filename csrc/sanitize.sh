#!/bin/sh
# Run the C core's tests against an ASan + UBSan build of pylog._core and
# pylog._speedups (the CPython extension of the per-record paths).
#
# Builds a sanitized copy of the package in a temp dir (the tree's own _core.so is
# untouched, so concurrent users are not disturbed), then runs the C-level tests
# with libasan/libubsan preloaded into the venv's python.  PYTHONMALLOC=malloc
# sends bytes objects through malloc so ASan's redzones catch over-reads of
# buffers passed in from Python.  Usage (from the repository root):
#     sh csrc/sanitize.sh [extra pytest args]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/pylog" "$ROOT/csrc" "$WORK/"
rm -f "$WORK"/pylog/_core*.so "$WORK"/pylog/_speedups*.so
cd "$WORK"
"$PY" - <<'EOF'
import sys
sys.path.insert(0, "csrc")
import build_ffi
ffi = build_ffi.ffibuilder
module, source, source_ext, kwds = ffi._assigned_source
flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
         "-Wall", "-Wextra", "-std=gnu11"]
ffi._assigned_source = (module, source, source_ext,
                        dict(kwds, extra_compile_args=flags,
                             extra_link_args=["-fsanitize=address,undefined"]))
ffi.compile(tmpdir=".", verbose=False)
import subprocess, sysconfig
ext = sysconfig.get_config_var("EXT_SUFFIX")
subprocess.run(["gcc", "-shared", "-fPIC", *flags, "-Icsrc",
                "-I" + sysconfig.get_paths()["include"], "csrc/pyext.c",
                *[f"csrc/{s}" for s in build_ffi.SOURCES],
                "-fsanitize=address,undefined", "-o", f"pylog/_speedups{ext}"], check=True)
EOF
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
PYTHONMALLOC=malloc PYTHONPATH="$WORK" \
"$PY" -c "
import sys, pylog._core, pytest
import pylog._speedups
assert pylog._core.__file__.startswith('$WORK'), pylog._core.__file__
assert pylog._speedups.__file__.startswith('$WORK'), pylog._speedups.__file__
sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--rootdir=$WORK'] + sys.argv[1:]))
" "$ROOT/tests/test_ffi.py" "$ROOT"/tests/storage/test_core_*.py \
  "$ROOT/tests/storage/test_speedups.py" "$ROOT/tests/storage/test_hot_paths.py" \
  "$ROOT/tests/test_api.py" "$@"
