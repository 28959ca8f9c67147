"""Print (or check) the table of Kafka APIs and versions pylog-server serves, for COMPAT.md.

    python tools/compat_table.py            # print the table
    python tools/compat_table.py --write    # replace it between the markers in COMPAT.md

The table comes from the dispatch table itself (``pylog.server.kafka.dispatch.API_TABLE``),
so COMPAT.md cannot claim a version the server does not serve; tests/server/
test_compat_doc.py fails when they differ.
"""
from __future__ import annotations

import argparse
import pathlib
import re

BEGIN, END = "<!-- BEGIN served-apis (tools/compat_table.py) -->", "<!-- END served-apis -->"
COMPAT = pathlib.Path(__file__).resolve().parent.parent / "COMPAT.md"


def table() -> str:
    from pylog.server.kafka.dispatch import API_TABLE
    from pylog.server.kafka.messages import request_class
    rows = ["| API (key) | advertised | served | flexible from |", "|---|---|---|---|"]
    for key, spec in sorted(API_TABLE.items()):
        flexible = next((v for v in spec.versions if request_class(key, v).__flexible__), None)
        rows.append(f"| {spec.name} ({key}) | 0–{spec.advertised_max} | "
                    f"{spec.versions[0]}–{spec.versions[-1]} | "
                    f"{'v' + str(flexible) if flexible is not None else '—'} |")
    return "\n".join(rows)


def current() -> str | None:
    m = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), COMPAT.read_text(), re.S)
    return m.group(1) if m else None


def write() -> None:
    text = COMPAT.read_text()
    new = f"{BEGIN}\n{table()}\n{END}"
    text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: new, text, flags=re.S)
    COMPAT.write_text(text)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    if ap.parse_args().write:
        write()
    else:
        print(table())
