"""A data pipeline told through the real ``openlineage-python`` client, unchanged: an Airflow
DAG run (the parent) whose Spark task reads raw data and writes the training set a SageMaker
training job then reads, and a dbt task that fails. Each test gives the client the transport
it is about (HTTP, Kafka, file), configured as ``openlineage.yml`` would configure it; the
SageMaker side is published as mlineage events, so QueryLineage can walk from the endpoint
through the model and the training job into the OpenLineage runs and their raw inputs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    error_message_run,
    parent_run,
    schema_dataset,
    sql_job,
)

from mlineage import arns

PRODUCER = "https://github.com/acme/pipelines/tree/v1"


@dataclass
class Pipeline:
    """The runs and datasets of one telling, unique per test (``tag``)."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    dag_run: str = field(default_factory=lambda: str(uuid.uuid4()))
    spark_run: str = field(default_factory=lambda: str(uuid.uuid4()))
    dbt_run: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def bucket(self) -> str:
        return f"s3://acme-{self.tag}"

    @property
    def raw_uris(self) -> list[str]:
        return [
            f"s3://raw-{self.tag}/events/2026/01",
            f"postgres://crm:5432/crm.public.c_{self.tag}",
        ]

    @property
    def train_uri(self) -> str:
        """What the Spark task writes (OpenLineage naming: no trailing slash)."""
        return f"{self.bucket}/prepared/train"

    @property
    def sagemaker_train_uri(self) -> str:
        """What the training job reads: the same prefix as SageMaker users write it."""
        return self.train_uri + "/"

    def events(self) -> list[RunEvent]:
        dag = Job(namespace="airflow-prod", name=f"churn_{self.tag}")
        spark = Job(
            namespace="spark-emr",
            name=f"churn_{self.tag}.prepare",
            facets={"sql": sql_job.SQLJobFacet(query="INSERT OVERWRITE train SELECT * FROM raw")},
        )
        dbt = Job(namespace="dbt-prod", name=f"churn_{self.tag}.labels")
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.dag_run),
            job=parent_run.Job(namespace=dag.namespace, name=dag.name),
        )
        inputs = [
            InputDataset(namespace=f"s3://raw-{self.tag}", name="events/2026/01"),
            InputDataset(namespace="postgres://crm:5432", name=f"crm.public.c_{self.tag}"),
        ]
        schema = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name="customer_id", type="long")]
        )
        outputs = [
            OutputDataset(namespace=self.bucket, name="prepared/train", facets={"schema": schema})
        ]
        error = error_message_run.ErrorMessageRunFacet(
            message="relation does not exist", programmingLanguage="sql"
        )

        def run(state: RunState, when: str, job: Job, run_id: str, **kw: Any) -> RunEvent:
            facets = kw.pop("facets", {})
            return RunEvent(
                eventType=state,
                eventTime=when,
                run=Run(runId=run_id, facets=facets),
                job=job,
                producer=PRODUCER,
                **kw,
            )

        return [
            run(RunState.START, "2026-01-02T01:00:00Z", dag, self.dag_run),
            run(
                RunState.START,
                "2026-01-02T01:01:00Z",
                spark,
                self.spark_run,
                inputs=inputs,
                facets={"parent": parent},
            ),
            run(
                RunState.COMPLETE,
                "2026-01-02T01:20:00Z",
                spark,
                self.spark_run,
                inputs=inputs,
                outputs=outputs,
                facets={"parent": parent},
            ),
            run(
                RunState.START, "2026-01-02T01:21:00Z", dbt, self.dbt_run, facets={"parent": parent}
            ),
            run(
                RunState.FAIL,
                "2026-01-02T01:22:00Z",
                dbt,
                self.dbt_run,
                facets={"parent": parent, "errorMessage": error},
            ),
            run(RunState.COMPLETE, "2026-01-02T01:23:00Z", dag, self.dag_run),
        ]

    def emit(self, transport: dict[str, Any]) -> None:
        """Emit every event through a client with this transport config (openlineage.yml's
        ``transport:`` section)."""
        client = OpenLineageClient(config={"transport": transport})
        try:
            for event in self.events():
                client.emit(event)
        finally:
            client.close()

    # -- the SageMaker side and what must be found --------------------------------------------

    def sagemaker_events(self) -> list[dict[str, Any]]:
        """A training job reading the Spark task's output, and an endpoint serving its model."""
        job = f"churn-train-{self.tag}"
        model = f"{self.bucket}/models/{job}/output/model.tar.gz"
        return [
            {
                "event_type": "JobCreated",
                "occurred_at": "2026-01-02T02:00:00Z",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": job,
                    "image_uri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1",
                    "inputs": [{"name": "train", "uri": self.sagemaker_train_uri}],
                },
            },
            {
                "event_type": "JobStatusChanged",
                "occurred_at": "2026-01-02T03:00:00Z",
                "payload": {
                    "job_type": "TrainingJob",
                    "job_name": job,
                    "status": "Completed",
                    "outputs": [{"name": "model", "uri": model}],
                },
            },
            {
                "event_type": "EndpointCreated",
                "occurred_at": "2026-01-02T04:00:00Z",
                "payload": {
                    "endpoint_name": f"churn-{self.tag}",
                    "models": [{"model_data_uri": model}],
                },
            },
        ]

    def endpoint_context(self, account: str, region: str = "us-east-1") -> str:
        name = arns.endpoint_context_name(f"churn-{self.tag}")
        return arns.named_arn("context", region, account, name)

    def run_arn(self, account: str, which: str, region: str = "us-east-1") -> str:
        job, run_id = {
            "spark": (("spark-emr", f"churn_{self.tag}.prepare"), self.spark_run),
            "dbt": (("dbt-prod", f"churn_{self.tag}.labels"), self.dbt_run),
            "dag": (("airflow-prod", f"churn_{self.tag}"), self.dag_run),
        }[which]
        return arns.trial_component_arn(region, account, arns.openlineage_run_name(*job, run_id))

    def raw_arns(self, account: str, region: str = "us-east-1") -> set[str]:
        return {arns.artifact_arn(region, account, uri) for uri in self.raw_uris}
