"""Publishing contract events to Kafka, for upstream systems.

Each record is validated before it is sent, encoded as Avro single-object
encoding (see `schemas.wire`) and keyed by the citizen's keyed pseudonym, so one
citizen's events stay in order on one partition and no CPR number appears in a
key. The producer is idempotent with `acks=all`.

    with Publisher(bootstrap, topic, pseudonym_key) as publisher:
        report = publisher.publish(records)      # dicts in the contract's JSON form
        assert report.ok, report.rejected
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from casehistory import schemas
from casehistory.domain.cpr import citizen_key
from casehistory.schemas import wire
from casehistory.schemas.contract import ContractEvent, Rejection, validate

CONTENT_TYPE = b"application/vnd.casehistory.event+avro"


@dataclass
class PublishReport:
    sent: int = 0
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)
    """(position in the input, why), for records that were not sent."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(position, error), for records the broker did not acknowledge."""

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


class Publisher:
    """Validating, idempotent producer of contract events."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        pseudonym_key: bytes,
        *,
        schema_version: int | None = None,
        **producer_config: Any,
    ) -> None:
        self.topic = topic
        self.pseudonym_key = pseudonym_key
        self.schema_version = schema_version
        self._types = schemas.event_types(schema_version or schemas.current_version())
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            batch_size=256 * 1024,
            **producer_config,
        )

    def publish(self, records: Iterable[object]) -> PublishReport:
        """Validate and send records; waits until the broker acknowledged all of them."""
        report = PublishReport()
        pending = []
        for position, record in enumerate(records):
            checked = validate(record)
            if isinstance(checked, ContractEvent) and checked.event_type not in self._types:
                checked = Rejection(
                    "not_in_schema_version",
                    f"{checked.event_type.value} cannot be written with schema "
                    f"v{self.schema_version}",
                    "event_type",
                )
            if isinstance(checked, Rejection):
                report.rejected.append((position, checked))
                continue
            pending.append((position, self.send(checked)))
        self.producer.flush()
        for position, future in pending:
            try:
                future.get(timeout=60)
                report.sent += 1
            except Exception as error:
                report.failed.append((position, f"{type(error).__name__}: {error}"))
        return report

    def send(self, event: ContractEvent) -> Any:
        """Send one validated event; returns the producer's future."""
        return self.send_encoded(*self.encode(event))

    def encode(self, event: ContractEvent) -> tuple[bytes, bytes]:
        """A validated event's record key and value, as `send` sends them."""
        return (citizen_key(event.cpr, self.pseudonym_key).encode("ascii"),
                wire.encode(event.avro_datum(), self.schema_version))  # fmt: skip

    def send_encoded(self, key: bytes, value: bytes) -> Any:
        """Send a record `encode` made; returns the producer's future."""
        return self.producer.send(
            self.topic, key=key, value=value, headers=[("content-type", CONTENT_TYPE)]
        )

    def close(self) -> None:
        self.producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
