#!/usr/bin/env bash
# Smoke test through kube-apiserver: waits for the three APIServices to be Available, then reads
# each API's discovery document and one metric of each kind with `kubectl get --raw`, failing
# on any answer but 200 or on a body of the wrong kind:
#   custom v1beta2 and v1beta1: node_up_count of the Service (an Object metric, as an HPA asks);
#   external v1beta1: node_up_count in the namespace.
#
# Usage: scripts/test.sh [-n NAMESPACE] [-s SERVICE] [-t SECONDS] [--context CTX]
#   defaults: -n flux-operator -s custom-metrics-apiserver -t 120 (wait for Available)
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

namespace=flux-operator
service=custom-metrics-apiserver
timeout=120
kargs=()
while (($#)); do
    case "$1" in
        -n | --namespace) namespace="$2"; shift 2 ;;
        -s | --service-name) service="$2"; shift 2 ;;
        -t | --timeout) timeout="$2"; shift 2 ;;
        --context) kargs=(--context "$2"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

apiservices=(
    apiservice/v1beta2.custom.metrics.k8s.io
    apiservice/v1beta1.custom.metrics.k8s.io
    apiservice/v1beta1.external.metrics.k8s.io
)
if ! kubectl "${kargs[@]}" wait --for=condition=Available --timeout="${timeout}s" "${apiservices[@]}"; then
    kubectl "${kargs[@]}" get "${apiservices[@]}" \
        -o custom-columns='NAME:.metadata.name,AVAILABLE:.status.conditions[?(@.type=="Available")].status,MESSAGE:.status.conditions[?(@.type=="Available")].message' >&2 || true
    echo "FAIL the APIServices are not Available" >&2
    exit 1
fi

failed=0
# check PATH KIND: GET PATH must answer 200 with a body of kind KIND.
check() {
    local path="$1" kind="$2" body value
    # -v=6 logs each request with its status ("... 200 OK in 5 milliseconds").
    if ! body="$(kubectl "${kargs[@]}" get --raw "$path" -v=6 2>"$log")"; then
        echo "FAIL $path: $(grep -v '^I[0-9]' "$log" | tail -n 3)" >&2
        failed=1
        return
    fi
    if ! grep -F "${path%%\?*}" "$log" | grep -q '200 OK'; then
        echo "FAIL $path: answered, but not with 200 OK:" >&2
        grep -F "${path%%\?*}" "$log" >&2 || true
        failed=1
        return
    fi
    if ! grep -Eq "\"kind\": ?\"$kind\"" <<<"$body"; then
        echo "FAIL $path: not a $kind: ${body:0:300}" >&2
        failed=1
        return
    fi
    value="$(grep -Eo '"value": ?"[^"]*"' <<<"$body" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true)"
    echo "ok   $path (${kind}${value:+, value $value})"
}

check /apis/custom.metrics.k8s.io/v1beta2 APIResourceList
check /apis/custom.metrics.k8s.io/v1beta1 APIResourceList
check /apis/external.metrics.k8s.io/v1beta1 APIResourceList
check "/apis/custom.metrics.k8s.io/v1beta2/namespaces/$namespace/services/$service/node_up_count" MetricValueList
check "/apis/custom.metrics.k8s.io/v1beta1/namespaces/$namespace/services/$service/node_up_count" MetricValueList
check "/apis/external.metrics.k8s.io/v1beta1/namespaces/$namespace/node_up_count" ExternalMetricValueList

if ((failed)); then
    echo "smoke test FAILED" >&2
    exit 1
fi
echo "smoke test passed"
