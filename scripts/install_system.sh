#!/usr/bin/env bash
# OS packages the test suite needs: Java 17 + Maven (Kafka broker), clickhouse-server,
# Chromium (browser tests), curl. Installs with apt-get when running as root; otherwise
# names what is missing and stops.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v curl >/dev/null || need+=(curl)
{ [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null; } || need+=(clickhouse-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "[install] missing OS packages: ${need[*]}; as root run: apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "[install] apt-get install ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
