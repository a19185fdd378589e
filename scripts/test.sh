#!/usr/bin/env bash
# `npm test`: build, then run every test (unit, storage conformance, end to
# end against real PostgreSQL clusters started by the sandbox harness).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci
npm run build --silent
# Sandbox clusters and restores on tmpfs when there is room: the tests create
# ~1000 files per cluster and per restore, which is slow on a virtual disk.
if [ -z "${PGHARBOR_SANDBOX_DIR:-}" ] && [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt 4000000 ]; then
  export PGHARBOR_SANDBOX_DIR=/dev/shm
fi
exec npx vitest run "$@"
