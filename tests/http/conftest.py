"""Fixtures for the HTTP tests: a real pylog-server and a small HTTP client."""
from __future__ import annotations

import pytest
from http_client import Http

from pylog.testing import PylogServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = PylogServer(tmp_path_factory.mktemp("http") / "data").start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]


@pytest.fixture(scope="module")
def http(server) -> Http:
    return Http(server.http_port)
