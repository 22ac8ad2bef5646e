#!/usr/bin/env bash
# Benchmarks flux-metrics-api over HTTPS with a real load generator (wrk) and records
# requests/s, latency percentiles, resident memory and broker RPC rounds per scenario.
# Usage: scripts/bench.sh [--duration SECONDS] [--connections N] [--soak SECONDS] [--rounds N]
#                         [--nginx-only] [--out FILE]
#   First, side by side: nginx (Debian nginx-light, one worker) serving the same answer as a
#   static file over HTTPS, and this server, alternately --rounds times (3); --nginx-only stops there.
#   FLUX_URI set (inside a Flux instance): also measures live broker rounds.
# Results are printed as a Markdown table (and appended to --out when given).
# With two or more cores the server (one worker thread, its default) runs on CPU 0 and wrk on
# CPU 1, so that they measure each other rather than fight over the same core.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

duration=10
connections=16
soak=180
out=""
nginx_only=""
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --nginx-only) nginx_only=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --soak) soak=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
install_deb() {
  echo "installing $* (Debian packages)" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || install_deb wrk
[ -x /usr/sbin/nginx ] || install_deb nginx-light
# BENCH_BIN: a binary built elsewhere (e.g. the previous commit's), instead of building one.
bin=${BENCH_BIN:-target/release/flux-metrics-api}
[ -n "${BENCH_BIN:-}" ] || cargo build --release --locked --quiet
port=$((20000 + RANDOM % 20000))
base="https://127.0.0.1:$port"
work=$(mktemp -d)
server_pid=""
nginx_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the server on $port; $1 = replay directory, or "live" for $FLUX_URI; more flags after.
start_server() {
  local source=(--replay "$1")
  [ "$1" = live ] && source=()
  shift
  $pin_server "$bin" start --quiet --host 127.0.0.1 --port "$port" "${source[@]}" \
    --ssl-certfile "$work/certs/tls.crt" --ssl-keyfile "$work/certs/tls.key" "$@" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 100); do
    curl -skf "$base/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server did not start:" >&2; cat "$work/server.log" >&2; exit 1
}

stop_server() {
  kill "$server_pid"; wait "$server_pid" || true; server_pid=""
}

kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$server_pid/status"; }
rounds() { curl -sk "$base/readyz" | sed -n 's/^ *rounds: \([0-9]*\),.*/\1/p'; }
last_round_us() { curl -sk "$base/readyz" | sed -n 's/.*last round took \([0-9]*\)us.*/\1/p'; }

# One measured run: $1 = label, $2 = path, $3 = seconds.
measure() {
  local label=$1 path=$2 secs=$3 r0 r1 report rps p50 p99 max errors
  r0=$(rounds)
  report=$($pin_wrk wrk -t1 -c"$connections" -d"${secs}s" --latency "$base$path")
  r1=$(rounds)
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$report")
  total=$(awk '/requests in/ {print $1}' <<<"$report")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$report")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$report")
  max=$(awk '$1 == "Latency" {print $4}' <<<"$report")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$report")
  printf '| %s | %s | %s | %s | %s | %s | %s MiB | %s MiB | %s | %s |\n' \
    "$label" "$rps" "$total" "$p50" "$p99" "$max" \
    "$(( $(kib VmHWM) / 1024 ))" "$(( $(kib VmRSS) / 1024 ))" \
    "$(( r1 - r0 )) in ${secs}s" "${errors:-none}"
}

pin_server=""
pin_wrk=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server="taskset -c 0"
  pin_wrk="taskset -c 1"
fi
"$bin" certs --out "$work/certs" --namespace default --service-name bench >/dev/null

# nginx serving $1 (a file) as application/json at every path, one worker, HTTPS with a
# certificate made like the server's, no access log (the server runs with --quiet), on $port.
start_nginx() {
  mkdir -p "$work/nginx"
  # nginx's worker runs as www-data: let it read the answer (mktemp -d makes a private dir).
  chmod 755 "$work" "$work/nginx"
  cp "$1" "$work/nginx/answer.json"
  chmod 644 "$work/nginx/answer.json"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port ssl http2;
    ssl_certificate $work/certs/tls.crt;
    ssl_certificate_key $work/certs/tls.key;
    root $work/nginx;
    location / { default_type application/json; try_files /answer.json =404; }
  }
}
NGINX
  $pin_server /usr/sbin/nginx -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
  nginx_pid=$!
  for _ in $(seq 100); do
    curl -skf "$base/x" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "nginx did not start:" >&2; cat "$work/nginx/error.log" >&2; exit 1
}

stop_nginx() {
  kill "$nginx_pid"; wait "$nginx_pid" || true; nginx_pid=""
}

# Requests/s of wrk against $base$1 for $2 seconds.
rps() {
  $pin_wrk wrk -t1 -c"$connections" -d"${2}s" "$base$1" | awk '/^Requests\/sec:/ {printf "%.0f", $2}'
}

# The same answer from nginx (a static file) and from the server, $rounds times each,
# alternately, so that both see the same machine.
side_by_side() {
  local path=/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/custom-metrics-apiserver/node_cores_free_count
  start_server tests/fixtures/busy
  curl -sk "$base$path" >"$work/answer.json"
  stop_server
  echo "side by side: GET $path, the same $(wc -c <"$work/answer.json")-byte answer, wrk -t1 -c$connections${pin_wrk:+ (server or nginx on CPU 0, wrk on CPU 1)}, ${duration}s each"
  echo
  echo '| round | nginx requests/s | flux-metrics-api requests/s | ratio |'
  echo '|---|---|---|---|'
  local n s r
  for r in $(seq "$rounds"); do
    start_nginx "$work/answer.json"; n=$(rps "$path" "$duration"); stop_nginx
    start_server tests/fixtures/busy; s=$(rps "$path" "$duration"); stop_server
    echo "| $r | $n | $s | $(awk -v a="$s" -v b="$n" 'BEGIN {printf "%.2f", a / b}') |"
  done
  echo
}
echo "flux-metrics-api $($bin version), $(nproc) cores, wrk -t1 -c$connections${pin_wrk:+ (server on CPU 0, wrk on CPU 1)}, ${duration}s per row, $(date -u +%FT%TZ)"
echo
# Not in a pipeline: the exit trap must see the pids it started.
side_by_side >"$work/side-by-side.md"
cat "$work/side-by-side.md"
[ -z "$out" ] || cat "$work/side-by-side.md" >>"$out"
[ -z "$nginx_only" ] || exit 0
echo
echo '| scenario | requests/s | requests | p50 | p99 | max | peak RSS | RSS after | broker rounds | errors |'
echo '|---|---|---|---|---|---|---|---|---|---|'
{
  start_server tests/fixtures/busy
  measure "custom metric on a Service (busy)" \
    /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/custom-metrics-apiserver/node_cores_free_count "$duration"
  measure "discovery /apis/custom.metrics.k8s.io/v1beta2" /apis/custom.metrics.k8s.io/v1beta2 "$duration"
  stop_server
  start_server tests/fixtures/gpus-queues
  measure "external metric, queue=batch (gpus-queues)" \
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/job_queue_state_sched_count?labelSelector=queue%3Dbatch" "$duration"
  stop_server
  for scenario in idle many-jobs; do
    start_server "tests/fixtures/$scenario"
    measure "pending nodes, $scenario" \
      /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/job_pending_nodes_count "$duration"
    stop_server
  done
  start_server tests/fixtures/busy
  measure "soak, ${soak}s (busy)" \
    /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count "$soak"
  stop_server
  # The broker hangs for 4 s under load, then comes back (replay fault file, --flux-timeout 1s).
  cp -r tests/fixtures/busy "$work/faulty"
  start_server "$work/faulty" --flux-timeout 1s --max-age 250ms
  metric="$base/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count"
  (
    sleep 2; echo hang >"$work/faulty/fault"; sleep 4; rm -f "$work/faulty/fault"
    back=$(date +%s%N)
    until curl -skf -o /dev/null "$metric"; do sleep 0.02; done
    echo $(( ($(date +%s%N) - back) / 1000000 )) >"$work/recovered_ms"
  ) &
  fault_pid=$!
  measure "broker hangs 4s under load (timeout 1s)" \
    /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count 10
  wait "$fault_pid"
  echo
  echo "broker hang under load: no answer took longer than the max above (bounded by --flux-timeout 1s); answers were 200 again $(cat "$work/recovered_ms") ms after the broker came back, without a restart"
  stop_server
  if [ -n "${FLUX_URI:-}" ]; then
    start_server live
    measure "live broker ($FLUX_URI)" /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count "$duration"
    echo
    echo "live broker: one round of RPCs took $(last_round_us) us"
    stop_server
  fi
} | if [ -n "$out" ]; then tee -a "$out"; else cat; fi
