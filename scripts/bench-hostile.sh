#!/usr/bin/env bash
# Attacks flux-metrics-api on 127.0.0.1 while a probe measures ordinary requests: idle HTTP/2
# connections (from 18 addresses, past --max-connections), slow request heads, pipelines that are
# never read, one address holding as many slots as it can, and /metrics scrapes of a
# memory-hungry and two runaway custom metrics. Every attack is bounded and stops by itself.
# Usage: scripts/bench-hostile.sh [--seconds N]   (attack length, default 40; needs python3)
# Prints the probe's success rate and latency unloaded and under attack, and the server's memory.
set -euo pipefail

seconds=40
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "bench-hostile.sh: needs python3" >&2; exit 2; }
cargo build --release --locked --quiet
bin=target/release/flux-metrics-api
port=$((20000 + RANDOM % 20000))
work=$(mktemp -d)
pids=()
server_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/hostile.rhai" <<'RHAI'
/// Builds a 400 MB map of long keys (stopped by --custom-metric-max-memory).
fn hungry(flux) {
    let m = #{};
    let k = "";
    k.pad(4096, "k");
    for i in 0..100000 { m[`${k}${i}`] = i; }
    m.len()
}

/// Never returns (stopped by the operation limit or --custom-metric-timeout).
fn runaway(flux) {
    loop {}
}

/// Recurses with a megabyte at each level (stopped by the memory budget).
fn runaway_deep(flux) {
    hold(0)
}

private fn hold(n) {
    let x = "";
    x.pad(1000000, "x");
    hold(n + 1) + x.len()
}
RHAI

"$bin" start --host 127.0.0.1 --port "$port" --replay tests/fixtures/busy \
  --custom-metric "$work/hostile.rhai" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 100); do
  curl -skf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.05
done
hostile() { python3 scripts/hostile.py "$@"; }
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$server_pid/status"; }

echo "flux-metrics-api $($bin version), $(nproc) cores, default limits, $(date -u +%FT%TZ)"
unloaded=$(hostile probe "$port" 15 20)
rss_before=$(( $(kib VmRSS) / 1024 ))

hostile idle-h2 "$port" "$seconds" 64 127.0.0.10-27 & pids+=($!)
hostile slow-headers "$port" "$seconds" 200 127.0.0.3 & pids+=($!)
hostile pipeline "$port" "$seconds" 20 127.0.0.4 & pids+=($!)
hostile hold-slots "$port" "$seconds" 1000 127.0.0.5 & pids+=($!)
hostile scripts "$port" "$seconds" 4 127.0.0.6 & pids+=($!)
sleep 5
loaded=$(hostile probe "$port" $((seconds - 10)) 20)
wait "${pids[@]}" || true
pids=()
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
echo
echo '| phase | probes | answered 200 | p50 | p99 | max |'
echo '|---|---|---|---|---|---|'
for phase in unloaded loaded; do
  r=${!phase}
  echo "| $phase | $(field "$r" probes) | $(field "$r" ok_percent)% | $(field "$r" p50_ms) ms | $(field "$r" p99_ms) ms | $(field "$r" max_ms) ms |"
done
echo
echo "p99 under attack / unloaded: $(awk -v a="$(field "$loaded" p99_ms)" -v b="$(field "$unloaded" p99_ms)" 'BEGIN {printf "%.1f", a / b}')x"
echo "server memory: ${rss_before} MiB before the attacks, peak $(( $(kib VmHWM) / 1024 )) MiB, $(( $(kib VmRSS) / 1024 )) MiB after"
echo "server log: $(grep -c 'connection limit reached' "$work/server.log" || true) connection-limit warnings (logged at powers of two), $(grep -c 'custom metric failed' "$work/server.log" || true) custom metric failures logged"
grep -o 'custom metric [a-z_]* was stopped: [^"]*' "$work/server.log" | sort | uniq -c | sed 's/^/  /' || true
