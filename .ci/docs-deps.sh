#!/usr/bin/env bash
# Installs the programs the console blocks of README.md, docs/ and example/README.md run, which
# tests/docs.rs re-runs: curl, jq, kubectl (`kubectl get --raw` needs no cluster) and openssl.
# Called by .ci/run; harmless to run again. Without apt-get (not Debian/Ubuntu), it says so and
# leaves tests/docs.rs to skip the files that need a missing program, with a SKIPPED line.
set -euo pipefail

missing=()
for program in curl jq kubectl openssl; do
    if command -v "$program" >/dev/null 2>&1; then
        printf 'docs-deps: %s already installed: %s\n' "$program" "$(command -v "$program")"
    else
        missing+=("$program")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "docs-deps: no apt-get here; install ${missing[*]} yourself, or tests/docs.rs skips the files that need them" >&2
    exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "docs-deps: not root and no sudo: cannot install ${missing[*]}; tests/docs.rs skips the files that need them" >&2
        exit 0
    fi
    sudo=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# Each program is the package of its name, but kubectl: Debian 12 ships it in kubernetes-client,
# the Kubernetes project's apt repository as kubectl. Install whichever apt knows.
packages=()
for program in "${missing[@]}"; do
    if [[ "$program" == kubectl ]] && ! apt-cache show kubectl >/dev/null 2>&1; then
        packages+=(kubernetes-client)
    else
        packages+=("$program")
    fi
done
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${packages[@]}"
printf 'docs-deps: installed %s\n' "${packages[*]}"
