#!/bin/bash
# Starts examples/metrics_server on a free port, fetches /metrics and /dump
# over bash's /dev/tcp (no client program needed) and checks what they hold.
set -u
server=$1
out=$(mktemp)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
"$server" 0 >"$out" &
pid=$!
for _ in $(seq 600); do
    grep -q '^http://' "$out" && break
    kill -0 $pid 2>/dev/null || { echo "server exited"; exit 1; }
    sleep 0.1
done
port=$(sed -n 's|^http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$out")
[ -n "$port" ] || { echo "no address printed"; exit 1; }

get() {
    exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: x\r\n\r\n' "$1" >&3
    cat <&3
    exec 3<&-
}

metrics=$(get /metrics)
dump=$(get /dump)
fail=0
for want in 'HTTP/1.1 200 OK' '# TYPE weft_tasks_alive gauge' \
            'weft_workers ' 'weft_timers_armed ' \
            'weft_run_time_seconds_bucket{le="+Inf"} ' \
            'weft_worker_runs_total{worker="0"} '; do
    grep -qF "$want" <<<"$metrics" || { echo "/metrics lacks: $want"; fail=1; }
done
for want in 'weft: task dump' "'ticker': parked, waiting in sleep at ticker+0x"; do
    grep -qF "$want" <<<"$dump" || { echo "/dump lacks: $want"; fail=1; }
done
[ $fail = 0 ] || { echo "$metrics"; echo "$dump"; }
exit $fail
