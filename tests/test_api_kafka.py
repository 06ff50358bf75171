"""With Kafka configured, /metrics shows consumer lag per partition and /drift reconciles."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from casehistory.consumers.publisher import Publisher
from casehistory.consumers.topics import ensure_topics
from casehistory.population import generator
from casehistory.settings import Settings
from tests.fixtures_serve import AS_OF, Served, populate, start_server, stop_server

pytestmark = pytest.mark.kafka
PARTITIONS = 3


def test_consumer_lag_per_partition_and_reconciliation(kafka_bootstrap: str, tmp_path: Path,
                                                        ) -> None:
    topic = f"surfaces-{uuid.uuid4().hex[:8]}"
    env = {"CASEHISTORY_DATA_DIR": str(tmp_path / "store"), "CASEHISTORY_PSEUDONYM_KEY": "ab" * 32,
           "CASEHISTORY_KAFKA_BOOTSTRAP": kafka_bootstrap, "CASEHISTORY_KAFKA_TOPIC": topic,
           "CASEHISTORY_KAFKA_DLQ_TOPIC": topic + ".dlq", "CASEHISTORY_KAFKA_GROUP": topic + ".in"}
    population, report = populate(env, citizens=20)
    records = list(generator.generate_population(30, 5, until=AS_OF))
    settings = Settings.load(env)
    ensure_topics(kafka_bootstrap, topic, topic + ".dlq", PARTITIONS)
    with Publisher(kafka_bootstrap, topic, settings.pseudonym_key) as publisher:
        sent = publisher.publish(records).sent
    assert sent > 0
    url, process = start_server(env, Path(env["CASEHISTORY_DATA_DIR"]))
    try:
        served = Served(url, Path(env["CASEHISTORY_DATA_DIR"]), env, population, report, process)
        body = served.request("/metrics", role="operator")[2].decode()
        lag = {int(p): float(v) for p, v in re.findall(
            rf'casehistory_consumer_lag_records{{partition="(\d+)",topic="{topic}"}} (\S+)', body)}
        assert sorted(lag) == list(range(PARTITIONS))
        assert sum(lag.values()) == sent

        consumer = subprocess.run(
            [sys.executable, "-m", "casehistory.entrypoints.cli", "consume", "--idle-exit", "3",
             "--partitions", str(PARTITIONS)],
            env={**os.environ, **env}, capture_output=True, timeout=300,
        )
        assert consumer.returncode == 0, consumer.stdout[-2000:]
        account = served.json("/api/v1/operations?reconcile=true", role="operator")
        result = account["reconciliation"]
        assert (result["topic"], result["unaccounted"], result["not_yet_consumed"]) == (
            topic, 0, 0)
        assert sum(sum(p["outcomes"].values()) for p in result["partitions"]) == sent
        status, _, page = served.request("/drift?reconcile=true", role="operator")
        assert status == 200 and b'id="reconcile-table"' in page
    finally:
        stop_server(process)
