#!/usr/bin/env bash
# Vendors the browser libraries from the npm registry, without a build step:
#   static/vendor/chartjs/      chart.umd.js (minified UMD build), LICENSE.md, VERSION
#   tests/browser/vendor/       axe.min.js (the accessibility checker the browser tests inject),
#                               LICENSE-axe-core.txt, VERSION-axe-core
# Run from anywhere:  bash static/vendor/install.sh     (needs npm; nothing else is installed)
# Bump a version here, rerun, review the diff, commit the vendored files.
set -euo pipefail
CHARTJS_VERSION="4.5.1"
AXE_VERSION="4.11.0"

root="$(cd "$(dirname "$0")/../.." && pwd)"  # the repository
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "chart.js@${CHARTJS_VERSION}" "axe-core@${AXE_VERSION}" >/dev/null

mkdir chartjs axe
tar -xzf "chart.js-${CHARTJS_VERSION}.tgz" -C chartjs
tar -xzf "axe-core-${AXE_VERSION}.tgz" -C axe

dest="$root/static/vendor/chartjs"
mkdir -p "$dest"
cp chartjs/package/dist/chart.umd.min.js "$dest/chart.umd.js"  # the minified UMD build
cp chartjs/package/LICENSE.md "$dest/LICENSE.md"
echo "chart.js ${CHARTJS_VERSION} (npm), dist/chart.umd.min.js, MIT" > "$dest/VERSION"

dest="$root/tests/browser/vendor"
mkdir -p "$dest"
cp axe/package/axe.min.js "$dest/axe.min.js"
cp axe/package/LICENSE "$dest/LICENSE-axe-core.txt"
echo "axe-core ${AXE_VERSION} (npm), axe.min.js, MPL-2.0" > "$dest/VERSION-axe-core"
echo "vendored chart.js ${CHARTJS_VERSION} and axe-core ${AXE_VERSION}"
