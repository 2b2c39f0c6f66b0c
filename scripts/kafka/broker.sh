#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) for tests on a
# machine with Java 17 and Maven but no Docker engine. The jars come from Maven Central (see
# pom.xml beside this script); nothing else is downloaded.
#
#   broker.sh fetch               copy the broker's jars into the cache (once; a stamp skips it)
#   broker.sh start DIR PORT      write the config, format the storage (first time) and start a broker
#                                 listening on 127.0.0.1:PORT, with everything under DIR; waits
#                                 until it is up. Run again after `stop` to restart it on the same
#                                 port with the same data.
#   broker.sh stop DIR [TIMEOUT]  SIGTERM, then SIGKILL after TIMEOUT seconds (default 30)
#   broker.sh kill DIR            SIGKILL at once (a crash)
#   broker.sh libs                print the libs directory
#
# Environment:
#   MLINEAGE_KAFKA_CACHE        cache root (default ~/.cache/mlineage/kafka); jars go to
#                               <cache>/<kafka version>/libs
#   MLINEAGE_KAFKA_HEAP_OPTS    JVM heap flags (default -Xmx384m -Xms128m)
#   MLINEAGE_KAFKA_JVM_OPTS     other JVM flags (default: serial GC, C1 only, small code cache)
#   MLINEAGE_KAFKA_START_TIMEOUT  seconds `start` waits for the broker (default 60)
#   MLINEAGE_KAFKA_WATCH_PID    if set, the broker is SIGTERMed once that process has gone
#                               (so a killed test run leaves no broker behind)
#   MLINEAGE_KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable (default false)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1)"
CACHE_ROOT="${MLINEAGE_KAFKA_CACHE:-${HOME:-/tmp}/.cache/mlineage/kafka}"
CACHE_DIR="$CACHE_ROOT/$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
STAMP="$CACHE_DIR/libs.stamp"

die() { echo "broker.sh: $*" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH: $2"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetch() {
    need java "a Kafka broker without Docker needs Java 17 or newer (apt-get install openjdk-17-jre-headless)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; then
        return 0
    fi
    need mvn "the broker's jars are fetched from Maven Central with Maven (apt-get install maven)"
    mkdir -p "$CACHE_DIR"
    # One fetch at a time per cache (parallel test workers); the second one finds the stamp.
    exec 9>"$CACHE_DIR/.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; then
        exec 9>&-
        return 0
    fi
    local tmp="$CACHE_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    echo "broker.sh: fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS" >&2
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" \
            >"$CACHE_DIR/mvn.log" 2>&1; then
        rm -rf "$tmp"
        tail -n 30 "$CACHE_DIR/mvn.log" >&2
        die "mvn could not fetch the Kafka $KAFKA_VERSION jars (is Maven Central reachable?); log: $CACHE_DIR/mvn.log"
    fi
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    pom_hash >"$STAMP"
    exec 9>&-  # unlock, and keep the broker JVM from inheriting the lock
}

classpath() {
    [[ -f "$STAMP" ]] || die "no jars in $LIBS: run '$0 fetch' first"
    local cp="" jar
    for jar in "$LIBS"/*.jar; do cp="${cp:+$cp:}$jar"; done
    printf '%s' "$cp"
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free port found"
}

# True while the process runs; a zombie (exited, not yet reaped: our own child, or an orphan under
# a pid 1 that does not reap) counts as gone.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A Kafka Uuid as text: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && { echo "$id"; return; }
    done
}

jvm_opts() {
    local dir="$1"
    # shellcheck disable=SC2206
    local heap=(${MLINEAGE_KAFKA_HEAP_OPTS:--Xmx384m -Xms128m})
    # shellcheck disable=SC2206
    local other=(${MLINEAGE_KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=64m -XX:MaxMetaspaceSize=128m -Xss512k})
    printf '%s\n' "${heap[@]}" "${other[@]}" \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$dir/log4j2.properties" \
        -Dlog4j2.disable.jmx=true \
        -Dkafka.logs.dir="$dir"
}

write_config() {
    local dir="$1" port="$2" cport="$3"
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka/broker.sh: one node that is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=${MLINEAGE_KAFKA_AUTO_CREATE_TOPICS:-false}
# Internal topics on one node: replication factor 1, and one partition each so the first
# consumer group / first transactional producer does not wait for 50 partitions to load.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Transactions whose producer died are aborted soon after transaction.timeout.ms.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
# After a crash (SIGKILL) the restarted broker cannot register until the old registration's
# session expires (default 9 s); broker and controller share the JVM, so short is safe.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
# Light on a small machine.
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
    cat >"$dir/log4j2.properties" <<EOF
status = warn
# Kafka logs its own shutdown from a shutdown hook: keep Log4j up until the JVM exits.
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/broker.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
}

running_pid() {
    # The broker's pid if it is running (and is the JVM we started for this dir).
    local dir="$1" pid
    [[ -f "$dir/broker.pid" ]] || return 1
    pid="$(cat "$dir/broker.pid")"
    [[ -n "$pid" ]] && alive "$pid" || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/server.properties" || return 1
    fi
    echo "$pid"
}

log_tail() {
    local dir="$1"
    echo "---- last lines of $dir/broker.log ----" >&2
    tail -n 40 "$dir/broker.log" >&2 2>/dev/null || true
}

start() {
    local dir="$1" port="$2" pid
    [[ "$port" =~ ^[0-9]+$ ]] || die "port must be a number, got '$port'"
    need java "a Kafka broker without Docker needs Java 17 or newer"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if pid="$(running_pid "$dir")"; then
        die "a broker already runs for $dir (pid $pid)"
    fi
    local cp
    cp="$(classpath)"

    # Keep the controller port across restarts: the quorum is configured with it.
    local cport
    if [[ -f "$dir/controller.port" ]]; then
        cport="$(cat "$dir/controller.port")"
    else
        cport="$(free_port)"
        while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
        echo "$cport" >"$dir/controller.port"
    fi
    write_config "$dir" "$port" "$cport"

    local -a opts
    mapfile -t opts < <(jvm_opts "$dir")

    if port_open "$port"; then
        die "port $port on 127.0.0.1 is already in use"
    fi

    if [[ ! -f "$dir/data/meta.properties" ]]; then
        if ! java "${opts[@]}" -cp "$cp" kafka.tools.StorageTool format \
                -t "$(cluster_id)" -c "$dir/server.properties" >>"$dir/broker.log" 2>&1; then
            log_tail "$dir"
            die "formatting the broker's storage in $dir/data failed"
        fi
    fi

    local log_start
    log_start=$(( $(stat -c %s "$dir/broker.log" 2>/dev/null || echo 0) + 1 ))
    nohup java "${opts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$dir/broker.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/broker.pid"

    if [[ -n "${MLINEAGE_KAFKA_WATCH_PID:-}" ]]; then
        local watch="$MLINEAGE_KAFKA_WATCH_PID"
        nohup bash -c '
            up() { local st=""; kill -0 "$1" 2>/dev/null || return 1
                   read -r _ _ st _ <"/proc/$1/stat" 2>/dev/null || true; [[ "$st" != Z ]]; }
            while up "$1" && up "$2"; do sleep 2; done
            if up "$2"; then kill -TERM "$2" 2>/dev/null || true; fi' watchdog "$watch" "$pid" \
            </dev/null >/dev/null 2>&1 &
    fi

    local timeout="${MLINEAGE_KAFKA_START_TIMEOUT:-60}" waited=0
    while :; do
        if ! alive "$pid"; then
            log_tail "$dir"
            rm -f "$dir/broker.pid"
            die "the broker exited while starting"
        fi
        if port_open "$port" && tail -c "+$log_start" "$dir/broker.log" \
                | grep -qE "Kafka Server started|started \(kafka.server.KafkaRaftServer\)"; then
            break
        fi
        if (( waited >= timeout * 5 )); then
            log_tail "$dir"
            stop "$dir" 5 || true
            die "the broker did not start within ${timeout}s"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    echo "127.0.0.1:$port"
}

stop() {
    local dir="$1" timeout="${2:-30}" pid
    dir="$(cd "$dir" 2>/dev/null && pwd)" || return 0
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$dir/broker.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while alive "$pid"; do
        if (( waited >= timeout * 5 )); then
            echo "broker.sh: broker (pid $pid) still up after ${timeout}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    while alive "$pid"; do sleep 0.1; done
    rm -f "$dir/broker.pid"
}

kill_now() {
    local dir="$1" pid
    dir="$(cd "$dir" 2>/dev/null && pwd)" || return 0
    if pid="$(running_pid "$dir")"; then
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$dir/broker.pid"
}

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
case "$cmd" in
    fetch) fetch ;;
    libs) echo "$LIBS" ;;
    start) [[ $# -eq 3 ]] || usage; fetch; start "$2" "$3" ;;
    stop) [[ $# -ge 2 ]] || usage; stop "$2" "${3:-30}" ;;
    kill) [[ $# -eq 2 ]] || usage; kill_now "$2" ;;
    *) usage ;;
esac
