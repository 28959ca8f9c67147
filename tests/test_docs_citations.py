"""README and docs cite only files a clone has: no `../shared/...`, `DESIGN.md` or
`research/...`, and every repository path they name in backticks exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "COMPAT.md", ROOT / "FORMAT.md", ROOT / "bench/README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
# a backticked path into the repository: docs/x.md, tools/x.py, tests/..., bench/..., X.md
PATH = re.compile(r"`((?:docs|tools|tests|bench|csrc|pylog)/[\w./-]+\.\w+|[A-Z]+\.md)")


def test_no_citation_of_files_outside_the_repository():
    for doc in DOCS:
        text = doc.read_text()
        for bad in ("../shared", "DESIGN.md", "DESIGN §", "research/"):
            assert bad not in text, f"{doc.relative_to(ROOT)} cites {bad!r}"


def test_every_cited_repository_path_exists():
    missing = []
    for doc in DOCS:
        for m in PATH.finditer(doc.read_text()):
            path = m.group(1).split("::")[0]
            if "*" in path or "{" in path:
                continue
            if not (ROOT / path).exists() and not (ROOT / "tests/server" / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, missing
