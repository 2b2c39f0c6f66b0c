#!/usr/bin/env bash
# Make a container engine and the images docker-compose.yml and the tests use available on
# this machine, idempotently:
#
#   setup.sh [up]    install Docker (Debian's docker.io and docker-compose) when missing,
#                    start dockerd when none answers, and make sure these images exist:
#                      python:3.11-slim     the project image's base (Dockerfile)
#                      apache/kafka:4.1.1   the broker (docker-compose.yml, tests' containers)
#                    Each is pulled from its registry; only when that fails (no registry
#                    reachable) is a local stand-in built: a Debian root filesystem made by
#                    debootstrap, then scripts/containers/{python,kafka}.Dockerfile on it.
#   setup.sh stop    stop the dockerd this script started (never one it found running)
#   setup.sh status  say what answers and which images exist
#
# Environment:
#   MLINEAGE_CONTAINERS_STATE  where the state lives (default ~/.cache/mlineage/containers):
#                              the dockerd log and pid, the root filesystem tarball
#   MLINEAGE_DEBIAN_MIRROR     Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   MLINEAGE_CONTAINERS_REBUILD=1  build the local images again even if they exist
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STATE="${MLINEAGE_CONTAINERS_STATE:-${HOME:-/tmp}/.cache/mlineage/containers}"
MIRROR="${MLINEAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO/scripts/kafka/pom.xml" | head -n 1)"
PYTHON_IMAGE="python:3.11-slim"
KAFKA_IMAGE="apache/kafka:$KAFKA_VERSION"
DEBIAN_IMAGE="mlineage-local/debian:bookworm"
# the local stand-ins carry this label, so a rebuild never replaces a real pulled image
LABEL="dev.mlineage.local-image"

say() { echo "containers: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

install_engine() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null 2>&1 \
        || die "missing ${missing[*]} and no apt-get to install them: install Docker and docker-compose"
    [[ "$(id -u)" -eq 0 ]] || die "missing ${missing[*]}: run as root, or install them yourself"
    say "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

start_engine() {
    engine_answers && return 0
    command -v dockerd >/dev/null 2>&1 || die "no Docker engine answers and there is no dockerd"
    mkdir -p "$STATE"
    say "starting dockerd (log: $STATE/dockerd.log)"
    # --iptables=false: inside a container (or without netfilter) dockerd cannot set up NAT;
    # builds and the compose test use the host network or published ports instead
    nohup dockerd --iptables=false --pidfile "$STATE/dockerd.pid" \
        >>"$STATE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STATE/started-by-setup"
    local waited=0
    until engine_answers; do
        if ! kill -0 "$(cat "$STATE/started-by-setup")" 2>/dev/null; then
            tail -n 20 "$STATE/dockerd.log" >&2
            die "dockerd exited while starting"
        fi
        (( waited++ >= 120 )) && die "dockerd did not answer within 60s (log: $STATE/dockerd.log)"
        sleep 0.5
    done
}

stop_engine() {
    local pidfile="$STATE/started-by-setup" pid
    [[ -f "$pidfile" ]] || { say "no dockerd started by this script"; return 0; }
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid"
        local waited=0
        while kill -0 "$pid" 2>/dev/null; do
            (( waited++ >= 60 )) && { kill -KILL "$pid" 2>/dev/null || true; break; }
            sleep 0.5
        done
    fi
    rm -f "$pidfile"
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
is_local() { [[ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" == "true" ]]; }

need_build() {
    # 0 (build it) when the image is missing and cannot be pulled, or is a stand-in to rebuild
    local image="$1"
    if have_image "$image"; then
        [[ "${MLINEAGE_CONTAINERS_REBUILD:-}" == 1 ]] && is_local "$image" && return 0
        return 1
    fi
    if timeout 120 docker pull -q "$image" >/dev/null 2>&1; then
        say "pulled $image"
        return 1
    fi
    return 0
}

debian_base() {
    have_image "$DEBIAN_IMAGE" && [[ "${MLINEAGE_CONTAINERS_REBUILD:-}" != 1 ]] && return 0
    local tarball="$STATE/debian-bookworm-minbase.tar"
    if [[ ! -s "$tarball" ]]; then
        command -v debootstrap >/dev/null 2>&1 || die "no registry reachable and no debootstrap"
        local root="$STATE/rootfs.$$"
        rm -rf "$root"
        mkdir -p "$STATE"
        say "debootstrap: a minimal Debian bookworm from $MIRROR (a minute or two)"
        if ! debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$STATE/debootstrap.log" 2>&1; then
            tail -n 20 "$STATE/debootstrap.log" >&2
            rm -rf "$root"
            die "debootstrap failed (log: $STATE/debootstrap.log)"
        fi
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    say "importing $DEBIAN_IMAGE"
    docker import --change "LABEL $LABEL=true" --change 'CMD ["bash"]' "$tarball" "$DEBIAN_IMAGE" >/dev/null
}

build() {
    # build IMAGE DOCKERFILE CONTEXT
    local image="$1" dockerfile="$2" context="$3"
    say "building the local stand-in for $image"
    if ! docker build --network host --label "$LABEL=true" --build-arg "BASE=$DEBIAN_IMAGE" \
            -f "$dockerfile" -t "$image" "$context" >"$STATE/build.log" 2>&1; then
        tail -n 30 "$STATE/build.log" >&2
        die "building $image failed (log: $STATE/build.log)"
    fi
}

images() {
    if need_build "$PYTHON_IMAGE"; then
        debian_base
        local ctx
        ctx="$(mktemp -d)"
        cp "$HERE/python.Dockerfile" "$ctx/Dockerfile"
        cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
        build "$PYTHON_IMAGE" "$ctx/Dockerfile" "$ctx"
        rm -rf "$ctx"
    fi
    if need_build "$KAFKA_IMAGE"; then
        debian_base
        "$REPO/scripts/kafka/broker.sh" fetch
        local ctx
        ctx="$(mktemp -d)"
        cp "$HERE/kafka.Dockerfile" "$ctx/Dockerfile"
        cp "$HERE/kafka-run.sh" "$ctx/kafka-run.sh"
        cp -r "$("$REPO/scripts/kafka/broker.sh" libs)" "$ctx/libs"
        build "$KAFKA_IMAGE" "$ctx/Dockerfile" "$ctx"
        rm -rf "$ctx"
    fi
}

status() {
    if engine_answers; then
        say "engine: $(docker version -f '{{.Server.Version}}' 2>/dev/null) answers"
    else
        say "engine: none answers"
    fi
    local image
    for image in "$PYTHON_IMAGE" "$KAFKA_IMAGE" "$DEBIAN_IMAGE"; do
        if ! have_image "$image"; then
            say "$image: missing"
        elif is_local "$image"; then
            say "$image: local stand-in"
        else
            say "$image: from its registry"
        fi
    done
}

case "${1:-up}" in
    up) install_engine; start_engine; images; status ;;
    stop) stop_engine ;;
    status) status ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
