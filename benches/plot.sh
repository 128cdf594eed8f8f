#!/usr/bin/env bash
# Draws one PNG per workload group from benches/run's summary CSV:
#   <stem>-sched.png  scheduler workloads: median ops/s by worker count, log
#                     scale, with bars from the slowest to the fastest run
#   <stem>-net.png    network workloads: each server's headline figure as a
#                     ratio to the epoll baseline's median in the same run,
#                     with bars from its slowest to its fastest run
# Usage: plot.sh SUMMARY.csv STEM
set -euo pipefail
summary=$1
stem=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# sched.dat: workload, then median min max for 1 worker, then for 2.
awk -F, '$1 == "sched" && $6 == "rate" {
             if (!($2 in s)) o[++n] = $2; s[$2] = 1
             v[$2, $5] = $8 " " $9 " " $10 }
         END { for (i = 1; i <= n; i++)
                   print o[i], ((o[i], 1) in v ? v[o[i], 1] : "NaN NaN NaN"),
                         ((o[i], 2) in v ? v[o[i], 2] : "NaN NaN NaN") }' \
    "$summary" >"$tmp/sched.dat"
# net.dat: workload/config, then per server its median, min and max divided
# by the epoll baseline's median.
awk -F, '$1 == "net" && $2 != "N3t" && $2 != "N1s" && ($6 == "rtt_per_s" && $2 != "N2" ||
                         $6 == "mbps" && $2 == "N2" || $6 == "req_per_s") {
             row = $2 "/" $3; if (!(row in s)) o[++n] = row; s[row] = 1
             med[row, $4] = $8; lo[row, $4] = $9; hi[row, $4] = $10 }
         END { split("epoll-baseline weft-uring weft-epoll uring-ceiling", sv, " ")
               for (i = 1; i <= n; i++) {
                   r = o[i]; base = med[r, "epoll-baseline"]; line = r
                   for (j = 1; j <= 4; j++)
                       if ((r, sv[j]) in med && base > 0)
                           line = line sprintf(" %.3f %.3f %.3f",
                                               med[r, sv[j]] / base,
                                               lo[r, sv[j]] / base,
                                               hi[r, sv[j]] / base)
                       else
                           line = line " NaN NaN NaN"
                   print line } }' "$summary" >"$tmp/net.dat"

if [ -s "$tmp/sched.dat" ]; then
    gnuplot <<EOT
set terminal pngcairo noenhanced size 900,500
set output "$stem-sched.png"
set title "weft scheduler workloads (median ops/s; bars: slowest to fastest run)"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8
set logscale y
set ylabel "operations per second"
set key top right
plot "$tmp/sched.dat" using 2:3:4:xtic(1) title "1 worker", \
     '' using 5:6:7 title "2 workers"
EOT
    echo "plot: $stem-sched.png"
fi
if [ -s "$tmp/net.dat" ]; then
    gnuplot <<EOT
set terminal pngcairo noenhanced size 1000,500
set output "$stem-net.png"
set title "network workloads: ratio to the epoll baseline's median (bars: slowest to fastest run)"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8
set yrange [0:*]
set ylabel "ratio to the epoll baseline (higher is better)"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2
set key top right
plot "$tmp/net.dat" using 2:3:4:xtic(1) title "epoll baseline", \
     '' using 5:6:7 title "weft uring", '' using 8:9:10 title "weft epoll", \
     '' using 11:12:13 title "io_uring ceiling"
EOT
    echo "plot: $stem-net.png"
fi
