# A local stand-in for python:3.11-slim, for machines that reach Debian's mirror and PyPI but
# no container registry (scripts/containers/setup.sh builds it only when the real image can
# neither be found nor pulled). Like the real image: `python` and `pip` first on PATH, and
# pip installs into its own environment (here a venv on Debian's python3).
ARG BASE=mlineage-local/debian:bookworm
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local/python \
    && /usr/local/python/bin/pip install --no-cache-dir -q --upgrade pip
# The build host's trust store: where PyPI is reached through an intercepting proxy, pip in
# the images built on this one must trust what the host trusts.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/python/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
CMD ["python3"]
