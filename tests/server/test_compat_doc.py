"""COMPAT.md's table of served APIs is the dispatch table (tools/compat_table.py --write)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import compat_table  # noqa: E402


def test_compat_md_lists_exactly_what_is_served():
    assert compat_table.current() == compat_table.table(), \
        "COMPAT.md is stale: run python tools/compat_table.py --write"
