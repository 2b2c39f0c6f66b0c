#!/bin/sh
# Entry point of the local Kafka image (kafka.Dockerfile): the real apache/kafka image's
# contract, reduced to what a single KRaft node needs.
#   KAFKA_FOO_BAR=x      -> foo.bar=x   (as in the real image: ___ -> '-', __ -> '_')
#   CLUSTER_ID           formats the log directory on first start (a fixed default otherwise)
#   KAFKA_HEAP_OPTS      JVM heap (default -Xmx512m -Xms256m)
set -eu
config=/opt/kafka/config/server.properties
: >"$config"
env | LC_ALL=C sort | while IFS='=' read -r name value; do
    case "$name" in
        KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_TOOLS_OPTS|KAFKA_JVM_PERFORMANCE_OPTS) continue ;;
        KAFKA_*) ;;
        *) continue ;;
    esac
    key="$(printf '%s' "${name#KAFKA_}" | tr 'A-Z' 'a-z' \
        | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')"
    printf '%s=%s\n' "$key" "$value" >>"$config"
done
# the real image's defaults for a single node, where the environment says nothing
grep -q '^log.dirs=' "$config" || echo "log.dirs=/var/lib/kafka/data" >>"$config"
grep -q '^process.roles=' "$config" || cat >>"$config" <<DEFAULTS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
DEFAULTS
cat >/opt/kafka/config/log4j2.properties <<'LOG'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
LOG
opts="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseSerialGC -Djava.awt.headless=true"
opts="$opts -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties ${KAFKA_OPTS:-}"
logdir="$(sed -n 's/^log.dirs=//p' "$config" | cut -d, -f1)"
if [ ! -f "$logdir/meta.properties" ]; then
    # shellcheck disable=SC2086
    java $opts -cp "/opt/kafka/libs/*" kafka.tools.StorageTool format --ignore-formatted \
        -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$config"
fi
# shellcheck disable=SC2086
exec java $opts -cp "/opt/kafka/libs/*" kafka.Kafka "$config"
