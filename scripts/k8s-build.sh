#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager (Kubernetes 1.20.2) for scripts/k8s-e2e.sh,
# from Debian's `kubernetes` source package with Debian's Go (1.19), into a cache outside the
# repository; nothing of Kubernetes is ever written into this checkout.
#
# Usage: scripts/k8s-build.sh [--check] [-h]
#   --check  build nothing: print the binaries' directory and exit 0 when both are there and
#            answer --version, else say how to build them and exit 3
#
# Environment:
#   K8S_CACHE  the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/flux-metrics-api/k8s): the
#              downloaded source, the unpacked GOPATH tree, the Go build cache, logs/, and the
#              result in $K8S_CACHE/bin (about 2 GB in all)
#   K8S_GO     the Go binary (default /usr/lib/go/bin/go, Debian's golang-go)
#
# With both binaries in $K8S_CACHE/bin it only prints their versions (a second or so).
# Otherwise it:
#   1. apt-get installs what is missing (golang-go, etcd-server, dpkg-dev, xz-utils, openssl);
#   2. downloads the source package with apt-get and a private deb-src list (/etc/apt is not
#      touched) and unpacks it with dpkg-source as $K8S_CACHE/gopath/src/k8s.io/kubernetes;
#   3. generates pkg/generated/openapi/zz_generated.openapi.go (upstream's `make` does; the
#      source package lacks it) with the vendored openapi-gen, over the packages
#      build/root/Makefile.generated_files selects;
#   4. replaces the vendored github.com/modern-go/reflect2 1.0.1, which crashes under Go >= 1.18
#      (SIGSEGV in mapiterinit the first time kube-apiserver encodes a custom resource), with
#      Debian's golang-github-modern-go-reflect2-dev 1.0.2, through `go build -overlay`;
#   5. builds both in GOPATH mode (GO111MODULE=off, GOPROXY=off, CGO_ENABLED=0), as Kubernetes
#      1.20 builds (module mode with -mod=vendor fails on Go 1.19).
# A cold build takes 6-10 minutes on 2 cores. Progress goes to stderr, each step's output to
# $K8S_CACHE/logs/, and the tail of a failing step's log is printed. One build at a time per
# cache (flock); a second caller waits, then finds the binaries.
set -euo pipefail

K8S_CACHE=${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flux-metrics-api/k8s}
K8S_GO=${K8S_GO:-/usr/lib/go/bin/go}
readonly SRC_PACKAGE=kubernetes
readonly SRC_UPSTREAM_VERSION=1.20.2
readonly REFLECT2_PACKAGE=golang-github-modern-go-reflect2-dev
readonly BINARIES=(kube-apiserver kube-controller-manager)
readonly APT_PACKAGES=(golang-go etcd-server dpkg-dev xz-utils openssl)
# What scripts/k8s-e2e.sh runs beside the binaries: checked even when they are cached.
readonly RUNTIME_PACKAGES=(etcd-server)
readonly DEFAULT_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
readonly DEFAULT_MIRROR=http://deb.debian.org/debian
readonly DEFAULT_SECURITY_MIRROR=http://deb.debian.org/debian-security

STEP="start"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
START_TIME=$(date +%s)

log() { printf '[k8s-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

on_exit() {
    local rc=$?
    if ((rc != 0)) && [[ $STEP != check ]]; then
        log "FAILED (exit $rc) during step: $STEP"
    fi
}
trap on_exit EXIT

# step NAME: announce a step; the name is reported if the script fails.
step() {
    STEP=$1
    log "==> $STEP"
}

# run_logged LOGNAME CMD...: run CMD with output to $LOG_DIR/LOGNAME.log; on
# failure print the log's tail and fail.
run_logged() {
    local name=$1
    shift
    local logfile="$LOG_DIR/$name.log"
    if ! "$@" >"$logfile" 2>&1; then
        log "command failed: $*"
        log "last lines of $logfile:"
        tail -n 40 "$logfile" | sed 's/^/    /' >&2
        return 1
    fi
}

# binaries_work: true if both binaries exist and answer --version.
binaries_work() {
    local b
    for b in "${BINARIES[@]}"; do
        [[ -x "$K8S_CACHE/bin/$b" ]] || return 1
        "$K8S_CACHE/bin/$b" --version >/dev/null 2>&1 || return 1
    done
}

print_versions() {
    local b
    for b in "${BINARIES[@]}"; do
        printf '%s: %s (%s)\n' "$b" "$("$K8S_CACHE/bin/$b" --version 2>&1)" "$K8S_CACHE/bin/$b"
    done
}

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# install_missing_packages PACKAGE...: apt-get install those not installed.
install_missing_packages() {
    local p missing=()
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "all needed Debian packages are installed"
        return 0
    fi
    log "installing: ${missing[*]}"
    run_logged apt-update as_root apt-get update
    run_logged apt-install as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# find_mirror SUITE: print "URI KEYRING" of the first enabled `deb` source for
# SUITE in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; nothing if none.
find_mirror() {
    local suite=$1 f out
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        if [[ $f == *.sources ]]; then
            out=$(awk -v want="$suite" '
                function flush() {
                    if (!found && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") &&
                            enabled != "no" && uris != "") {
                        split(uris, u, " "); print u[1], (signed == "" ? "-" : signed); found = 1
                    }
                    types = uris = suites = signed = ""; enabled = "yes"
                }
                BEGIN { enabled = "yes" }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
                    if (key == "types") types = $0; else if (key == "uris") uris = $0
                    else if (key == "suites") suites = $0; else if (key == "signed-by") signed = $0
                    else if (key == "enabled") enabled = tolower($0) }
                END { flush() }' "$f")
        else
            out=$(awk -v want="$suite" '
                !found && $1 == "deb" {
                    signed = "-"; i = 2
                    if ($2 ~ /^\[/) {
                        for (; i <= NF; i++) {
                            if ($i ~ /signed-by=/) { s = $i; sub(/.*signed-by=/, "", s); sub(/\]$/, "", s); signed = s }
                            if ($i ~ /\]$/) { i++; break }
                        }
                    }
                    if ($(i + 1) == want) { print $i, signed; found = 1 }
                }' "$f")
        fi
        if [[ -n $out ]]; then
            printf '%s\n' "$out"
            return 0
        fi
    done
}

# write_source_list FILE: deb/deb-src lines for bookworm, bookworm-updates and
# bookworm-security, using the mirrors this machine's apt uses.
write_source_list() {
    local file=$1 suite found uri keyring default
    : >"$file"
    for suite in bookworm bookworm-updates bookworm-security; do
        found=$(find_mirror "$suite")
        default=$DEFAULT_MIRROR
        [[ $suite == *-security ]] && default=$DEFAULT_SECURITY_MIRROR
        uri=${found%% *}
        keyring=${found#* }
        [[ -n $found ]] || uri=$default
        [[ -n $found && $keyring != "-" && -r $keyring ]] || keyring=$DEFAULT_KEYRING
        log "  $suite: $uri"
        printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite" >>"$file"
        printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite" >>"$file"
    done
}

# private_apt ARGS...: apt-get with the private source list and lists dir;
# no package cache files are written, /etc/apt is untouched.
private_apt() {
    as_root apt-get \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$APT_DIR/lists" \
        -o Dir::Cache::pkgcache= \
        -o Dir::Cache::srcpkgcache= \
        -o APT::Sandbox::User=root \
        "$@"
}

update_private_apt() {
    mkdir -p "$APT_DIR/lists/partial"
    write_source_list "$APT_DIR/sources.list"
    run_logged private-apt-update private_apt update
}

fetch_and_unpack_source() {
    local dsc version tmp
    if [[ -f $TREE/.k8s-build-unpacked ]]; then
        log "source tree already unpacked: $TREE"
        return 0
    fi
    mkdir -p "$DL_DIR"
    step "downloading Debian source package '$SRC_PACKAGE'"
    (cd "$DL_DIR" && run_logged apt-source private_apt source --download-only "$SRC_PACKAGE")
    dsc=$(find "$DL_DIR" -maxdepth 1 -name "${SRC_PACKAGE}_*.dsc" | sort -V | tail -n1)
    [[ -n $dsc ]] || die "no ${SRC_PACKAGE}_*.dsc in $DL_DIR after apt-get source"
    version=$(sed -n 's/^Version: //p' "$dsc")
    log "  got $(basename "$dsc") (version $version)"
    case $version in
        *"really$SRC_UPSTREAM_VERSION"-* | "$SRC_UPSTREAM_VERSION"-*) ;;
        *) log "WARNING: expected upstream $SRC_UPSTREAM_VERSION, got $version; the fixes below are for $SRC_UPSTREAM_VERSION" ;;
    esac

    step "unpacking $(basename "$dsc")"
    tmp="$(dirname "$TREE")/.kubernetes.unpack"
    rm -rf "$tmp" "$TREE"
    mkdir -p "$(dirname "$TREE")"
    run_logged dpkg-source dpkg-source -x "$dsc" "$tmp"
    mv "$tmp" "$TREE"
    printf '%s\n' "$version" >"$TREE/.k8s-build-unpacked"
}

# go_env CMD...: run CMD with the GOPATH-mode environment Kubernetes 1.20 builds in.
go_env() {
    env GOENV=off GOFLAGS= GO111MODULE=off GOPATH="$GOPATH_DIR" GOPROXY=off GOSUMDB=off \
        GOCACHE="$K8S_CACHE/go-build" CGO_ENABLED=0 GOOS=linux GOARCH="$GOARCH" "$@"
}

# openapi_dirs: the package dirs (relative to the tree, staging as vendor/...)
# that upstream's `make gen_openapi` feeds openapi-gen for pkg/generated/openapi
# (cache_go_dirs.sh + ALL_K8S_TAG_FILES + KUBE_OPENAPI_TAG_FILES in
# build/root/Makefile.generated_files).
openapi_dirs() {
    # `grep -l PATTERN FILES...` that is not an error when no file matches.
    # shellcheck disable=SC2016
    local grep_l='grep --color=never -l "$0" "$@" || test $? = 1'
    (
        cd "$TREE"
        find -H . -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) \
            -type f -name '*.go' -print |
            sed -e 's|^\./staging/src|vendor|' -e 's|^\./||' |
            xargs -r sh -c "$grep_l" '^// *+k8s:' |
            grep -v -e '^vendor/k8s\.io/code-generator/' -e '^vendor/k8s\.io/sample-apiserver/' |
            xargs -r sh -c "$grep_l" '+k8s:openapi-gen=' |
            xargs -r -n1 dirname |
            LC_ALL=C sort -u
    )
}

generate_openapi() {
    local out="$TREE/pkg/generated/openapi/zz_generated.openapi.go"
    local report="$LOG_DIR/openapi-violations.report"
    local known="$TREE/api/api-rules/violation_exceptions.list"
    local inputs
    if [[ -s $out && -f $TREE/.k8s-build-openapi ]]; then
        log "zz_generated.openapi.go already generated"
        return 0
    fi
    step "building the vendored openapi-gen"
    mkdir -p "$K8S_CACHE/tools"
    run_logged build-openapi-gen go_env "$K8S_GO" build -o "$K8S_CACHE/tools/openapi-gen" \
        k8s.io/kubernetes/vendor/k8s.io/kube-openapi/cmd/openapi-gen

    step "generating pkg/generated/openapi/zz_generated.openapi.go"
    inputs=$(openapi_dirs | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    [[ -n $inputs ]] || die "found no packages with +k8s:openapi-gen= tags"
    log "  $(tr ',' '\n' <<<"$inputs" | wc -l) input packages"
    rm -f "$out" "$TREE/.k8s-build-openapi"
    (cd "$TREE" && run_logged openapi-gen go_env "$K8S_CACHE/tools/openapi-gen" \
        --logtostderr \
        -i "$inputs" \
        -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi \
        -h "$TREE/vendor/k8s.io/code-generator/hack/boilerplate.go.txt" \
        -o "$GOPATH_DIR/src" \
        -r "$report")
    [[ -s $out ]] || die "openapi-gen produced no $out"
    if diff -u "$known" "$report" >"$LOG_DIR/openapi-violations.diff"; then
        log "  API rule violations match api/api-rules/violation_exceptions.list"
    else
        log "WARNING: API rule violations differ from the known list (see $LOG_DIR/openapi-violations.diff)"
    fi
    touch "$TREE/.k8s-build-openapi"
}

# prepare_reflect2_overlay: fetch Debian's reflect2 1.0.2 and write a
# `go build -overlay` file mapping the vendored reflect2 files onto it.
prepare_reflect2_overlay() {
    local deb r2src vend f name json first=1
    step "preparing reflect2 1.0.2 overlay ($REFLECT2_PACKAGE)"
    mkdir -p "$DL_DIR"
    deb=$(find "$DL_DIR" -maxdepth 1 -name "${REFLECT2_PACKAGE}_*.deb" | sort -V | tail -n1)
    if [[ -z $deb ]]; then
        (cd "$DL_DIR" && run_logged apt-download private_apt download "$REFLECT2_PACKAGE")
        deb=$(find "$DL_DIR" -maxdepth 1 -name "${REFLECT2_PACKAGE}_*.deb" | sort -V | tail -n1)
        [[ -n $deb ]] || die "apt-get download $REFLECT2_PACKAGE produced no .deb"
    fi
    log "  using $(basename "$deb")"
    rm -rf "$K8S_CACHE/reflect2"
    dpkg-deb -x "$deb" "$K8S_CACHE/reflect2"
    r2src="$K8S_CACHE/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2"
    vend="$TREE/vendor/github.com/modern-go/reflect2"
    [[ -f $r2src/reflect2.go ]] || die "no reflect2.go in $deb"
    [[ -d $vend ]] || die "no vendored reflect2 at $vend"

    json='{"Replace":{'
    # Vendored files that 1.0.2 lacks are deleted ("" in an overlay).
    for f in "$vend"/*.go "$vend"/*.s; do
        [[ -e $f ]] || continue
        name=$(basename "$f")
        if [[ ! -e $r2src/$name ]]; then
            ((first)) || json+=','
            json+="\"$f\":\"\""
            first=0
        fi
    done
    # Every 1.0.2 source file replaces (or adds) the vendored one.
    for f in "$r2src"/*.go "$r2src"/*.s; do
        [[ -e $f ]] || continue
        name=$(basename "$f")
        ((first)) || json+=','
        json+="\"$vend/$name\":\"$f\""
        first=0
    done
    json+='}}'
    printf '%s\n' "$json" >"$OVERLAY"
}

# version_ldflags: the -X flags hack/lib/version.sh would set, from the values
# `git archive` baked into the tree.
version_ldflags() {
    local commit version major minor date pkg flags=()
    commit=$(sed -n "s/^ *KUBE_GIT_COMMIT='\([0-9a-f]\{40\}\)'.*/\1/p" "$TREE/hack/lib/version.sh" | head -n1)
    version=$(sed -n "s/.*'tag: \(v[0-9][^ ,']*\)'.*/\1/p" "$TREE/hack/lib/version.sh" | head -n1)
    [[ -n $version ]] || version="v$SRC_UPSTREAM_VERSION"
    major=${version#v}
    major=${major%%.*}
    minor=${version#v*.}
    minor=${minor%%.*}
    date=$(cd "$TREE" && date -u -d "@$(dpkg-parsechangelog -STimestamp)" +%Y-%m-%dT%H:%M:%SZ)
    for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version \
        k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
        flags+=("-X $pkg.gitVersion=$version" "-X $pkg.gitMajor=$major" "-X $pkg.gitMinor=$minor"
            "-X $pkg.buildDate=$date" "-X $pkg.gitTreeState=archive")
        [[ -z $commit ]] || flags+=("-X $pkg.gitCommit=$commit")
    done
    printf '%s\n' "${flags[*]}"
}

build_binaries() {
    local ldflags outtmp="$K8S_CACHE/bin/.build" b pkgs=()
    step "building ${BINARIES[*]} (cold: 6-10 min on 2 cores; warm: seconds)"
    ldflags="-s -w $(version_ldflags)"
    for b in "${BINARIES[@]}"; do
        pkgs+=("k8s.io/kubernetes/cmd/$b")
    done
    rm -rf "$outtmp"
    mkdir -p "$outtmp"
    (cd "$TREE" && run_logged go-build go_env "$K8S_GO" build \
        -overlay "$OVERLAY" \
        -tags selinux,notest \
        -trimpath \
        -ldflags "$ldflags" \
        -o "$outtmp/" \
        "${pkgs[@]}")
    for b in "${BINARIES[@]}"; do
        [[ -x $outtmp/$b ]] || die "go build produced no $b"
        mv -f "$outtmp/$b" "$K8S_CACHE/bin/$b"
    done
    rmdir "$outtmp"
}

main() {
    local check=false
    case "${1:-}" in
        "") ;;
        --check) check=true ;;
        -h | --help) usage; return 0 ;;
        *) usage >&2; return 2 ;;
    esac

    if binaries_work; then
        if $check; then
            printf '%s\n' "$K8S_CACHE/bin"
        else
            LOG_DIR="$K8S_CACHE/logs"
            mkdir -p "$LOG_DIR"
            install_missing_packages "${RUNTIME_PACKAGES[@]}"
            print_versions
        fi
        return 0
    fi
    if $check; then
        log "no working kube-apiserver and kube-controller-manager in $K8S_CACHE/bin;" \
            "build them with: scripts/k8s-build.sh (6-10 minutes cold)"
        STEP="check"
        return 3
    fi

    mkdir -p "$K8S_CACHE"
    K8S_CACHE=$(cd -P "$K8S_CACHE" && pwd)
    LOG_DIR="$K8S_CACHE/logs"
    APT_DIR="$K8S_CACHE/apt"
    DL_DIR="$K8S_CACHE/download"
    GOPATH_DIR="$K8S_CACHE/gopath"
    TREE="$GOPATH_DIR/src/k8s.io/kubernetes"
    OVERLAY="$K8S_CACHE/reflect2-overlay.json"
    mkdir -p "$LOG_DIR" "$K8S_CACHE/bin"

    # One build at a time per cache; a second caller waits and then finds the binaries.
    exec 9>"$K8S_CACHE/.lock"
    if ! flock -n 9; then
        log "another k8s-build holds $K8S_CACHE/.lock; waiting"
        flock 9
    fi
    if binaries_work; then
        print_versions
        return 0
    fi
    log "cache: $K8S_CACHE"

    step "checking Debian packages (${APT_PACKAGES[*]})"
    install_missing_packages "${APT_PACKAGES[@]}"
    [[ -x $K8S_GO ]] || die "no Go at $K8S_GO (set K8S_GO)"
    GOARCH=$("$K8S_GO" env GOARCH)
    log "  $("$K8S_GO" version)"

    if [[ ! -f $TREE/.k8s-build-unpacked ]] ||
        ! compgen -G "$DL_DIR/${REFLECT2_PACKAGE}_*.deb" >/dev/null; then
        step "updating the private apt lists (deb + deb-src; /etc/apt untouched)"
        update_private_apt
    fi
    fetch_and_unpack_source
    generate_openapi
    prepare_reflect2_overlay
    build_binaries

    STEP="done"
    log "built in $(($(date +%s) - START_TIME)) s; cache uses $(du -sh "$K8S_CACHE" | cut -f1)"
    print_versions
}

main "$@"
