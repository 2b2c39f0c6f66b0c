"""A real Kafka broker for the tests that need one.

``provide_broker`` finds one, in this order:

1. ``MLINEAGE_TEST_KAFKA=host:port``: a broker somebody else runs, used as is (it cannot be
   stopped or restarted from here);
2. a Kafka container through testcontainers, when a Docker engine answers (set
   ``MLINEAGE_TEST_KAFKA_NO_DOCKER=1`` to skip this step);
3. a broker run from jars (``scripts/kafka/broker.sh``: Java 17 and Maven Central only), on a
   free loopback port with its files in the test's temporary directory.

``start_own_broker`` always starts a fresh broker of the test's own (local first, else a
container), which the test may stop, restart on the same port with the same data, or kill.

Neither skips by itself: both raise ``BrokerUnavailable``; pass its reason to
``skip_or_fail``, which skips a developer's run but fails CI (``CI=true``), where a missing
broker is a broken machine, not a reason to test less.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import pytest

from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
BROKER_SH = REPO / "scripts" / "kafka" / "broker.sh"

ENV_EXTERNAL = "MLINEAGE_TEST_KAFKA"
ENV_NO_DOCKER = "MLINEAGE_TEST_KAFKA_NO_DOCKER"
ENV_IMAGE = "MLINEAGE_TEST_KAFKA_IMAGE"
KAFKA_VERSION = re.search(  # the tests' broker, from jars or in a container: one version
    r"<kafka.version>(.+?)</kafka.version>", (REPO / "scripts" / "kafka" / "pom.xml").read_text()
)
DEFAULT_IMAGE = f"apache/kafka:{KAFKA_VERSION.group(1) if KAFKA_VERSION else 'latest'}"

FETCH_TIMEOUT_S = 900.0
START_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 60.0


class BrokerUnavailable(Exception):  # noqa: N818 - reads as a condition, like pytest's Skipped
    """No broker could be provided; the message says why and what would fix it."""


class BrokerNotRestartableError(RuntimeError):
    """stop()/start()/kill() on a broker this process does not run."""


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI (CI=true), with ``reason`` (which says what is
    missing: a broker, a container engine, the SDK's venv...)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(bootstrap: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Block until kafka-python can connect to ``bootstrap`` and list its topics."""
    from kafka import KafkaAdminClient

    last: list[Exception] = []

    def answers() -> bool:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                request_timeout_ms=5000,
                client_id="mlineage-test-ready",
            )
            try:
                admin.list_topics()
            finally:
                admin.close()
        except Exception as exc:  # any failure means "not yet"
            last[:] = [exc]
            return False
        return True

    wait_until(
        answers,
        f"the broker at {bootstrap} answers",
        timeout=timeout_s,
        pause=0.5,
        on_timeout=lambda: BrokerUnavailable(
            f"the broker at {bootstrap} did not answer within {timeout_s:.0f}s: "
            f"{last[0] if last else None!r}"
        ),
    )


class Broker:
    """A Kafka broker reachable at ``bootstrap`` (host:port)."""

    kind = "external"
    restartable = False

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def stop(self) -> None:
        """Stop the broker (clean shutdown); its data stays for start()."""
        raise BrokerNotRestartableError(
            f"the {self.kind} broker at {self.bootstrap} is not run by this test process; "
            "use start_own_broker() for a test that stops or restarts the broker"
        )

    def start(self) -> None:
        """Start the broker again after stop() or kill(): same port, same data."""
        self.stop()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL): a crash."""
        self.stop()

    def close(self) -> None:
        """Stop for good and free what the broker holds; safe to call twice."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.bootstrap}>"


def _run_broker_sh(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # If this test process dies without its teardown, the broker follows it.
    env["MLINEAGE_KAFKA_WATCH_PID"] = str(os.getpid())
    try:
        return subprocess.run(
            ["bash", str(BROKER_SH), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerUnavailable(f"broker.sh {' '.join(args)} took over {timeout_s:.0f}s") from exc


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class LocalBroker(Broker):
    """A broker JVM run by scripts/kafka/broker.sh, its files under ``directory``."""

    kind = "local"
    restartable = True

    def __init__(self, directory: Path, port: int) -> None:
        super().__init__(f"127.0.0.1:{port}")
        self.directory = directory
        self.port = port
        self.log_path = directory / "broker.log"
        self._closed = False
        atexit.register(self.close)

    def start(self) -> None:
        if self._closed:
            raise BrokerNotRestartableError(f"{self!r} was closed")
        result = _run_broker_sh(
            "start", str(self.directory), str(self.port), timeout_s=START_TIMEOUT_S
        )
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"broker.sh start failed (exit {result.returncode}):\n{_tail(result.stderr)}"
            )
        wait_ready(self.bootstrap)

    def stop(self) -> None:
        result = _run_broker_sh("stop", str(self.directory), timeout_s=60.0)
        if result.returncode != 0:
            raise RuntimeError(f"broker.sh stop failed: {_tail(result.stderr)}")

    def kill(self) -> None:
        result = _run_broker_sh("kill", str(self.directory), timeout_s=30.0)
        if result.returncode != 0:
            raise RuntimeError(f"broker.sh kill failed: {_tail(result.stderr)}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        with contextlib.suppress(Exception):
            self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the broker's log, for a failing test's message."""
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""


def fetch_local() -> None:
    """Fetch the broker's jars (once per machine; later calls return at once)."""
    if shutil.which("java") is None:
        raise BrokerUnavailable(
            "no Docker engine and no 'java' on PATH: install a Java 17 JRE "
            f"to run a broker from jars, or set {ENV_EXTERNAL}=host:port"
        )
    result = _run_broker_sh("fetch", timeout_s=FETCH_TIMEOUT_S)
    if result.returncode != 0:
        raise BrokerUnavailable(
            f"fetching the Kafka jars failed (exit {result.returncode}):\n{_tail(result.stderr)}"
        )


def start_local_broker(tmp_dir: Path) -> LocalBroker:
    """A new broker from jars on a free loopback port, its files in a new dir under tmp_dir."""
    fetch_local()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    last: BrokerUnavailable | None = None
    for _ in range(3):  # the free port may be taken between the check and the broker's bind
        directory = Path(tempfile.mkdtemp(prefix="kafka-", dir=tmp_dir))
        broker = LocalBroker(directory, free_port())
        try:
            broker.start()
        except BrokerUnavailable as exc:
            last = exc
            broker.close()
            if "already in use" not in str(exc):
                break
        else:
            return broker
    assert last is not None
    raise last


def docker_available(timeout_s: float = 2.0) -> bool:
    """True if a Docker engine answers a ping within about ``timeout_s``."""
    if os.environ.get(ENV_NO_DOCKER):
        return False
    try:
        import docker  # type: ignore[import-untyped, unused-ignore]

        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _docker_container_class() -> Any:
    # testcontainers thinks it runs inside a container when /.dockerenv exists, and then
    # reaches published ports through the bridge's gateway, which a dockerd started with
    # --iptables=false (scripts/containers/setup.sh) does not route: use the host's ports.
    # Ryuk (the reaper container) is a registry image; close() removes the container instead.
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.container import DockerContainer

    return DockerContainer


class ContainerBroker(Broker):
    """A Kafka container (testcontainers), its client port bound to a fixed host port so that
    a restarted container advertises the same address. Restarting keeps the container's file
    system, and so the data."""

    kind = "container"
    restartable = True

    def __init__(self, container: Any, port: int) -> None:
        super().__init__(f"127.0.0.1:{port}")
        self._container = container
        self._closed = False

    def stop(self) -> None:
        self._container.get_wrapped_container().stop(timeout=30)

    def start(self) -> None:
        if self._closed:
            raise BrokerNotRestartableError(f"{self!r} was closed")
        self._container.get_wrapped_container().start()
        wait_ready(self.bootstrap)

    def kill(self) -> None:
        self._container.get_wrapped_container().kill()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the broker's log, for a failing test's message."""
        try:
            out, err = self._container.get_logs()
            return _tail((out + err).decode(errors="replace"), lines)
        except Exception:
            return ""


def _remove_when_gone(container_id: str) -> None:
    """If this test process dies without its teardown, the container follows it (without
    Ryuk, nothing else would remove it): a detached watcher, as broker.sh has for the JVM."""
    subprocess.Popen(
        [
            "sh",
            "-c",
            'while kill -0 "$1" 2>/dev/null; do sleep 2; done; docker rm -f "$2" >/dev/null 2>&1',
            "watch",
            str(os.getpid()),
            container_id,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_container_broker() -> ContainerBroker:
    """A new Kafka container (apache/kafka: KRaft, one node, configured like the local
    broker), its client port published on a free host port and advertised as such."""
    docker_container = _docker_container_class()
    image = os.environ.get(ENV_IMAGE, DEFAULT_IMAGE)
    port = free_port()
    container = docker_container(image).with_bind_ports(9092, port)
    for key, value in {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        # clients on the published port; the broker talks to itself (transactions) on its own
        # listener, as the published address means nothing inside the container
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093,BROKER://:9094",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},BROKER://localhost:9094",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT"
        ),
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        # one node: internal topics with one replica and one partition (as broker.sh)
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS": "1000",
        "KAFKA_BROKER_HEARTBEAT_INTERVAL_MS": "500",
        "KAFKA_BROKER_SESSION_TIMEOUT_MS": "4000",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_HEAP_OPTS": "-Xmx384m -Xms128m",
    }.items():
        container.with_env(key, value)
    try:
        container.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            container.stop()
        raise BrokerUnavailable(
            f"the Kafka container ({image}) did not start: {exc!r} (on a machine without a "
            "registry, scripts/containers/setup.sh builds the image)"
        ) from exc
    _remove_when_gone(container.get_wrapped_container().id)
    broker = ContainerBroker(container, port)
    try:
        wait_ready(broker.bootstrap, timeout_s=START_TIMEOUT_S)
    except BrokerUnavailable as exc:
        tail = broker.log_tail()
        broker.close()
        raise BrokerUnavailable(f"{exc}\n{tail}") from exc
    return broker


def provide_broker(tmp_dir: Path) -> Broker:
    """A broker for tests that only talk to it: $MLINEAGE_TEST_KAFKA, else a container when a
    Docker engine answers, else a broker from jars. Raises BrokerUnavailable."""
    external = os.environ.get(ENV_EXTERNAL, "").strip()
    if external:
        return Broker(external)
    if docker_available():
        return start_container_broker()
    return start_local_broker(tmp_dir)


def start_own_broker(tmp_dir: Path) -> Broker:
    """A fresh broker that the caller may stop(), start() on the same port and data, kill() and
    must close(): from jars when Java is here, else a container. Raises BrokerUnavailable."""
    try:
        return start_local_broker(tmp_dir)
    except BrokerUnavailable as local_exc:
        if not docker_available():
            raise
        try:
            return start_container_broker()
        except BrokerUnavailable as container_exc:
            raise BrokerUnavailable(f"{local_exc}; and {container_exc}") from container_exc


def own_broker_or_skip(tmp_dir: Path) -> Broker:
    """:func:`start_own_broker`, or the test is skipped (failed under CI) with the reason."""
    try:
        return start_own_broker(tmp_dir)
    except BrokerUnavailable as exc:
        skip_or_fail(f"no Kafka broker: {exc}")
