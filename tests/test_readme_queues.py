"""Every Python snippet of the README's "Queues: share groups" section runs as written
(the ShareConsumer one against a real server, its address substituted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pylog.testing import start_server

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets() -> list[str]:
    text = README.read_text()
    start = text.index("## Queues: share groups")
    end = text.index("\n## ", start + 10)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_section_has_the_snippets_the_issue_asks_for():
    code = "\n".join(_snippets())
    assert "ShareConsumer" in code and "m.ack()" in code and "pylog-msg-id" in code
    assert len(_snippets()) >= 6


@pytest.mark.parametrize("i", range(len(_snippets())))
def test_snippet_runs(i, tmp_path):
    code = _snippets()[i]
    srv = None
    if "127.0.0.1:9092" in code:
        srv = start_server(tmp_path / "data")
        code = code.replace("127.0.0.1:9092", srv.bootstrap)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
    finally:
        if srv is not None:
            srv.stop()
