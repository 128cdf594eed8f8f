# Reduces every run (benches/run's CSV) to median, min and max per figure,
# and the ratio of each network figure to the epoll baseline's median for
# the same workload, configuration and metric. Runs with errors are
# counted in the errors column, never dropped silently. POSIX awk.
BEGIN { FS = OFS = "," }
NR == 1 { next }
{
    key = $1 OFS $2 OFS $3 OFS $4 OFS $5 OFS $7 OFS $9
    if (!(key in n)) order[++nkeys] = key
    v[key, ++n[key]] = $8 + 0
    err[key] += $10
}
function median(key, k, i, j, t, a) {
    k = n[key]
    for (i = 1; i <= k; i++) a[i] = v[key, i]
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    lo[key] = a[1]; hi[key] = a[k]
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
    print "group,workload,config,server,workers,metric,unit,median,min,max,runs,errors,ratio_vs_epoll"
    for (i = 1; i <= nkeys; i++) med[order[i]] = median(order[i])
    for (i = 1; i <= nkeys; i++) {
        split(order[i], f, OFS)
        # N3t (HTTPS) has nginx for its reference; the rest the baseline.
        base = f[1] OFS f[2] OFS f[3] OFS (f[2] == "N3t" ? "nginx" : "epoll-baseline")
        ratio = ""
        for (b in med) {
            split(b, g, OFS)
            if (g[1] OFS g[2] OFS g[3] OFS g[4] == base && g[6] == f[6] && med[b] > 0)
                ratio = sprintf("%.2f", med[order[i]] / med[b])
        }
        print order[i], med[order[i]], lo[order[i]], hi[order[i]], n[order[i]], err[order[i]], ratio
    }
}
