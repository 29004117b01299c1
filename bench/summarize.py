#!/usr/bin/env python3
"""Turns the raw lines bench/run.sh recorded (<results>/raw.txt) into the BENCHMARKS.md table.

Ratios are computed per round from the runs made side by side (baseline, then agent), and the
median over the rounds is reported with the range of the per-round ratios.
"""

import re
import statistics
import sys
from pathlib import Path


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def wrk_duration(text):
    """wrk latency like 1.23ms, 456.00us, 1.01s → microseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]


def parse(raw):
    runs = []  # dicts with 'label', 'kind', and numbers
    lines = raw.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("wrk "):
            run = {"kind": "wrk", **fields(line[4:])}
            i += 1
            while i < len(lines) and lines[i].startswith("    "):
                body = lines[i].strip()
                if body.startswith("Requests/sec:"):
                    run["rps"] = float(body.split()[1])
                m = re.match(r"(\d+) requests in", body)
                if m:
                    run["requests"] = int(m.group(1))
                m = re.match(r"(50|90|99)(?:\.000)?%\s+(\S+)", body)
                if m:
                    run[f"p{m.group(1)}_us"] = wrk_duration(m.group(2))
                if body.startswith("Non-2xx"):
                    run["non_200"] = int(body.split()[-1])
                i += 1
            if "requests" in run:
                run["server_cpu_us_per_req"] = float(run["server_cpu_s"]) * 1e6 / run["requests"]
            runs.append(run)
            continue
        if line.startswith("label=") and "mode=" in line:
            f = fields(line)
            run = {"kind": f["mode"], "label": f["label"]}
            for k, v in f.items():
                try:
                    run[k] = float(v)
                except ValueError:
                    pass
            runs.append(run)
        i += 1
    return runs


def by_label(runs, kind, label):
    return [r for r in runs if r["kind"] == kind and r["label"] == label]


def paired(runs, kind, base, agent, key):
    """Per-round ratio agent/base of `key`, pairing the n-th runs of each label."""
    b, a = by_label(runs, kind, base), by_label(runs, kind, agent)
    return [x[key] / y[key] for x, y in zip(a, b) if y.get(key)]


def med(values):
    return statistics.median(values) if values else float("nan")


def span(values, fmt="{:.2f}"):
    if not values:
        return "n/a"
    return f"{fmt.format(med(values))} (rounds: {', '.join(fmt.format(v) for v in values)})"


def main():
    out = Path(sys.argv[1])
    raw = (out / "raw.txt").read_text()
    runs = parse(raw)
    rows = []

    def row(what, target, measured, ok):
        verdict = "met" if ok is True else ("**missed**" if ok is False else "—")
        rows.append(f"| {what} | {target} | {measured} | {verdict} |")

    # hot path
    rps = paired(runs, "wrk", "baseline", "agent", "rps")
    p99 = paired(runs, "wrk", "baseline", "agent", "p99_us")
    cpu = paired(runs, "wrk", "baseline", "agent", "server_cpu_us_per_req")
    if rps:
        b = by_label(runs, "wrk", "baseline")
        a = by_label(runs, "wrk", "agent")
        row("keep-alive req/s, agent ÷ baseline (wrk, 64 conns)", "≥ 0.8", span(rps), med(rps) >= 0.8)
        row("keep-alive p99 latency, agent ÷ baseline", "≤ 1.5", span(p99), med(p99) <= 1.5)
        row(
            "keep-alive absolute (median)",
            "—",
            f"baseline {med([r['rps'] for r in b]):.0f} req/s p99 {med([r['p99_us'] for r in b]) / 1e3:.2f} ms; "
            f"agent {med([r['rps'] for r in a]):.0f} req/s p99 {med([r['p99_us'] for r in a]) / 1e3:.2f} ms",
            None,
        )
        row(
            "server CPU per request, agent ÷ baseline (keep-alive)",
            "—",
            span(cpu) + f"; agent {med([r['server_cpu_us_per_req'] for r in a]):.1f} µs, baseline {med([r['server_cpu_us_per_req'] for r in b]):.1f} µs",
            None,
        )
    # new connections
    nrps = paired(runs, "newconn", "baseline", "agent", "rps")
    if nrps:
        np99 = paired(runs, "newconn", "baseline", "agent", "p99_us")
        ncpu = paired(runs, "newconn", "baseline", "agent", "server_cpu_us_per_req")
        b = by_label(runs, "newconn", "baseline")
        a = by_label(runs, "newconn", "agent")
        ka = by_label(runs, "keepalive", "baseline-keepalive")
        row("new connection per request, req/s agent ÷ baseline", "≥ 0.7", span(nrps), med(nrps) >= 0.7)
        row("new connection per request, p99 agent ÷ baseline", "—", span(np99), None)
        row(
            "new connection absolute (median)",
            "—",
            f"baseline {med([r['rps'] for r in b]):.0f} req/s, agent {med([r['rps'] for r in a]):.0f} req/s; "
            f"same client, keep-alive, vs baseline: {med([r['rps'] for r in ka]):.0f} req/s",
            None,
        )
        row(
            "server CPU per request, agent ÷ baseline (new connections)",
            "—",
            span(ncpu) + f"; agent {med([r['server_cpu_us_per_req'] for r in a]):.1f} µs, baseline {med([r['server_cpu_us_per_req'] for r in b]):.1f} µs",
            None,
        )
    # identity
    quiet = by_label(runs, "newconn", "identity-quiet")
    crowded = by_label(runs, "newconn", "identity-10k")
    if quiet and crowded:
        ratios = [c["p50_us"] / q["p50_us"] for q, c in zip(quiet, crowded)]
        row(
            "p50 latency (new connection, 1 client) with 10,000 extra idle loopback connections ÷ without",
            "≤ 1.20",
            span(ratios) + f"; p50 {med([q['p50_us'] for q in quiet]):.0f} µs → {med([c['p50_us'] for c in crowded]):.0f} µs",
            med(ratios) <= 1.20,
        )
    # memory
    rss = {fields(l)["label"]: fields(l) for l in raw.splitlines() if l.startswith("rss ")}
    if "after-1000000-requests" in rss:
        million = by_label(runs, "keepalive", "million")
        kb = int(rss["after-1000000-requests"]["rss_kb"])
        row(
            "RSS after 10,000 cached sessions + 1,000,000 requests",
            "≤ 40 MB",
            f"{kb / 1024:.1f} MiB = {kb * 1024 / 1e6:.1f} MB (started: {int(rss['agent-started']['rss_kb']) / 1024:.1f} MiB, "
            f"after 10,000 sessions: {int(rss['after-10000-sessions']['rss_kb']) / 1024:.1f} MiB; "
            f"{int(million[0]['requests']) if million else '?'} requests)",
            kb <= 40 * 1024,
        )
    soak = [int(fields(l)["rss_kb"]) for l in raw.splitlines() if l.startswith("soak sample=")]
    if len(soak) >= 3:
        first, last, peak = soak[1], soak[-1], max(soak)
        growth = (last - first) / first
        row(
            f"RSS over a soak of {(len(soak) - 1) * 10} s (samples every 10 s)",
            "flat",
            f"{first / 1024:.1f} → {last / 1024:.1f} MiB (peak {peak / 1024:.1f}; {growth * 100:+.1f} % after the first sample)",
            abs(growth) <= 0.05,
        )
    # start-up
    for l in raw.splitlines():
        if l.startswith("label=startup"):
            f = fields(l)
            row(
                "start-up: spawn → READY=1 (sd_notify), 20 runs",
                "≤ 100 ms",
                f"p50 {f['ready_p50_ms']} ms, max {f['ready_max_ms']} ms; → first /readyz 200: p50 {f['readyz_p50_ms']} ms, max {f['readyz_max_ms']} ms",
                float(f["ready_max_ms"]) <= 100,
            )
    # herd
    for l in raw.splitlines():
        if l.startswith("cold_herd "):
            f = fields(l)
            keys = int(f["keys"])
            row(
                f"cold herd: 1,000 concurrent requests, {keys} key(s): STS calls",
                f"= {keys}",
                f["sts_calls"],
                int(f["sts_calls"]) == keys,
            )
            row(
                f"cold herd, {keys} key(s): time to serve all ÷ one cold request (STS delayed 300 ms)",
                "≈ 1",
                f"{f['ratio']} ({f['herd_ms']} ms vs {f['one_cold_request_ms']} ms; max_calls_per_second {f['max_calls_per_second']})",
                float(f["ratio"]) <= 1.5 if keys == 1 else None,
            )
            if "direct_parallel_sts_ms" in f:
                row(
                    f"cold herd, {keys} key(s): time to serve all ÷ the same {keys} AssumeRole call(s) made at once without the agent",
                    "≈ 1",
                    f"{f['ratio_to_direct']} ({f['herd_ms']} ms vs {f['direct_parallel_sts_ms']} ms)",
                    float(f["ratio_to_direct"]) <= 1.5,
                )
    # volume
    for l in raw.splitlines():
        if l.startswith("volume summary:"):
            f = fields(l)
            row(
                "STS calls per active key per hour (1,000 clients on 100 keys, botocore schedule, hours 2–4)",
                "≤ 2",
                f"mean {f['steady_calls_per_key_hour']}, max in one clock hour {f['max_per_key_in_an_hour_after_the_first']}",
                float(f["steady_calls_per_key_hour"]) <= 2.0 and int(f["max_per_key_in_an_hour_after_the_first"]) <= 2,
            )
            row("STS calls for keys idle past idle_timeout", "0", f["idle_key_calls_after_idle_timeout"], int(f["idle_key_calls_after_idle_timeout"]) == 0)
            row(
                "STS calls, 1,000 processes assuming the role themselves ÷ through the agent (4 h)",
                "—",
                f"{f['ratio_self_over_agent']} ({f['self_assume_total']} vs {f['agent_total']})",
                None,
            )

    machine = (out / "machine.txt").read_text().strip().splitlines()
    print("\n".join(f"- {m}" for m in machine))
    print()
    print("| figure | target | measured | verdict |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
