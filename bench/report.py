#!/usr/bin/env python3
"""Turns bench/run's raw data (WORK/runs.tsv and rtt.tsv, benchload's JSON,
metrics scrapes, Postfix log slices, idle.tsv) into the markdown tables of
bench/results.md, and the same tables into README.md between its
`<!-- bench:PART -->` markers. A part bench/run did not run keeps its
previous text in both files.

usage: report.py WORK OUT CLK_TCK NPROC DANEGATE_VERSION POSTFIX_VERSION [README]
       report.py --line LOAD.json TAG     (one line about one benchload run)
"""
import json
import os
import re
import statistics
import sys
import time

if sys.argv[1] == "--line":
    try:
        j = json.load(open(sys.argv[2]))
    except (OSError, ValueError):
        print("%s: no result" % sys.argv[3])
        sys.exit()
    f = lambda x: "-" if x is None else "%.0f" % x
    print("%-24s %4d ok %d failed; accepted %6.1f msg/s, end to end %6.1f msg/s; latency p50 %s ms, p99 %s ms; first message %s ms"
          % (sys.argv[3], j["ok"], j["failed"], j["accept_rate"], j.get("e2e_rate", 0), f(j["lat_p50_ms"]),
             f(j["lat_p99_ms"]), f(j["first_p50_ms"])))
    sys.exit()

work, out, clk, nproc, dg_version, pf_version = sys.argv[1:7]
readme = sys.argv[7] if len(sys.argv) > 7 else None
clk = int(clk)
parts = open(os.path.join(work, "parts")).read().split()[0] if os.path.exists(os.path.join(work, "parts")) else "all"


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



def load_average():
    """The machine's load average when bench/run started and ended."""
    load = ""
    for when in ("before", "after"):
        try:
            la = open(os.path.join(work, f"uptime.{when}")).read().split("load average:")[1].strip()
            load += f"; load average {when}: {la}"
        except (OSError, IndexError):
            pass
    return load


def loopback_section():
    """The loopback matrix (smtp-source, issue 6), its idle sessions and targets."""
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


    summary = {}
    lines = []
    # When the last run ended (so re-running the report on old data keeps it).
    measured = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(os.path.getmtime(os.path.join(work, "runs.tsv"))))
    lines.append(f"Measured {measured} on {nproc} CPUs{load_average()}; {dg_version}; Postfix {pf_version}. "
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
    return lines


RTT_COLUMNS = ("| RTT | legacy sessions | relay | msgs/run | runs | msg/s end to end | limit S / (2 × RTT) | "
               "latency p50 / p99 as the legacy MTA sees it | RTT per message, warm: p50 / RTT (round trips: (p50 − p50 at 0 ms) / RTT) | "
               "first message, cold destination: MAIL → first 250 / → final 250 | every message DANE-verified? |")


def rtt_rows():
    """One dict per benchload run of the RTT matrix, with its evidence."""
    path = os.path.join(work, "rtt.tsv")
    if not os.path.exists(path):
        return []
    dg_log = re.sub(r"\x1b\[[0-9;]*m", "", open(os.path.join(work, "danegate", "danegate.log"), errors="replace").read())
    rows = []
    for line in open(path):
        rtt, s, relay, run, m, domain, tag, busy = line.rstrip("\n").split("\t")
        r = dict(rtt=int(rtt), s=int(s), relay=relay, run=int(run), m=int(m), domain=domain, tag=tag)
        b, t = (int(x) for x in busy.split("/"))
        r["busy"] = 100.0 * b / t if t else None
        try:
            j = json.load(open(os.path.join(work, f"load.{tag}.json")))
        except (OSError, ValueError):
            j = None
        r["j"] = j
        total = r["s"] + r["m"]
        if j is None:
            r["ok"], r["evidence"] = False, "benchload gave no result"
            rows.append(r)
            continue
        r["rate"] = j.get("e2e_rate") or 0.0
        r["accept_rate"] = j["accept_rate"]
        r["p50"], r["p99"] = j["lat_p50_ms"], j["lat_p99_ms"]
        r["first"] = j["first_ms"]
        r["first_250"] = j.get("first_250_ms", [])
        r["late"] = j.get("proxy_late_mean_us")
        r["quit_max"] = j.get("quit_max_ms")
        loaded = j["failed"] == 0 and j["ok"] == total and j.get("e2e_msgs", 0) >= r["m"]
        if relay == "danegate":
            a = metrics(os.path.join(work, f"m.{tag}.before"))
            b = metrics(os.path.join(work, f"m.{tag}.after"))
            states = {}
            for k in b:
                mm = re.match(r'danegate_tls_connections_total\{state="([^"]+)"\}$', k)
                if mm:
                    states[mm.group(1)] = int(delta(a, b, k))
            dane = ("verified_dane", "verified")
            verified = sum(states.get(k, 0) for k in dane)
            other = sum(v for k, v in states.items() if k not in dane)
            delivered = int(delta(a, b, 'danegate_transactions_total{outcome="delivered"}'))
            mine = [l for l in dg_log.splitlines() if " delivered " in l and f" to=<user@{domain}>" in l]
            mine_ok = sum(1 for l in mine if ' tls="verified(dane) ' in l and f"relay=mx.{domain}[" in l)
            r["conns"] = verified
            r["ok"] = loaded and delivered == total and other == 0 and mine and mine_ok == len(mine)
            r["evidence"] = (f"{delivered} delivered over {verified} new verified TLS conns, {other} other; "
                             f"log: {mine_ok} of {len(mine)} delivered lines to {domain} tls=verified(dane) via mx.{domain}")
        else:
            log = open(os.path.join(work, f"maillog.{tag}"), errors="replace").read()
            host = re.escape(f"mx.{domain}")
            sent = re.findall(r"relay=" + host + r"\[127\.0\.27\.\d+\]:25, .*?delay=([0-9.]+),.*status=sent", log)
            verified = len(re.findall(r"Verified TLS connection established to " + host + r"\[", log))
            weaker = len(re.findall(r"(Untrusted|Anonymous|Trusted) TLS connection established", log))
            deferred = len(re.findall(r"status=(deferred|bounced)", log))
            delays = [float(x) for x in sent]
            r["delivery_p50"], r["delivery_p99"] = pctl(delays, 0.5), pctl(delays, 0.99)
            r["ok"] = loaded and len(sent) == total and weaker == 0 and deferred == 0 and verified > 0
            r["evidence"] = f"{len(sent)} sent via mx.{domain}, {verified} Verified TLS conns, {weaker} weaker, {deferred} deferred"
        rows.append(r)
    return rows


def rtt_section():
    """The RTT matrix (benchload through the delay proxies, issue 13) and its targets."""
    rows = [r for r in rtt_rows() if r["run"] > 0]
    if not rows:
        return None
    lines = []
    measured = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(os.path.getmtime(os.path.join(work, "rtt.tsv"))))
    load = load_average()
    size = rows[0]["j"]["size"] if rows[0]["j"] else 0
    lines.append(f"Measured {measured} on {nproc} CPUs{load}; {dg_version}; Postfix {pf_version}. "
                 f"Load from `benchload` (bench/load.rs): persistent sessions pipelining MAIL/RCPT/DATA as "
                 f"Postfix, Exim and Sendmail do, {size // 1024} KiB messages, one first message per session "
                 "(a cold destination: no cached connection, DNS cached), then the timed messages. "
                 "The destination is the TLS receiver (PIPELINING and CHUNKING, as Postfix offers them) behind "
                 "the delay proxy, `rttR.secure.test` → `mx.rttR.secure.test` (`3 1 1` TLSA). "
                 "Medians of the runs, min–max of msg/s in brackets.")
    lines.append("")
    lines.append(RTT_COLUMNS)
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    cells = list(dict.fromkeys((r["rtt"], r["s"]) for r in rows))
    for rtt, s in cells:
        limit = s / (2 * rtt / 1000) if rtt else None
        for relay in ("danegate", "postfix"):
            rs = [r for r in rows if (r["rtt"], r["s"], r["relay"]) == (rtt, s, relay)]
            if not rs:
                continue
            good = [r for r in rs if r["j"]]
            rate = med([r["rate"] for r in good])
            p50, p99 = med([r["p50"] for r in good]), med([r["p99"] for r in good])
            first = med([x for r in good for x in r["first"]])
            first_250 = med([x for r in good for x in r["first_250"]])
            summary[(rtt, s, relay)] = dict(rate=rate, p50=p50, p99=p99, first=first, first_250=first_250)
            rng = f'{min(r["rate"] for r in good):.1f}–{max(r["rate"] for r in good):.1f}' if good else "–"
            lim = "–" if limit is None else f"{limit:.0f}" + ("" if rate is None else f" ({100 * rate / limit:.0f} %)")
            per = lambda x: "–" if x is None or not rtt else f"{x / rtt:.2f}"
            lat = f"{fmt(p50, '.1f')} / {fmt(p99, '.1f')} ms"
            if relay == "danegate":
                zero = summary.get((0, s, relay), {}).get("p50")
                name, warm = "danegate", per(p50)
                if rtt and zero is not None and p50 is not None:
                    warm += f" ({(p50 - zero) / rtt:.2f})"
                cold = (f"{fmt(first_250, '.0f')} / {fmt(first, '.0f')} ms"
                        + ("" if not rtt else f" = {per(first_250)} / {per(first)} RTT"))
            else:
                name = "Postfix DANE relay"
                dp50 = med([r.get("delivery_p50") for r in good])
                dp99 = med([r.get("delivery_p99") for r in good])
                lat += f" (accepted locally; delivered after {ms(dp50)} / {ms(dp99)})"
                warm = "– (store and forward)"
                cold = f"{fmt(first_250, '.0f')} / {fmt(first, '.0f')} ms (accepted locally)"
            ok = all(r["ok"] for r in rs)
            ev = rs[-1]["evidence"] + " (last run)"
            rtt_txt = f"{rtt} ms"
            rate_txt = "–" if rate is None else f"**{rate:.1f}** [{rng}]"
            lines.append(f"| {rtt_txt} | {s} | {name} | {rs[0]['m']} + {s} | {len(rs)} | {rate_txt} | {lim} | {lat} | "
                         f"{warm} | {cold} | {'yes' if ok else '**NO**'}: {ev} |")

    lates = [r["late"] for r in rows if r.get("late") is not None and r["rtt"] > 0]
    if lates:
        lines.append("")
        lines.append(f"The delay proxies wrote each chunk on average {min(lates):.0f}–{max(lates):.0f} µs "
                     f"(median {med(lates):.0f} µs) after it was due, per run with an RTT; a message crosses "
                     "them four times (two round trips).")
    quits = {}
    for r in rows:
        if r["relay"] == "danegate" and r.get("quit_max") is not None and r["rtt"] > 0:
            key = (r["rtt"], r["s"])
            quits[key] = max(quits.get(key, 0.0), r["quit_max"])
    if quits:
        lines.append("")
        lines.append("QUIT → 221 through danegate, slowest session of the runs: "
                     + "; ".join(f"{rtt} ms × {s}: {q:.0f} ms" for (rtt, s), q in sorted(quits.items())) + ".")
    lines.append("")
    lines.append("Targets (issue 13):")
    lines.append("")
    lines.append("| target | measured | met? |")
    lines.append("|---|---|---|")

    def row(target, measured, met):
        lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")

    d20, p20 = summary.get((50, 20, "danegate")), summary.get((50, 20, "postfix"))
    if d20 and d20["rate"] is not None:
        row("50 ms, 20 sessions: ≥ 180 msg/s (≥ 90 % of the 2-RTT limit, 200)",
            f"{d20['rate']:.1f} msg/s ({d20['rate'] / 2:.0f} % of the limit)", d20["rate"] >= 180)
    if d20 and p20 and d20["rate"] and p20["rate"]:
        row("50 ms, 20 sessions: ≥ 3.5× the Postfix relay (end to end)",
            f"{d20['rate']:.1f} vs {p20['rate']:.1f} msg/s = {d20['rate'] / p20['rate']:.1f}×",
            d20["rate"] >= 3.5 * p20["rate"])
    d1 = summary.get((50, 1, "danegate"))
    if d1 and d1["rate"] is not None:
        row("50 ms, 1 session: ≥ 9 msg/s", f"{d1['rate']:.2f} msg/s", d1["rate"] >= 9)
    for target_rtt in sorted({rtt for (rtt, s, relay) in summary if rtt >= 10}):
        warm = [(s, v["p50"] / rtt) for (rtt, s, relay), v in summary.items()
                if relay == "danegate" and rtt == target_rtt and v["p50"] is not None]
        if warm:
            detail = ", ".join(f"{s} session{'s' if s > 1 else ''}: {x:.2f}" for s, x in warm)
            row(f"warm connection, {target_rtt} ms: ≤ 2.2 RTT per message (p50 latency / RTT)", detail,
                max(x for _, x in warm) <= 2.2)
    cold = [(rtt, s, v["first_250"] / rtt, v["first"] / rtt) for (rtt, s, relay), v in summary.items()
            if relay == "danegate" and rtt >= 10 and v["first_250"] is not None and v["first"] is not None]
    if cold:
        worst = max(c[2] for c in cold)
        detail = ", ".join(f"{rtt} ms × {s}: {x:.1f} (final 250: {y:.1f})" for rtt, s, x, y in cold)
        row("cold destination (DNS cached): ≤ 6 RTT to the first 250 (median of the first messages: "
            "MAIL FROM → its 250, / RTT; the floor on a real path is 7, and 8 to the final 250)", detail, worst <= 6)
    return lines


def splice(path, part, body):
    """Replaces the text between `<!-- bench:PART -->` and
    `<!-- /bench:PART -->` in PATH; False when the markers are missing."""
    try:
        text = open(path).read()
    except OSError:
        return False
    begin, end = f"<!-- bench:{part} -->", f"<!-- /bench:{part} -->"
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        return False
    text = text[:i + len(begin)] + "\n" + body + text[j:]
    open(path, "w").write(text)
    return True


sections = {}
if parts != "rtt":
    sections["loopback"] = "\n".join(loopback_section()) + "\n"
if parts != "loopback":
    r = rtt_section()
    if r:
        sections["rtt"] = "\n".join(r) + "\n"
if not os.path.exists(out) or "<!-- bench:" not in open(out).read():
    open(out, "w").write("<!-- bench:loopback -->\n<!-- /bench:loopback -->\n\n<!-- bench:rtt -->\n<!-- /bench:rtt -->\n")
for part, body in sections.items():
    splice(out, part, body)
    if readme and not splice(readme, part, body):
        print(f"report: {readme} has no <!-- bench:{part} --> markers; not updated", file=sys.stderr)
