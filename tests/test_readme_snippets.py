"""Every Python snippet of the README's "Queues: share groups" and "Transactions"
sections runs as written (those naming 127.0.0.1:9092 against a real server, its
address substituted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pylog.testing import start_server

README = Path(__file__).resolve().parents[1] / "README.md"


SECTIONS = ("## Queues: share groups", "## Transactions")


def _snippets(section: str | None = None) -> list[str]:
    text = README.read_text()
    out = []
    for title in SECTIONS if section is None else (section,):
        start = text.index(title)
        end = text.index("\n## ", start + 10)
        out += re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    return out


def test_the_sections_have_the_snippets_the_issues_ask_for():
    code = "\n".join(_snippets(SECTIONS[0]))
    assert "ShareConsumer" in code and "m.ack()" in code and "pylog-msg-id" in code
    assert len(_snippets(SECTIONS[0])) >= 6
    code = "\n".join(_snippets(SECTIONS[1]))
    assert "transactional.id" in code and "log.transaction(" in code


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
