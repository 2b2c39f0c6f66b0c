# The mlineage services (tracker, projector) and CLI, for docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home --uid 1000 mlineage \
    && mkdir -p /data && chown mlineage /data
USER mlineage
ENV MLINEAGE_HOME=/data
VOLUME /data
ENTRYPOINT ["mlineage"]
CMD ["--help"]
