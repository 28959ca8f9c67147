"""Print pytest-benchmark micro results as rates, beside the DESIGN section 7 floors.

    python -m pytest bench/ --benchmark-json=bench/results/micro.json
    python -m bench.micro_summary bench/results/micro.json
"""
from __future__ import annotations

import json
import sys

# benchmark name -> (what DESIGN section 7 asks, floor, extra_info key)
FLOORS = {
    "test_append_single[100B]": ("single append >= 1 M rec/s", 1e6, "records_per_s"),
    "test_read_records": ("read as Records >= 2 M rec/s", 2e6, "records_per_s"),
    "test_read_columns": ("read_columns >= 20 M rec/s", 20e6, "records_per_s"),
    "test_recovery_full_scan": ("recovery scan >= 1 GiB/s", 1.0, "gib_per_s"),
    "test_fsck_verify": ("fsck verify >= 1 GiB/s", 1.0, "gib_per_s"),
}


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "bench/results/micro.json"
    data = json.load(open(path))
    print(f"{data.get('datetime', '')}  {data['machine_info'].get('cpu', {}).get('brand_raw', '')}")
    print(f"{'benchmark':34} {'median':>12} {'rate':>16}  DESIGN §7 (whole command for fsck)")
    for b in data["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        if "records_per_s" in info:
            rate = f"{info['records_per_call'] / stats['median']:,.0f}/s"
        elif "gib_per_s" in info:
            rate = f"{info['log_bytes'] / stats['median'] / 2**30:.2f} GiB/s"
            if info.get("scan_gib_per_s"):
                rate += f" (scan {info['scan_gib_per_s']:.2f})"
        elif "mb_per_s" in info:
            rate = f"{info['mb_per_s']:,.0f} MB/s"
        else:
            rate = ""
        verdict = ""
        if b["name"] in FLOORS:
            what, floor, key = FLOORS[b["name"]]
            if key == "records_per_s":
                value = info["records_per_call"] / stats["median"]
            else:
                value = info["log_bytes"] / stats["median"] / 2**30
            verdict = f"{'met' if value >= floor else 'NOT met'}: {what}"
        print(f"{b['name']:34} {stats['median'] * 1e3:>10.3f}ms {rate:>16}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
