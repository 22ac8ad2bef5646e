#!/usr/bin/env bash
# Registers flux-metrics-api, running in the leader broker pod of a MiniCluster, with the
# cluster: applies what `flux-metrics-api manifests` prints (the Service, the three APIServices
# and the RBAC). kube-apiserver verifies the server against the CA of certs.sh unless --insecure
# is given. The MiniCluster itself is applied separately (manifests/minicluster.yaml).
#
# Usage: scripts/deploy.sh [-n NAMESPACE] [-s SERVICE] [-m MINICLUSTER] [-a SERVICE_ACCOUNT]
#                          [--ca-file FILE | --insecure] [--port PORT] [--external-name HOST]
#                          [--context CTX]
#   defaults: -n flux-operator -s custom-metrics-apiserver -m flux-sample -a default
#             --ca-file target/certs/ca.crt (written by scripts/certs.sh) --port 8443
#   --port and --external-name go to `manifests` as they are: --external-name localhost makes
#   the Service an ExternalName, for a server beside kube-apiserver (scripts/k8s-e2e.sh).
#   flux-metrics-api comes from $FLUX_METRICS_API, else PATH, else `cargo run` in this checkout.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace=flux-operator
service=custom-metrics-apiserver
minicluster=flux-sample
account=default
ca_file="$root/target/certs/ca.crt"
insecure=false
where=()
kargs=()
while (($#)); do
    case "$1" in
        -n | --namespace) namespace="$2"; shift 2 ;;
        -s | --service-name) service="$2"; shift 2 ;;
        -m | --minicluster) minicluster="$2"; shift 2 ;;
        -a | --service-account) account="$2"; shift 2 ;;
        --ca-file) ca_file="$2"; shift 2 ;;
        --insecure) insecure=true; shift ;;
        --port) where+=(--port "$2"); shift 2 ;;
        --external-name) where+=(--external-name "$2"); shift 2 ;;
        --context) kargs=(--context "$2"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

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

if $insecure; then
    trust=(--insecure-skip-tls-verify)
elif [[ -f "$ca_file" ]]; then
    trust=(--ca-file "$ca_file")
else
    echo "deploy.sh: no CA at $ca_file: run scripts/certs.sh first, give --ca-file FILE," \
        "or --insecure to let kube-apiserver skip verifying the server" >&2
    exit 1
fi

# Generated in full before anything is applied.
yaml="$(fma manifests --namespace "$namespace" --service-name "$service" \
    --minicluster "$minicluster" --service-account "$account" "${where[@]}" "${trust[@]}")"
kubectl "${kargs[@]}" get namespace "$namespace" >/dev/null 2>&1 \
    || kubectl "${kargs[@]}" create namespace "$namespace"
kubectl "${kargs[@]}" apply -f - <<<"$yaml"
echo "Applied. The APIServices become Available once the server answers in pod $minicluster-0:"
echo "  kubectl get apiservice -l app.kubernetes.io/name=flux-metrics-api"
echo "then: scripts/test.sh -n $namespace -s $service"
