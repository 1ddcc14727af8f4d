#!/usr/bin/env python3
"""Growth table of docs/benchmarks.md ("Pilot scale") from tamaq-load's --results file.

    python3 tests/load/growth_table.py results.jsonl

One row per step and backend; one column per scale (rate, and seconds in brackets), then how
the rate at the largest scale compares with the smallest.
"""
import json
import sys
from collections import OrderedDict


def main(path):
    runs = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    scales = sorted({r["scale"] for r in runs})
    by = OrderedDict()
    for run in runs:
        for row in run["rows"]:
            key = (row["step"], run["backend"])
            by.setdefault(key, {})[run["scale"]] = row
    head = " | ".join(f"{s:.0%} of the pilot" for s in scales)
    print(f"| step | backend | {head} | rate at {scales[-1]:.0%} / rate at {scales[0]:.0%} |")
    print("| --- | --- |" + " ---: |" * (len(scales) + 1))
    order = sorted(by, key=lambda k: (list(dict.fromkeys(s for s, _ in by)).index(k[0]), k[1]))
    for step, backend in order:
        cells = by[(step, backend)]
        out = []
        for s in scales:
            row = cells.get(s)
            if row is None:
                out.append("")
                continue
            rate = row["items"] / max(row["seconds"], 1e-9)
            out.append(f"{rate:,.0f} {row['unit']}/s ({row['seconds']:.1f} s)")
        lo, hi = cells.get(scales[0]), cells.get(scales[-1])
        ratio = ""
        if lo and hi:
            r_lo = lo["items"] / max(lo["seconds"], 1e-9)
            r_hi = hi["items"] / max(hi["seconds"], 1e-9)
            ratio = f"{r_hi / r_lo:.2f}"
        print(f"| {step} | {backend} | " + " | ".join(out) + f" | {ratio} |")
    print()
    for run in runs:
        rss = {row["step"]: row.get("max_rss_mb") for row in run["rows"]}
        server = rss.get("event upload")
        server = f"{server:.0f} MB" if server else "not read"
        print(
            f"- {run['backend']}, {run['scale']:.0%}: {run['schools']:,} schools, "
            f"{run['pupils']:,} pupils, database {run['database_mb']:,.0f} MB at the end, "
            f"load average at start {run['load_average']}; peak resident memory: "
            f"`serve` over all HTTP steps {server}, `import-roster` "
            f"{rss.get('roster import') or 0:.0f} MB"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.jsonl")
