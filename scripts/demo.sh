#!/usr/bin/env bash
# `npm run demo`: the main job on the embedded default. Installs what is
# missing, builds, then backs up a sandbox PostgreSQL into a local posix
# repository, restores it, starts it and compares the data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
[ -d node_modules ] || npm ci
npm run build --silent
exec node packages/cli/dist/bin.cjs demo "$@"
