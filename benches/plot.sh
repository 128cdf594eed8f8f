#!/usr/bin/env bash
# Draws one PNG per workload group from benches/run's summary CSV:
#   <stem>-sched.png  scheduler workloads (ops/s, log scale, by workers)
#   <stem>-net.png    network workloads (headline figure by server)
# Usage: plot.sh SUMMARY.csv STEM
set -euo pipefail
summary=$1
stem=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk -F, '$1 == "sched" && $6 == "rate" { w[$2] = w[$2] " " $8; if (!($2 in s)) o[++n] = $2; s[$2] = 1 }
         END { for (i = 1; i <= n; i++) print o[i] w[o[i]] }' "$summary" >"$tmp/sched.dat"
awk -F, '$1 == "net" && ($6 == "rtt_per_s" && $2 != "N2" || $6 == "mbps" && $2 == "N2" || $6 == "req_per_s") {
             row = $2 "/" $3; if (!(row in s)) o[++n] = row; s[row] = 1; v[row, $4] = $8 }
         END { split("epoll-baseline weft-uring weft-epoll uring-ceiling", sv, " ")
               for (i = 1; i <= n; i++) { line = o[i]
                   for (j = 1; j <= 4; j++) line = line " " ((o[i], sv[j]) in v ? v[o[i], sv[j]] : "NaN")
                   print line } }' "$summary" >"$tmp/net.dat"

if [ -s "$tmp/sched.dat" ]; then
    gnuplot <<EOT
set terminal pngcairo noenhanced size 900,500
set output "$stem-sched.png"
set title "weft scheduler workloads (median ops/s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set logscale y
set ylabel "operations per second"
set key top right
plot "$tmp/sched.dat" using 2:xtic(1) title "1 worker", '' using 3 title "2 workers"
EOT
    echo "plot: $stem-sched.png"
fi
if [ -s "$tmp/net.dat" ]; then
    gnuplot <<EOT
set terminal pngcairo noenhanced size 1000,500
set output "$stem-net.png"
set title "network workloads (median; N1/N3 per second, N2 MB/s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set logscale y
set key top right
plot "$tmp/net.dat" using 2:xtic(1) title "epoll baseline", '' using 3 title "weft uring", \
     '' using 4 title "weft epoll", '' using 5 title "io_uring ceiling"
EOT
    echo "plot: $stem-net.png"
fi
