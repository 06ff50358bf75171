"""The history topic: its record format, and a topic configuration the engine refuses."""

from __future__ import annotations

import base64
import uuid
from datetime import date

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from casehistory.consumers.files import Incoming
from casehistory.consumers.ingest import route
from casehistory.consumers.topics import TopicMisconfigured, ensure_pipeline_topics
from casehistory.domain.citizen import fact_content
from casehistory.schemas import history
from casehistory.schemas.contract import ContractEvent, validate
from casehistory.services.identity import IdentityVault
from tests.factories import record, started

CPR = "6101901234"


class _NoKeys:
    def keys_for(self, citizen_keys: object) -> dict[str, bytes]:
        return {}


def test_a_history_record_carries_the_fact_and_no_cpr_and_opens_only_with_the_key() -> None:
    event = validate({**record(started(date(2020, 1, 1), target_group="jobparat"), CPR),
                      "migration_batch": "fasit-2018"})
    assert isinstance(event, ContractEvent)
    vault = IdentityVault(b"k" * 32, _NoKeys())  # type: ignore[arg-type]
    incoming = Incoming(event.canonical(), b"", {"topic": "in", "partition": 2, "offset": 7})
    routed = route(vault, incoming, event)
    key = base64.b64encode(b"s" * 32).decode()
    cipher = AESCipher(Environment(env={"CIPHER_KEY": key}))
    value = history.encode(routed, "sealed-blob", cipher)
    assert CPR.encode() not in value and b"kontanthjaelp" not in value
    assert history.decode(value, cipher) == (routed, "sealed-blob")
    # The store writer takes the stored fields as the record carries them.
    assert history.decode(value, cipher)[0].stored == fact_content(
        routed.fact, routed.content_hash, routed.provenance
    )
    assert routed.provenance["migration_batch"] == "fasit-2018"
    assert routed.citizen_key == vault.citizen_key(CPR) and CPR not in str(routed)
    plain = history.encode(routed, "")
    assert history.decode(plain) == (routed, "")
    other = AESCipher(Environment(env={"CIPHER_KEY": base64.b64encode(b"t" * 32).decode()}))
    for garbage, with_cipher in ((value, other), (b"{}", None), (b"\xff", None)):
        with pytest.raises(history.UnreadableHistoryRecord):
            history.decode(garbage, with_cipher)


@pytest.mark.kafka
def test_a_history_topic_that_would_lose_records_is_a_clear_error(kafka_bootstrap: str) -> None:
    """Issue #14 item 7: the history topic's configuration is checked at startup."""
    topic = f"in-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic + ".history", 1, 1,
                                      topic_configs={"retention.ms": "604800000"})])
    finally:
        admin.close()
    with pytest.raises(TopicMisconfigured, match=r"retention.ms=604800000"):
        ensure_pipeline_topics(kafka_bootstrap, topic, topic + ".history", topic + ".dlq", 1)
    ensure_pipeline_topics(kafka_bootstrap, topic + "b", topic + "b.history", topic + "b.dlq", 1)
