#!/usr/bin/env bash
# Installs the browser tests/ui.rs drives: Debian's chromium (headless), when it is missing.
# Called by .ci/run; harmless to run again. Without apt-get (not Debian/Ubuntu), it says so and
# leaves the dashboard test to print its SKIPPED line.
set -euo pipefail

for browser in chromium chromium-browser; do
    if command -v "$browser" >/dev/null 2>&1; then
        printf 'ui-deps: %s already installed: %s\n' "$browser" "$("$browser" --version 2>/dev/null || echo 'version unknown')"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ui-deps: no apt-get here; install chromium yourself, or tests/ui.rs is SKIPPED" >&2
    exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ui-deps: not root and no sudo: cannot install chromium, tests/ui.rs is SKIPPED" >&2
        exit 0
    fi
    sudo=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
# fonts-dejavu-core: legible text in the screenshots on minimal images.
"${sudo[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
printf 'ui-deps: installed %s\n' "$(chromium --version 2>/dev/null || echo chromium)"
