#!/usr/bin/env bash
# Install what pgharbor's tests, demo and bench need from Debian, when it is
# missing: PostgreSQL server and client tools (the sandbox runs real
# clusters), rsync and openssh-server (later backup methods and storage
# tests), GNU time (peak RSS in the bench). Does nothing when all is there.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql postgresql-contrib)
command -v rsync >/dev/null || need+=(rsync)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)   # throwaway TLS certificates (SMTP test server)
command -v lz4 >/dev/null || need+=(lz4)           # the codec tests read our lz4 frames back with the lz4 tool
if [ "${WITH_BENCH_TOOLS:-0}" = 1 ]; then command -v pgbackrest >/dev/null || need+=(pgbackrest); fi

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The sandbox runs PostgreSQL as this OS user when started as root.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
