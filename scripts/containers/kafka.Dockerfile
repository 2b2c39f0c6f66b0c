# A local stand-in for apache/kafka (same version as the tests' broker: scripts/kafka/pom.xml),
# for machines that reach Debian's mirror and Maven Central but no container registry.
# scripts/containers/setup.sh builds it only when the real image can neither be found nor
# pulled. It keeps the real image's interface, as docker-compose.yml and the tests use it:
# KAFKA_* variables become server.properties (KAFKA_FOO_BAR -> foo.bar), CLUSTER_ID formats
# the storage on first start, the tools are under /opt/kafka/bin, and the log goes to stdout.
ARG BASE=mlineage-local/debian:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 1000 --home-dir /opt/kafka appuser \
    && mkdir -p /opt/kafka/bin /opt/kafka/config /var/lib/kafka/data \
    && chown appuser /var/lib/kafka/data /opt/kafka/config
COPY libs /opt/kafka/libs
COPY kafka-run.sh /etc/kafka/docker/run
RUN set -e; cd /opt/kafka/bin; \
    for tool in kafka-broker-api-versions:org.apache.kafka.tools.BrokerApiVersionsCommand \
                kafka-topics:org.apache.kafka.tools.TopicCommand \
                kafka-consumer-groups:org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
                kafka-storage:kafka.tools.StorageTool; do \
        name="${tool%%:*}"; main="${tool#*:}"; \
        printf '#!/bin/sh\nexec java ${KAFKA_TOOLS_OPTS:--Xmx128m -XX:TieredStopAtLevel=1} -cp "/opt/kafka/libs/*" %s "$@"\n' \
            "$main" > "$name.sh"; \
        chmod 755 "$name.sh"; \
    done; \
    chmod 755 /etc/kafka/docker/run
USER appuser
EXPOSE 9092
CMD ["/etc/kafka/docker/run"]
