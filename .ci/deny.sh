#!/usr/bin/env bash
# cargo-deny over the workspace (deny.toml): bans, licenses and sources are blocking; advisories
# are reported, and said to be skipped when the RustSec database (cloned from github.com) cannot
# be fetched. Installs cargo-deny with cargo when it is missing. Called by .ci/run.
#
# Usage: .ci/deny.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny ${DENY_VERSION}"; then
    echo "deny: installing cargo-deny ${DENY_VERSION} (a few minutes)"
    cargo install --quiet --locked cargo-deny --version "${DENY_VERSION}"
fi
cargo deny --version

cargo deny --log-level warn check --hide-inclusion-graph bans licenses sources

advisories="$(mktemp)"
trap 'rm -f "$advisories"' EXIT
if cargo deny --log-level warn check advisories >"$advisories" 2>&1; then
    echo "advisories ok"
elif grep -q "failed to fetch advisory database" "$advisories"; then
    echo "SKIPPED: cargo deny check advisories: the RustSec advisory database (github.com) cannot be fetched from this machine"
else
    cat "$advisories"
    echo "WARNING: cargo deny check advisories found advisories (reported, not blocking: see deny.toml)"
fi
