#!/usr/bin/env bash
# Local Kafka (KRaft, single node) + Elasticsearch 8 on 127.0.0.1, without a Docker engine.
#   scripts/stack.sh fetch|up|down|status|logs
# With MARKETPULSE_STACK_SECURE=1 it also serves the secured setup a production cluster has: a
# SASL_SSL listener on the same broker (SCRAM-SHA-256/512 and PLAIN, TLS from a CA made here with
# openssl + the JDK's keytool) and a second Elasticsearch node with security on and TLS on HTTP.
# Credentials and the CA are written to $STATE/tls/ (credentials.env, ca.pem).
# Jars and the ES zip come from Maven Central (kept in ~/.m2 and ~/.cache/marketpulse so reruns are
# fast); data, logs and pid files live in the gitignored state folder.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${MARKETPULSE_STATE_DIR:-$ROOT/.state}"
CACHE="${MARKETPULSE_CACHE_DIR:-$HOME/.cache/marketpulse}"
KAFKA_VERSION="${MARKETPULSE_KAFKA_VERSION:-3.9.1}"
ES_VERSION="${MARKETPULSE_ES_VERSION:-8.19.7}"
KAFKA_PORT="${MARKETPULSE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${MARKETPULSE_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP="${MARKETPULSE_KAFKA_HEAP:-512m}"
ES_PORT="${MARKETPULSE_ES_PORT:-9200}"
ES_HEAP="${MARKETPULSE_ES_HEAP:-768m}"
WAIT_S="${MARKETPULSE_STACK_WAIT_S:-180}"
SECURE="${MARKETPULSE_STACK_SECURE:-0}"
KAFKA_SECURE_PORT="${MARKETPULSE_KAFKA_SECURE_PORT:-9094}"
ES_SECURE_PORT="${MARKETPULSE_ES_SECURE_PORT:-9201}"
TLS_DIR="$STATE/tls"
# A stack brought up secured stays secured until `down` (a broker restarted by `up` in between,
# e.g. by a fault test, gets its secured listener back).
[ -f "$STATE/secure" ] && SECURE=1
ES_USER="${MARKETPULSE_ES_USER:-marketpulse-es}"
JAVA_BIN="${JAVA_HOME:+$JAVA_HOME/bin/}java"

KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
KAFKA_DIR="$STATE/kafka"
ES_ZIP="$HOME/.m2/repository/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"

# Elasticsearch refuses to run as root. As root we run it as a dedicated system user, so its home
# and data must sit where that user can reach them (not under a 0700 /root).
if [ "$(id -u)" = 0 ]; then
  ES_HOME="/var/cache/marketpulse/elasticsearch-$ES_VERSION"
  ES_DATA_REAL="/var/lib/marketpulse/es-$(printf '%s' "$STATE" | sha1sum | cut -c1-12)"
else
  ES_HOME="$CACHE/elasticsearch-$ES_VERSION"
  ES_DATA_REAL="$STATE/elasticsearch"
fi
ES_DIR="$STATE/elasticsearch"
ES_SECURE_REAL="$ES_DATA_REAL-secure"

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

java_home() {
  if [ -n "${JAVA_HOME:-}" ]; then echo "$JAVA_HOME"; return; fi
  dirname "$(dirname "$(readlink -f "$(command -v java)")")"
}

fetch_kafka() {
  [ -f "$KAFKA_LIBS/.complete" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka broker jars"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central"
  rm -rf "$KAFKA_LIBS"; mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/scripts/stack/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" \
    || die "mvn could not fetch the Kafka jars"
  touch "$KAFKA_LIBS/.complete"
}

fetch_es() {
  [ -x "$ES_HOME/bin/elasticsearch" ] && return 0
  if [ ! -f "$ES_ZIP" ]; then
    command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Elasticsearch"
    log "fetching Elasticsearch $ES_VERSION (integ-test-zip) from Maven Central"
    mvn -q -B dependency:get -Dtransitive=false \
      -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
      || die "mvn could not fetch Elasticsearch $ES_VERSION"
  fi
  local tmp; tmp="$(mktemp -d)"
  unzip -q "$ES_ZIP" -d "$tmp"
  mkdir -p "$(dirname "$ES_HOME")"; rm -rf "$ES_HOME"
  mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"; rmdir "$tmp"
  chmod -R a+rX "$ES_HOME"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

make_tls() {
  # A local CA and one server certificate for 127.0.0.1/localhost, made once per state folder,
  # plus random passwords for the marketpulse user (Kafka SCRAM/PLAIN) and `elastic`.
  [ -f "$TLS_DIR/credentials.env" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed for the secured stack"
  command -v keytool >/dev/null || die "the JDK's keytool is needed for the secured stack"
  rm -rf "$TLS_DIR"; mkdir -p "$TLS_DIR"; chmod 755 "$TLS_DIR"
  local store_pw; store_pw="$(openssl rand -hex 16)"
  ( cd "$TLS_DIR" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=marketpulse local CA" \
      -keyout ca.key -out ca.pem >/dev/null 2>&1 || exit 1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr >/dev/null 2>&1 || exit 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem >/dev/null 2>&1 || exit 1
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name kafka \
      -passout "pass:$store_pw" -out kafka.keystore.p12 || exit 1
    keytool -importcert -noprompt -alias ca -file ca.pem -storetype PKCS12 \
      -keystore kafka.truststore.p12 -storepass "$store_pw" >/dev/null 2>&1 || exit 1
    rm -f server.csr server.ext ca.srl
    chmod 600 ca.key server.key kafka.keystore.p12
  ) || die "could not make the local CA and certificates"
  {
    echo "STORE_PASSWORD=$store_pw"
    echo "KAFKA_USER=marketpulse"
    echo "KAFKA_PASSWORD=$(openssl rand -hex 12)"
    echo "ES_USER=elastic"
    echo "ES_PASSWORD=$(openssl rand -hex 12)"
  } >"$TLS_DIR/credentials.env"
  chmod 600 "$TLS_DIR/credentials.env"
}

cred() { sed -n "s/^$1=//p" "$TLS_DIR/credentials.env"; }

kafka_pidfile() { echo "$KAFKA_DIR/kafka.pid"; }
es_pidfile() { echo "$ES_DIR/es.pid"; }

start_kafka() {
  local pidf; pidf="$(kafka_pidfile)"
  if pid_alive "$pidf"; then log "Kafka already running (pid $(cat "$pidf"))"; return 0; fi
  mkdir -p "$KAFKA_DIR/data"
  local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" advertised="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
  if [ "$SECURE" = 1 ]; then
    make_tls
    listeners="$listeners,SASL_SSL://127.0.0.1:$KAFKA_SECURE_PORT"
    advertised="$advertised,SASL_SSL://127.0.0.1:$KAFKA_SECURE_PORT"
  fi
  cat >"$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$KAFKA_DIR/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
EOF
  if [ "$SECURE" = 1 ]; then
    # SCRAM users live in the cluster metadata (added once the broker answers); PLAIN users here.
    cat >>"$KAFKA_DIR/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$(cred KAFKA_USER)="$(cred KAFKA_PASSWORD)";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/kafka.keystore.p12
listener.name.sasl_ssl.ssl.keystore.password=$(cred STORE_PASSWORD)
listener.name.sasl_ssl.ssl.key.password=$(cred STORE_PASSWORD)
EOF
  fi
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cid; cid="$("$JAVA_BIN" -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    "$JAVA_BIN" -Dlog4j.configuration="file:$ROOT/scripts/stack/log4j.properties" -cp "$cp" \
      kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" \
      >"$KAFKA_DIR/format.log" 2>&1 || { cat "$KAFKA_DIR/format.log" >&2; die "Kafka storage format failed"; }
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  # setsid: the broker must outlive the make/pytest process that started it.
  setsid "$JAVA_BIN" -Xms256m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$ROOT/scripts/stack/log4j.properties" \
    -cp "$cp" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$pidf"
}

es_node_config() {
  # A single-node config in $1 (data, logs, a fresh copy of the distribution's config folder):
  # HTTP on 127.0.0.1:$2, named after $3, plus the node's security lines from stdin.
  local dir="$1" port="$2" name="$3"
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  rm -rf "$dir/config"; cp -r "$ES_HOME/config" "$dir/config"
  {
    cat <<EOF
cluster.name: marketpulse-$name
node.name: $name-1
discovery.type: single-node
network.host: 127.0.0.1
http.port: $port
transport.port: $((port + 100))
path.data: $dir/data
path.logs: $dir/logs
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
    cat
  } >"$dir/config/elasticsearch.yml"
}

es_run() {
  # Runs a command as the user Elasticsearch runs as.
  if [ "$(id -u)" = 0 ]; then runuser -u "$ES_USER" -- "$@"; else "$@"; fi
}

start_es() {
  local pidf; pidf="$(es_pidfile)"
  if pid_alive "$pidf"; then log "Elasticsearch already running (pid $(cat "$pidf"))"; return 0; fi
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ]; then
    id "$ES_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
    mkdir -p "$ES_DATA_REAL"
    [ -L "$ES_DIR" ] || { rm -rf "$ES_DIR"; ln -s "$ES_DATA_REAL" "$ES_DIR"; }
  fi
  es_node_config "$ES_DATA_REAL" "$ES_PORT" local <<<"xpack.security.enabled: false"
  [ "$(id -u)" = 0 ] && chown -R "$ES_USER" "$ES_DATA_REAL"
  log "starting Elasticsearch $ES_VERSION on 127.0.0.1:$ES_PORT"
  es_run env ES_JAVA_HOME="$(java_home)" ES_PATH_CONF="$ES_DATA_REAL/config" ES_TMPDIR="$ES_DATA_REAL/tmp" \
    ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
    "$ES_HOME/bin/elasticsearch" -d -p "$ES_DATA_REAL/es.pid" \
    >"$ES_DATA_REAL/logs/stdout.log" 2>&1 </dev/null \
    || { tail -n 30 "$ES_DATA_REAL/logs/stdout.log" >&2 || true; die "Elasticsearch failed to start"; }
}

kafka_add_scram_user() {
  # Idempotent: an upsert of the same user and password.
  "$ROOT/.venv/bin/python" - "$KAFKA_PORT" "$(cred KAFKA_USER)" "$(cred KAFKA_PASSWORD)" <<'EOF' >/dev/null
import sys
from kafka import KafkaAdminClient
from kafka.admin import ScramMechanism, UserScramCredentialUpsertion
port, user, password = sys.argv[1:]
c = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=10000)
bad = {}
for m in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):  # one per request: the broker's rule
    errors = c.alter_user_scram_credentials([UserScramCredentialUpsertion(user, m, password)])
    bad.update({f"{k} {m.name}": v for k, v in (errors or {}).items() if v})
c.close()
sys.exit(f"SCRAM user not created: {bad}" if bad else 0)
EOF
}

es_secure_pidfile() { echo "$ES_SECURE_REAL/es.pid"; }

start_es_secure() {
  # A second node: security and HTTP TLS on (the integ-test distribution carries x-pack security).
  local pidf; pidf="$(es_secure_pidfile)"
  if pid_alive "$pidf"; then log "secured Elasticsearch already running (pid $(cat "$pidf"))"; return 0; fi
  make_tls
  es_node_config "$ES_SECURE_REAL" "$ES_SECURE_PORT" local-secure <<EOF
xpack.security.enabled: true
xpack.security.http.ssl.enabled: true
xpack.security.http.ssl.key: server.key
xpack.security.http.ssl.certificate: server.pem
xpack.security.http.ssl.certificate_authorities: [ca.pem]
xpack.security.authc.api_key.enabled: true
EOF
  # TLS files must sit inside the config folder (the node's security policy reads only there).
  cp "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$ES_SECURE_REAL/config/"
  [ "$(id -u)" = 0 ] && chown -R "$ES_USER" "$ES_SECURE_REAL"
  local env=(env ES_JAVA_HOME="$(java_home)" ES_PATH_CONF="$ES_SECURE_REAL/config" ES_TMPDIR="$ES_SECURE_REAL/tmp")
  # The elastic user's password, through the node's keystore (read once, at its first start).
  es_run "${env[@]}" "$ES_HOME/bin/elasticsearch-keystore" create >/dev/null 2>&1 || true
  printf '%s' "$(cred ES_PASSWORD)" | es_run "${env[@]}" "$ES_HOME/bin/elasticsearch-keystore" add -x -f bootstrap.password \
    >/dev/null 2>&1 || die "could not write the secured node's keystore"
  log "starting secured Elasticsearch $ES_VERSION on https://127.0.0.1:$ES_SECURE_PORT"
  es_run "${env[@]}" ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
    "$ES_HOME/bin/elasticsearch" -d -p "$ES_SECURE_REAL/es.pid" \
    >"$ES_SECURE_REAL/logs/stdout.log" 2>&1 </dev/null \
    || { tail -n 30 "$ES_SECURE_REAL/logs/stdout.log" >&2 || true; die "secured Elasticsearch failed to start"; }
}

es_secure_ready() {
  curl -fsS --cacert "$TLS_DIR/ca.pem" -u "$(cred ES_USER):$(cred ES_PASSWORD)" \
    "https://127.0.0.1:$ES_SECURE_PORT/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null \
    | grep -Eq '"status":"(yellow|green)"'
}

kafka_ready() {
  # A metadata round trip: the broker is up and its controller elected.
  "$ROOT/.venv/bin/python" - "$KAFKA_PORT" <<'EOF' >/dev/null 2>&1
import sys
from kafka import KafkaAdminClient
c = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{sys.argv[1]}", request_timeout_ms=3000)
c.list_topics(); c.describe_cluster(); c.close()
EOF
}

es_ready() {
  curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null \
    | grep -Eq '"status":"(yellow|green)"'
}

wait_ready() {
  local deadline=$((SECONDS + WAIT_S)) k=0 e=0 x=1
  [ "$SECURE" = 1 ] && x=0
  while [ $SECONDS -lt $deadline ]; do
    [ $k = 1 ] || { kafka_ready && k=1 && log "Kafka ready on 127.0.0.1:$KAFKA_PORT"; }
    [ $e = 1 ] || { es_ready && e=1 && log "Elasticsearch ready on 127.0.0.1:$ES_PORT"; }
    if [ $x = 0 ] && [ $k = 1 ] && es_secure_ready; then
      kafka_add_scram_user || die "could not create the Kafka SCRAM user"
      x=1; log "secured: Kafka SASL_SSL on 127.0.0.1:$KAFKA_SECURE_PORT, Elasticsearch https://127.0.0.1:$ES_SECURE_PORT (credentials: $TLS_DIR/credentials.env, CA: $TLS_DIR/ca.pem)"
    fi
    [ $k = 1 ] && [ $e = 1 ] && [ $x = 1 ] && return 0
    if [ $k = 0 ] && ! pid_alive "$(kafka_pidfile)"; then break; fi
    if [ $e = 0 ] && ! pid_alive "$(es_pidfile)" && [ -f "$(es_pidfile)" ]; then break; fi
    sleep 1
  done
  if [ $k = 0 ]; then log "Kafka did not answer metadata; last log lines:"; tail -n 30 "$KAFKA_DIR/kafka.log" >&2 || true; fi
  if [ $x = 0 ]; then log "secured Elasticsearch not ready; last log lines:"
    tail -n 30 "$ES_SECURE_REAL/logs/stdout.log" "$ES_SECURE_REAL/logs/marketpulse-local-secure.log" >&2 || true; fi
  if [ $e = 0 ]; then log "Elasticsearch health not yellow/green; last log lines:"
    tail -n 30 "$ES_DATA_REAL/logs/stdout.log" "$ES_DATA_REAL/logs/marketpulse-local.log" >&2 || true; fi
  die "stack not ready after ${WAIT_S}s"
}

stop_pid() {
  local name="$1" pidf="$2" pid
  if ! pid_alive "$pidf"; then rm -f "$pidf"; log "$name not running"; return 0; fi
  pid="$(cat "$pidf")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then log "$name did not stop in 30 s; killing"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$pidf"; log "$name stopped"
}

status() {
  local rc=0
  if pid_alive "$(kafka_pidfile)"; then
    if kafka_ready; then echo "kafka: running, pid $(cat "$(kafka_pidfile)"), 127.0.0.1:$KAFKA_PORT, answering"
    else echo "kafka: running, pid $(cat "$(kafka_pidfile)"), not answering yet"; fi
  else echo "kafka: stopped"; rc=1; fi
  if pid_alive "$(es_pidfile)"; then
    echo "elasticsearch: running, pid $(cat "$(es_pidfile)"), 127.0.0.1:$ES_PORT, health: $(curl -fsS "http://127.0.0.1:$ES_PORT/_cluster/health" 2>/dev/null | sed -E 's/.*"status":"([a-z]+)".*/\1/' || echo unreachable)"
  else echo "elasticsearch: stopped"; rc=1; fi
  if [ "$SECURE" = 1 ]; then
    if pid_alive "$(es_secure_pidfile)" && es_secure_ready && grep -q "^listeners=.*SASL_SSL" "$KAFKA_DIR/server.properties" 2>/dev/null; then
      echo "secured: Kafka SASL_SSL 127.0.0.1:$KAFKA_SECURE_PORT, Elasticsearch https://127.0.0.1:$ES_SECURE_PORT"
    else echo "secured: not running"; rc=1; fi
  fi
  return $rc
}

case "${1:-}" in
  fetch) fetch_kafka; fetch_es ;;
  up)
    fetch_kafka; fetch_es
    if [ "$SECURE" = 1 ] && pid_alive "$(kafka_pidfile)" && ! grep -q "^listeners=.*SASL_SSL" "$KAFKA_DIR/server.properties"; then
      log "Kafka runs without its secured listener: restarting it with one"
      stop_pid Kafka "$(kafka_pidfile)"
    fi
    if [ "$SECURE" = 1 ]; then mkdir -p "$STATE"; touch "$STATE/secure"; fi
    start_kafka; start_es; [ "$SECURE" = 1 ] && start_es_secure; wait_ready ;;
  down)
    stop_pid "secured Elasticsearch" "$(es_secure_pidfile)"; rm -f "$STATE/secure"
    stop_pid Elasticsearch "$(es_pidfile)"; stop_pid Kafka "$(kafka_pidfile)"
    # Nothing of this stack may outlive `down`: look for strays by their command lines.
    strays="$(pgrep -f "kafka.Kafka $KAFKA_DIR/server.properties|-Djava.io.tmpdir=$ES_DATA_REAL/tmp|-Djava.io.tmpdir=$ES_SECURE_REAL/tmp" || true)"
    [ -z "$strays" ] || die "processes still running after down: $strays"
    ;;
  status) status ;;
  wait) wait_ready ;;
  reset) "$0" down; rm -rf "$KAFKA_DIR" "$ES_DATA_REAL" "$ES_DIR" "$ES_SECURE_REAL" "$TLS_DIR" ;;
  logs) tail -n 50 "$KAFKA_DIR/kafka.log" "$ES_DATA_REAL/logs/marketpulse-local.log" ;;
  *) echo "usage: $0 fetch|up|down|status|wait|reset|logs" >&2; exit 2 ;;
esac
