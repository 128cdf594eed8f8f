# Prints benches/run's summary CSV as tables that fit 100 columns: the
# scheduler workloads (median and min-max over runs, in the workload's own
# unit; S5 adds its memory on a second line) and the network workloads
# (headline figure, ratio to the epoll baseline of the same run, latency,
# server CPU use and throughput per server CPU-second), then the stall
# workload T1. POSIX awk.
BEGIN {
    FS = ","
    unit["S1"] = "tasks/s"; unit["S2"] = "yields/s"
    unit["S3"] = "round trips/s"; unit["S4"] = "spawns/s"
    unit["S5"] = "ms wall"; unit["S6"] = "bytes/task"
    unit["Q1"] = "messages/s"; unit["Q4"] = "messages/s"
    unit["M1"] = "hand-offs/s"
}
NR == 1 { next }
function human(x) {
    if (x >= 1e9) return sprintf("%.2fG", x / 1e9)
    if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
    if (x >= 1e4) return sprintf("%.1fk", x / 1e3)
    return sprintf("%.4g", x)
}
function mib(kib) { return sprintf("%.1f MiB", kib / 1024) }
function headline(g, wl, m) {
    if (g == "stall")
        return m == "timer_late_max_ms"
    if (g == "sched")
        return m == "rate" || m == "wall_ms" || m == "bytes_per_task"
    return m == "rtt_per_s" && wl != "N2" || m == "req_per_s" ||
           m == "mbps" && wl == "N2"
}
{
    row = $1 "|" $2 "|" $3 "|" $4
    if (!(row in seen)) { seen[row] = 1; rows[++nrows] = row }
    if (headline($1, $2, $6)) {
        med[row] = sprintf("%s (%s-%s)", human($8), human($9), human($10))
        ratio[row] = $13 == "" ? "-" : $13 "x"
        errs[row] = $12 + 0; runs[row] = $11
    }
    v[row, $6] = $8; vr[row, $6] = $13
}
function unit_of(wl) {
    if (wl in unit) return unit[wl]
    if (wl ~ /^S7b/) return "elements/s"
    return wl ~ /^S7/ ? "tasks/s" : ""
}
function sched_line(r, k) {
    printf "%-11s %-3s %-40s %d/%d%s\n", k[2], substr(k[3], 3),
           med[r] " " unit_of(k[2]), errs[r], runs[r], errs[r] ? " ERRORS" : ""
    if ((r, "peak_rss_kb") in v)
        printf "                peak RSS %s", mib(v[r, "peak_rss_kb"])
    if ((r, "idle_rss_kb") in v)
        printf "; idle %s (start %s); 2nd burst %s ms", mib(v[r, "idle_rss_kb"]),
               mib(v[r, "base_rss_kb"]), human(v[r, "wall2_ms"])
    if ((r, "peak_rss_kb") in v)
        printf "\n"
}
function net_line(r, k,    pcs) {
    pcs = ((r, "per_cpu_sec") in v) ? human(v[r, "per_cpu_sec"]) " (" \
          (vr[r, "per_cpu_sec"] == "" ? "-" : vr[r, "per_cpu_sec"] "x") ")" : "-"
    printf "%-4s %-4s %-14s %-22s %-6s %-6s %-6s %-5s %-15s %d/%d%s\n", k[2],
           substr(k[3], 3), k[4], med[r], ratio[r],
           ((r, "p50_us") in v) ? sprintf("%.0f", v[r, "p50_us"]) : "-",
           ((r, "p99_us") in v) ? sprintf("%.0f", v[r, "p99_us"]) : "-",
           ((r, "server_cpu") in v) ? sprintf("%.2f", v[r, "server_cpu"]) : "-",
           pcs, errs[r], runs[r], errs[r] ? " ERRORS" : ""
}
END {
    for (i = 1; i <= nrows; i++) {
        r = rows[i]; split(r, k, "|")
        if (!(r in med)) continue
        if (k[1] == "stall") {
            stalls[++nstall] = r
            continue
        }
        if (k[1] == "sched") {
            if (!s++)
                printf "%-11s %-3s %-40s %s\n", "load", "wkr",
                       "median (slowest-fastest run)", "errors/runs"
            sched_line(r, k)
        } else {
            if (!n++) {
                if (s) printf "\n"
                print "N1, N1u: round trips/s; N2: MB/s; N3, N3t (HTTPS):" \
                      " requests/s. p50, p99: round trip"
                print "or request latency in microseconds. cpu: server" \
                      " CPU-seconds per second. per CPU-s:"
                print "the headline figure per server CPU-second. Ratios:" \
                      " to the epoll baseline of this run"
                print "(N3t: to nginx)."
                printf "%-4s %-4s %-14s %-22s %-6s %-6s %-6s %-5s %-15s %s\n",
                       "load", "conn", "server", "median (min-max)",
                       "ratio", "p50", "p99", "cpu", "per CPU-s", "err/runs"
            }
            net_line(r, k)
        }
    }
    for (i = 1; i <= nstall; i++) {
        r = stalls[i]; split(r, k, "|")
        if (i == 1) {
            printf "\nT1: worst added delay (ms, median of runs) behind a" \
                   " worker stuck for 2 s\n"
            printf "%-12s %-14s %-10s %-12s %-12s %s\n", "server",
                   "WEFT_STALL_MS", "sleep", "round trip", "spawn",
                   "errors/runs"
        }
        printf "%-12s %-14s %-10.1f %-12.1f %-12.1f %d/%d\n", k[4],
               substr(k[3], 10), v[r, "timer_late_max_ms"],
               v[r, "rtt_max_ms"], v[r, "spawn_delay_ms"], errs[r], runs[r]
    }
}
