# Prints benches/run's summary CSV as a table: one line per workload and
# server with its headline figure (median, min-max over runs), the ratio to
# the epoll baseline measured in the same run, latency, server CPU use and
# throughput per server CPU-second; S5 adds its peak RSS, the RSS once idle
# after the burst against the RSS at the start, and a second burst's wall
# time. POSIX awk.
BEGIN { FS = "," }
NR == 1 { next }
function human(x) {
    if (x >= 1e9) return sprintf("%.2fG", x / 1e9)
    if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
    if (x >= 1e4) return sprintf("%.1fk", x / 1e3)
    return sprintf("%.4g", x)
}
{
    row = $2 "|" $3 "|" $4
    if (!(row in seen)) { seen[row] = 1; rows[++nrows] = row }
    m = $6
    if (m == "rate" || m == "rtt_per_s" && $2 != "N2" || m == "req_per_s" ||
        m == "wall_ms" || m == "bytes_per_task" || m == "mbps" && $2 == "N2") {
        head[row] = sprintf("%s %s (%s-%s)", human($8), $7, human($9), human($10))
        ratio[row] = $13 == "" ? "-" : $13 "x"
        errs[row] = $12 + 0; runs[row] = $11
    }
    if (m == "peak_rss_kb") peak[row] = $8
    if (m == "base_rss_kb") base[row] = $8
    if (m == "idle_rss_kb") idle[row] = $8
    if (m == "wall2_ms") wall2[row] = $8
    if (m == "p50_us") p50[row] = $8
    if (m == "p99_us") p99[row] = $8
    if (m == "server_cpu") cpu[row] = $8
    if (m == "per_cpu_sec") pcs[row] = human($8) " (" ($13 == "" ? "-" : $13 "x") ")"
}
END {
    printf "%-4s %-6s %-15s %-34s %-7s %-8s %-8s %-5s %-18s %s\n", "wl", "config",
           "server", "median (min-max)", "vs epoll", "p50 us", "p99 us", "cpu",
           "per server CPU-s", "errors/runs"
    for (i = 1; i <= nrows; i++) {
        r = rows[i]; split(r, k, "|")
        if (!(r in head)) continue
        if (r in peak) extra[r] = sprintf("peak RSS %.0f MiB", peak[r] / 1024)
        if (r in idle)
            extra[r] = extra[r] sprintf(", idle %.1f MiB (start %.1f), 2nd burst %s ms",
                                        idle[r] / 1024, base[r] / 1024, human(wall2[r]))
        printf "%-4s %-6s %-15s %-34s %-7s %-8s %-8s %-5s %-18s %d/%d %s\n", k[1], k[2],
               k[3], head[r], ratio[r], (r in p50) ? p50[r] : "-",
               (r in p99) ? p99[r] : "-", (r in cpu) ? cpu[r] : "-",
               (r in pcs) ? pcs[r] : "-", errs[r], runs[r],
               (errs[r] ? "ERRORS" : "") ((r in extra) ? extra[r] : "")
    }
}
