#!/usr/bin/env bash
# Drain before shrink, measured: a live Flux instance of 8 brokers, a seeded job trace, the server
# (debug build), an emulated HPA and an emulated Flux Operator (scripts/elastic.py), once without
# and once with --drain-before-shrink for each operator delay. Prints one Markdown table.
# Usage: scripts/bench-elastic.sh [--delays "10 25"] [--modes "off on"] [--seed N]
#        [--trace cores|exclusive] [--jobs N] [--out DIR] [--tag NAME] [-- ELASTIC_ARGS...]
#   --jobs N   run N configurations at once (each its own instance, ports and directory)
#   -- ...     extra arguments for `elastic.py run`, e.g. --undrain-grace 0; NAME goes into
#              the result files' names
# Needs `flux` (flux-core) on PATH and FLUX_CORE_LIB if libflux-core.so.2 is not on the loader
# path; a configuration takes about 18 minutes with the cores trace, 11 with exclusive.
set -euo pipefail

delays="10 25"
modes="off on"
seed=1
trace=cores
jobs=1
out=target/bench-elastic
extra=()
tag=
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --delays) delays=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --trace) trace=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tag) tag=-$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
case "$jobs" in ''|*[!0-9]*|0) echo "bench-elastic.sh: --jobs wants a positive number, not '$jobs'" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
command -v flux >/dev/null || { echo "bench-elastic.sh: flux is not on PATH" >&2; exit 2; }
command -v python3 >/dev/null || { echo "bench-elastic.sh: needs python3" >&2; exit 2; }
if [ -z "${FLUX_CORE_LIB:-}" ]; then
  lib="$(dirname "$(command -v flux)")/../lib/libflux-core.so.2"
  [ -e "$lib" ] && export FLUX_CORE_LIB="$lib"
fi
cargo build --locked --quiet
mkdir -p "$out"
# A copy, so that a build during the hour the bench takes does not change the binary it runs.
cp target/debug/flux-metrics-api "$out/flux-metrics-api"
bin="$out/flux-metrics-api"
git log -1 --format='%h %s' >"$out/commit"
files=()
pids=()
for delay in $delays; do
  for mode in $modes; do
    flag=()
    [ "$mode" = on ] && flag=(--drain-before-shrink)
    name="$out/$trace-seed$seed-delay$delay-$mode$tag"
    echo "== trace $trace, operator delay ${delay}s, --drain-before-shrink $mode: $name.json (log: $name.log)" >&2
    python3 scripts/elastic.py run --bin "$bin" --seed "$seed" --trace "$trace" \
      --operator-delay "$delay" "${flag[@]}" "${extra[@]}" --out "$name.json" >/dev/null &
    pids+=($!)
    files+=("$name.json")
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  done
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || echo "bench-elastic.sh: a configuration failed (see its log)" >&2
python3 scripts/elastic.py table "${files[@]}"
exit "$failed"
