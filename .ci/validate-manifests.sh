#!/usr/bin/env bash
# Validates the Kubernetes manifests and lints the shell scripts, offline once installed.
#
# - Every manifests/*.yaml but the MiniCluster and the kustomization is validated against the
#   Kubernetes OpenAPI schemas with kubernetes-validate (PyPI; it ships the schemas, so it needs
#   no cluster and no network), strictly: unknown fields fail, and so does a kind it has no schema
#   for. The MiniCluster (a custom resource) is checked to be YAML of kind MiniCluster only.
# - So is what `flux-metrics-api manifests` prints: with --insecure-skip-tls-verify, with a
#   --ca-file made by `flux-metrics-api certs` and a --service-account, with an --endpoint (as
#   scripts/develop.sh uses it), with an --external-name (as scripts/k8s-e2e.sh uses it), and
#   the commented-out example HPA at its end, uncommented.
# - kustomization.yaml must list files that exist; with kubectl present, its build is validated.
# - shellcheck (Debian package, installed with apt-get when missing) over scripts/*.sh and .ci/*.
#
# kubernetes-validate is installed into a virtualenv under target/ (VALIDATE_VENV to move it),
# reused by later runs. Run from anywhere: bash .ci/validate-manifests.sh
#
# Usage: .ci/validate-manifests.sh [-h]
set -euo pipefail

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/p' "$0"; }
case "${1:-}" in
    "") ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
venv="${VALIDATE_VENV:-target/validate-manifests-venv}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

step() { printf '\n==> %s\n' "$*"; }

step "kubernetes-validate ${KUBERNETES_VALIDATE_VERSION} in ${venv}"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}"
fi
"$venv/bin/kubernetes-validate" --version

# Validates each file given, strictly; any ERROR, WARN (no schema for a kind) or FATAL fails.
validate() {
    local out
    out="$("$venv/bin/kubernetes-validate" --strict "$@" 2>&1)" || {
        printf '%s\n' "$out"
        echo "FAILED: kubernetes-validate $*" >&2
        return 1
    }
    printf '%s\n' "$out"
    if grep -Eq '^(ERROR|WARN|FATAL)' <<<"$out"; then
        echo "FAILED: kubernetes-validate reported problems in $*" >&2
        return 1
    fi
    # Every file must have held at least one object.
    local f
    for f in "$@"; do
        grep -q "^INFO $f passed" <<<"$out" || {
            echo "FAILED: $f holds no Kubernetes object" >&2
            return 1
        }
    done
}

# Checks that a file is YAML whose documents are all of the kinds in $2, comma-separated (no
# schema for custom resources).
yaml_kind() {
    "$venv/bin/python" - "$1" "$2" <<'EOF'
import sys, yaml
path, kind = sys.argv[1], sys.argv[2]
kinds = set(kind.split(","))
docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
assert docs, f"{path}: no YAML document"
for d in docs:
    assert isinstance(d, dict) and d.get("kind") in kinds, f"{path}: not a {kind}: {d!r:.200}"
    assert d.get("apiVersion") and d.get("metadata", {}).get("name"), f"{path}: no apiVersion or name"
print(f"INFO {path} is YAML of kind {kind}")
EOF
}

step "manifests/*.yaml against the Kubernetes schemas"
files=()
for f in manifests/*.yaml; do
    case "$(basename "$f")" in
        minicluster.yaml | kustomization.yaml) ;;
        *) files+=("$f") ;;
    esac
done
validate "${files[@]}"
yaml_kind manifests/minicluster.yaml MiniCluster

step "example/*.yaml: HPAs against the schemas, KEDA objects as YAML"
validate example/hpa*.yaml
yaml_kind example/keda-scaledobject.yaml TriggerAuthentication,ScaledObject
# A Kustomization has no schema here: check that the files it lists exist.
"$venv/bin/python" - <<'EOF'
import os, yaml
k = yaml.safe_load(open("manifests/kustomization.yaml"))
assert k.get("kind") == "Kustomization", "manifests/kustomization.yaml: not a Kustomization"
resources = k.get("resources") or []
assert resources, "manifests/kustomization.yaml lists no resources"
for r in resources:
    assert os.path.isfile(os.path.join("manifests", r)), f"kustomization lists missing {r}"
print(f"INFO manifests/kustomization.yaml lists {', '.join(resources)}")
EOF
if command -v kubectl >/dev/null; then
    kubectl kustomize manifests >"$tmp/kustomized.yaml"
    validate "$tmp/kustomized.yaml"
else
    echo "SKIPPED: kubectl kustomize (kubectl is not installed)"
fi

step "flux-metrics-api manifests output against the Kubernetes schemas"
cargo build --quiet --locked --bin flux-metrics-api
bin="$(cargo metadata --format-version 1 --no-deps \
    | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/flux-metrics-api"
"$bin" --quiet certs --out "$tmp/certs" >/dev/null
"$bin" --quiet manifests --insecure-skip-tls-verify >"$tmp/insecure.yaml"
"$bin" --quiet manifests --namespace metrics --service-name flux-metrics \
    --minicluster lammps --service-account flux-metrics --port 9443 \
    --ca-file "$tmp/certs/ca.crt" >"$tmp/ca-file.yaml"
"$bin" --quiet manifests --endpoint 172.18.0.1 --insecure-skip-tls-verify >"$tmp/endpoint.yaml"
"$bin" --quiet manifests --external-name localhost --port 18443 --insecure-skip-tls-verify \
    >"$tmp/external-name.yaml"
# The example HPA at the end, uncommented (from its `# ---` on).
sed -n '/^# ---$/,$ s/^# \{0,1\}//p' "$tmp/insecure.yaml" >"$tmp/example-hpa.yaml"
validate "$tmp/insecure.yaml" "$tmp/ca-file.yaml" "$tmp/endpoint.yaml" "$tmp/external-name.yaml" \
    "$tmp/example-hpa.yaml"
grep -q '^kind: ServiceAccount$' "$tmp/ca-file.yaml" || {
    echo "FAILED: --service-account flux-metrics printed no ServiceAccount" >&2
    exit 1
}
grep -q '^kind: HorizontalPodAutoscaler$' "$tmp/example-hpa.yaml" || {
    echo "FAILED: no example HPA found at the end of the manifests output" >&2
    exit 1
}

step "shellcheck scripts/*.sh .ci/*"
if ! command -v shellcheck >/dev/null; then
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq shellcheck >/dev/null
fi
shellcheck --version | sed -n 2p
shellcheck scripts/*.sh .ci/*

printf '\nmanifests and scripts valid\n'
