#!/usr/bin/env bash
# Records the demand scenarios of tests/fixtures/ on live Flux brokers:
#   scripts/record-scenarios.sh [OUTDIR]        (default: tests/fixtures)
#
# Each scenario is a fresh `flux start --test-size=N` instance with fake resources from a
# config (8 nodes of which only N run brokers, as in a MiniCluster below its maximum size), jobs
# that run and jobs that wait, then `flux-metrics-api record` (every RPC answer, jobspecs
# included) and truth.json (what flux's own tools say about the same moment). Needs flux-core
# (`flux` on PATH; its libflux-core is found next to it) and a built binary (cargo build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-tests/fixtures}"
bin="${BIN:-$PWD/target/debug/flux-metrics-api}"
command -v flux >/dev/null || { echo "record-scenarios: flux is not on PATH (build flux-core, see docs/development.md)" >&2; exit 2; }
[[ -x $bin ]] || { echo "record-scenarios: $bin is missing: run cargo build first" >&2; exit 2; }
lib="$(dirname "$(dirname "$(command -v flux)")")/lib/libflux-core.so.2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# truth DIR: what flux's tools say now, as tests/fixtures/*/truth.json holds it.
truth() {
    flux python - "$1/truth.json" <<'PY'
import json, subprocess, sys
from collections import Counter
import flux
from flux.resource.list import resource_list
h = flux.Flux()
rl = resource_list(h).get()
def counts(s):
    return {"nnodes": s.nnodes, "ncores": s.ncores, "ngpus": s.ngpus}
idle = 0
for rank in rl.up.ranks:
    up = rl.up.copy_ranks(str(rank)); free = rl.free.copy_ranks(str(rank))
    idle += int(up.ncores == free.ncores and up.ngpus == free.ngpus)
states = subprocess.run(["flux", "jobs", "-a", "-n", "-c", "1000", "-o", "{state}"],
                        capture_output=True, text=True, check=True).stdout.split()
truth = {
    "flux_version": subprocess.run(["flux", "version"], capture_output=True, text=True).stdout.splitlines()[0],
    "flux_jobs_stats": subprocess.run(["flux", "jobs", "--stats-only"], capture_output=True, text=True).stdout.strip(),
    "jobs_by_state": dict(sorted(Counter(states).items())),
    "resources": {"all": counts(rl.all), "up": counts(rl.up), "down": counts(rl.down),
                  "allocated": counts(rl.allocated), "free": counts(rl.free), "idle": {"nnodes": idle}},
}
json.dump(truth, open(sys.argv[1], "w"), indent=1, sort_keys=True)
PY
}

# settle: waits until no job is in state NEW/DEPEND/PRIORITY (the scheduler has seen them all).
settle() {
    for _ in $(seq 100); do
        if [[ -z $(flux jobs -n -f depend,priority -o '{id}') ]]; then sleep 1; return; fi
        sleep 0.2
    done
}

# scenario NAME SIZE CONFIG JOBS: runs JOBS (shell) in an instance of SIZE brokers, then records.
scenario() {
    local name=$1 size=$2 config=$3 jobs=$4
    mkdir -p "$out/$name"
    printf '%s\n' "$config" > "$work/$name.toml"
    cat > "$work/$name.sh" <<SH
set -euo pipefail
flux queue start --all >/dev/null 2>&1 || true
$jobs
$(declare -f settle truth)
settle
"$bin" record --force --flux-core-lib "$lib" "$out/$name" >/dev/null
truth "$out/$name"
flux cancel --all >/dev/null 2>&1 || true
SH
    flux start --test-size="$size" -o,--config-path="$work/$name.toml" bash "$work/$name.sh"
    echo "recorded $out/$name"
}

eight_nodes='[resource]
noverify = true
norestrict = true
[[resource.config]]
hosts = "node[0-7]"
cores = "0-3"'

# The demand issue's example: 8 nodes of 4 cores and 2 GPUs, 4 brokers up, every up GPU busy;
# waiting: two jobs of 1 core and 2 GPUs, one exclusive 1-node job. Desired size 7.
scenario gpu-exclusive 4 "$eight_nodes
gpus = \"0-1\"" '
for _ in 1 2 3 4; do flux submit -N1 -n1 -c1 -g2 sleep inf >/dev/null; done
flux submit -n1 -c1 -g2 sleep inf >/dev/null
flux submit -n1 -c1 -g2 sleep inf >/dev/null
flux submit -N1 --exclusive -n1 sleep inf >/dev/null'

# A queue that requires a property only absent nodes have: its job waits for node 4 (desired
# size 5); a batch job that would fit on node 2 waits behind it (a FIFO scheduler).
scenario queue-constrained 4 "$eight_nodes
[[resource.config]]
hosts = \"node[4-7]\"
properties = [\"bigmem\"]
[queues.batch]
[queues.big]
requires = [\"bigmem\"]" '
flux submit -q batch -N2 -n8 sleep inf >/dev/null
flux submit -q big -n2 -c2 sleep inf >/dev/null
flux submit -q batch -N1 -n4 sleep inf >/dev/null'

# Room on busy nodes: every up node has 2 of its 4 cores busy; an exclusive 3-node job heads the
# queue (3 new nodes), and two jobs behind it fit in the room left on the busy ones. Desired
# size 7, where allocated + pending nodes says 10 (all 8).
scenario room-on-busy 4 "$eight_nodes" '
flux submit -N4 -n8 sleep inf >/dev/null
flux submit -N3 --exclusive -n3 sleep inf >/dev/null
flux submit -n4 -c1 sleep inf >/dev/null
flux submit -N2 -n4 sleep inf >/dev/null'
