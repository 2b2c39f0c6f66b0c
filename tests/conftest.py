"""Fixtures shared by every test package: a real Kafka broker for the tests marked ``kafka``.

One broker per test session (see ``tests/kafka_broker.py`` for where it comes from); every
test gets its own namespace on it (``kafka://host:port?namespace=t<random>``), so its topics,
consumer groups and transactional ids are fresh and no two tests see each other's records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.kafka_broker import Broker, BrokerUnavailable, provide_broker, skip_or_fail


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    try:
        broker = provide_broker(tmp_path_factory.mktemp("kafka-broker"))
    except BrokerUnavailable as exc:
        skip_or_fail(f"no Kafka broker: {exc}")
    with broker:
        yield broker


def kafka_url_on(broker: Broker, partitions: int = 3) -> str:
    """A ``kafka://`` URL on ``broker`` in a namespace nobody has used."""
    return f"kafka://{broker.bootstrap}?namespace=t{uuid.uuid4().hex[:12]}&partitions={partitions}"


@pytest.fixture
def kafka_url(kafka_broker: Broker) -> str:
    return kafka_url_on(kafka_broker)
