#!/usr/bin/env bash
# Makes a CA and a serving certificate for the Service in front of flux-metrics-api, and stores
# the serving certificate and key in the Secret <service>-tls (type kubernetes.io/tls) that
# manifests/minicluster.yaml mounts. The CA stays in DIR: deploy.sh gives DIR/ca.crt to
# `flux-metrics-api manifests --ca-file`, so that kube-apiserver verifies the server.
# --force makes new ones (rotation): the Secret is updated in place, the mounted files follow
# within a minute or so, and deploy.sh must run again (the APIServices' caBundle changes).
#
# Usage: scripts/certs.sh [-n NAMESPACE] [-s SERVICE] [-o DIR] [-d DAYS] [--force] [--context CTX]
#   defaults: -n flux-operator -s custom-metrics-apiserver -o target/certs -d 365
#   flux-metrics-api comes from $FLUX_METRICS_API, else PATH, else `cargo run` in this checkout.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace=flux-operator
service=custom-metrics-apiserver
out="$root/target/certs"
days=365
force=()
kargs=()
while (($#)); do
    case "$1" in
        -n | --namespace) namespace="$2"; shift 2 ;;
        -s | --service-name) service="$2"; shift 2 ;;
        -o | --out) out="$2"; shift 2 ;;
        -d | --days) days="$2"; shift 2 ;;
        --force) force=(--force); shift ;;
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

fma certs --namespace "$namespace" --service-name "$service" --out "$out" --days "$days" "${force[@]}"

kubectl "${kargs[@]}" get namespace "$namespace" >/dev/null 2>&1 \
    || kubectl "${kargs[@]}" create namespace "$namespace"
# Created, or replaced on rotation.
kubectl "${kargs[@]}" create secret tls "$service-tls" --namespace "$namespace" \
    --cert "$out/tls.crt" --key "$out/tls.key" --dry-run=client -o yaml \
    | kubectl "${kargs[@]}" apply -f -
echo "Secret $namespace/$service-tls holds $out/tls.crt and tls.key; next: scripts/deploy.sh --ca-file $out/ca.crt"
