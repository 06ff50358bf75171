"""Pytest plugin: a real Apache Kafka broker for the test session.

Order: ``CASEHISTORY_KAFKA_BOOTSTRAP`` if set; else a testcontainers ``KafkaContainer`` when a
Docker engine is reachable; else a local broker from Maven jars
(``casehistory.devservices.kafka``). If none can be had, tests fail under ``CI=true`` and are
skipped elsewhere. Auto-created topics get 3 partitions on the brokers started here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from casehistory.devservices import kafka as devkafka

DEFAULT_PARTITIONS = 3


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Kafka required under CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"Kafka unavailable: {reason}")


def _check_bootstrap(bootstrap: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10_000)
    try:
        admin.list_topics()
    finally:
        admin.close()


def _start_container() -> Any:
    """Start a testcontainers Kafka; raises (``docker.errors.DockerException``) if no engine."""
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer().with_env("KAFKA_NUM_PARTITIONS", str(DEFAULT_PARTITIONS))
    try:
        return container.start()
    except BaseException:
        with contextlib.suppress(Exception):
            container.stop()
        raise


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers (``host:port``) of a real Kafka broker for this session."""
    if bootstrap := os.environ.get("CASEHISTORY_KAFKA_BOOTSTRAP"):
        problem = ""
        try:
            _check_bootstrap(bootstrap)
        except Exception as exc:
            problem = f"CASEHISTORY_KAFKA_BOOTSTRAP={bootstrap} not usable: {exc}"
        if problem:
            _unavailable(problem)
        yield bootstrap
        return

    try:
        container = _start_container()
    except Exception:  # no Docker engine (DockerException), image pull failure, ...
        container = None
    if container is not None:
        try:
            yield str(container.get_bootstrap_server())
        finally:
            container.stop()
        return

    broker: devkafka.KafkaBroker | None = None
    try:
        broker = devkafka.start(partitions=DEFAULT_PARTITIONS)
    except Exception as exc:
        problem = f"no Docker engine and the local Kafka broker failed: {exc}"
    if broker is None:
        _unavailable(problem)
    try:
        yield broker.bootstrap_servers
    finally:
        devkafka.stop(broker)
