"""Writes summary.md for a bench/jvm.sh results directory from its machine.txt and raw.txt.

    python3 bench/summarize_jvm.py bench/results/<UTC time>
"""

import json
import statistics
import sys
from pathlib import Path


def hooks(raw):
    """RESULT lines of PerRequestBench -> list of dicts (numbers as ints)."""
    out = []
    for line in raw:
        if line.startswith("RESULT "):
            d = dict(kv.split("=", 1) for kv in line.split()[1:])
            out.append({k: int(v) if v.lstrip("-").isdigit() else v for k, v in d.items()})
    return out


def us(ns):
    return f"{ns / 1000:.2f} µs"


def main(directory):
    d = Path(directory)
    raw = (d / "raw.txt").read_text().splitlines()
    lines = [f"- {m}" for m in (d / "machine.txt").read_text().splitlines()]
    lines += ["", "| figure | target | measured | verdict |", "|---|---|---|---|"]
    results = hooks(raw)
    for r in (r for r in results if r["part"] == "hook"):
        lines.append(
            f"| agent requests, first {r['n']:,} S3 requests under one scope ({r['sdk']}, {r['runtime']}) "
            f"| 1 + refreshes | {r['agent_requests_first_n']} (all {r['rounds'] * r['n']:,} with the hook: "
            f"{r['agent_requests']}) | {'met' if r['agent_requests_first_n'] == 1 else '**missed**'} |")
    for r in results:
        what = "the hook alone" if r["part"] == "hook" else "a real S3 client, HeadObject to a loopback stub"
        verdict = ("met" if r["added_ns"] <= 2000 else "**missed**") if r["part"] == "hook" else "—"
        lines.append(
            f"| CPU added per S3 request on a cache hit, {what} ({r['sdk']}, {r['runtime']}) | ≤ 2 µs "
            f"| {us(r['added_ns'])} (quartiles of the rounds {us(r['added_ns_q1'])} – {us(r['added_ns_q3'])}); "
            f"with {us(r['with_ns'])}, without {us(r['without_ns'])} | {verdict} |")
    spark = [json.loads(line[len("SPARK "):]) for line in raw if line.startswith("SPARK ")]
    for side in ("per-request", "bucket-level"):
        runs = [s for s in spark if s["side"] == side]
        if not runs:
            continue
        lines.append(
            f"| Spark job, 1,000 objects in 10 prefixes, {side}: agent requests; job time (median); wall time "
            f"(median) | — | {'/'.join(str(s['agent_requests']) for s in runs)}; "
            f"{statistics.median(s['job_s'] for s in runs):.1f} s "
            f"({', '.join(str(s['job_s']) for s in runs)}); {statistics.median(s['wall_s'] for s in runs):.1f} s "
            f"({', '.join(str(s['wall_s']) for s in runs)}); {runs[0]['s3_requests']} S3 requests | — |")
    (d / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
