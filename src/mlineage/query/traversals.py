"""The SageMaker Python SDK's lineage conveniences (``sagemaker.lineage``), over a
:class:`~mlineage.query.store.LineageStore`. Same names, same directions; each returns ARNs
(or job ARNs), follows every page (the SDK silently stops at the first), and walks up to
``max_depth`` associations (the SDK's default, 10). They leave out the entities they start
from (QueryLineage itself returns them among the vertices).

    store = LineageStore.open()
    DatasetArtifact(store, dataset_arn).trained_models()
    EndpointContext(store, endpoint_context_arn).dataset_artifacts()
"""

from __future__ import annotations

from dataclasses import dataclass

from mlineage.query.lineage import LineageFilter
from mlineage.query.store import LineageStore

ASCENDANTS = "Ascendants"
DESCENDANTS = "Descendants"


@dataclass
class _Entity:
    store: LineageStore
    arn: str
    max_depth: int = 10

    def _find(
        self,
        direction: str,
        *,
        types: list[str] | None = None,
        lineage_types: list[str] | None = None,
        start: list[str] | None = None,
        max_depth: int | None = None,
    ) -> list[str]:
        starts = start or [self.arn]
        result = self.store.query_lineage(
            starts,
            direction=direction,
            include_edges=False,
            filters=LineageFilter(types=types, lineage_types=lineage_types),
            max_depth=self.max_depth if max_depth is None else max_depth,
        )
        # QueryLineage returns the starts too; "the upstream datasets of X" leaves X out
        return [v.arn for v in result.vertices if v.arn not in starts]

    def _job_arns(self, direction: str, job_type: str) -> list[str]:
        tcs = self._find(direction, types=[job_type], lineage_types=["TrialComponent"])
        return self._source_arns(tcs)

    def _source_arns(self, tc_arns: list[str]) -> list[str]:
        if not tc_arns:
            return []
        rows = self.store.con.execute(
            "SELECT source_arn FROM trial_components WHERE arn IN (SELECT unnest(?)) AND live "
            "AND source_arn IS NOT NULL ORDER BY source_arn",
            [tc_arns],
        ).fetchall()
        return [r[0] for r in rows]

    def _trials(self, direction: str) -> list[str]:
        tcs = self._find(direction, lineage_types=["TrialComponent"])
        if self.arn.split(":", 5)[-1].startswith("experiment-trial-component/"):
            tcs = [self.arn, *tcs]
        if not tcs:
            return []
        rows = self.store.con.execute(
            "SELECT DISTINCT j.trial_arn FROM trial_component_trials j JOIN trials t "
            "ON t.arn = j.trial_arn AND t.live WHERE j.live AND j.trial_component_arn IN "
            "(SELECT unnest(?)) ORDER BY 1",
            [tcs],
        ).fetchall()
        return [r[0] for r in rows]


class Artifact(_Entity):
    def downstream_trials(self) -> list[str]:
        """Trials whose trial components are downstream of this artifact."""
        return self._trials(DESCENDANTS)

    def upstream_trials(self) -> list[str]:
        """Trials whose trial components are upstream of this artifact."""
        return self._trials(ASCENDANTS)


class DatasetArtifact(Artifact):
    def trained_models(self) -> list[str]:
        """Models produced by training jobs this dataset went into."""
        jobs = self._find(DESCENDANTS, types=["TrainingJob"], lineage_types=["TrialComponent"])
        if not jobs:
            return []
        return self._find(DESCENDANTS, types=["Model"], start=jobs, max_depth=1)

    def endpoint_contexts(self) -> list[str]:
        """Endpoints (their contexts) serving models built from this dataset."""
        return self._find(DESCENDANTS, types=["Endpoint"], lineage_types=["Context"])

    def upstream_datasets(self) -> list[str]:
        return self._find(ASCENDANTS, types=["DataSet"])

    def downstream_datasets(self) -> list[str]:
        return self._find(DESCENDANTS, types=["DataSet"])


class ModelArtifact(Artifact):
    def endpoint_contexts(self) -> list[str]:
        return self._find(DESCENDANTS, types=["Endpoint"], lineage_types=["Context"])

    def endpoints(self) -> list[str]:
        """The SageMaker endpoint ARNs (the endpoint contexts' sources)."""
        contexts = self.endpoint_contexts()
        if not contexts:
            return []
        rows = self.store.con.execute(
            "SELECT source_uri FROM contexts WHERE arn IN (SELECT unnest(?)) AND live ORDER BY 1",
            [contexts],
        ).fetchall()
        return [r[0] for r in rows if r[0]]

    def dataset_artifacts(self) -> list[str]:
        return self._find(ASCENDANTS, types=["DataSet"])

    def training_job_arns(self) -> list[str]:
        return self._job_arns(ASCENDANTS, "TrainingJob")


class ImageArtifact(Artifact):
    def datasets(self, direction: str = DESCENDANTS) -> list[str]:
        """Datasets associated with this image (downstream by default)."""
        return self._find(direction, types=["DataSet"])


class EndpointContext(_Entity):
    def models(self) -> list[str]:
        return self._find(ASCENDANTS, types=["Model"])

    def dataset_artifacts(self) -> list[str]:
        return self._find(ASCENDANTS, types=["DataSet"])

    def training_job_arns(self) -> list[str]:
        return self._job_arns(ASCENDANTS, "TrainingJob")

    def processing_jobs(self) -> list[str]:
        return self._job_arns(ASCENDANTS, "ProcessingJob")

    def transform_jobs(self) -> list[str]:
        return self._job_arns(ASCENDANTS, "TransformJob")

    def trial_components(self) -> list[str]:
        return self._find(ASCENDANTS, lineage_types=["TrialComponent"])


class Action(_Entity):
    def artifacts(self, direction: str = "Both") -> list[str]:
        """Artifacts directly associated with this action."""
        return self._find(direction, lineage_types=["Artifact"], max_depth=1)


class LineageTrialComponent(_Entity):
    def dataset_artifacts(self, direction: str = ASCENDANTS) -> list[str]:
        return self._find(direction, types=["DataSet"])

    def models(self, direction: str = DESCENDANTS) -> list[str]:
        return self._find(direction, types=["Model"])


__all__ = [
    "Action",
    "Artifact",
    "DatasetArtifact",
    "EndpointContext",
    "ImageArtifact",
    "LineageTrialComponent",
    "ModelArtifact",
]
