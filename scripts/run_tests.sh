#!/usr/bin/env bash
# `make test`: install what the suite needs from the OS, start the real services that are
# not already running, run every test (unit, integration, browser), then stop only the
# services this script started. Exit status is pytest's (a run that collects no test fails).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash scripts/install_system.sh

started=()
for service in clickhouse kafka; do
  if ! bash scripts/services.sh status "$service" | grep -q running; then started+=("$service"); fi
done
stop_started() {
  for service in "${started[@]}"; do bash scripts/services.sh down "$service" || true; done
}
trap stop_started EXIT

start=$SECONDS
bash scripts/services.sh up
echo "[test] services ready in $((SECONDS - start)) s"

# Integration tests must run against the services, never skip: make them fail loudly instead.
export TICKOPS_REQUIRE_SERVICES=1
.venv/bin/python -m pytest "$@"
