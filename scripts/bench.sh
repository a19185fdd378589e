#!/bin/sh
# pgharbor benchmark: see bench/README.md. Parameters: SCALE, REPS, TARGET_ROOT, PGHARBOR_BENCH_KEEP, ...
# e.g.  SCALE=100 REPS=5 npm run bench     or     npm run bench -- --scale 5 --reps 1
set -e
cd "$(dirname "$0")/.."
if [ ! -f packages/cli/dist/bin.cjs ] || [ ! -f packages/sandbox/dist/index.js ]; then
  echo "bench: building the project first (npm run build)" >&2
  npm run build --silent
fi
exec node bench/run.mjs "$@"
