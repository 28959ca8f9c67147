"""The README's quick starts, extracted from README.md itself, run in order against one
fresh pylog-server: each block must succeed, and none may break the next.

A runnable block is a fenced ``sh`` or ``python`` block right after an HTML comment
``<!-- quickstart: sh -->`` / ``<!-- quickstart: python -->``.  The README uses the
default addresses (Kafka 127.0.0.1:9092, text 127.0.0.1:3000, HTTP 127.0.0.1:8081); the
test rewrites them to its server's ephemeral ports and sets ``PYLOG_SERVER``, so the
machine's default ports need not be free.  Each block runs in the same scratch
directory (the server's data directory is elsewhere).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pylog.testing import PylogServer

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- quickstart: (sh|python) -->\s*\n```(\w+)\n(.*?)\n```", re.S)
TOOLS = {"kcat": "kcat", "confluent_kafka": None, "curl": "curl", "jq": "jq"}


def quickstart_blocks() -> list[tuple[str, str]]:
    blocks = []
    for kind, fence, body in BLOCK.findall(README.read_text()):
        assert fence == kind, f"block marked {kind} is fenced as {fence}"
        blocks.append((kind, body + "\n"))
    return blocks


def test_the_readme_marks_its_quick_starts():
    kinds = [kind for kind, _ in quickstart_blocks()]
    assert kinds.count("python") >= 2 and kinds.count("sh") >= 2
    text = README.read_text()
    markers = re.findall(r"<!-- quickstart: (\w+) -->", text)
    assert len(markers) == len(kinds), "a marker without a block right after it"


def test_readme_quick_starts_run_in_order_against_one_fresh_server(tmp_path):
    blocks = quickstart_blocks()
    needed = {tool for tool, exe in TOOLS.items() if exe and any(
        re.search(rf"\b{tool}\b", body) for _, body in blocks)}
    missing = [t for t in sorted(needed) if shutil.which(TOOLS[t]) is None]
    if missing:
        pytest.skip(f"the quick starts need {', '.join(missing)}")
    pytest.importorskip("confluent_kafka")
    srv = PylogServer(tmp_path / "server" / "data").start()
    work = tmp_path / "work"
    work.mkdir()
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PYLOG_SERVER": f"127.0.0.1:{srv.text_port}",
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    ports = {"127.0.0.1:9092": srv.bootstrap, "127.0.0.1:3000": f"127.0.0.1:{srv.text_port}",
             "127.0.0.1:8081": f"127.0.0.1:{srv.http_port}"}
    try:
        for n, (kind, body) in enumerate(blocks, 1):
            for default, actual in ports.items():
                body = body.replace(default, actual)
            if kind == "python":
                cmd = [sys.executable, "-c", body]
            else:
                cmd = ["bash", "-c", "set -euo pipefail\n" + body]
            r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, timeout=120)
            assert r.returncode == 0, (f"README quick-start block {n} ({kind}) failed with "
                                       f"exit {r.returncode}:\n{body}\nstdout:\n"
                                       f"{r.stdout.decode(errors='replace')[-2000:]}\n"
                                       f"stderr:\n{r.stderr.decode(errors='replace')[-2000:]}")
        assert not (work / "data").exists(), "a quick start opened ./data"
    finally:
        code = srv.stop()
    assert code == 0, srv.log_text()[-3000:]
