#!/usr/bin/env bash
# The test command: installs redis-server where it is missing (the Redis layer's tests start
# their own throwaway servers on 127.0.0.1 and fail, never skip, without one), then runs every
# test of the workspace's default members: the core, the bench crate and strata-redis.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "redis-server not found: installing it (Debian: apt-get install -y redis-server)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
  # The package starts a system service on 6379; the tests use their own servers only.
  $sudo service redis-server stop >/dev/null 2>&1 || true
fi
exec cargo test "$@"
