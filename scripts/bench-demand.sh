#!/usr/bin/env bash
# What the jobspec-aware demand model costs.
# Usage: scripts/bench-demand.sh [--base-bin PATH] [--rounds N] [--duration SECONDS] [--live]
#   Requests/s of minicluster_desired_size on the many-jobs scenario (3500 pending jobs), side by
#   side: --base-bin (a release binary built from a commit before the model; without it only this
#   tree's is measured) and this tree's release binary, alternately --rounds times (3), wrk with
#   16 connections, server on CPU 0 and wrk on CPU 1.
#   --live (needs flux on PATH): a 4-broker instance with every core held by one job and 1000
#   runnable jobs waiting; the server reads their jobspecs (256 a round) and the script prints
#   the duration of every round until they are all read, and of the rounds after; then the same
#   rounds of --base-bin, which reads no jobspecs.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

base_bin=""
rounds=3
duration=10
live=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base-bin) base_bin=$(realpath "$2"); shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --live) live=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || {
  echo "installing wrk (Debian package)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
}
bin=${BENCH_BIN:-target/release/flux-metrics-api}
[ -n "${BENCH_BIN:-}" ] || cargo build --release --locked --quiet
bin=$(realpath "$bin")
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
pin_server=""; pin_wrk=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server="taskset -c 0"; pin_wrk="taskset -c 1"
fi
"$bin" certs --out "$work/certs" --namespace default --service-name bench >/dev/null
port=$((20000 + RANDOM % 20000))
base="https://127.0.0.1:$port"
path=/apis/external.metrics.k8s.io/v1beta1/namespaces/default/minicluster_desired_size

# serve BIN LOG FLAGS...: starts BIN on $port and waits for it.
serve() {
  local b=$1 log=$2; shift 2
  $pin_server "$b" start --host 127.0.0.1 --port "$port" --ssl-certfile "$work/certs/tls.crt" \
    --ssl-keyfile "$work/certs/tls.key" "$@" 2>"$log" &
  pid=$!
  for _ in $(seq 200); do
    curl -skf "$base/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server did not start:" >&2; cat "$log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=""; }

rps() {
  serve "$1" "$work/server.log" --quiet --replay tests/fixtures/many-jobs
  curl -skf "$base$path" >/dev/null
  $pin_wrk wrk -t1 -c16 -d"${duration}s" "$base$path" | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
  stop
}

echo "many-jobs (3500 pending jobs): GET $path, wrk -t1 -c16, ${duration}s each"
echo
if [ -n "$base_bin" ]; then
  echo '| round | before (--base-bin) requests/s | this tree requests/s | ratio |'
  echo '|---|---|---|---|'
  for r in $(seq "$rounds"); do
    a=$(rps "$base_bin"); b=$(rps "$bin")
    echo "| $r | $a | $b | $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}') |"
  done
else
  echo '| round | requests/s |'
  echo '|---|---|'
  for r in $(seq "$rounds"); do echo "| $r | $(rps "$bin") |"; done
fi

[ -n "$live" ] || exit 0
command -v flux >/dev/null || { echo "--live needs flux on PATH" >&2; exit 2; }
lib="$(dirname "$(dirname "$(command -v flux)")")/lib/libflux-core.so.2"

# rounds BIN: inside the instance, the durations of the server's first 40 rounds.
cat >"$work/live.sh" <<EOF
set -euo pipefail
flux submit -N4 -n8 --wait-event=start sleep inf >/dev/null     # every core of the 4 brokers
flux submit --cc=1-1000 -n1 sleep 0 >/dev/null                   # 1000 runnable jobs that wait
while [ "\$(flux jobs -n -f sched -o '{id}' | wc -l)" -lt 1000 ]; do sleep 0.5; done
for b in "$bin" ${base_bin:+"$base_bin"}; do
  port=\$((20000 + RANDOM % 20000))
  RUST_LOG=flux_metrics::source::broker=debug "\$b" start --host 127.0.0.1 --port \$port \
    --ssl-certfile "$work/certs/tls.crt" --ssl-keyfile "$work/certs/tls.key" --max-age 200ms \
    --flux-core-lib "$lib" 2>"$work/live.log" &
  server=\$!
  for _ in \$(seq 200); do curl -skf "https://127.0.0.1:\$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  for _ in \$(seq 40); do curl -sk "https://127.0.0.1:\$port$path" >/dev/null; sleep 0.25; done
  curl -sk "https://127.0.0.1:\$port/metrics" | grep -E '^flux_metrics_api_(jobspecs_read_total|jobs_without_jobspec) ' || true
  desired=\$(curl -sk "https://127.0.0.1:\$port$path" | sed -n 's/.*"value":"\([0-9]*\)".*/\1/p')
  kill \$server; wait \$server || true
  echo "\$b: desired size \$desired; round durations (ms), in order:"
  sed -n 's/.*broker round took=\([0-9.]*\)\(m\?s\|µs\).*/\1 \2/p' "$work/live.log" |
    awk '{ v = \$1; if (\$2 == "s") v *= 1000; else if (\$2 == "µs") v /= 1000; printf "%.1f ", v } END { print "" }'
done
flux cancel --all >/dev/null 2>&1 || true
EOF
echo
echo "live: 4 brokers, one job on every core, 1000 runnable jobs waiting; rounds every 250 ms"
flux start --test-size=4 bash "$work/live.sh"
