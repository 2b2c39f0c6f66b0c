"""The ``MLINEAGE_*`` variables a part reads through mlineage.settings, and the error each
gives for a bad value (naming the variable and what it accepts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlineage import settings
from mlineage.errors import ConfigurationError, ProjectionError
from mlineage.log.kafka import KafkaConfig
from mlineage.projection.store import DuckDBStore


def test_kafka_options_are_every_mlineage_kafka_variable_by_its_lowercase_name() -> None:
    env = {"MLINEAGE_KAFKA_SECURITY_PROTOCOL": "SSL", "MLINEAGE_KAFKA_PARTITIONS": "6", "X": "1"}
    assert settings.kafka_options(env) == {"security_protocol": "SSL", "partitions": "6"}
    assert settings.Settings.load(home="h", environ=env).kafka_options == {
        "security_protocol": "SSL",
        "partitions": "6",
    }
    config = KafkaConfig.parse("kafka://k:9092", env)
    assert config.partitions == 6
    assert config.client == {"security_protocol": "SSL"}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MLINEAGE_KAFKA_NO_SUCH_SETTING": "1"}, "MLINEAGE_KAFKA_NO_SUCH_SETTING"),
        ({"MLINEAGE_KAFKA_PARTITIONS": "many"}, "MLINEAGE_KAFKA_PARTITIONS"),
        ({"MLINEAGE_KAFKA_PARTITIONS": "0"}, "MLINEAGE_KAFKA_PARTITIONS and .* must be >= 1"),
    ],
)
def test_a_bad_kafka_variable_is_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        KafkaConfig.parse("kafka://k:9092", env)


def test_progress_after() -> None:
    assert settings.progress_after({}) == 1.0
    assert settings.progress_after({"MLINEAGE_PROGRESS_AFTER": "0"}) == 0.0
    assert settings.progress_after({"MLINEAGE_PROGRESS_AFTER": "-3"}) == 0.0
    with pytest.raises(ConfigurationError, match="MLINEAGE_PROGRESS_AFTER='soon'"):
        settings.progress_after({"MLINEAGE_PROGRESS_AFTER": "soon"})


def test_instance_id_and_duckdb_memory() -> None:
    assert settings.instance_id({}) is None
    assert settings.instance_id({"MLINEAGE_INSTANCE_ID": "a"}) == "a"
    assert settings.duckdb_memory({"MLINEAGE_DUCKDB_MEMORY": ""}) is None
    assert settings.duckdb_memory({"MLINEAGE_DUCKDB_MEMORY": "2GB"}) == "2GB"


def test_a_bad_duckdb_memory_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLINEAGE_DUCKDB_MEMORY", "lots")
    with pytest.raises(ProjectionError, match="MLINEAGE_DUCKDB_MEMORY='lots'"):
        DuckDBStore(tmp_path / "p.duckdb")
    monkeypatch.setenv("MLINEAGE_DUCKDB_MEMORY", "300MB")
    with DuckDBStore(tmp_path / "q.duckdb") as store:
        limit = store.con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert limit is not None
    assert "MiB" in str(limit[0]) or "MB" in str(limit[0])
