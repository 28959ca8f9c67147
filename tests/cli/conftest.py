"""The ``pylog`` CLI against one real pylog-server per module (distinct topic names)."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from pylog.testing import PylogServer

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("cli") / "data").start()
    yield srv
    assert srv.stop() == 0, srv.log_text()[-3000:]


@pytest.fixture
def pylog(server):
    """Run ``pylog -q --server <the server's text port> ARGS``; a CompletedProcess."""
    def run(*args, input: bytes | None = None, env: dict | None = None,
            quiet: bool = True, server_flag: bool = True) -> subprocess.CompletedProcess:
        head = ["--server", f"127.0.0.1:{server.text_port}"] if server_flag else []
        return subprocess.run([sys.executable, "-m", "pylog.cli", *head,
                               *(["-q"] if quiet else []), *args],
                              input=input, capture_output=True, timeout=60,
                              env={**os.environ, **(env or {})})
    return run


@pytest.fixture
def new_topic(pylog):
    """create(partitions=2, *config) → a fresh topic's name."""
    def create(partitions: int = 2, *config: str) -> str:
        name = f"t{next(_names)}-{os.getpid()}"
        flags = [x for c in config for x in ("--config", c)]
        r = pylog("topics", "create", name, "--partitions", str(partitions), *flags)
        assert r.returncode == 0, r.stderr
        return name
    return create
