#!/usr/bin/env python3
"""Turns bench/run's raw data (WORK/runs.tsv, metrics scrapes, Postfix log
slices, idle.tsv) into the markdown table of bench/results.md.

usage: report.py WORK OUT CLK_TCK NPROC DANEGATE_VERSION POSTFIX_VERSION
"""
import os
import re
import statistics
import sys
import time

work, out, clk, nproc, dg_version, pf_version = sys.argv[1:7]
clk = int(clk)



def danegate_log(path):
    """Counts danegate's per-recipient 'delivered' summary lines, and those
    whose tls field says verified (ANSI colours stripped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", open(path, errors="replace").read())
    lines = [l for l in text.splitlines() if " delivered " in l and " to=<" in l]
    return {
        "delivered": len(lines),
        "verified": sum(1 for l in lines if ' tls="verified(dane) ' in l),
    }


DG_LOG = danegate_log(os.path.join(work, "danegate", "danegate.log"))


def metrics(path):
    d = {}
    try:
        text = open(path).read()
    except OSError:
        return d
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, val = line.rpartition(" ")
        try:
            d[key] = float(val)
        except ValueError:
            pass
    return d


def delta(a, b, key):
    return b.get(key, 0.0) - a.get(key, 0.0)


def hist_quantiles(a, b, name):
    """p50/p99 upper bounds from a Prometheus histogram's bucket deltas."""
    buckets = []
    for k in b:
        m = re.match(re.escape(name) + r'_bucket\{le="([^"]+)"\}$', k)
        if m:
            le = float("inf") if m.group(1) in ("+Inf", "inf") else float(m.group(1))
            buckets.append((le, delta(a, b, k)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None, None
    total = buckets[-1][1]

    def q(p):
        for le, c in buckets:
            if c >= p * total:
                return le
        return float("inf")

    return q(0.5), q(0.99)


def pctl(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]


rows = []
for line in open(os.path.join(work, "runs.tsv")):
    f = line.rstrip("\n").split("\t")
    scen, relay, run, s, m, l, n, tls, t0, t1, cpu, rsssum, rssmax, rss0, pss, sinkcpu, busy = f
    r = dict(scen=scen, relay=relay, run=run, s=int(s), m=int(m), l=int(l), n=int(n),
             tls=int(tls), secs=float(t1) - float(t0))
    r["rate"] = r["n"] / r["secs"] if r["secs"] > 0 else 0
    r["cpu"] = None if cpu == "NA" else int(cpu) / clk
    r["cpu_per_k"] = None if r["cpu"] is None or r["n"] == 0 else r["cpu"] / r["n"] * 1000
    r["rss"] = None if rsssum == "NA" else int(rsssum)
    r["rssmax"] = None if rssmax == "NA" else int(rssmax)
    r["rss0"] = None if rss0 == "NA" else int(rss0)
    r["growth"] = None if r["rss0"] is None else r["rss"] - r["rss0"]
    r["pss"] = None if pss == "NA" else int(pss)
    r["sink_per_k"] = int(sinkcpu) / clk / max(1, r["n"]) * 1000
    b, t = (int(x) for x in busy.split("/"))
    r["busy"] = 100.0 * b / t if t else None
    tag = f"{scen}.{relay}.{run}"
    r["p50"] = r["p99"] = None
    r["ok"] = True
    if relay == "danegate":
        a = metrics(os.path.join(work, f"m.{tag}.before"))
        b = metrics(os.path.join(work, f"m.{tag}.after"))
        states = {}
        for k in b:
            mm = re.match(r'danegate_tls_connections_total\{state="([^"]+)"\}$', k)
            if mm:
                states[mm.group(1)] = int(delta(a, b, k))
        # DANE-verified connections ("verified" before MTA-STS named the
        # mechanism).
        dane = ("verified_dane", "verified")
        r["verified"] = sum(states.get(k, 0) for k in dane)
        r["other_tls"] = sum(v for k, v in states.items() if k not in dane)
        r["delivered"] = int(delta(a, b, 'danegate_transactions_total{outcome="delivered"}'))
        r["p50"], r["p99"] = hist_quantiles(a, b, "danegate_relay_seconds")
        # With the connection cache, messages share verified connections
        # (some opened in an earlier run), so connections are fewer than
        # messages. The evidence per message is danegate's summary line:
        # every "delivered" line of its log must say tls=verified, and no
        # connection in any state but verified may ever have been opened.
        r["ok"] = (
            r["n"] == r["m"]
            and r["other_tls"] == 0
            and r["delivered"] == r["m"]
            and r["tls"] == r["n"]
            and DG_LOG["delivered"] > 0
            and DG_LOG["delivered"] == DG_LOG["verified"]
        )
        r["evidence"] = (
            f'{r["delivered"]} delivered over {r["verified"]} new verified TLS conns (the rest reused), '
            f'{r["other_tls"]} other TLS states; log: {DG_LOG["verified"]} of {DG_LOG["delivered"]} delivered lines tls=verified'
        )
    elif relay == "postfix":
        log = open(os.path.join(work, f"maillog.{tag}"), errors="replace").read()
        sent = re.findall(r"relay=mx1\.secure\.test\[127\.0\.25\.1\]:25, .*?delay=([0-9.]+),.*status=sent", log)
        verified = len(re.findall(r"Verified TLS connection established to mx1\.secure\.test", log))
        weaker = len(re.findall(r"(Untrusted|Anonymous|Trusted) TLS connection established", log))
        deferred = len(re.findall(r"status=(deferred|bounced)", log))
        delays = [float(x) for x in sent]
        r["p50"], r["p99"] = pctl(delays, 0.5), pctl(delays, 0.99)
        r["verified"] = verified
        r["ok"] = len(sent) == r["m"] and r["n"] == r["m"] and weaker == 0 and deferred == 0 and verified > 0 and r["tls"] == r["n"]
        r["evidence"] = f"{len(sent)} sent via mx1, {verified} Verified TLS conns, {weaker} weaker, {deferred} deferred"
    else:
        r["ok"] = r["n"] == r["m"]
        r["evidence"] = "plaintext (smtp-source has no STARTTLS)"
    rows.append(r)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec, unit=""):
    return "–" if x is None else format(x, spec) + unit


def ms(x):
    if x is None:
        return "–"
    if x == float("inf"):
        return "> 164 s"
    return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


summary = {}
lines = []
# When the last run ended (so re-running the report on old data keeps it).
measured = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(os.path.getmtime(os.path.join(work, "runs.tsv"))))
lines.append(f"Measured {measured} on {nproc} CPUs; {dg_version}; Postfix {pf_version}. "
             "Medians of the runs (min–max of msg/s in brackets). Load from `smtp-source` (one message per SMTP "
             "session); messages counted at the TLS receiver on 127.0.25.1:25 (mx1.secure.test, `3 1 1` TLSA).")
lines.append("")
lines.append("| scenario (sessions × size) | relay | msgs/run | runs | msg/s end to end | latency p50 | latency p99 | peak RSS | relay CPU s / 1000 msgs | receiver CPU s / 1000 msgs | machine busy | every message DANE-verified? |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
# Scenarios in the order bench/run ran them.
scens = list(dict.fromkeys(r["scen"] for r in rows if r["scen"] != "warmup"))
for scen in scens:
    for relay in ["danegate", "postfix", "ceiling"]:
        rs = [r for r in rows if r["scen"] == scen and r["relay"] == relay]
        if not rs:
            continue
        rate = med([r["rate"] for r in rs])
        summary[(scen, relay)] = dict(rate=rate, rss=med([r["rss"] for r in rs]),
                                      rssmax=med([r["rssmax"] for r in rs]),
                                      growth=med([r["growth"] for r in rs]))
        rng = f'{min(r["rate"] for r in rs):.0f}–{max(r["rate"] for r in rs):.0f}'
        if relay == "danegate":
            g = med([r["growth"] for r in rs])
            rss = fmt(med([r["rss"] for r in rs]) / 1024, ".1f", " MiB") + (f" (+{g / 1024:.1f} in run)" if g is not None else "")
            p50, p99 = ms(med([r["p50"] for r in rs])), ms(med([r["p99"] for r in rs]))
            p50, p99 = "≤ " + p50, "≤ " + p99
        elif relay == "postfix":
            s_ = med([r["pss"] for r in rs]); mx = med([r["rssmax"] for r in rs])
            rss = f"{s_ / 1024:.1f} MiB Σ PSS at end; largest process {mx / 1024:.1f}" if s_ else "–"
            p50, p99 = ms(med([r["p50"] for r in rs])), ms(med([r["p99"] for r in rs]))
        else:
            rss, p50, p99 = "–", "not measured", "not measured"
        ok = all(r["ok"] for r in rs)
        ev = rs[-1]["evidence"] + " (last run)"
        name = {"danegate": "danegate", "postfix": "Postfix DANE relay", "ceiling": "ceiling: smtp-source → receiver (plaintext)"}[relay]
        lines.append(f'| {scen} | {name} | {rs[0]["m"]} | {len(rs)} | **{rate:.0f}** [{rng}] | {p50} | {p99} | {rss} | '
                     f'{fmt(med([r["cpu_per_k"] for r in rs]), ".2f")} | {fmt(med([r["sink_per_k"] for r in rs]), ".2f")} | '
                     f'{fmt(med([r["busy"] for r in rs]), ".0f", " %")} | {"yes" if ok else "**NO**"}: {ev} |')

lines.append("")
try:
    n_idle, greeted, before, after = open(os.path.join(work, "idle.tsv")).read().split()
    n_idle, greeted, before, after = int(n_idle), int(greeted), int(before), int(after)
    per = (after - before) / max(1, greeted)
    lines.append(f"Idle sessions: {greeted} of {n_idle} concurrent inbound sessions greeted by danegate; its RSS "
                 f"{before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with them open: **{per:.1f} KiB per idle session**.")
    summary["idle"] = per
    summary["idle_base"] = before
except (OSError, ValueError):
    lines.append("Idle sessions: not measured (see the run's output).")

lines.append("")
lines.append("Targets (issue 6):")
lines.append("")
lines.append("| target | measured | met? |")
lines.append("|---|---|---|")


def row(target, measured, met):
    lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")


d, p, c = (summary.get(("20x10K", k)) for k in ("danegate", "postfix", "ceiling"))
if d and p and c:
    row("20 × 10 KiB: ≥ 10× the Postfix relay's throughput",
        f"{d['rate']:.0f} vs {p['rate']:.0f} msg/s = {d['rate'] / p['rate']:.1f}×", d["rate"] >= 10 * p["rate"])
    row("20 × 10 KiB: ≥ ½ of the generator → receiver ceiling",
        f"{d['rate']:.0f} vs {c['rate']:.0f} msg/s = {d['rate'] / c['rate']:.2f} (ceiling is plaintext)",
        d["rate"] >= 0.5 * c["rate"])
if "idle" in summary:
    row("≤ 64 KiB per idle session", f"{summary['idle']:.1f} KiB", summary["idle"] <= 64)
d200 = summary.get(("200x10K", "danegate"))
first = [r for r in rows if r["relay"] == "danegate" and r["scen"] != "warmup" and r["rss0"]]
if d200 and first:
    base = first[0]["rss0"]
    per = (d200["rss"] - base) / 200
    row("≤ 256 KiB per active relayed TLS session",
        f"upper bound: ({d200['rss'] / 1024:.1f} MiB peak at 200 sessions − {base / 1024:.1f} MiB at rest after warm-up) / 200 = {per:.0f} KiB",
        per <= 256)
small, big = summary.get(("1x10K", "danegate")), summary.get(("1x50M", "danegate"))
if small and big:
    row("a 50 MiB message relayed in constant memory",
        f"RSS grew {big['growth'] / 1024:.1f} MiB while relaying 50 MiB messages (peak {big['rss'] / 1024:.1f} MiB; 10 KiB messages: +{small['growth'] / 1024:.1f} MiB)",
        big["growth"] < 8 * 1024)

text = "\n".join(lines) + "\n"
open(out, "w").write(text)
