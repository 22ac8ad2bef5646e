#!/usr/bin/env bash
# End-to-end test on a real Kubernetes control plane, without containers: etcd (Debian's
# etcd-server), kube-apiserver with front-proxy flags and kube-controller-manager with the HPA
# controller, all on 127.0.0.1, built by scripts/k8s-build.sh (reused from its cache). The server
# is registered the way an operator registers it: scripts/certs.sh and scripts/deploy.sh, that
# is `flux-metrics-api certs` and `flux-metrics-api manifests --external-name localhost --port P
# --ca-file ...` (an ExternalName Service, so that kube-apiserver's aggregator dials
# localhost:P and verifies the server against the APIServices' caBundle). Then it checks, each
# as one PASS/FAIL line:
#   - every APIService becomes Available and its group routes to the server; scripts/test.sh;
#   - metric answers read through kube-apiserver (`kubectl get --raw`) on custom v1beta1 and
#     v1beta2 (Namespace, Service and MiniCluster objects) and external v1beta1 equal the
#     server's own, read directly;
#   - the server sees the user the front proxy names (an impersonated user in its access log),
#     kube-apiserver refuses a user without the manifests' metrics-reader binding, and the
#     server refuses clients without the front-proxy certificate (401) or with a CN it does not
#     allow (403);
#   - two MiniClusters (the Flux Operator's CRD and scale subresource), scaled by HPAs
#     (autoscaling/v2beta2) on the External and on the Object metric minicluster_desired_size,
#     reach what the server says, and follow a change of the replayed scenario up and down;
#   - --authentication-from-cluster with --authentication-kubeconfig: a service-account token
#     kubeconfig (the account deploy.sh binds to extension-apiserver-authentication-reader) and
#     the admin client-certificate kubeconfig each let the front proxy in with what was read
#     from kube-system/extension-apiserver-authentication; an account without the binding stops
#     the server at start with the reason;
#   - with `flux` on PATH (or FLUX set): the server inside `flux start --test-size=4`, and the
#     HPA growing the MiniCluster while jobs wait and shrinking it when they are gone;
#   - scripts/remove.sh deletes the APIServices.
# It prints `N passed, M failed` (and `, K skipped`), exits 1 on any failure, and stops
# everything it started on success, failure or Ctrl-C. Logs stay in the directory it names when
# something failed (or with --keep).
#
# Usage: scripts/k8s-e2e.sh [--keep] [--no-live] [--check] [-h]
#   --keep     keep the work directory (certificates, kubeconfigs, logs) even on success
#   --no-live  skip the live-broker part even when flux is on PATH
#   --check    only check that everything it needs is there: exit 0, or print what is missing
#              and the command that provides it and exit 3
# Environment (all optional):
#   K8S_CACHE         the cache of scripts/k8s-build.sh (binaries in $K8S_CACHE/bin)
#   FLUX_METRICS_API  the server binary (default: `cargo build` of this checkout)
#   FLUX              the flux command for the live part (default: flux on PATH)
#   FLUX_CORE_LIB     libflux-core for the live part (default: lib/ next to flux's bin/)
#   KUBECTL, ETCD     kubectl and etcd (default: from PATH)
#   E2E_ETCD_PORT, E2E_ETCD_PEER_PORT, E2E_APISERVER_PORT, E2E_KCM_PORT, E2E_SERVER_PORT
#                     ports on 127.0.0.1 (default: free ones, asked of the kernel)
#   E2E_TIMEOUT       longest wait for any one condition, in seconds (default 120)
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBECTL=${KUBECTL:-kubectl}
ETCD=${ETCD:-etcd}
TIMEOUT=${E2E_TIMEOUT:-120}
readonly NS=flux-operator SERVICE=custom-metrics-apiserver ACCOUNT=flux-metrics-api
readonly MC_EXTERNAL=e2e-external MC_OBJECT=e2e-object
readonly APISERVICES=(v1beta2.custom.metrics.k8s.io v1beta1.custom.metrics.k8s.io v1beta1.external.metrics.k8s.io)

keep=false
live=auto
check_only=false
while (($#)); do
    case "$1" in
        --keep) keep=true; shift ;;
        --no-live) live=false; shift ;;
        --check) check_only=true; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

started=$SECONDS
WORK=""        # certs/, logs/, etcd data, kubeconfigs, the replayed scenario
PIDS=()        # processes started here (each its own process group), in start order
NAMES=()       # their names, parallel to PIDS
LOGS=()        # their log files, parallel to PIDS
passed=0
failed=0
skipped=0
REASON=""      # why the last check failed (set by `because`)

log() { printf '[k8s-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ results

pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }
skip() { skipped=$((skipped + 1)); printf 'SKIP %s: %s\n' "$1" "$2"; }

# because MESSAGE: record why a check fails; returns 1 so that `|| because ...` fails the check.
because() { REASON="$*"; return 1; }

# check NAME CMD...: run CMD (a function that calls `because` on failure), record PASS or FAIL.
check() {
    local name=$1
    shift
    REASON=""
    if "$@"; then
        pass "$name"
    else
        fail "$name" "${REASON:-failed}"
        return 1
    fi
}

# die MESSAGE: a setup step failed; count it, and stop (the EXIT trap cleans up).
die() {
    fail "setup" "$*"
    exit 1
}

# wait_until SECONDS WHAT CMD...: poll CMD every second until it succeeds; on timeout, say what
# was waited for and return 1. Fails at once if a process this script started has died.
wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    local begun=$SECONDS
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        dead_process && { because "$DEAD died while waiting for $what"; return 1; }
        if ((SECONDS >= deadline)); then
            because "timed out after ${timeout}s waiting for $what"
            log "$REASON"
            return 1
        fi
        sleep 1
    done
    log "$what ($((SECONDS - begun))s)"
}

# dead_process: true (and DEAD set) if a process started here exited unexpectedly.
DEAD=""
dead_process() {
    local i
    for i in "${!PIDS[@]}"; do
        if [[ -n ${PIDS[$i]} ]] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
            DEAD="${NAMES[$i]} (log ${LOGS[$i]})"
            return 0
        fi
    done
    return 1
}

# ------------------------------------------------------------------ processes

# start_bg NAME[:LOG] CMD...: CMD in the background, output to $WORK/logs/LOG.log (LOG defaults
# to NAME; `stop NAME` stops it). A program runs in its own process group, so that stopping it
# stops its children too (flux start's brokers); a function of this script runs in a subshell.
start_bg() {
    local name=${1%%:*} logname=${1#*:}
    shift
    if declare -F "$1" >/dev/null; then
        "$@" >"$WORK/logs/$logname.log" 2>&1 </dev/null &
    else
        setsid "$@" >"$WORK/logs/$logname.log" 2>&1 </dev/null &
    fi
    PIDS+=("$!")
    NAMES+=("$name")
    LOGS+=("$WORK/logs/$logname.log")
    log "started $name (pid $!, log $WORK/logs/$logname.log)"
}

# stop NAME: TERM the process group of NAME, KILL after 10 s; forget it.
stop() {
    local i pid n
    for i in "${!NAMES[@]}"; do
        [[ ${NAMES[$i]} == "$1" && -n ${PIDS[$i]} ]] || continue
        pid=${PIDS[$i]}
        PIDS[i]=""
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((n = 0; n < 100; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$1 (pid $pid) ignored TERM for 10s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        log "stopped $1"
    done
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#NAMES[@]} - 1; i >= 0; i--)); do
        [[ -z ${PIDS[$i]} ]] || stop "${NAMES[$i]}"
    done
    if ((rc == 130 || rc == 143)); then
        fail "harness" "interrupted (signal $((rc - 128))) before finishing"
    elif ((rc != 0 && failed == 0)); then
        fail "harness" "exited with status $rc before finishing"
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if ((failed > 0)) || $keep; then
            log "kept $WORK (logs in $WORK/logs)"
        else
            rm -rf "$WORK"
        fi
    fi
    log "took $((SECONDS - started))s"
    if ((skipped > 0)); then
        printf '%d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
    else
        printf '%d passed, %d failed\n' "$passed" "$failed"
    fi
    if ((failed > 0)); then
        exit 1
    fi
    exit 0
}

# ------------------------------------------------------------------ prerequisites

# The binaries' directory from scripts/k8s-build.sh (building them when missing).
K8S_BIN=""
FLUX_CMD=""

# find_flux: the flux command for the live part, or nothing.
find_flux() {
    if [[ -n ${FLUX:-} ]]; then
        command -v "$FLUX" || true
    else
        command -v flux || true
    fi
}

prerequisites() {
    local missing=() tool
    if ! K8S_BIN=$("$root/scripts/k8s-build.sh" --check 2>/dev/null); then
        missing+=("kube-apiserver and kube-controller-manager 1.20.2: scripts/k8s-build.sh (6-10 minutes cold)")
    fi
    command -v "$ETCD" >/dev/null || missing+=("etcd: apt-get install etcd-server")
    command -v "$KUBECTL" >/dev/null || missing+=("kubectl: apt-get install kubernetes-client")
    for tool in openssl curl jq python3 setsid base64; do
        command -v "$tool" >/dev/null || missing+=("$tool: apt-get install $tool")
    done
    if ((${#missing[@]})); then
        printf 'scripts/k8s-e2e.sh needs: %s\n' "${missing[@]}" >&2
        return 3
    fi
}

# Installs what the e2e can install itself: etcd-server, and the binaries (a build).
provide() {
    if ! command -v "$ETCD" >/dev/null && [[ $ETCD == etcd ]]; then
        log "installing Debian's etcd-server"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends etcd-server; } >/dev/null || die "could not install etcd-server"
    fi
    if ! "$root/scripts/k8s-build.sh" --check >/dev/null 2>&1; then
        log "building kube-apiserver and kube-controller-manager (scripts/k8s-build.sh)"
        "$root/scripts/k8s-build.sh" >&2 || die "scripts/k8s-build.sh failed"
    fi
}

# free_port: a port on 127.0.0.1 nothing listens on now (the kernel's pick).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ certificates and kubeconfigs

ssl() {
    local out
    out=$(openssl "$@" 2>&1) || { printf '%s\n' "$out" >&2; die "openssl $1 failed"; }
}

# make_ca NAME CN: a CA $WORK/pki/NAME.{crt,key}.
make_ca() {
    ssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$2" -keyout "$WORK/pki/$1.key" -out "$WORK/pki/$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# make_cert CA NAME SUBJECT USAGE [SAN]: $WORK/pki/NAME.{crt,key} signed by CA; USAGE is
# serverAuth or clientAuth.
make_cert() {
    local ca=$1 name=$2 subject=$3 usage=$4 san=${5:-} d="$WORK/pki"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [[ -z $san ]] || echo "subjectAltName=$san"
    } >"$d/$name.ext"
    ssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
        -keyout "$d/$name.key" -out "$d/$name.csr"
    ssl x509 -req -in "$d/$name.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" -CAcreateserial \
        -days 2 -extfile "$d/$name.ext" -out "$d/$name.crt"
    rm -f "$d/$name.csr" "$d/$name.ext"
}

make_pki() {
    mkdir -p "$WORK/pki"
    make_ca ca e2e-cluster-ca
    make_cert ca apiserver /CN=kube-apiserver serverAuth \
        "IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
    make_cert ca admin "/O=system:masters/CN=admin" clientAuth
    make_cert ca controller-manager "/O=system:masters/CN=system:kube-controller-manager" clientAuth
    make_ca front-proxy-ca e2e-front-proxy-ca
    make_cert front-proxy-ca front-proxy-client /CN=front-proxy-client clientAuth
    make_cert front-proxy-ca someone-else /CN=someone-else clientAuth
    ssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/pki/sa.key"
    ssl pkey -in "$WORK/pki/sa.key" -pubout -out "$WORK/pki/sa.pub"
    chmod 600 "$WORK"/pki/*.key
}

# kubeconfig_cert FILE NAME: a kubeconfig using the client certificate files $WORK/pki/NAME.*
# and the CA by file name.
kubeconfig_cert() {
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $WORK/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $WORK/pki/$2.crt
    client-key: $WORK/pki/$2.key
contexts:
- name: e2e
  context: {cluster: e2e, user: $2}
current-context: e2e
EOF
    chmod 600 "$1"
}

# kubeconfig_token FILE TOKEN: a kubeconfig with a bearer token and the CA inline.
kubeconfig_token() {
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$WORK/pki/ca.crt")
users:
- name: token
  user:
    token: $2
contexts:
- name: e2e
  context: {cluster: e2e, user: token}
current-context: e2e
EOF
    chmod 600 "$1"
}

# kc ARGS...: kubectl as the admin (O=system:masters); no request may hang a wait.
kc() { "$KUBECTL" --kubeconfig "$WORK/admin.kubeconfig" --request-timeout 20s "$@"; }

# ------------------------------------------------------------------ the control plane

healthy() { curl -fsS --max-time 3 "$@" | grep -qx ok; }

start_etcd() {
    start_bg etcd "$ETCD" --name e2e --data-dir "$WORK/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
        --logger zap --log-level warn
    wait_until 30 "etcd on 127.0.0.1:$ETCD_PORT" etcd_healthy || die "$REASON"
}

etcd_healthy() { curl -fsS --max-time 3 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

start_apiserver() {
    local p="$WORK/pki"
    # --insecure-port 0: 1.20 would also serve plain HTTP on 8080. --endpoint-reconciler-type
    # none: otherwise it publishes 127.0.0.1 as the `kubernetes` endpoint, which validation
    # rejects. The service-account flags let the tokens controller make tokens it accepts.
    start_bg kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
        --secure-port "$APISERVER_PORT" --insecure-port 0 \
        --cert-dir "$WORK/apiserver" \
        --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
        --client-ca-file "$p/ca.crt" \
        --authorization-mode RBAC \
        --service-cluster-ip-range 10.0.0.0/24 \
        --endpoint-reconciler-type none \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$p/sa.pub" \
        --service-account-signing-key-file "$p/sa.key" \
        --requestheader-client-ca-file "$p/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User \
        --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$p/front-proxy-client.crt" \
        --proxy-client-key-file "$p/front-proxy-client.key" \
        --profiling=false --v 1
    wait_until 90 "kube-apiserver /readyz on 127.0.0.1:$APISERVER_PORT" healthy \
        --cacert "$p/ca.crt" --cert "$p/admin.crt" --key "$p/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/readyz" || die "$REASON"
}

start_controller_manager() {
    kubeconfig_cert "$WORK/controller-manager.kubeconfig" controller-manager
    # The HPA controller every 3 s, as the controller manager's own identity
    # (--use-service-account-credentials=false); the tokens controller for the service account
    # of the --authentication-kubeconfig check.
    start_bg kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig "$WORK/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$WORK/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$WORK/controller-manager.kubeconfig" \
        --controllers horizontalpodautoscaling,garbagecollector,namespace,serviceaccount,serviceaccount-token \
        --horizontal-pod-autoscaler-sync-period 3s \
        --leader-elect=false --use-service-account-credentials=false \
        --service-account-private-key-file "$WORK/pki/sa.key" \
        --root-ca-file "$WORK/pki/ca.crt" \
        --port 0 --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
        --cert-dir "$WORK/controller-manager" \
        --profiling=false --v 1
    wait_until 60 "kube-controller-manager /healthz on 127.0.0.1:$KCM_PORT" healthy -k \
        "https://127.0.0.1:$KCM_PORT/healthz" || die "$REASON"
}

# The Flux Operator's MiniCluster, reduced to what the HPA uses: group flux-framework.org,
# v1alpha2, and the scale subresource on spec.size / status.size / status.selector.
readonly CRD='apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: miniclusters.flux-framework.org
spec:
  group: flux-framework.org
  names: {kind: MiniCluster, listKind: MiniClusterList, plural: miniclusters, singular: minicluster}
  scope: Namespaced
  versions:
  - name: v1alpha2
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
            properties:
              size: {type: integer, format: int32}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
            properties:
              size: {type: integer, format: int32}
              selector: {type: string}
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.size
        statusReplicasPath: .status.size
        labelSelectorPath: .status.selector'

# ------------------------------------------------------------------ the server

# bare PATH [CURL ARGS...]: GET PATH of the server itself, verified with the CA of certs.sh,
# presenting only what CURL ARGS say (by default no client certificate).
bare() {
    local path=$1
    shift
    curl -sS --max-time 10 --cacert "$WORK/server-certs/ca.crt" "$@" \
        "https://localhost:$SERVER_PORT$path"
}

# direct PATH: GET PATH of the server itself as the front proxy does it (its certificate and
# X-Remote-User), bypassing kube-apiserver.
direct() {
    bare "$1" --cert "$WORK/pki/front-proxy-client.crt" --key "$WORK/pki/front-proxy-client.key" \
        -H 'X-Remote-User: e2e-direct'
}

# start_server NAME ARGS...: flux-metrics-api start on 127.0.0.1:$SERVER_PORT with the
# certificate of certs.sh, JSON logs (read by the checks), and ARGS; waits for /healthz.
start_server() {
    local name=$1
    shift
    start_bg "server:$name" "$FMA" --log-format json start --host 127.0.0.1 --port "$SERVER_PORT" \
        --ssl-certfile "$WORK/server-certs/tls.crt" --ssl-keyfile "$WORK/server-certs/tls.key" \
        --namespace "$NS" --service-name "$SERVICE" "$@"
    SERVER_LOG="$WORK/logs/$name.log"
}

server_up() { bare /healthz --max-time 2 | grep -qx ok; }

# scenario NAME: the replayed broker answers become those of example/scenarios/NAME (each file
# renamed into place, so that a round never reads half a file); WANT becomes the
# minicluster_desired_size `flux-metrics-api get --replay` computes for it.
WANT=""
scenario() {
    local f
    WANT=$("$FMA" --quiet get -o json --replay "$root/example/scenarios/$1" |
        jq -er '.metrics.minicluster_desired_size') || die "flux-metrics-api get --replay example/scenarios/$1 failed"
    for f in "$root/example/scenarios/$1"/*.json; do
        cp "$f" "$WORK/scenario/.$(basename "$f").tmp"
        mv "$WORK/scenario/.$(basename "$f").tmp" "$WORK/scenario/$(basename "$f")"
    done
    log "replayed scenario is now $1 (minicluster_desired_size $WANT)"
}

# server_says PATH WANT: the server's own answer for PATH has value WANT.
server_says() { [[ $(value "$1") == "$2" ]]; }

# value PATH: the first item's value of a metric answer, read directly.
value() { direct "$1" | jq -er '.items[0].value'; }

# ------------------------------------------------------------------ checks

# The aggregator has the APIService Available, and GET /apis/GROUP/VERSION goes through it to
# the server (Available shows about a second before the proxy routes the group).
apiservice_routes() {
    local name=$1 version=${1%%.*} group=${1#*.}
    wait_until "$TIMEOUT" "APIService $name Available" available "$name" || {
        because "$REASON: $(kc get apiservice "$name" -o jsonpath='{.status.conditions[?(@.type=="Available")].message}' 2>&1)"
        return 1
    }
    wait_until "$TIMEOUT" "GET /apis/$group/$version through kube-apiserver" \
        resource_list "/apis/$group/$version"
}

available() {
    [[ $(kc get apiservice "$1" -o jsonpath='{.status.conditions[?(@.type=="Available")].status}') == True ]]
}

resource_list() { kc get --raw "$1" | jq -e '.kind == "APIResourceList" and (.resources | length > 0)'; }

# routes_again: after a restart of the server, every group routes to it again (while no server
# answered, the aggregator may have marked the APIServices unavailable; it probes again with a
# backoff of up to 30 s).
routes_again() {
    local a
    for a in "${APISERVICES[@]}"; do
        available "$a" && resource_list "/apis/${a#*.}/${a%%.*}" || return 1
    done
}

# same_answer PATH: the body kube-apiserver relays equals the server's own (timestamps aside);
# reports the value.
LAST_VALUE=""
same_answer() {
    local path=$1 via own
    via=$(kc get --raw "$path" 2>&1) || { because "kubectl get --raw $path: $via"; return 1; }
    own=$(direct "$path") || { because "direct GET $path failed"; return 1; }
    local a b
    a=$(jq -S 'del(.items[]?.timestamp)' <<<"$via" 2>/dev/null) || { because "not JSON through kube-apiserver: ${via:0:200}"; return 1; }
    b=$(jq -S 'del(.items[]?.timestamp)' <<<"$own")
    [[ $a == "$b" ]] || { because "through kube-apiserver ${via:0:300} but directly ${own:0:300}"; return 1; }
    LAST_VALUE=$(jq -r '.items[0].value // empty' <<<"$via")
    [[ -n $LAST_VALUE ]] || { because "no value in $via"; return 1; }
    jq -e '.kind | test("MetricValueList$")' <<<"$via" >/dev/null || { because "not a metric list: ${via:0:200}"; return 1; }
}

check_values() {
    local p
    for p in \
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count" \
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/services/$SERVICE/node_cores_free_count" \
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/miniclusters.flux-framework.org/$MC_OBJECT/minicluster_desired_size" \
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/default/metrics/job_queue_pending_count" \
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/$NS/services/$SERVICE/node_cores_free_count" \
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/$NS/miniclusters.flux-framework.org/$MC_OBJECT/minicluster_desired_size" \
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/minicluster_desired_size" \
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/job_queue_pending_count"; do
        if same_answer "$p"; then
            pass "through kube-apiserver = directly: $p (value $LAST_VALUE)"
        else
            fail "through kube-apiserver = directly: $p" "$REASON"
        fi
    done
}

# The front proxy names an impersonated user; the server's access log must show that user and
# its groups for the request (and kube-apiserver must have let the user in through the
# metrics-reader ClusterRole of the manifests, bound here to that user).
sees_front_proxy_user() {
    local path="/apis/custom.metrics.k8s.io/v1beta2/namespaces/e2e-user-check/metrics/node_up_count" out line
    kc create clusterrolebinding e2e-reader --clusterrole "$SERVICE:metrics-reader" --user e2e-reader \
        >/dev/null 2>&1 || true
    # RBAC bindings take effect within a moment; retry briefly.
    wait_until 20 "user e2e-reader allowed to read the metrics" \
        kc get --raw "$path" --as e2e-reader --as-group e2e-readers || return 1
    # (kubectl adds ?timeout=20s for --request-timeout: the path is matched as a prefix.)
    line=$(grep -F "\"path\":\"$path" "$SERVER_LOG" | grep -F '"user":"e2e-reader"' | tail -n 1)
    [[ -n $line ]] || {
        out=$(grep -F "$path" "$SERVER_LOG" | tail -n 1)
        because "no access line with user e2e-reader for $path; last line for it: ${out:-none}"
        return 1
    }
    jq -e '.fields.groups // .groups | test("e2e-readers")' <<<"$line" >/dev/null ||
        because "groups of the access line lack e2e-readers: $line"
}

rbac_refuses_unbound_user() {
    local out
    if out=$(kc get --raw /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count \
        --as e2e-nobody 2>&1); then
        because "a user without the metrics-reader binding read the metric: $out"
        return 1
    fi
    grep -qi forbidden <<<"$out" || because "refused, but not as Forbidden: $out"
}

# status_code EXPECTED CURL ARGS...: a direct request answers a Status of that code.
status_code() {
    local want=$1 body
    shift
    body=$(bare /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/metrics/node_up_count "$@") ||
        { because "request failed: $body"; return 1; }
    jq -e --argjson c "$want" '.kind == "Status" and .code == $c' <<<"$body" >/dev/null ||
        because "wanted a $want Status, got ${body:0:300}"
}
refuses_without_certificate() { status_code 401; }
refuses_wrong_cn() {
    status_code 403 --cert "$WORK/pki/someone-else.crt" --key "$WORK/pki/someone-else.key" \
        -H 'X-Remote-User: mallory'
}

# -------- MiniClusters and HPAs

minicluster() {
    cat <<EOF
apiVersion: flux-framework.org/v1alpha2
kind: MiniCluster
metadata: {name: $1, namespace: $NS}
spec: {size: 2, maxSize: 8}
EOF
}

# hpa NAME METRIC-BLOCK: an HPA between 1 and 8 that acts at once both ways: scale-up and
# scale-down stabilization windows of 0 and 1 s instead of 0 and 300 s, no rate limit worth
# the name.
hpa() {
    cat <<EOF
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: $1, namespace: $NS}
spec:
  scaleTargetRef: {apiVersion: flux-framework.org/v1alpha2, kind: MiniCluster, name: $1}
  minReplicas: 1
  maxReplicas: 8
  metrics:
$2
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies: [{type: Percent, value: 1000, periodSeconds: 1}]
    scaleDown:
      stabilizationWindowSeconds: 1
      policies: [{type: Percent, value: 100, periodSeconds: 1}]
EOF
}

readonly EXTERNAL_METRIC='  - type: External
    external:
      metric: {name: minicluster_desired_size}
      target: {type: AverageValue, averageValue: "1"}'
readonly OBJECT_METRIC="  - type: Object
    object:
      describedObject: {apiVersion: flux-framework.org/v1alpha2, kind: MiniCluster, name: $MC_OBJECT}
      metric: {name: minicluster_desired_size}
      target: {type: AverageValue, averageValue: \"1\"}"

# set_status NAME SIZE: what the Flux Operator does once the pods run: status.size and the
# selector, through the status subresource (curl: kubectl >= 1.24's --subresource needs a
# kube-apiserver >= 1.24).
set_status() {
    curl -fsS --max-time 5 --cacert "$WORK/pki/ca.crt" --cert "$WORK/pki/admin.crt" \
        --key "$WORK/pki/admin.key" -X PATCH -H 'Content-Type: application/merge-patch+json' \
        -d "{\"status\":{\"size\":$2,\"selector\":\"hpa-selector=$1\"}}" \
        "https://127.0.0.1:$APISERVER_PORT/apis/flux-framework.org/v1alpha2/namespaces/$NS/miniclusters/$1/status" \
        >/dev/null
}

# operator: a stand-in for the Flux Operator, every second: status.size follows spec.size (the
# HPA reads the current size from status; without this it would act on a stale one).
operator() {
    local mc spec status
    while :; do
        for mc in "$MC_EXTERNAL" "$MC_OBJECT"; do
            spec=$(kc get minicluster "$mc" -n "$NS" -o jsonpath='{.spec.size}/{.status.size}' 2>/dev/null) || continue
            status=${spec#*/}
            spec=${spec%/*}
            if [[ -n $spec && $spec != "$status" ]]; then
                set_status "$mc" "$spec" && echo "$(date +%T) $mc: status.size $status -> $spec"
            fi
        done
        sleep 1
    done
}

size_is() { [[ $(kc get minicluster "$1" -n "$NS" -o jsonpath='{.spec.size}') == "$2" ]]; }

hpa_state() {
    kc get hpa.v2beta2.autoscaling "$1" -n "$NS" \
        -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}; {end}' 2>&1
}

# follows MINICLUSTER WANT WHAT: the HPA brings spec.size to WANT.
follows() {
    wait_until "$TIMEOUT" "MiniCluster $1 at size $2 ($3)" size_is "$1" "$2" || {
        because "$REASON; size is $(kc get minicluster "$1" -n "$NS" -o jsonpath='{.spec.size}'); HPA: $(hpa_state "$1")"
        return 1
    }
}

# hpas_follow LABEL [WANT]: once the server says WANT (when given), both HPAs bring their
# MiniCluster to what the server says.
hpas_follow() {
    local label=$1 want=${2:-} path="/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/minicluster_desired_size"
    if [[ -n $want ]]; then
        check "the server says minicluster_desired_size $want, as flux-metrics-api get --replay computes it ($label)" \
            wait_until 30 "the server to say minicluster_desired_size $want" server_says "$path" "$want" || return 0
    fi
    want=$(value "$path") ||
        { fail "HPAs follow the server ($label)" "cannot read minicluster_desired_size"; return; }
    check "HPA on the External metric minicluster_desired_size sets MiniCluster $MC_EXTERNAL to $want, what the server says ($label)" \
        follows "$MC_EXTERNAL" "$want" "$label" || true
    check "HPA on the Object metric minicluster_desired_size of MiniCluster $MC_OBJECT sets it to $want ($label)" \
        follows "$MC_OBJECT" "$want" "$label" || true
}

hpa_requests_logged() {
    local ext obj
    ext=$(grep -F '"user":"system:kube-controller-manager"' "$SERVER_LOG" |
        grep -cF "\"path\":\"/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/minicluster_desired_size" || true)
    obj=$(grep -F '"user":"system:kube-controller-manager"' "$SERVER_LOG" |
        grep -cF "\"path\":\"/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/miniclusters.flux-framework.org/$MC_OBJECT/minicluster_desired_size" || true)
    ((ext > 0 && obj > 0)) ||
        because "access log: $ext external and $obj custom v1beta2 MiniCluster requests of system:kube-controller-manager"
}

# -------- --authentication-from-cluster

# sa_token NAME FILE: the token of service account NAME in $NS, from the Secret 1.20's tokens
# controller makes for it, into FILE.
sa_token() {
    local secret
    wait_until 60 "a token Secret for service account $1" sa_secret "$1" || return 1
    secret=$(sa_secret "$1")
    kc get secret "$secret" -n "$NS" -o jsonpath='{.data.token}' | base64 -d >"$2" ||
        { because "reading Secret $NS/$secret"; return 1; }
    [[ -s $2 ]] || because "no token in Secret $NS/$secret"
}

sa_secret() {
    local s
    s=$(kc get serviceaccount "$1" -n "$NS" -o jsonpath='{.secrets[0].name}') && [[ -n $s ]] && echo "$s"
}

# from_cluster NAME KUBECONFIG: the server restarted with --authentication-from-cluster
# --authentication-kubeconfig KUBECONFIG; it must say it read the ConfigMap, then let the front
# proxy in (a metric read through kube-apiserver) and nobody else.
from_cluster() {
    local name=$1 kubeconfig=$2 path="/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/services/$SERVICE/node_up_count"
    stop server
    start_server "$name" --replay "$WORK/scenario" \
        --authentication-from-cluster --authentication-kubeconfig "$kubeconfig"
    wait_until 30 "the server ($name) on port $SERVER_PORT" server_up || return 1
    grep -F 'read kube-system/extension-apiserver-authentication' "$SERVER_LOG" | grep -qF "kubeconfig $kubeconfig" ||
        { because "no log line saying the ConfigMap was read with $kubeconfig"; return 1; }
    wait_until "$TIMEOUT" "every group to route to the restarted server" routes_again || return 1
    same_answer "$path" || return 1
    refuses_without_certificate || { because "without a certificate: $REASON"; return 1; }
    refuses_wrong_cn || { because "with CN someone-else: $REASON"; return 1; }
    # The ConfigMap's client-ca-file is the cluster's client CA: its certificates get in directly.
    local body
    body=$(bare "$path" --cert "$WORK/pki/admin.crt" --key "$WORK/pki/admin.key")
    jq -e '.kind == "MetricValueList"' <<<"$body" >/dev/null ||
        { because "the admin certificate (the cluster's client CA) was refused: ${body:0:300}"; return 1; }
}

# A service account without the Role binding: the server must stop at start and say why.
from_cluster_refused() {
    local kubeconfig="$WORK/no-reader.kubeconfig" i pid deadline
    kc create serviceaccount e2e-no-reader -n "$NS" >/dev/null || { because "creating the service account"; return 1; }
    sa_token e2e-no-reader "$WORK/no-reader.token" || return 1
    kubeconfig_token "$kubeconfig" "$(cat "$WORK/no-reader.token")"
    stop server
    start_server server-no-reader --replay "$WORK/scenario" \
        --authentication-from-cluster --authentication-kubeconfig "$kubeconfig"
    i=$((${#PIDS[@]} - 1))
    pid=${PIDS[$i]}
    PIDS[i]=""    # expected to exit: not a death for wait_until to report
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            kill -TERM -- "-$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            because "timed out after 30s waiting for the server to stop at start; it runs"
            return 1
        fi
        sleep 0.5
    done
    if wait "$pid"; then
        because "it exited with status 0"
        return 1
    fi
    grep -q 'extension-apiserver-authentication-reader' "$SERVER_LOG" ||
        because "its log does not name the Role to bind: $(tail -n 3 "$SERVER_LOG")"
}

# -------- live broker

live_part() {
    local lib uri path_ext="/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/minicluster_desired_size"
    lib=${FLUX_CORE_LIB:-$(dirname "$(dirname "$FLUX_CMD")")/lib/libflux-core.so.2}
    [[ -e $lib ]] || lib=""
    stop server
    # Four brokers, ranks 1-3 drained: a MiniCluster of maximum size 4 running at size 1, where
    # a job asking for more nodes than are up waits.
    cat >"$WORK/live.sh" <<'EOF'
set -e
flux resource drain 1-3 "e2e: pods not started"
printf '%s\n' "$FLUX_URI" >"$E2E_URI_FILE.tmp"
mv "$E2E_URI_FILE.tmp" "$E2E_URI_FILE"
exec "$@"
EOF
    start_bg server:server-live env E2E_URI_FILE="$WORK/flux-uri" ${lib:+FLUX_CORE_LIB="$lib"} \
        "$FLUX_CMD" start --test-size=4 bash "$WORK/live.sh" \
        "$FMA" --log-format json start --host 127.0.0.1 --port "$SERVER_PORT" \
        --ssl-certfile "$WORK/server-certs/tls.crt" --ssl-keyfile "$WORK/server-certs/tls.key" \
        --requestheader-client-ca-file "$WORK/pki/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client
    SERVER_LOG="$WORK/logs/server-live.log"
    check "live: flux-metrics-api serves inside flux start --test-size=4" \
        wait_until 60 "the server inside flux start" server_up || return
    uri=$(cat "$WORK/flux-uri")
    check "live: every APIService routes to the server in flux start" \
        wait_until "$TIMEOUT" "every group to route to the live server" routes_again || return
    check "live: through kube-apiserver = directly (node_up_count 1 of 4 brokers, 3 drained)" \
        live_value "/apis/custom.metrics.k8s.io/v1beta2/namespaces/$NS/services/$SERVICE/node_up_count" 1 || true
    hpas_follow "live, no job yet"
    FLUX_URI=$uri "$FLUX_CMD" submit -N1 sleep 600 >/dev/null
    FLUX_URI=$uri "$FLUX_CMD" submit -N2 sleep 600 >/dev/null
    check "live: a 2-node job waits behind a running 1-node job (job_queue_pending_count 1 through kube-apiserver)" \
        wait_until 30 "job_queue_pending_count 1" live_value \
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/$NS/job_queue_pending_count" 1 || true
    check "live: minicluster_desired_size is 4 (the 2-node job fits on no 2 undrained ranks: the whole set)" \
        wait_until 30 "minicluster_desired_size 4" live_value "$path_ext" 4 || true
    hpas_follow "live, a job waiting: grows"
    FLUX_URI=$uri "$FLUX_CMD" cancel --all >/dev/null 2>&1 || FLUX_URI=$uri "$FLUX_CMD" job cancelall -f >/dev/null
    check "live: minicluster_desired_size back to 1 once the jobs are gone" \
        wait_until 30 "minicluster_desired_size 1" live_value "$path_ext" 1 || true
    hpas_follow "live, jobs gone: shrinks"
}

# live_value PATH WANT: the value through kube-apiserver is WANT, and the answer is the server's.
live_value() {
    same_answer "$1" || return 1
    [[ $LAST_VALUE == "$2" ]] || because "value $LAST_VALUE, not $2"
}

# ------------------------------------------------------------------ main

main() {
    if $check_only; then
        prerequisites
        exit $?
    fi
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # The servers started here read only the flags given: the caller's FLUX_METRICS_* settings
    # and RUST_LOG (which could silence the access lines the checks read) are dropped.
    local var
    for var in $(compgen -e); do
        if [[ ($var == FLUX_METRICS_* && $var != FLUX_METRICS_API) || $var == RUST_LOG ]]; then
            unset "$var"
        fi
    done
    provide
    prerequisites || die "missing prerequisites (see above)"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/flux-metrics-e2e.XXXXXX")
    mkdir -p "$WORK/logs" "$WORK/scenario"
    log "work directory $WORK"
    ETCD_PORT=${E2E_ETCD_PORT:-$(free_port)}
    ETCD_PEER_PORT=${E2E_ETCD_PEER_PORT:-$(free_port)}
    APISERVER_PORT=${E2E_APISERVER_PORT:-$(free_port)}
    KCM_PORT=${E2E_KCM_PORT:-$(free_port)}
    SERVER_PORT=${E2E_SERVER_PORT:-$(free_port)}
    log "ports: etcd $ETCD_PORT/$ETCD_PEER_PORT, kube-apiserver $APISERVER_PORT, kube-controller-manager $KCM_PORT, server $SERVER_PORT"

    if [[ -n ${FLUX_METRICS_API:-} ]]; then
        FMA=$FLUX_METRICS_API
    else
        log "building flux-metrics-api (cargo build --locked)"
        cargo build --quiet --locked --manifest-path "$root/Cargo.toml" --bin flux-metrics-api >&2 ||
            die "cargo build failed"
        FMA="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
            jq -r .target_directory)/debug/flux-metrics-api"
    fi
    export FLUX_METRICS_API=$FMA
    log "$("$FMA" --version); $("$K8S_BIN/kube-apiserver" --version); $("$ETCD" --version | head -n 1)"

    make_pki
    kubeconfig_cert "$WORK/admin.kubeconfig" admin
    export KUBECONFIG="$WORK/admin.kubeconfig"

    start_etcd
    start_apiserver
    # The CRD before kube-controller-manager: its REST mapper learns new kinds only every 30 s.
    kc apply -f - <<<"$CRD" >/dev/null || die "applying the MiniCluster CRD"
    kc wait --for condition=Established --timeout 30s crd/miniclusters.flux-framework.org >/dev/null ||
        die "the MiniCluster CRD was not Established within 30s"
    start_controller_manager

    # Registration, as an operator does it: certs.sh (certificate, Secret), deploy.sh (Service,
    # APIServices with the CA as caBundle, RBAC for service account $ACCOUNT).
    check "scripts/certs.sh: flux-metrics-api certs and the Secret $NS/$SERVICE-tls" \
        run_logged certs "$root/scripts/certs.sh" -n "$NS" -s "$SERVICE" -o "$WORK/server-certs" ||
        die "cannot go on without the server's certificate"
    check "scripts/deploy.sh: flux-metrics-api manifests --external-name localhost --port $SERVER_PORT --ca-file applied" \
        run_logged deploy "$root/scripts/deploy.sh" -n "$NS" -s "$SERVICE" -a "$ACCOUNT" \
        --ca-file "$WORK/server-certs/ca.crt" --external-name localhost --port "$SERVER_PORT" ||
        die "cannot go on without the APIServices"

    scenario busy
    BUSY_WANT=$WANT
    start_server server --replay "$WORK/scenario" \
        --requestheader-client-ca-file "$WORK/pki/front-proxy-ca.crt" \
        --requestheader-allowed-names front-proxy-client
    wait_until 30 "flux-metrics-api on port $SERVER_PORT" server_up || die "$REASON"

    local a ok=true
    for a in "${APISERVICES[@]}"; do
        check "APIService $a is Available and its group routes to the server" apiservice_routes "$a" || ok=false
    done
    $ok || die "the APIServices never became usable: nothing else can pass"
    check "scripts/test.sh (discovery and node_up_count of each API through kube-apiserver)" \
        run_logged test "$root/scripts/test.sh" -n "$NS" -s "$SERVICE" -t 30 || true

    for a in "$MC_EXTERNAL" "$MC_OBJECT"; do
        minicluster "$a" | kc apply -f - >/dev/null || die "creating MiniCluster $a"
        set_status "$a" 2 || die "setting the status of MiniCluster $a"
    done
    start_bg operator operator
    hpa "$MC_EXTERNAL" "$EXTERNAL_METRIC" | kc apply -f - >/dev/null || die "creating HPA $MC_EXTERNAL"
    hpa "$MC_OBJECT" "$OBJECT_METRIC" | kc apply -f - >/dev/null || die "creating HPA $MC_OBJECT"

    check_values
    check "the server sees the user the front proxy names (impersonated e2e-reader, group e2e-readers, in its access log)" \
        sees_front_proxy_user || true
    check "kube-apiserver refuses a user without the metrics-reader binding (403 before the server)" \
        rbac_refuses_unbound_user || true
    check "a direct request without a client certificate gets a 401 Status" refuses_without_certificate || true
    check "a front-proxy-CA certificate with CN someone-else gets a 403 Status" refuses_wrong_cn || true

    hpas_follow "scenario busy, MiniClusters created at size 2" "$BUSY_WANT"
    check "the HPA controller asked the server for both metrics, as system:kube-controller-manager" \
        hpa_requests_logged || true
    scenario elastic
    hpas_follow "scenario changed to elastic: grows" "$WANT"
    scenario idle
    hpas_follow "scenario changed to idle: shrinks" "$WANT"

    sa_token "$ACCOUNT" "$WORK/sa.token" || die "$REASON"
    kubeconfig_token "$WORK/sa.kubeconfig" "$(cat "$WORK/sa.token")"
    check "--authentication-from-cluster, token kubeconfig of service account $ACCOUNT (deploy.sh's RoleBinding): front proxy and cluster client CA let in, others refused" \
        from_cluster server-sa "$WORK/sa.kubeconfig" || true
    check "--authentication-from-cluster, admin client-certificate kubeconfig: the same" \
        from_cluster server-admin "$WORK/admin.kubeconfig" || true
    check "--authentication-from-cluster, a service account without the Role binding: the server stops at start naming the Role" \
        from_cluster_refused || true

    FLUX_CMD=$(find_flux)
    if [[ $live == false ]]; then
        skip "live broker" "--no-live"
    elif [[ -z $FLUX_CMD ]]; then
        skip "live broker" "no flux on PATH (PATH=/path/to/flux-core/bin:\$PATH scripts/k8s-e2e.sh runs it)"
    else
        live_part
    fi

    check "scripts/remove.sh deletes the APIServices" removed || true
}

# run_logged NAME CMD...: CMD with its output in $WORK/logs/NAME.log; on failure the log's tail
# is the reason.
run_logged() {
    local name=$1
    shift
    "$@" >"$WORK/logs/$name.log" 2>&1 || {
        because "$* failed: $(tail -n 5 "$WORK/logs/$name.log" | tr '\n' ' ')"
        return 1
    }
}

removed() {
    run_logged remove "$root/scripts/remove.sh" -n "$NS" -s "$SERVICE" -a "$ACCOUNT" --secret || return 1
    local left
    left=$(kc get apiservices -o name | grep -E 'metrics\.k8s\.io' || true)
    [[ -z $left ]] || because "still there: $left"
}

main
