#!/usr/bin/env python3
"""bench/analyze.py: the number crunching of bench/run.sh (standard library only).

  analyze.py latency COMMITS DUMP   commit-to-receipt percentiles: COMMITS has "id commit_us"
                                    lines (bench/driver paced), DUMP "recv_us id" lines (the
                                    receiver); prints key=value pairs (ms).
  analyze.py report RAW OUT_MD      the one table, from the key=value lines run.sh wrote; prints
                                    it and writes it (with the run's settings) to OUT_MD.
"""
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def latency(commits_path, dump_path):
    commits = {}
    with open(commits_path) as f:
        for line in f:
            i, t = line.split()
            commits[int(i)] = int(t)
    first = {}
    with open(dump_path) as f:
        for line in f:
            t, i = line.split()
            i = int(i)
            if i in commits and i not in first:
                first[i] = int(t)
    lat = sorted((first[i] - commits[i]) / 1000.0 for i in first)
    print(f"n={len(lat)} missing={len(commits) - len(lat)} p50={pct(lat, 50):.2f} p95={pct(lat, 95):.2f} "
          f"p99={pct(lat, 99):.2f} max={(lat[-1] if lat else float('nan')):.2f}")


def report(raw_path, out_path):
    r = {}
    with open(raw_path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                r[k] = v

    def num(k):
        try:
            return float(r[k])
        except (KeyError, ValueError):
            return float("nan")

    def ratio(a, b):
        x, y = num(a), num(b)
        return x / y if y else float("nan")

    rows = []  # (area, measure, measured, target, verdict)

    def row(area, measure, measured, target="", ok=None):
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        rows.append((area, measure, measured, target, verdict))

    mode = r.get("mode", "?")
    row("receiver", "capacity (64 keep-alive conns, ~900 B POST)", f"{num('receiver_rps'):,.0f} req/s",
        ">= 3 x drain target", num("receiver_rps") >= 45000)

    for sc in ("on", "off"):
        a, b, c = (num(f"pgb_{v}_sc{sc}_tps") for v in ("none", "he", "plpgsql"))
        row("capture", f"1-row INSERT tps, sync_commit={sc}: none / hasura_events / PL/pgSQL",
            f"{a:,.0f} / {b:,.0f} / {c:,.0f}")
        row("capture", f"1-row INSERT, sync_commit={sc}: b/a (b/c)", f"{b / a:.2f} ({b / c:.2f})",
            ">= 0.75" if sc == "on" else ">= 0.75 (CPU-bound view)", b / a >= 0.75)
    a, b, c = (num(f"bulk_{v}_ms") for v in ("none", "he", "plpgsql"))
    row("capture", "100k-row INSERT..SELECT ms: none / hasura_events / PL/pgSQL", f"{a:,.0f} / {b:,.0f} / {c:,.0f}")
    # ratios: the median over rounds of the ratio within each round (bench/run.sh paired_ratio)
    ba, cb = num("bulk_ratio_he_none"), num("bulk_ratio_plpgsql_he")
    row("capture", "100k-row INSERT: b/a (median of per-round ratios)", f"{ba:.2f}", "<= 3", ba <= 3)
    row("capture", "100k-row INSERT: PL/pgSQL / hasura_events (c/b)", f"{cb:.2f}", ">= 2.5", cb >= 2.5)
    a, b, c = (num(f"update_{v}_ms") for v in ("none", "he", "plpgsql"))
    row("capture", "100k-row UPDATE, listened column unchanged, ms: none / he / PL/pgSQL",
        f"{a:,.0f} / {b:,.0f} / {c:,.0f}")
    ub = num("update_ratio_he_none")
    row("capture", "UPDATE, listened column unchanged: b/a (events recorded)",
        f"{ub:.2f} ({r.get('update_events_he', '?')})", "<= 1.25, 0 events",
        ub <= 1.25 and r.get("update_events_he") == "0")

    reps = r.get("drain_rates", "").split()
    each = f" (median of {len(reps)}: {' / '.join(f'{float(x):,.0f}' for x in reps)})" if len(reps) > 1 else ""
    row("delivery", f"drain a {int(num('drain_n')):,}-event backlog "
        "(invocation logs on)", f"{num('drain_rate'):,.0f} events/s{each}", ">= 15,000", num("drain_rate") >= 15000)
    row("delivery", f"drain check: delivered / invocation logs / received (of {int(num('drain_n')) * max(len(reps), 1):,})",
        f"{r.get('drain_delivered')} / {r.get('drain_invocations')} / {r.get('drain_received')}")
    cpu = r.get("drain_cpu_us", "").split()
    if len(cpu) == 4:
        row("delivery", "drain: CPU us an event, dispatcher / sidecar / receiver / walwriter (cores busy)",
            f"{' / '.join(cpu)} ({num('drain_busy_pct'):.0f} %)")
    row("delivery", "steady state: inserted / delivered events/s (backlog at end)",
        f"{num('steady_insert_rate'):,.0f} / {num('steady_delivery_rate'):,.0f} ({r.get('steady_backlog_end')})")

    for rate in ("500", "5000"):
        p50, p95, p99 = num(f"lat{rate}_p50"), num(f"lat{rate}_p95"), num(f"lat{rate}_p99")
        tgt = "p50 <= 2, p99 <= 10" if rate == "500" else ""
        ok = (p50 <= 2 and p99 <= 10 and r.get(f"lat{rate}_missing") == "0") if rate == "500" else None
        row("latency", f"commit-to-receipt at {rate}/s (achieved {num(f'lat{rate}_achieved'):,.0f}/s): "
            "p50 / p95 / p99 ms", f"{p50:.2f} / {p95:.2f} / {p99:.2f} (missing {r.get(f'lat{rate}_missing')})",
            tgt, ok)

    small, big = num("scale_small_rate"), num("scale_big_rate")
    row("scale", f"drain rate: {int(num('scale_small_n')):,}-event log / {int(num('scale_big_n')):,}-event log",
        f"{small:,.0f} / {big:,.0f} events/s")
    row("scale", "big-log / small-log drain rate", f"{big / small:.2f}", ">= 0.9", big / small >= 0.9)
    ncyc = int(num("cycles")) if r.get("cycles") else 0
    if ncyc:
        sizes = [r.get(f"cycle{c}", "0 0 0 0 0").split() for c in range(1, ncyc + 1)]
        row("scale", f"event_log total MB after each of {ncyc} fill/drain cycles of {int(num('cycle_n')):,}",
            " / ".join(f"{int(s[0]) / 1048576:.0f}" for s in sizes))
        row("scale", "dead tuples after each cycle (autovacuums so far)",
            " / ".join(f"{int(s[3]):,}" for s in sizes) + f" ({sizes[-1][4]})")

    sc_kb = num("drain_sidecar_hwm_kb")
    row("memory", "sidecar peak RSS during the drain", f"{sc_kb / 1024:.1f} MB", "<= 64 MB", sc_kb <= 65536)
    row("memory", "worker peak private (anon) / total RSS during the drain",
        f"{num('drain_worker_anon_kb') / 1024:.1f} / {num('drain_worker_rss_kb') / 1024:.1f} MB")
    dk = num("down_sidecar_hwm_kb")
    row("memory", f"receiver down, events piling up: sidecar peak RSS ({r.get('down_attempted')} attempts failed)",
        f"{dk / 1024:.1f} MB", "<= 64 MB", dk <= 65536)
    row("memory", "receiver down: worker peak private RSS", f"{num('down_worker_anon_kb') / 1024:.1f} MB")

    widths = [max(len(x[i]) for x in rows + [("area", "measure", "measured", "target", "")]) for i in range(5)]
    head = ("area", "measure", "measured", "target", "")
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for x in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(x, widths)) + " |")
    table = "\n".join(lines)
    settings = (f"mode {mode}, {r.get('date')}, {r.get('host')}, commit {r.get('commit')}; "
                f"shared_buffers {r.get('shared_buffers')}, fsync {r.get('fsync')}, synchronous_commit "
                f"{r.get('synchronous_commit')}; suite took {r.get('elapsed_s')} s")
    print()
    print(settings)
    print(table)
    misses = sum(1 for x in rows if x[4] == "MISS")
    print(f"targets: {sum(1 for x in rows if x[4] == 'pass')} met, {misses} missed")
    with open(out_path, "w") as f:
        f.write(f"# hasura_events benchmark ({mode})\n\n{settings}\n\n{table}\n\n"
                f"targets: {sum(1 for x in rows if x[4] == 'pass')} met, {misses} missed\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "latency":
        latency(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
