"""The sdist is complete and installs: build it from the tracked files (as a fresh clone
would), check it carries everything needed to build and test, install it into a fresh
venv, and run the README's embedded quick start and ``pylog-server`` from that install.

Slow (about a minute: two isolated builds and a compile) but run in CI like every test.
pip resolves from the package index this machine is configured with."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MUST_SHIP = ["LICENSE", "README.md", "FORMAT.md", "COMPAT.md", "pyproject.toml", "setup.py",
             "csrc/pylog.h", "csrc/segment.c", "csrc/pyext.c", "csrc/build_ffi.py",
             "tests/test_packaging.py", "tests/server/conftest.py",
             "docs/configuration.md", "docs/text-protocol.md", "bench/README.md",
             "tools/inject.py", ".ci/run"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _source_tree(dest: Path) -> Path:
    """The tracked files only (a fresh clone), or the whole tree outside git."""
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                               check=True, timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            "*.so", "__pycache__", "build", "*.egg-info", ".venv*"))
        return dest
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


# The fresh venv must see only what it installed: no PYTHONPATH pointing at a checkout.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=CLEAN_ENV,
                          **kw)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def _embedded_quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("<!-- quickstart: python -->", 1)[1]   # the embedded one
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("packaging")
    src = _source_tree(tmp / "src")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "build"])
    _run([py, "-m", "build", "--sdist", "--outdir", tmp / "dist", src])
    (sdist,) = (tmp / "dist").glob("pylog-*.tar.gz")
    _run([py, "-m", "pip", "install", "-q", sdist], cwd=tmp)
    return tmp, env_dir, sdist


def test_sdist_carries_sources_tests_docs_and_license(installed):
    _, _, sdist = installed
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    missing = [n for n in MUST_SHIP if n not in names]
    assert not missing, missing
    tracked_tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py")}
    assert tracked_tests <= names
    assert not any(n.endswith(".so") for n in names)
    with tarfile.open(sdist) as tar:
        pkg_info = tar.extractfile(next(m for m in tar.getmembers()
                                        if m.name.endswith("/PKG-INFO"))).read().decode()
    assert "License-Expression: Apache-2.0" in pkg_info
    assert "Requires-Python: >=3.11" in pkg_info
    assert "Requires-Dist: xxhash" in pkg_info


def test_installed_sdist_runs_the_embedded_quick_start(installed):
    tmp, env_dir, _ = installed
    work = tmp / "quickstart"
    work.mkdir()
    proc = _run([env_dir / "bin" / "python", "-c", _embedded_quick_start()], cwd=work)
    assert "RecordMetadata(topic='orders'" in proc.stdout
    # the installed package, not this checkout
    where = _run([env_dir / "bin" / "python", "-c", "import pylog; print(pylog.__file__)"],
                 cwd=work).stdout
    assert str(env_dir) in where


def test_installed_sdist_runs_pylog_server(installed):
    tmp, env_dir, _ = installed
    data = tmp / "server-data"
    proc = subprocess.Popen([env_dir / "bin" / "pylog-server", "--data-dir", data,
                             "--kafka-listener", "127.0.0.1:0", "--text-port", "0",
                             "--http-port", "0"], cwd=tmp, env=CLEAN_ENV,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"kafka listening on 127\.0\.0\.1:(\d+), text on 127\.0\.0\.1:(\d+)",
                      line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        with socket.create_connection(("127.0.0.1", int(m.group(2))), timeout=10) as s:
            f = s.makefile("rwb")
            f.write(b"CREATE pkg 2\nPRODUCE pkg 1 hello\n")
            f.flush()
            assert f.readline() == b"OK 2\n" and f.readline() == b"OK 0\n"
        socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10).close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert (data / "pkg-1").is_dir()
    version = _run([env_dir / "bin" / "pylog-server", "--version"]).stdout
    assert version.startswith("pylog-server ")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
