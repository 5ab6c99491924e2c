#!/usr/bin/env bash
# Start, stop and inspect the real services the tests and the headless engine use:
#   Apache Kafka (KRaft, single node, JDK 17, jars from Maven Central) and
#   Debian's clickhouse-server (18.16), each with data, logs and a pid file under
#   $TICKOPS_SERVICES_DIR (default ./.services). Idempotent: `up` leaves a running
#   service alone, `down` stops only what this script started (pid files).
#
#   scripts/services.sh up|down|status [kafka|clickhouse]
#
# Ports (env): TICKOPS_KAFKA_PORT=9092 TICKOPS_KAFKA_CONTROLLER_PORT=9093
#              TICKOPS_CH_TCP_PORT=9000 TICKOPS_CH_HTTP_PORT=8123 TICKOPS_CH_INTERSERVER_PORT=9009
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${TICKOPS_SERVICES_DIR:-$ROOT/.services}
CACHE=${TICKOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tickops}
PYTHON=${TICKOPS_PYTHON:-$ROOT/.venv/bin/python}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
KAFKA_LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
KAFKA_PORT=${TICKOPS_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${TICKOPS_KAFKA_CONTROLLER_PORT:-9093}
CH_TCP_PORT=${TICKOPS_CH_TCP_PORT:-9000}
CH_HTTP_PORT=${TICKOPS_CH_HTTP_PORT:-8123}
CH_INTERSERVER_PORT=${TICKOPS_CH_INTERSERVER_PORT:-9009}
WAIT_S=${TICKOPS_SERVICES_WAIT_S:-90}

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop_pidfile NAME PIDFILE
  local name=$1 pidfile=$2 pid
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; log "$name: not running"; return 0; fi
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "$name: still alive after 30 s, sending SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
  log "$name: stopped"
}

# ---------------------------------------------------------------- Kafka
kafka_dir() { echo "$STATE/kafka"; }

kafka_fetch() {
  if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven) to fetch the Kafka broker"
  log "kafka: fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies from Maven Central (first run only)"
  local tmp="$KAFKA_LIBS.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >&2 \
    || die "kafka: maven could not fetch the broker jars (see output above)"
  rm -rf "$KAFKA_LIBS"; mv "$tmp" "$KAFKA_LIBS"
}

kafka_java() {  # kafka_java MAINCLASS ARGS...: replaces the calling (sub)shell, so call it in ( )
  local dir; dir=$(kafka_dir)
  exec java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_render() {
  local dir; dir=$(kafka_dir)
  mkdir -p "$dir/logs" "$dir/data"
  cat > "$dir/server.properties" <<EOF
# Rendered by scripts/services.sh: single-node KRaft broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
EOF
}

kafka_up() {
  local dir; dir=$(kafka_dir)
  if pid_alive "$dir/kafka.pid"; then log "kafka: already running (pid $(cat "$dir/kafka.pid"))"; kafka_wait; return 0; fi
  command -v java >/dev/null || die "java not found: Kafka needs a JDK 17 (apt-get install openjdk-17-jre-headless)"
  kafka_fetch
  kafka_render
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$dir/logs/format.log")
    log "kafka: formatting storage with cluster id $cluster_id"
    ( kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" ) \
      >>"$dir/logs/format.log" 2>&1 || die "kafka: storage format failed, see $dir/logs/format.log"
  fi
  log "kafka: starting broker on 127.0.0.1:$KAFKA_PORT (log: $dir/logs/server.log)"
  ( kafka_java kafka.Kafka "$dir/server.properties" ) >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$dir/kafka.pid"
  kafka_wait
}

kafka_wait() {
  local dir; dir=$(kafka_dir)
  [ -x "$PYTHON" ] || PYTHON=python3
  if ! "$PYTHON" "$ROOT/scripts/wait_for_kafka.py" "127.0.0.1:$KAFKA_PORT" "$WAIT_S" "$dir/kafka.pid"; then
    die "kafka: broker did not answer a metadata request on 127.0.0.1:$KAFKA_PORT within ${WAIT_S}s; see $dir/logs/server.log and $dir/logs/stdout.log"
  fi
  log "kafka: ready on 127.0.0.1:$KAFKA_PORT"
}

kafka_down() { stop_pidfile kafka "$(kafka_dir)/kafka.pid"; }

kafka_status() {
  local dir; dir=$(kafka_dir)
  if pid_alive "$dir/kafka.pid"; then echo "kafka: running pid $(cat "$dir/kafka.pid") port $KAFKA_PORT"; else echo "kafka: stopped"; fi
}

# ---------------------------------------------------------------- ClickHouse
ch_dir() { echo "$STATE/clickhouse"; }

ch_install() {
  if [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    die "clickhouse-server is not installed; as root run: apt-get update && apt-get install -y clickhouse-server"
  fi
  log "clickhouse: installing Debian's clickhouse-server with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >&2 \
    || die "clickhouse: apt-get install clickhouse-server failed"
}

ch_binary() { if [ -x /usr/sbin/clickhouse-server ]; then echo /usr/sbin/clickhouse-server; else command -v clickhouse-server; fi; }

ch_render() {
  local dir; dir=$(ch_dir)
  mkdir -p "$dir/data/tmp" "$dir/data/user_files" "$dir/data/format_schemas" "$dir/logs" "$dir/conf"
  sed -e "s#@LOG_DIR@#$dir/logs#g" -e "s#@DATA_DIR@#$dir/data#g" -e "s#@CONF_DIR@#$dir/conf#g" \
      -e "s#@TCP_PORT@#$CH_TCP_PORT#g" -e "s#@HTTP_PORT@#$CH_HTTP_PORT#g" \
      -e "s#@INTERSERVER_PORT@#$CH_INTERSERVER_PORT#g" \
      "$ROOT/scripts/clickhouse/config.xml.in" > "$dir/conf/config.xml"
  cp "$ROOT/scripts/clickhouse/users.xml" "$dir/conf/users.xml"
}

ch_up() {
  local dir; dir=$(ch_dir)
  if pid_alive "$dir/clickhouse.pid"; then log "clickhouse: already running (pid $(cat "$dir/clickhouse.pid"))"; ch_wait; return 0; fi
  ch_install
  ch_render
  log "clickhouse: starting on 127.0.0.1:$CH_TCP_PORT (http $CH_HTTP_PORT; log: $dir/logs/clickhouse-server.log)"
  nohup "$(ch_binary)" --config-file="$dir/conf/config.xml" >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$dir/clickhouse.pid"
  ch_wait
}

ch_wait() {
  local dir; dir=$(ch_dir)
  local deadline=$((SECONDS + WAIT_S))
  while [ $SECONDS -lt $deadline ]; do
    if [ "$(curl -s --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%201" 2>/dev/null)" = "1" ]; then
      log "clickhouse: ready (SELECT 1 answered)"; return 0
    fi
    pid_alive "$dir/clickhouse.pid" || die "clickhouse: server exited; see $dir/logs/clickhouse-server.err.log and $dir/logs/stdout.log"
    sleep 0.5
  done
  die "clickhouse: no answer to SELECT 1 on 127.0.0.1:$CH_HTTP_PORT within ${WAIT_S}s; see $dir/logs/clickhouse-server.err.log"
}

ch_down() { stop_pidfile clickhouse "$(ch_dir)/clickhouse.pid"; }

ch_status() {
  local dir; dir=$(ch_dir)
  if pid_alive "$dir/clickhouse.pid"; then echo "clickhouse: running pid $(cat "$dir/clickhouse.pid") tcp $CH_TCP_PORT http $CH_HTTP_PORT"; else echo "clickhouse: stopped"; fi
}

# ---------------------------------------------------------------- main
action=${1:-}
which=${2:-all}
case "$which" in all|kafka|clickhouse) ;; *) die "unknown service '$which' (kafka, clickhouse)";; esac
run() { # run ACTION SERVICE
  case "$2" in kafka) "kafka_$1";; clickhouse) "ch_$1";; esac
}
case "$action" in
  up|down|status)
    mkdir -p "$STATE"
    if [ "$which" = all ]; then run "$action" clickhouse; run "$action" kafka; else run "$action" "$which"; fi ;;
  *) echo "usage: $0 up|down|status [kafka|clickhouse]" >&2; exit 2 ;;
esac
