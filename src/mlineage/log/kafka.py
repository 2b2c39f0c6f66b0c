"""The event log on Apache Kafka (``kafka://host:port[,host:port][?namespace=..&partitions=..]``),
with kafka-python.

- **Topics** are created when missing, with ``partitions`` partitions (URL parameter or
  ``MLINEAGE_KAFKA_PARTITIONS``, default 3), ``replication_factor`` (default 1) and
  ``retention.ms=-1``: the log is the source of truth, so nothing expires. ``namespace``
  prefixes every topic, group and transactional id (``<namespace>.mlineage.jobs.v1``), so
  several environments (or tests) can share a cluster; the log speaks unprefixed names.
- **Writes are transactions.** ``append`` and ``transact`` run in a Kafka transaction of an
  idempotent producer with ``acks=all``, so a batch is all or nothing and readers, which
  read ``read_committed``, never see half of one. Each commit writes a marker that takes an
  offset, so offsets have gaps (``dense_offsets = False``).
- **Consumers.** ``consumer(group=...)`` joins a real consumer group and commits offsets
  inside the producer's transaction with the group's metadata (KIP-447 fencing: a member
  that lost its partitions in a rebalance cannot commit them), with a stable
  ``transactional.id`` per instance so a restarted instance fences its predecessor at once.
  ``consumer(positions=...)`` assigns every partition by hand and seeks to the caller's
  positions on start, when partitions appear, and on ``rewind``.
- **Settings.** Every other ``MLINEAGE_KAFKA_<NAME>`` variable is passed to the kafka-python
  clients as ``<name>`` (``MLINEAGE_KAFKA_SECURITY_PROTOCOL=SASL_SSL``,
  ``MLINEAGE_KAFKA_SASL_MECHANISM=PLAIN``, ``MLINEAGE_KAFKA_SSL_CAFILE=...``); a name no
  client knows is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
import weakref
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kerrors
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaPartition

from mlineage import failpoints
from mlineage.errors import ConfigurationError, EventLogError, InDoubtError
from mlineage.log.base import (
    TOPICS,
    Consumer,
    EventLog,
    OutRecord,
    Positions,
    Record,
    StartPositions,
    TopicPartition,
    check_records,
    next_positions,
    register,
)
from mlineage.settings import instance_id, kafka_options

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3
TRANSACTION_TIMEOUT_MS = 15_000
SESSION_TIMEOUT_MS = 10_000
_OWN_OPTIONS = {"partitions", "replication_factor", "namespace"}
_ALL_CLIENT_KEYS = (
    set(KafkaProducer.DEFAULT_CONFIG)
    | set(KafkaConsumer.DEFAULT_CONFIG)
    | set(KafkaAdminClient.DEFAULT_CONFIG)
)


def _coerce(value: str) -> Any:
    low = value.strip().lower()
    if low in {"true", "false"}:
        return low == "true"
    try:
        return int(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class KafkaConfig:
    """Where the cluster is and how to talk to it (from the URL and ``MLINEAGE_KAFKA_*``)."""

    bootstrap: tuple[str, ...]
    namespace: str = ""
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    client: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> KafkaConfig:
        parts = urlsplit(url)
        if parts.scheme != "kafka" or not parts.netloc:
            raise ConfigurationError(
                f"bad Kafka log URL {url!r}: use kafka://host:port[,host:port]"
            )
        bootstrap = tuple(h.strip() for h in parts.netloc.split(",") if h.strip())
        for host in bootstrap:
            if ":" not in host:
                raise ConfigurationError(
                    f"Kafka address {host!r} in {url!r} needs a port, e.g. kafka://localhost:9092"
                )
        options = kafka_options(environ)
        options.update(dict(parse_qsl(parts.query)))
        client: dict[str, Any] = {}
        for key, value in options.items():
            if key in _OWN_OPTIONS:
                continue
            if key not in _ALL_CLIENT_KEYS:
                raise ConfigurationError(
                    f"MLINEAGE_KAFKA_{key.upper()}: not a kafka-python client setting "
                    "(see https://kafka-python.readthedocs.io/en/master/apidoc/KafkaProducer.html)"
                )
            client[key] = _coerce(value)
        try:
            partitions = int(options.get("partitions", DEFAULT_PARTITIONS))
            replication = int(options.get("replication_factor", 1))
        except ValueError as exc:
            raise ConfigurationError(
                f"MLINEAGE_KAFKA_PARTITIONS / _REPLICATION_FACTOR: {exc}"
            ) from None
        if partitions < 1 or replication < 1:
            raise ConfigurationError(
                "MLINEAGE_KAFKA_PARTITIONS and MLINEAGE_KAFKA_REPLICATION_FACTOR must be >= 1, "
                f"got {partitions} and {replication}"
            )
        namespace = options.get("namespace", "")
        return cls(bootstrap, namespace, partitions, replication, client)

    def for_client(self, cls: type, **fixed: Any) -> dict[str, Any]:
        """Settings for one kafka-python client class: ours, then the pass-through ones it
        knows."""
        known = cls.DEFAULT_CONFIG  # type: ignore[attr-defined]
        out = {k: v for k, v in self.client.items() if k in known}
        out.update(fixed)
        out["bootstrap_servers"] = list(self.bootstrap)
        return out

    def name(self, logical: str) -> str:
        return f"{self.namespace}.{logical}" if self.namespace else logical

    def logical(self, physical: str) -> str:
        prefix = f"{self.namespace}." if self.namespace else ""
        return physical.removeprefix(prefix)


def _to_record(config: KafkaConfig, r: ConsumerRecord) -> Record:
    return Record(
        topic=config.logical(r.topic),
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        headers=tuple((k, v if v is not None else b"") for k, v in (r.headers or ())),
        timestamp_ms=r.timestamp,
    )


def _unreachable(config: KafkaConfig, exc: BaseException) -> EventLogError:
    return EventLogError(
        f"cannot reach Kafka at {','.join(config.bootstrap)}: {exc}. Is the broker running? "
        "(MLINEAGE_LOG names it; `docker compose up -d kafka` starts one)"
    )


@contextlib.contextmanager
def _answering(config: KafkaConfig) -> Iterator[None]:
    """kafka-python's errors from a client call, as the EventLogError they mean here."""
    try:
        yield
    except kerrors.KafkaError as exc:
        raise _unreachable(config, exc) from exc


class KafkaEventLog(EventLog):
    kind: ClassVar[str] = "kafka"
    dense_offsets = False

    def __init__(self, url: str, environ: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.config = KafkaConfig.parse(url, environ)
        self._lock = threading.RLock()
        self._txn: Transactions | None = None
        self._meta: KafkaConsumer | None = None
        self._reader: KafkaConsumer | None = None
        self._reader_next: int | None = None
        self._admin: KafkaAdminClient | None = None
        self._known_topics: set[str] = set()
        self._pid = os.getpid()
        _OPEN_LOGS.add(self)

    # -- clients ------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._lock = threading.RLock()  # a parent's thread may have held it at the fork
        self._fork_check()

    def _fork_check(self) -> None:
        """kafka-python clients do not survive fork (their threads stay in the parent):
        a child drops the inherited ones and opens its own."""
        if os.getpid() != self._pid:
            self._txn = None
            self._meta = self._reader = None
            self._admin = None
            self._pid = os.getpid()

    def _admin_client(self) -> KafkaAdminClient:
        if self._admin is None:
            try:
                self._admin = KafkaAdminClient(
                    **self.config.for_client(KafkaAdminClient, client_id="mlineage-admin")
                )
            except kerrors.KafkaError as exc:
                raise _unreachable(self.config, exc) from exc
        return self._admin

    def ensure_topics(self, topics: Iterable[str] = TOPICS) -> None:
        """Create the topics that are missing (``retention.ms=-1``); idempotent."""
        wanted = {self.config.name(t) for t in topics} - self._known_topics
        if not wanted:
            return
        admin = self._admin_client()
        specs = {
            name: {
                "num_partitions": self.config.partitions,
                "replication_factor": self.config.replication_factor,
                "configs": {"retention.ms": "-1", "retention.bytes": "-1"},
            }
            for name in wanted
        }
        try:
            existing = set(admin.list_topics())
            missing = {k: v for k, v in specs.items() if k not in existing}
            if missing:
                result = admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
                for topic in result.get("topics", []):
                    code = topic.get("error_code", 0) if isinstance(topic, dict) else 0
                    if code not in (0, kerrors.TopicAlreadyExistsError.errno):
                        raise EventLogError(f"could not create Kafka topic {topic}")
        except kerrors.KafkaError as exc:
            raise _unreachable(self.config, exc) from exc
        self._known_topics |= wanted

    def _meta_consumer(self) -> KafkaConsumer:
        self._fork_check()
        if self._meta is None:
            self.ensure_topics()
            # partitions added to a topic show within seconds, not kafka-python's 5 minutes
            self._meta = self._new_consumer(
                group_id=None, client_id="mlineage-meta", metadata_max_age_ms=5_000
            )
        return self._meta

    def _new_consumer(self, **fixed: Any) -> KafkaConsumer:
        settings: dict[str, Any] = {
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
            "max_partition_fetch_bytes": 8 * 1024 * 1024,
            "fetch_max_bytes": 32 * 1024 * 1024,
        }
        settings.update(fixed)
        try:
            return KafkaConsumer(**self.config.for_client(KafkaConsumer, **settings))
        except kerrors.KafkaError as exc:
            raise _unreachable(self.config, exc) from exc

    def new_producer(self, transactional_id: str | None = None, **fixed: Any) -> KafkaProducer:
        """A transactional, idempotent producer with ``acks=all`` (its transactions are
        initialised: any earlier producer with the same id is fenced and its open
        transaction aborted)."""
        self.ensure_topics()
        tid = self.config.name(transactional_id or f"mlineage-producer-{uuid.uuid4()}")
        settings: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "transactional_id": tid,
            "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS,
            "linger_ms": 5,
            "batch_size": 512 * 1024,
            "max_request_size": 8 * 1024 * 1024,
            "max_block_ms": 15_000,
            "client_id": tid,
        }
        settings.update(fixed)
        try:
            producer = KafkaProducer(**self.config.for_client(KafkaProducer, **settings))
        except kerrors.KafkaError as exc:
            raise _unreachable(self.config, exc) from exc
        # kafka-python closes producers at exit with no time limit, which hangs an exiting
        # process while the broker is down; every batch here is committed synchronously, so
        # there is nothing to flush at exit: drop that hook
        producer._unregister_cleanup()
        try:
            producer.init_transactions()
        except kerrors.KafkaError as exc:
            _close_quietly(producer, timeout=0)
            raise _unreachable(self.config, exc) from exc
        return producer

    def wait_visible(self, last: Mapping[KafkaPartition, int], timeout: float = 30.0) -> None:
        """Wait until the last stable offset of each partition is past ``last[partition]``."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            try:
                ends = self._meta_consumer().end_offsets(list(last))
            except (kerrors.KafkaError, KeyError) as exc:  # metadata of a new topic pending
                log.debug("end offsets not available yet: %r", exc)
                ends = {}
            if all(ends.get(tp, 0) > offset for tp, offset in last.items()):
                return
            if time.monotonic() > deadline:
                log.warning("committed records not visible after %.0f s: %s", timeout, last)
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _transactions(self) -> Transactions:
        self._fork_check()
        if self._txn is None:
            self._txn = Transactions(self)
        return self._txn

    # -- EventLog --------------------------------------------------------------------------

    def append(self, records: Sequence[OutRecord]) -> None:
        check_records(records)
        if not records:
            return
        with self._lock:
            self.ensure_topics({r.topic for r in records} | set(TOPICS))
            self._transactions().run(records, visible=True)

    def transact(
        self, group: str, consumed: Mapping[tuple[str, int], int], produce: Sequence[OutRecord]
    ) -> None:
        check_records(produce)
        with self._lock:
            self.ensure_topics({r.topic for r in produce} | set(TOPICS))
            self._transactions().run(produce, consumed, self.config.name(group), visible=True)
        # the group's offsets, like the records, show once the commit markers are written
        deadline = time.monotonic() + 30
        for topic in {t for t, _ in consumed}:
            want = {p: o for (t, p), o in consumed.items() if t == topic}
            while any(self.committed(group, topic).get(p) != o for p, o in want.items()):
                if time.monotonic() > deadline:
                    log.warning("committed offsets of %s not visible after 30 s", group)
                    return
                time.sleep(0.005)

    def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[Record]:
        if max_records <= 0:
            return []
        with self._lock:
            self._fork_check()
            if self._reader is None:
                self.ensure_topics()
                self._reader = self._new_consumer(group_id=None, client_id="mlineage-reader")
            reader = self._reader
            tp = KafkaPartition(self.config.name(topic), partition)
            if reader.assignment() != {tp}:
                reader.assign([tp])
                self._reader_next = None
            if self._reader_next != offset:
                reader.seek(tp, offset)
            end = reader.end_offsets([tp])[tp]
            out: list[ConsumerRecord] = []
            deadline = time.monotonic() + 30
            while not out and offset < end and reader.position(tp) < end:
                if time.monotonic() > deadline:
                    raise EventLogError(f"timed out reading {topic}[{partition}] at {offset}")
                out = reader.poll(timeout_ms=200, max_records=max_records).get(tp, [])
            self._reader_next = out[-1].offset + 1 if out else None
            return [_to_record(self.config, r) for r in out]

    def partitions(self, topic: str) -> list[int]:
        with self._lock:
            meta = self._meta_consumer()
            found = meta.partitions_for_topic(self.config.name(topic))
            if not found:
                meta.topics()  # refreshes metadata
                found = meta.partitions_for_topic(self.config.name(topic))
            return sorted(found or [])

    def end_offsets(self, topic: str) -> dict[int, int]:
        """The last stable offset of each partition (``read_committed``: records of open
        transactions are not counted yet)."""
        with self._lock:
            tps = [KafkaPartition(self.config.name(topic), p) for p in self.partitions(topic)]
            ends = self._meta_consumer().end_offsets(tps)
            return {tp.partition: int(o) for tp, o in ends.items()}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        name = self.config.name(group)
        deadline = time.monotonic() + 60
        while True:
            with self._lock:
                self._fork_check()
                try:
                    offsets = self._admin_client().list_group_offsets({name: None}).get(name, {})
                    break
                except kerrors.GroupIdNotFoundError:
                    return {}
                except _RETRIABLE_COORDINATOR as exc:
                    # the group coordinator is loading (or __consumer_offsets is being
                    # created on first use): ask again shortly
                    if time.monotonic() > deadline:
                        raise EventLogError(
                            f"the group coordinator for {group} did not answer: {exc}"
                        ) from exc
                except kerrors.KafkaError as exc:
                    raise EventLogError(
                        f"could not read the positions of group {group}: {exc}"
                    ) from exc
            time.sleep(0.2)
        physical = self.config.name(topic)
        return {
            tp.partition: int(om.offset)
            for tp, om in offsets.items()
            if tp.topic == physical and om.offset >= 0
        }

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group: str | None = None,
        positions: StartPositions | None = None,
        instance: str | None = None,
        max_poll_records: int = 5000,
    ) -> Consumer:
        if (group is None) == (positions is None):
            raise ValueError("a consumer needs exactly one of group= and positions=")
        self.ensure_topics()
        if group is not None:
            return KafkaGroupConsumer(
                self, topics, group, instance or _default_instance(), max_poll_records
            )
        if positions is None:  # pragma: no cover - excluded above
            raise ValueError("positions= is required without group=")
        return KafkaAssignedConsumer(self, topics, positions, max_poll_records)

    def close(self) -> None:
        with self._lock:
            if os.getpid() != self._pid:
                self._fork_check()
                return
            if self._txn is not None:
                self._txn.close()
            for client in (self._meta, self._reader, self._admin):
                if client is not None:
                    try:
                        client.close()
                    except Exception as exc:
                        log.debug("closing a Kafka client: %r", exc)
            self._txn = None
            self._meta = self._reader = None
            self._admin = None


_OPEN_LOGS: weakref.WeakSet[KafkaEventLog] = weakref.WeakSet()


def _reset_in_child() -> None:
    for kafka_log in list(_OPEN_LOGS):
        kafka_log._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_in_child)


def _default_instance() -> str:
    return instance_id() or os.uname().nodename


_RETRIABLE_COORDINATOR = (
    kerrors.CoordinatorNotAvailableError,
    kerrors.CoordinatorLoadInProgressError,
    kerrors.NotCoordinatorError,
)
_REBALANCED = (
    kerrors.CommitFailedError,
    kerrors.IllegalGenerationError,
    kerrors.UnknownMemberIdError,
    kerrors.RebalanceInProgressError,
    kerrors.FencedInstanceIdError,
)
_FENCED = (kerrors.ProducerFencedError, kerrors.InvalidProducerEpochError)


class RebalancedError(EventLogError):
    """The group moved on while a batch was in flight: the transaction was aborted."""


class FencedError(EventLogError):
    """A newer producer with the same transactional id took over: this instance must stop
    (two instances share an ``MLINEAGE_INSTANCE_ID``). Not transient: never retried."""

    transient = False


class _StuckError(Exception):
    """A kafka-python call that waits without a time limit did not return in time."""


class Transactions:
    """A transactional producer that runs one batch per transaction. kafka-python's commit,
    abort and send-offsets wait without a time limit (and a commit begun while the broker is
    down never finishes, even once it is back), so each runs with one here; a producer that
    overran it, or whose abort failed, is dropped, and the next batch starts a new one with
    the same transactional id, which fences the old one and aborts its open transaction."""

    TIMEOUT_S = 20.0

    def __init__(
        self, owner: KafkaEventLog, transactional_id: str | None = None, *, eager: bool = False
    ) -> None:
        self.owner = owner
        self.transactional_id = transactional_id or f"mlineage-producer-{uuid.uuid4()}"
        self.producer: KafkaProducer | None = None
        if eager:
            self._producer()

    def _producer(self) -> KafkaProducer:
        if self.producer is None:
            self.producer = self.owner.new_producer(self.transactional_id)
        return self.producer

    def ensure(self) -> None:
        """Have an initialised producer (this fences any older one with the same id)."""
        self._producer()

    def _bounded(self, call: Callable[[], object], what: str) -> None:
        failure: list[BaseException] = []

        def target() -> None:
            try:
                call()
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=target, daemon=True, name=f"mlineage-kafka-{what}")
        worker.start()
        worker.join(self.TIMEOUT_S)
        if worker.is_alive():
            raise _StuckError(f"{what} did not finish within {self.TIMEOUT_S:.0f} s")
        if failure:
            raise failure[0]

    def run(
        self,
        produce: Iterable[OutRecord],
        consumed: Mapping[tuple[str, int], int] | None = None,
        group: Any = None,
        *,
        visible: bool = False,
    ) -> None:
        """Send ``produce`` and commit ``consumed`` for ``group`` (a group id, or a
        consumer's group metadata for fencing) in one transaction. Raises
        :class:`RebalancedError` when the group fenced the commit and :class:`EventLogError`
        on other failures; either way nothing was committed, except after a time-out, when
        the outcome is unknown until the next producer with this id fences this one.

        ``visible=True`` returns only once ``read_committed`` readers can see the records:
        a commit returns when the coordinator has decided it, and the partitions' commit
        markers (which move the last stable offset) follow a moment later."""
        config = self.owner.config
        producer = self._producer()
        try:
            producer.begin_transaction()
            futures = [
                producer.send(
                    config.name(r.topic), value=r.value, key=r.key, headers=list(r.headers) or None
                )
                for r in produce
            ]
            if consumed:
                offsets = {
                    KafkaPartition(config.name(t), p): OffsetAndMetadata(o, "", -1)
                    for (t, p), o in consumed.items()
                }
                self._bounded(
                    lambda: producer.send_offsets_to_transaction(offsets, group), "send-offsets"
                )
            failpoints.hit("kafka.before_commit")
            self._bounded(producer.commit_transaction, "commit")
        except _FENCED as exc:
            self._discard()
            raise FencedError(
                f"this producer was fenced by a newer one with the same transactional id "
                f"({self.transactional_id}): is a second instance running with the same "
                f"MLINEAGE_INSTANCE_ID? ({exc})"
            ) from exc
        except _StuckError as exc:
            self._discard()
            raise InDoubtError(
                f"Kafka transaction in doubt: {exc}; the next transaction fences this producer"
            ) from exc
        except Exception as exc:
            self._abort_or_discard()
            if _caused_by_rebalance(exc):
                raise RebalancedError(f"the consumer group rebalanced: {exc}") from exc
            raise EventLogError(
                f"Kafka transaction failed (nothing was committed): {exc!r}"
            ) from exc
        if visible and futures:
            # committed: from here on nothing may raise, or a caller would retry (and so
            # duplicate) a batch that is already in the log
            try:
                last: dict[KafkaPartition, int] = {}
                for future in futures:
                    meta = future.get(timeout=0)
                    tp = KafkaPartition(meta.topic, meta.partition)
                    last[tp] = max(last.get(tp, -1), meta.offset)
                self.owner.wait_visible(last)
            except Exception as exc:
                log.warning("committed, but could not wait for visibility: %r", exc)

    def _abort_or_discard(self) -> None:
        producer = self.producer
        if producer is None:
            return
        try:
            self._bounded(producer.abort_transaction, "abort")
        except Exception as exc:
            log.info("abort failed (%r); dropping the transactional producer", exc)
            self._discard()

    def _discard(self) -> None:
        if self.producer is not None:
            _close_quietly(self.producer, timeout=0)
        self.producer = None

    def close(self) -> None:
        if self.producer is not None:
            _close_quietly(self.producer)
        self.producer = None


def _caused_by_rebalance(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _REBALANCED):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _close_quietly(producer: KafkaProducer, timeout: float = 5) -> None:
    try:
        producer.close(timeout=timeout)
    except Exception as exc:
        log.debug("closing a producer: %r", exc)


def _positions_after(
    consumer: KafkaConsumer,
    config: KafkaConfig,
    records: Sequence[Record],
    reported: dict[KafkaPartition, int],
) -> dict[TopicPartition, int]:
    """The consumer's positions in the partitions of ``records`` (the last poll's): they lie
    past the last record returned and past the commit markers that follow it. Remembered
    in ``reported``."""
    out = next_positions(records)
    for topic, partition in list(out):
        tp = KafkaPartition(config.name(topic), partition)
        position = consumer.position(tp)
        if position is not None and position > out[(topic, partition)]:
            out[(topic, partition)] = int(position)
        reported[tp] = out[(topic, partition)]
    return out


def _advanced(
    consumer: KafkaConsumer,
    config: KafkaConfig,
    reported: dict[KafkaPartition, int],
    baseline: Callable[[KafkaPartition], int],
) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for tp in consumer.assignment():
        if tp not in reported:
            reported[tp] = baseline(tp)
        position = consumer.position(tp)
        if position is not None and position > reported[tp]:
            out[(config.logical(tp.topic), tp.partition)] = int(position)
            reported[tp] = int(position)  # reported once: the caller commits it
    return out


class _KafkaReader(Consumer):
    """What both Kafka consumers share: polling, the positions after a batch, the lag and
    closing. A subclass says which partitions it reads now (:meth:`_partitions`)."""

    config: KafkaConfig
    _consumer: KafkaConsumer
    _reported: dict[KafkaPartition, int]

    @abstractmethod
    def _partitions(self) -> list[KafkaPartition]:
        """The partitions this consumer reads now."""

    def _before_poll(self) -> None:
        """Called before each poll (the assigned consumer checks for new partitions)."""

    def poll(
        self, max_records: int, timeout: float = 0.0, max_bytes: int | None = None
    ) -> list[Record]:
        # max_bytes: one poll returns what the fetches brought, and those are bounded by
        # max_partition_fetch_bytes and fetch_max_bytes (KafkaConfig)
        self._before_poll()
        with _answering(self.config):
            got = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [_to_record(self.config, r) for tp in sorted(got) for r in got[tp]]

    def consumed(self, records: Sequence[Record]) -> dict[TopicPartition, int]:
        return _positions_after(self._consumer, self.config, records, self._reported)

    def _ends(self) -> dict[KafkaPartition, int]:
        tps = self._partitions()
        with _answering(self.config):
            ends = self._consumer.end_offsets(tps) if tps else {}
        return {tp: int(o) for tp, o in ends.items()}

    def lag(self) -> int:
        return sum(max(0, end - self._consumer.position(tp)) for tp, end in self._ends().items())

    def _close_consumer(self) -> None:
        try:
            self._consumer.close()
        except Exception as exc:
            log.debug("closing: %r", exc)


class KafkaGroupConsumer(_KafkaReader):
    """A member of a consumer group whose commits go through its own transactional
    producer (``<group>-<instance>``), with the group's metadata for fencing."""

    def __init__(
        self,
        owner: KafkaEventLog,
        topics: Sequence[str],
        group: str,
        instance: str,
        max_poll_records: int,
    ) -> None:
        self.owner = owner
        self.config = owner.config
        self.group = group
        self.topics = tuple(topics)
        self._consumer = owner._new_consumer(
            group_id=self.config.name(group),
            client_id=f"{group}-{instance}",
            # static membership: a restarted instance takes its partitions back at once
            # instead of waiting out its dead predecessor's session
            group_instance_id=self.config.name(f"{group}-{instance}"),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=1000,
            max_poll_records=max_poll_records,
            max_poll_interval_ms=300_000,
        )
        self._consumer.subscribe([self.config.name(t) for t in self.topics])
        self.transactional_id = f"{group}-{instance}"
        try:
            self._txn = Transactions(owner, self.transactional_id, eager=True)
        except BaseException:
            self._consumer.close()
            raise
        self._reported = {}

    def _partitions(self) -> list[KafkaPartition]:
        return list(self._consumer.assignment())

    def advanced(self) -> dict[TopicPartition, int]:
        def committed(tp: KafkaPartition) -> int:
            return int(self._consumer.committed(tp) or 0)

        with _answering(self.config):
            return _advanced(self._consumer, self.config, self._reported, committed)

    def assignment(self) -> set[TopicPartition]:
        return {(self.config.logical(tp.topic), tp.partition) for tp in self._consumer.assignment()}

    def at_end(self) -> bool:
        ends = self._ends()
        return bool(ends) and all(self._consumer.position(tp) >= e for tp, e in ends.items())

    def rewind(self) -> None:
        self._reported.clear()
        with _answering(self.config):
            for tp in self._consumer.assignment():
                committed = self._consumer.committed(tp)
                if committed is None:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, committed)

    def recover(self) -> None:
        """After a failed transaction: a producer with this instance's transactional id
        first (initialising it settles a transaction left in doubt: the coordinator
        completes or aborts it before the new epoch starts), then back to the committed
        offsets, which are now the truth."""
        self._txn.ensure()
        self.rewind()

    def transact(self, consumed: Positions, produce: Sequence[OutRecord]) -> bool:
        try:
            self._txn.run(produce, consumed, self._consumer.group_metadata())
        except RebalancedError as exc:
            log.info("%s: %s; rewinding to the committed offsets", self.transactional_id, exc)
            self.rewind()
            return False
        return True

    def close(self) -> None:
        self._txn.close()
        self._close_consumer()


class KafkaAssignedConsumer(_KafkaReader):
    """Reads every partition of ``topics`` by manual assignment from positions the caller
    keeps (the projector's, in DuckDB). It seeks to them on start, when new partitions
    appear (checked every few seconds: the single-owner form of a rebalance) and on
    :meth:`rewind`."""

    REFRESH_S = 5.0

    def __init__(
        self,
        owner: KafkaEventLog,
        topics: Sequence[str],
        positions: StartPositions,
        max_poll_records: int,
    ) -> None:
        self.owner = owner
        self.config = owner.config
        self.topics = tuple(topics)
        self._start = positions
        self._consumer = owner._new_consumer(
            group_id=None, client_id="mlineage-projector", max_poll_records=max_poll_records
        )
        self._assigned: set[KafkaPartition] = set()
        self._refreshed = 0.0
        self._reported = {}

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._refreshed < self.REFRESH_S:
            return
        self._refreshed = time.monotonic()
        with _answering(self.config):
            wanted = {
                KafkaPartition(self.config.name(t), p)
                for t in self.topics
                for p in self.owner.partitions(t)
            }
            if wanted - self._assigned or force:
                self._consumer.assign(sorted(wanted))
                self._assigned = wanted
                self._seek(sorted(wanted))

    def _seek(self, tps: Sequence[KafkaPartition]) -> None:
        logical = [(self.config.logical(tp.topic), tp.partition) for tp in tps]
        start = self._start(logical)
        for tp, key in zip(tps, logical, strict=True):
            self._consumer.seek(tp, start.get(key, 0))
            self._reported[tp] = start.get(key, 0)

    def _before_poll(self) -> None:
        self._refresh()

    def _partitions(self) -> list[KafkaPartition]:
        self._refresh()
        return sorted(self._assigned)

    def advanced(self) -> dict[TopicPartition, int]:
        return _advanced(self._consumer, self.config, self._reported, lambda tp: 0)

    def at_end(self) -> bool:
        return all(self._consumer.position(tp) >= e for tp, e in self._ends().items())

    def rewind(self) -> None:
        self._refresh(force=True)

    def close(self) -> None:
        self._close_consumer()


register("kafka", KafkaEventLog)
