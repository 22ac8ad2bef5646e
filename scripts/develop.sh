#!/usr/bin/env bash
# A kind cluster whose kube-apiserver sends the custom and external metrics APIs to
# flux-metrics-api running here, on the host (Linux), from recorded broker answers
# (tests/fixtures/SCENARIO) or, with --live, from the Flux instance of $FLUX_URI.
#
# 1. Creates the kind cluster NAME unless it exists (kubectl context kind-NAME).
# 2. Makes certificates for custom-metrics-apiserver.flux-operator.svc in target/develop/certs.
# 3. Reads the CA and names of kube-apiserver's front-proxy client certificate from
#    kube-system/extension-apiserver-authentication, so the server lets in only kube-apiserver.
# 4. Applies `flux-metrics-api manifests --endpoint IP --ca-file ...`: a Service without selector
#    whose Endpoints point at this host's address on the kind docker network (its gateway, which
#    the kind nodes route to the host), the APIServices (verified against the CA) and the RBAC.
# 5. Runs the server on 0.0.0.0:PORT in the foreground. A firewall on the host must let the kind
#    network reach that port.
# On exit (Ctrl-C) it deletes what step 4 applied, so the cluster's API discovery does not keep
# pointing at a stopped server; the cluster stays unless --delete-cluster is given.
# Meanwhile, in another terminal: scripts/test.sh --context kind-NAME
#
# Usage: scripts/develop.sh [--cluster NAME] [--scenario NAME | --live] [--port PORT] [--delete-cluster]
#   defaults: --cluster flux-metrics --scenario gpus-queues (it has queues batch and debug) --port 8443
#   Needs docker, kind and kubectl; flux-metrics-api comes from $FLUX_METRICS_API, else PATH,
#   else `cargo run` in this checkout.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster=flux-metrics
scenario=gpus-queues
live=false
port=8443
delete_cluster=false
namespace=flux-operator
service=custom-metrics-apiserver
while (($#)); do
    case "$1" in
        --cluster) cluster="$2"; shift 2 ;;
        --scenario) scenario="$2"; shift 2 ;;
        --live) live=true; shift ;;
        --port) port="$2"; shift 2 ;;
        --delete-cluster) delete_cluster=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

for tool in docker kind kubectl; do
    command -v "$tool" >/dev/null || { echo "develop.sh: $tool is not installed" >&2; exit 1; }
done
if ! $live && [[ ! -d "$root/tests/fixtures/$scenario" ]]; then
    echo "develop.sh: no scenario $scenario in tests/fixtures" >&2
    exit 1
fi

# flux-metrics-api: $FLUX_METRICS_API, else the one on PATH, else built from this checkout.
fma() {
    if [[ -n "${FLUX_METRICS_API:-}" ]]; then
        "$FLUX_METRICS_API" "$@"
    elif command -v flux-metrics-api >/dev/null; then
        flux-metrics-api "$@"
    else
        cargo run --quiet --locked --manifest-path "$root/Cargo.toml" --bin flux-metrics-api -- "$@"
    fi
}

context="kind-$cluster"
k() { kubectl --context "$context" "$@"; }
work="$root/target/develop"
mkdir -p "$work"

# 1. The cluster.
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    kind create cluster --name "$cluster" --wait 120s
fi

# 2. Certificates (kept between runs: the APIServices are re-applied with the same CA).
if [[ ! -f "$work/certs/ca.crt" ]]; then
    fma certs --namespace "$namespace" --service-name "$service" --out "$work/certs"
fi

# 3. Who kube-apiserver is when it proxies: its front-proxy CA and allowed names.
k -n kube-system get configmap extension-apiserver-authentication \
    -o jsonpath='{.data.requestheader-client-ca-file}' >"$work/front-proxy-ca.crt"
allowed="$(k -n kube-system get configmap extension-apiserver-authentication \
    -o jsonpath='{.data.requestheader-allowed-names}' | tr -d '[]" ')"
auth=(--requestheader-client-ca-file "$work/front-proxy-ca.crt")
[[ -z "$allowed" ]] || auth+=(--requestheader-allowed-names "$allowed")

# 4. The host's address on the kind network: its IPv4 gateway (kind names the network `kind`
#    unless KIND_EXPERIMENTAL_DOCKER_NETWORK says otherwise).
network="${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}"
host_ip="$(docker network inspect "$network" --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}' \
    | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | head -n 1 || true)"
if [[ -z "$host_ip" ]]; then
    echo "develop.sh: no IPv4 gateway on docker network $network" >&2
    exit 1
fi
fma manifests --namespace "$namespace" --service-name "$service" --port "$port" \
    --endpoint "$host_ip" --ca-file "$work/certs/ca.crt" >"$work/manifests.yaml"
k get namespace "$namespace" >/dev/null 2>&1 || k create namespace "$namespace"

cleanup() {
    echo "develop.sh: deleting the Service, APIServices and RBAC" >&2
    k delete --ignore-not-found -f "$work/manifests.yaml" || true
    if $delete_cluster; then
        kind delete cluster --name "$cluster" || true
    fi
}
trap cleanup EXIT
k apply -f "$work/manifests.yaml"

# 5. The server, in the foreground.
if $live; then
    source=()
else
    source=(--replay "$root/tests/fixtures/$scenario")
fi
echo "develop.sh: serving on 0.0.0.0:$port, reached by the cluster at $host_ip:$port;" \
    "try: scripts/test.sh --context $context" >&2
fma start --host 0.0.0.0 --port "$port" --namespace "$namespace" --service-name "$service" \
    --ssl-certfile "$work/certs/tls.crt" --ssl-keyfile "$work/certs/tls.key" \
    "${auth[@]}" "${source[@]}"
