#!/usr/bin/env bash
# Kills and restarts a live Flux broker under load and reports what clients saw: how many
# answers failed, the longest wait, and how soon answers were 200 again, with no server restart.
# Usage: scripts/bench-restart.sh    (needs `flux` on PATH and FLUX_CORE_LIB if libflux-core.so.2
#        is not on the loader path; starts its own single-broker instance in a temporary rundir)
set -euo pipefail

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
command -v flux >/dev/null || { echo "bench-restart.sh: flux is not on PATH" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench-restart.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
bin=target/release/flux-metrics-api
rundir=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
metric="https://127.0.0.1:$port/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; pkill -f "rundir=$rundir" 2>/dev/null || true; rm -rf "$rundir"; }
trap cleanup EXIT

start_broker() {
  rm -rf "${rundir:?}"/*
  flux start -Srundir="$rundir" sleep 1000 >/dev/null 2>&1 &
  pids+=($!)
}

start_broker
until [ -S "$rundir/local-0" ]; do sleep 0.05; done
"$bin" start --quiet --host 127.0.0.1 --port "$port" --flux-uri "local://$rundir/local-0" \
  --flux-timeout 1s --max-age 250ms &
server=$!
until curl -skf -o /dev/null "$metric"; do sleep 0.1; done

(
  sleep 3
  pkill -f "rundir=$rundir"
  sleep 4
  start_broker
  until [ -S "$rundir/local-0" ]; do sleep 0.01; done
  up=$(date +%s%N)
  until curl -skf -o /dev/null "$metric"; do sleep 0.02; done
  echo "answers 200 again $(( ($(date +%s%N) - up) / 1000000 )) ms after the new broker's socket appeared"
) &
restarter=$!
echo "broker killed 3 s into a 15 s load, restarted 4 s later (--flux-timeout 1s):"
wrk -t1 -c16 -d15s --latency "$metric" | grep -E "requests in|Non-2xx|Latency +|99%"
wait "$restarter"
kill -TERM "$server"
wait "$server" && echo "server exited 0 on SIGTERM, never restarted"
