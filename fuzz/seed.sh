#!/usr/bin/env bash
# Builds seed corpora for the fuzz targets from the recorded broker answers in tests/fixtures/
# and a few hand-written examples. Run from anywhere; writes under fuzz/corpus/<target>/.
#
# snapshot seeds are the four answers of one fixture joined by NUL bytes, in the order the
# `snapshot` target splits them: resource.sched-status, resource.status, job-list.job-stats,
# job-list.list.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fixtures="$fuzz_dir/../tests/fixtures"
corpus="$fuzz_dir/corpus"
mkdir -p "$corpus"/{snapshot,rv1,idset,selector,path,quantity}

seed() { # seed <target> <name> <text>
    printf '%s' "$3" >"$corpus/$1/seed-$2"
}

for dir in "$fixtures"/*/; do
    name=$(basename "$dir")
    {
        cat "$dir/resource.sched-status.json"
        printf '\0'
        cat "$dir/resource.status.json"
        printf '\0'
        cat "$dir/job-list.job-stats.json"
        printf '\0'
        # Listings longer than 50 jobs (many-jobs has 3500, 393 kB) are cut to 50: a seed that
        # large would make libFuzzer mutate 400 kB inputs and run a hundred times slower.
        if command -v python3 >/dev/null; then
            python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); l["jobs"]=l["jobs"][:50]; sys.stdout.write(json.dumps(l))' "$dir/job-list.list.json"
        else
            cat "$dir/job-list.list.json"
        fi
    } >"$corpus/snapshot/fixture-$name"
    # The Rv1 sets of the fixture, one seed per member, plus the pair (all, allocated).
    if command -v python3 >/dev/null; then
        python3 - "$dir/resource.sched-status.json" "$corpus/rv1" "$name" <<'PY'
import json, sys
src, out, name = sys.argv[1:]
status = json.load(open(src))
for key in ("all", "down", "allocated"):
    with open(f"{out}/fixture-{name}-{key}", "w") as f:
        json.dump(status.get(key), f)
with open(f"{out}/fixture-{name}-pair", "w") as f:
    json.dump([status.get("all"), status.get("allocated")], f)
PY
    fi
done

# Jobs of two queues, by nodes, by cores and held, on an elastic resource set.
{
    cat "$fixtures/elastic/resource.sched-status.json"
    printf '\0'
    cat "$fixtures/gpus-queues/resource.status.json"
    printf '\0'
    cat "$fixtures/gpus-queues/job-list.job-stats.json"
    printf '\0'
    printf '%s' '{"jobs":[{"state":8,"nnodes":2,"urgency":16,"queue":"batch"},{"state":4,"ncores":5,"urgency":16,"queue":"debug"},{"state":8,"urgency":0}]}'
} >"$corpus/snapshot/mixed"

i=0
for s in "" "0" "0-3,7" "[0-3]" "1-2,5-7" "4294967295" "0-4294967295" "3,1,2,2" \
    "node[0-3,7]" "vm,vm,vm" "a[1-2]b[3-4]" "foo[00-15]" "0-3|2-5" "0,2,4-9|1-3,5"; do
    seed idset $((i++)) "$s"
done
i=0
for s in "" "queue=batch" "a==b" "a!=b" "queue in (a,b)" "x notin (y)" "a" "!a" "a>3" "b<-1" \
    "flux-framework.org/queue=debug,!held" "a in (),b=" " a = b , c in ( d , e ) "; do
    seed selector $((i++)) "$s"
done
i=0
for s in "/apis" "/apis/custom.metrics.k8s.io/v1beta2" "/apis/external.metrics.k8s.io/v1beta1/" \
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/services/flux-sample/node_up_count" \
    "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/metrics/node_free_count" \
    "/apis/custom.metrics.k8s.io/v1beta2/nodes/%2A/node_up_count?labelSelector=a%3Db&metricLabelSelector=queue%3Dbatch" \
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/flux/job_queue_state_sched_count?labelSelector=queue+in+(a,b)" \
    "/a/b/namespaces/ns/pods/*/m" "/a/b" "labelSelector=x&labelSelector=y&pretty=true"; do
    seed path $((i++)) "$s"
done
# quantity: 16 bytes, an f64 then an i64, little-endian.
i=0
for hex in 000000000000f83f0000000000000000 9a9999999999b93fe803000000000000 \
    0000000000000080ffffffffffffff7f 01000000000000000000000000000080 \
    ffffffffffffef7f18fcffffffffffff; do
    printf '%b' "$(sed 's/../\\x&/g' <<<"$hex")" >"$corpus/quantity/seed-$((i++))"
done

echo "seeded $(find "$corpus" -type f | wc -l) files under $corpus"
