"""Fixtures for the server tests: real pylog-server processes on 127.0.0.1 ephemeral ports."""
from __future__ import annotations

import pytest

from pylog.testing import PylogServer, pylog_server, pylog_server_factory  # noqa: F401


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One pylog-server shared by a test module (tests use distinct topic names)."""
    srv = PylogServer(tmp_path_factory.mktemp("srv") / "data").start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


@pytest.fixture
def bootstrap(server) -> str:
    return server.bootstrap
