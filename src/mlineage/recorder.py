"""The producer API: what training scripts and custom steps call to publish lineage.

Every call fills in the envelope (``event_id``, ``occurred_at``, ``account_id``, ``region``,
``producer``), validates the whole event with the models and only then appends it, so
invalid input raises :class:`EventValidationError` before anything is written.
"""

from __future__ import annotations

import collections
import logging
import math
import signal
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import Any, SupportsFloat

from pydantic import BaseModel, ValidationError

from mlineage import __version__, arns
from mlineage.arns import entity_key
from mlineage.errors import EventValidationError
from mlineage.events.codec import (
    encode,
    parse_json,
    validate_record,
    validation_error,
    wrap_openlineage,
)
from mlineage.events.models import (
    MAX_METRIC_POINTS,
    SOURCE_EVENT_TYPES,
    AnyEvent,
    EndpointCreated,
    EntityDeleted,
    EntityUpserted,
    JobCreated,
    JobStatusChanged,
    JobStatusChangedPayload,
    MetricPoint,
    ModelPackageCreated,
    OpenLineageEventReceived,
    canonical_time,
)
from mlineage.events.openlineage import DatasetEvent, RunEvent, looks_like_openlineage
from mlineage.log.base import (
    TOPIC_ENTITIES,
    TOPIC_JOBS,
    TOPIC_OPENLINEAGE,
    EventLog,
    OutRecord,
    open_log,
)
from mlineage.log.spool import SpooledLog, tcp_reachable
from mlineage.settings import Settings

PRODUCER = f"mlineage-python/{__version__}"

log = logging.getLogger("mlineage.recorder")

DataRefs = Sequence[Mapping[str, Any]] | Mapping[str, str]


def _refs(value: DataRefs | None) -> list[dict[str, Any]]:
    """Inputs/outputs as a list of ``{name, uri[, artifact_type]}``, or a ``{name: uri}`` map."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{"name": k, "uri": v} for k, v in value.items()]
    return [dict(v) for v in value]


def _limit(reason: str | None) -> str | None:
    """A failure reason cut to what the event holds (1024 characters)."""
    return None if reason is None else reason[:1024]


def _as_json_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def complete(
    record: Mapping[str, Any], settings: Settings, producer: str | None = PRODUCER
) -> dict[str, Any]:
    """Fill the envelope fields a draft event may leave out (never overwriting given ones)."""
    out = dict(record)
    out.setdefault("event_id", str(uuid.uuid4()))
    out.setdefault("schema_version", 1)
    out.setdefault("occurred_at", canonical_time(datetime.now(UTC)))
    out.setdefault("account_id", settings.account_id)
    out.setdefault("region", settings.region)
    if producer is not None:
        out.setdefault("producer", producer)
    return out


def route(event: AnyEvent) -> OutRecord:
    """The topic and key of an event: source events on the jobs topic keyed by the job or
    resource ARN, OpenLineage events on theirs keyed as the OpenLineage client's Kafka
    transport keys them (``run:``/``job:`` namespace/name of the job, ``dataset:`` ...), entity
    events on the entities topic keyed by the entity key."""
    if isinstance(event, OpenLineageEventReceived):
        return OutRecord(TOPIC_OPENLINEAGE, openlineage_key(event).encode(), encode(event))
    if event.event_type in SOURCE_EVENT_TYPES:
        return OutRecord(TOPIC_JOBS, _source_key(event).encode(), encode(event))
    entity = event.payload.entity if isinstance(event, EntityUpserted) else event.payload
    key = entity_key(entity, event.account_id, event.region)
    return OutRecord(TOPIC_ENTITIES, key.encode(), encode(event))


def openlineage_key(event: OpenLineageEventReceived) -> str:
    ol = event.payload.event
    if isinstance(ol, DatasetEvent):
        return f"dataset:{ol.dataset.namespace}/{ol.dataset.name}"
    prefix = "run" if isinstance(ol, RunEvent) else "job"
    return f"{prefix}:{ol.job.namespace}/{ol.job.name}"


def _source_key(event: AnyEvent) -> str:
    r, a = event.region, event.account_id
    if isinstance(event, JobCreated | JobStatusChanged):
        p = event.payload
        return arns.job_identity(r, a, p.job_type, p.job_name, p.job_arn)[1]
    if isinstance(event, ModelPackageCreated):
        m = event.payload
        return m.model_package_arn or arns.model_package_arn(
            r, a, m.model_package_group_name, m.version
        )
    if not isinstance(event, EndpointCreated):
        raise TypeError(f"not a source event: {event.event_type}")
    return event.payload.endpoint_arn or arns.endpoint_arn(r, a, event.payload.endpoint_name)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a :meth:`Recorder.job` block ran in the main thread: raised there
    so the block unwinds (its ``finally`` clauses run) and the job ends ``Stopped``. A
    :class:`KeyboardInterrupt`, so ``except Exception`` does not swallow it and, uncaught, it
    ends the program as Ctrl-C does."""


class JobRun:
    """Handed out by :meth:`Recorder.job`: add outputs and metrics as the job produces them.

    Each is checked when added, against the same model the job's final ``JobStatusChanged``
    is validated with, so a bad value raises :class:`EventValidationError` naming the field
    at the call that added it (and is not kept), never at the end of the job."""

    def __init__(self, created: JobCreated) -> None:
        p = created.payload
        self.job_type: str = p.job_type
        self.job_name: str = p.job_name
        self.trial_component_arn: str = arns.trial_component_arn(
            created.region,
            created.account_id,
            arns.job_trial_component_name(p.job_type, p.job_name),
        )
        """The ARN of the trial component the auto-tracker derives for this job."""
        self.outputs: list[dict[str, Any]] = []
        self.metrics: dict[str, float] = {}
        """Each metric's last value (what :meth:`metric` recorded, or set here directly)."""
        self._series: dict[str, _Series] = {}

    def output(self, name: str, uri: str, artifact_type: str | None = None) -> None:
        """An output of the job (an artifact ``Produced`` by its trial component; its ARN is
        :meth:`Recorder.artifact_arn` of ``uri``). Default type: SageMaker's for the job."""
        ref: dict[str, Any] = {"name": name, "uri": uri}
        if artifact_type is not None:
            ref["artifact_type"] = artifact_type
        self._check(self.payload("Completed", outputs=[*self.outputs, ref]))
        self.outputs.append(ref)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record a value of a metric (a finite number: NaN and infinity are refused), at a
        training ``step`` if given. Call it as often as the job produces values: the job
        ends with SageMaker's summary of each metric (Min, Max, Avg, StdDev, Count, Last)
        and its per-step values (the last :data:`MAX_METRIC_POINTS` of them, each with its
        time)."""
        number = _number(value)
        others = {n: 0.0 for n in self.metrics if n != name}
        self._check(self.payload("Completed", outputs=[], metrics={**others, name: number}))
        if not isinstance(number, float):  # the model refuses every non-float: a backstop
            raise TypeError(f"metric {name!r}: {value!r} is not a number")
        point: dict[str, Any] = {"value": number}
        if step is not None:
            point["step"] = step
        point["timestamp"] = canonical_time(datetime.now(UTC))
        try:
            MetricPoint.model_validate(point, strict=False)
        except ValidationError as exc:
            raise validation_error(exc, f"metric {name!r}") from exc
        self._series.setdefault(name, _Series()).add(number, point)
        self.metrics[name] = number

    def summaries(self) -> dict[str, object]:
        """What the job's end publishes as its metrics: the summary of each metric recorded
        with :meth:`metric`, the value itself of one set in :attr:`metrics` directly."""
        out: dict[str, object] = {}
        for name, last in self.metrics.items():
            series = self._series.get(name)
            recorded = series is not None and series.points[-1]["value"] == last
            out[name] = series.summary(last) if series is not None and recorded else last
        return out

    def payload(
        self,
        status: str,
        failure_reason: str | None = None,
        *,
        outputs: list[dict[str, Any]] | None = None,
        metrics: Mapping[str, object] | None = None,
    ) -> dict[str, Any]:
        """The payload of the ``JobStatusChanged`` that ends this job with ``status``."""
        payload: dict[str, Any] = {
            "job_type": self.job_type,
            "job_name": self.job_name,
            "status": status,
            "outputs": list(self.outputs if outputs is None else outputs),
            "metrics": self.summaries() if metrics is None else dict(metrics),
        }
        if failure_reason is not None:
            payload["failure_reason"] = failure_reason
        return payload

    @staticmethod
    def _check(payload: Mapping[str, Any]) -> None:
        try:
            JobStatusChangedPayload.model_validate(payload)
        except ValidationError as exc:
            raise validation_error(exc, "JobStatusChanged") from exc


class _Series:
    """A metric's running summary (Welford's mean and variance) and its last points."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.points: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_METRIC_POINTS)

    def add(self, value: float, point: dict[str, Any]) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.low, self.high = min(self.low, value), max(self.high, value)
        self.points.append(point)

    def summary(self, last: object) -> dict[str, Any]:
        avg = min(max(self.mean, self.low), self.high)  # rounding never leaves [min, max]
        return {
            "count": self.count,
            "min": self.low,
            "max": self.high,
            "avg": avg,
            "std_dev": math.sqrt(max(self.m2, 0.0) / self.count),
            "last": last,
            "values": list(self.points),
        }


def _number(value: object) -> object:
    """A metric value as the event holds it: a float for anything that converts to one (an
    int, a numpy or torch scalar, a Decimal); anything else (bool, str, None, an array of
    several values) as it is, for the model to refuse."""
    if isinstance(value, SupportsFloat) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Terminated):
        return "Stopped by SIGTERM"
    if isinstance(exc, KeyboardInterrupt):
        return "Stopped by KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}"


class _SigtermStops:
    """While a job's block runs in the main thread, SIGTERM raises :class:`Terminated` there
    (when nothing else handles SIGTERM); while the job's end is recorded it waits, and is
    delivered again, to the previous (default) handler, once the end is recorded."""

    def __init__(self) -> None:
        self._installed = False
        self._running = False
        self._pending = False

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # someone (an outer job, the framework) handles SIGTERM already
        self._running = True
        signal.signal(signal.SIGTERM, self._handle)
        self._installed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._running:
            self._running = False  # one Terminated per block; a second SIGTERM waits
            raise Terminated
        self._pending = True

    def hold(self) -> None:
        """The block has ended: from now on SIGTERM waits until :meth:`stop`."""
        self._running = False

    def stop(self) -> None:
        if not self._installed:
            return
        self._installed = False
        if signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self._pending:
            signal.raise_signal(signal.SIGTERM)


class Recorder:
    """Publishes lineage events to the configured log (embedded SQLite by default).

    With Kafka (``MLINEAGE_LOG=kafka://...``) every publish is written to a local spool
    first and forwarded by a background thread (:mod:`mlineage.log.spool`): publishing never
    blocks on the network, and while Kafka is down events wait on disk and go out in order
    when it answers. :meth:`flush` waits for them; :meth:`close` and interpreter exit flush
    for up to 10 s."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        log: EventLog | None = None,
        producer: str = PRODUCER,
    ) -> None:
        self.settings = settings or Settings.load()
        self._log = log
        self._owns_log = log is None
        self.producer = producer

    @property
    def log(self) -> EventLog:
        if self._log is None:
            url = self.settings.log_url
            if url.startswith("kafka://"):
                hosts = url.removeprefix("kafka://").split("?", 1)[0].split(",")
                self._log = SpooledLog(
                    lambda: open_log(url),
                    self.settings.spool_dir,
                    describe=f"Kafka ({url})",
                    target_url=url,
                    reachable=tcp_reachable(hosts),
                )
            else:
                self._log = open_log(url)
        return self._log

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything published is in the log (Kafka: forwarded from the spool);
        False when ``timeout`` ran out first (the rest stays spooled: nothing is lost)."""
        if isinstance(self._log, SpooledLog):
            return self._log.flush(timeout)
        return True

    # -- generic -------------------------------------------------------------------------------

    def build(self, event_type: str, payload: Mapping[str, Any], **envelope: Any) -> AnyEvent:
        """Complete and validate an event without publishing it."""
        draft = {"event_type": event_type, "payload": payload, **envelope}
        return validate_record(complete(draft, self.settings, self.producer))

    def publish(self, event: AnyEvent | Mapping[str, Any]) -> AnyEvent:
        """Validate and append one event (a model, or a draft dict whose envelope is filled)."""
        return self.publish_many([event])[0]

    def publish_many(self, events: Sequence[AnyEvent | Mapping[str, Any]]) -> list[AnyEvent]:
        """Validate every event, then append them all in one atomic write (all or nothing).
        A bare OpenLineage event (a dict) is published as :meth:`openlineage` does."""
        valid: list[AnyEvent] = []
        for e in events:
            if isinstance(e, BaseModel):
                valid.append(e)
            elif looks_like_openlineage(e):
                s = self.settings
                valid.append(
                    validate_record(wrap_openlineage(e, s.account_id, s.region, self.producer))
                )
            else:
                valid.append(validate_record(complete(e, self.settings, self.producer)))
        self.log.append([route(e) for e in valid])
        return valid

    def openlineage(self, event: Mapping[str, Any] | str) -> OpenLineageEventReceived:
        """Publish an OpenLineage event (RunEvent, DatasetEvent or JobEvent, as a dict or its
        JSON text, e.g. ``openlineage.client.serde.Serde.to_json(run_event)``) for this
        recorder's account; its id comes from its content, so publishing it again applies
        nothing twice (docs/openlineage.md)."""
        value = parse_json(event) if isinstance(event, str) else dict(event)
        s = self.settings
        published = self.publish(
            validate_record(wrap_openlineage(value, s.account_id, s.region, self.producer))
        )
        assert isinstance(published, OpenLineageEventReceived)  # noqa: S101 - wrapped above
        return published

    def _emit(self, event_type: str, payload: Mapping[str, Any]) -> Any:
        clean = {k: _as_json_value(v) for k, v in payload.items() if v is not None}
        return self.publish(self.build(event_type, clean))

    # -- source events -------------------------------------------------------------------------

    def job_created(
        self,
        job_type: str,
        job_name: str,
        *,
        image_uri: str | None = None,
        inputs: DataRefs | None = None,
        outputs: DataRefs | None = None,
        model_data_uri: str | None = None,
        checkpoint_uri: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        instance_type: str | None = None,
        instance_count: int | None = None,
        experiment_config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        job_arn: str | None = None,
    ) -> JobCreated:
        payload: dict[str, Any] = {
            "job_type": job_type,
            "job_name": job_name,
            "job_arn": job_arn,
            "image_uri": image_uri,
            "inputs": _refs(inputs),
            "outputs": _refs(outputs),
            "model_data_uri": model_data_uri,
            "checkpoint_uri": checkpoint_uri,
            "parameters": dict(parameters or {}),
            "instance_type": instance_type,
            "instance_count": instance_count,
            "experiment_config": experiment_config,
            "metadata": metadata,
            "tags": [{"key": k, "value": v} for k, v in tags.items()] if tags else None,
        }
        result: JobCreated = self._emit("JobCreated", payload)
        return result

    def job_status_changed(
        self,
        job_type: str,
        job_name: str | None = None,
        status: str = "Completed",
        *,
        job_arn: str | None = None,
        outputs: DataRefs | None = None,
        metrics: Mapping[str, float] | None = None,
        failure_reason: str | None = None,
        end_time: datetime | None = None,
    ) -> JobStatusChanged:
        payload: dict[str, Any] = {
            "job_type": job_type,
            "job_name": job_name,
            "job_arn": job_arn,
            "status": status,
            "outputs": _refs(outputs),
            "metrics": dict(metrics or {}),
            "failure_reason": failure_reason,
            "end_time": canonical_time(end_time) if end_time is not None else None,
        }
        result: JobStatusChanged = self._emit("JobStatusChanged", payload)
        return result

    def model_package_created(
        self,
        model_package_group_name: str,
        version: int,
        model_data_uri: str,
        *,
        image_uri: str | None = None,
        approval_status: str | None = None,
        model_package_arn: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ModelPackageCreated:
        result: ModelPackageCreated = self._emit(
            "ModelPackageCreated",
            {
                "model_package_group_name": model_package_group_name,
                "version": version,
                "model_data_uri": model_data_uri,
                "image_uri": image_uri,
                "approval_status": approval_status,
                "model_package_arn": model_package_arn,
                "metadata": metadata,
            },
        )
        return result

    def endpoint_created(
        self,
        endpoint_name: str,
        models: Sequence[Mapping[str, Any]],
        *,
        endpoint_arn: str | None = None,
    ) -> EndpointCreated:
        result: EndpointCreated = self._emit(
            "EndpointCreated",
            {
                "endpoint_name": endpoint_name,
                "endpoint_arn": endpoint_arn,
                "models": [dict(m) for m in models],
            },
        )
        return result

    # -- entity events -------------------------------------------------------------------------

    def upsert(self, entity: Mapping[str, Any] | BaseModel) -> str:
        """Create an entity or set some of its fields: ``{"kind": "artifact", ...}``. Returns
        its ARN (an association's key, ``"SOURCE_ARN DESTINATION_ARN"``; a share's,
        ``"OWNER GRANTEE"``); :meth:`publish` of :meth:`build` returns the event itself."""
        event: EntityUpserted = self._emit("EntityUpserted", {"entity": _as_json_value(entity)})
        return entity_key(event.payload.entity, event.account_id, event.region)

    def delete(self, kind: str, **key: Any) -> EntityDeleted:
        """Delete an entity by its key, e.g. ``delete("action", action_name="train")``."""
        result: EntityDeleted = self._emit("EntityDeleted", {"kind": kind, **key})
        return result

    def associate(
        self, source: str, destination: str, association_type: str = "ContributedTo"
    ) -> tuple[str, str]:
        """Associate two entities, given by ARN or, for artifacts, by URI (``s3://...``: the
        artifact of that URI in this recorder's account). Returns (source ARN, destination
        ARN), as SageMaker's AddAssociation does."""
        ends = (self._end("source", source), self._end("destination", destination))
        self.upsert(
            {
                "kind": "association",
                "source_arn": ends[0],
                "destination_arn": ends[1],
                "association_type": association_type,
            }
        )
        return ends

    def _end(self, which: str, value: str) -> str:
        if value.startswith("arn:"):
            return value
        if "://" in value:
            return self.artifact_arn(value)
        problem = (
            f"{value!r} is neither an ARN nor an artifact's URI: give an ARN, or a URI such as "
            "s3://bucket/key for the artifact of that URI"
        )
        raise EventValidationError(
            f"EntityUpserted: field 'entity.{which}_arn': {problem}",
            [("EntityUpserted", f"entity.{which}_arn", problem)],
        )

    def share(self, grantee_account: str, *, owner_account: str | None = None) -> EntityUpserted:
        """Share the owner's lineage group (default: this recorder's account) with a grantee.
        Published as the owner: a share must come from the account that owns the lineage."""
        owner = owner_account or self.settings.account_id
        event = self.publish(
            self.build(
                "EntityUpserted",
                {
                    "entity": {
                        "kind": "lineage_share",
                        "owner_account": owner,
                        "grantee_account": grantee_account,
                    }
                },
                account_id=owner,
            )
        )
        assert isinstance(event, EntityUpserted)  # noqa: S101 - narrows the type
        return event

    def unshare(self, grantee_account: str, *, owner_account: str | None = None) -> EntityDeleted:
        """Revoke a share: every later query stops seeing the owner's lineage."""
        owner = owner_account or self.settings.account_id
        event = self.publish(
            self.build(
                "EntityDeleted",
                {
                    "kind": "lineage_share",
                    "owner_account": owner,
                    "grantee_account": grantee_account,
                },
                account_id=owner,
            )
        )
        assert isinstance(event, EntityDeleted)  # noqa: S101 - narrows the type
        return event

    def artifact_arn(self, source_uri: str) -> str:
        """The ARN an artifact with this SourceUri has in this recorder's account, e.g. of a
        job's output (``run.output(name, uri)``) or input, without a round trip: ARNs are
        derived (:mod:`mlineage.arns`), so a custom step can associate with an artifact the
        tracker has not derived yet (an association waits for its ends)."""
        return arns.artifact_arn(self.settings.region, self.settings.account_id, source_uri)

    @contextmanager
    def job(self, job_type: str, job_name: str, **created: Any) -> Iterator[JobRun]:
        """Publish ``JobCreated`` on entry (``created``: the other arguments of
        :meth:`job_created`) and ``JobStatusChanged`` on exit, always:

        - ``Completed``, with the outputs and metrics added to the yielded :class:`JobRun`
          (each checked when added: a bad one raises :class:`EventValidationError` there);
        - ``Stopped`` on :class:`KeyboardInterrupt` (Ctrl-C) or SIGTERM;
        - ``Failed`` on any other exception, ``"{type}: {message}"`` as the reason.

        The block's exception is re-raised unchanged (the same object and traceback). A
        problem recording the end never replaces it, nor leaves the job ``InProgress``: if
        the final event cannot be built (say, a NaN put into ``run.metrics`` directly) the
        job ends ``Failed`` with a reason naming what was wrong and a warning is logged; if
        the log cannot take the end, a warning is logged when the block raised, and the
        log's error is raised when it did not.

        SIGTERM: inside the block, when it runs in the main thread and SIGTERM has its
        default handler, a handler is installed that raises :class:`Terminated` (a
        ``KeyboardInterrupt``) where the block is, so it unwinds, ``Stopped`` is published
        and the exception goes on (uncaught, it ends the program with its traceback, exit
        status 1). The previous handler is restored on exit; a SIGTERM arriving while
        the end is being recorded waits for it, then takes its default course. In other
        threads, or when SIGTERM is handled already, nothing is installed."""
        run = JobRun(self.job_created(job_type, job_name, **created))
        sigterm = _SigtermStops()
        try:
            try:
                sigterm.start()
                yield run
            finally:
                sigterm.hold()
        except BaseException as exc:
            status = "Stopped" if isinstance(exc, KeyboardInterrupt) else "Failed"
            self._end_job(run, status, _reason(exc), raised=exc)
            raise
        else:
            self._end_job(run, "Completed")
        finally:
            sigterm.stop()

    def _end_job(
        self,
        run: JobRun,
        status: str,
        reason: str | None = None,
        *,
        raised: BaseException | None = None,
    ) -> None:
        """Publish the job's final status; when its event cannot be built, ``Failed`` with a
        reason naming what was wrong. Publish errors go to the log when ``raised``."""
        try:
            try:
                event = self.build("JobStatusChanged", run.payload(status, _limit(reason)))
            except Exception as exc:  # whatever it is, the job must end
                problem = f"the job's end could not be recorded as {status}: {exc}"
                full = problem if reason is None else f"{reason} (and {problem})"
                event = self.build(
                    "JobStatusChanged",
                    run.payload("Failed", _limit(full), outputs=[], metrics={}),
                )
                log.warning("%s %s: recorded as Failed: %s", run.job_type, run.job_name, problem)
            self.publish(event)
        except Exception as exc:
            if raised is None:
                raise
            log.warning(
                "%s %s: could not record its end (%s); the job's own %s goes on",
                run.job_type,
                run.job_name,
                exc,
                type(raised).__name__,
            )

    def close(self) -> None:
        if self._owns_log and self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EventValidationError", "JobRun", "Recorder", "Terminated", "complete", "route"]
