#!/usr/bin/env bash
# Deletes what deploy.sh applied (the Service, the three APIServices and the RBAC), with the
# same names; with --secret also the Secret <service>-tls of certs.sh. Remove the APIServices
# before the server goes away for good: while they point at nothing, every client's API
# discovery reports the metrics groups as unavailable. The MiniCluster is left alone.
#
# Usage: scripts/remove.sh [-n NAMESPACE] [-s SERVICE] [-m MINICLUSTER] [-a SERVICE_ACCOUNT]
#                          [--secret] [--context CTX]
#   defaults: -n flux-operator -s custom-metrics-apiserver -m flux-sample -a default
#   flux-metrics-api comes from $FLUX_METRICS_API, else PATH, else `cargo run` in this checkout.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace=flux-operator
service=custom-metrics-apiserver
minicluster=flux-sample
account=default
secret=false
kargs=()
while (($#)); do
    case "$1" in
        -n | --namespace) namespace="$2"; shift 2 ;;
        -s | --service-name) service="$2"; shift 2 ;;
        -m | --minicluster) minicluster="$2"; shift 2 ;;
        -a | --service-account) account="$2"; shift 2 ;;
        --secret) secret=true; shift ;;
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

# Only the names matter for deleting, so the trust flag is arbitrary.
yaml="$(fma manifests --namespace "$namespace" --service-name "$service" \
    --minicluster "$minicluster" --service-account "$account" --insecure-skip-tls-verify)"
kubectl "${kargs[@]}" delete --ignore-not-found -f - <<<"$yaml"
if $secret; then
    kubectl "${kargs[@]}" delete --ignore-not-found secret "$service-tls" --namespace "$namespace"
fi
