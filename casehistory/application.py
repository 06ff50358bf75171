"""The event-sourced application: one `Citizen` aggregate per citizen."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from datetime import date
from functools import cache
from typing import Any

import orjson
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import JSONTranscoder, Recording, StoredEvent, Transcoder
from eventsourcing.utils import get_topic

from casehistory.domain.citizen import Citizen, Head, citizen_id, registration
from casehistory.domain.facts import EventType
from casehistory.recorders import IndexEntry


class OrjsonTranscoder(JSONTranscoder):
    """`eventsourcing`'s JSON format (typed values as `_type_`/`_data_`), encoded by orjson.

    Decoding stays the library's. Our event states hold only strings, numbers,
    dicts and the datetime timestamp, which orjson hands back to the registered
    transcodings, so the bytes equal what `JSONTranscoder` writes.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=orjson.OPT_PASSTHROUGH_DATETIME)


_CITIZEN_TOPIC = get_topic(Citizen)


@cache
def _event_class_facts(event_class: type) -> tuple[str, int]:
    """An event class's topic and class version, as the mapper writes them."""
    return get_topic(event_class), getattr(event_class, "class_version", 1)


class CaseHistory(Application[Any]):
    """Stores citizens' facts; persistence is chosen by the environment (see settings).

    Every save also writes, in its transaction, the saved citizens' heads and an
    index of their event ids (`casehistory.recorders`), so the ingest appends
    from the heads without loading any history. Aggregates are only loaded to
    read a history (`find`), one citizen at a time.
    """

    name = "casehistory"
    index_key = b""
    """HMAC key of the event index's digests; set by the bootstrap."""

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def find(self, citizen_key: str) -> Citizen | None:
        try:
            citizen: Citizen = self.repository.get(citizen_id(citizen_key))
        except AggregateNotFoundError:
            return None
        return citizen

    def heads(self, citizen_keys: Iterable[str]) -> dict[str, Head]:
        """The heads of those of these citizens that have a history, by key."""
        recorder: Any = self.recorder
        return {
            key: Head(key, version, chain)
            for key, (version, chain) in recorder.heads(list(citizen_keys)).items()
        }

    def known_events(self, event_keys: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Of these event ids (id -> its `digest`), those stored: holder and content digest."""
        by_key = {key: event_id for event_id, key in event_keys.items()}
        recorder: Any = self.recorder
        return {
            by_key[entry.event_key]: (entry.citizen_key, entry.content_key)
            for entry in recorder.index_entries(list(by_key))
        }

    def digest(self, value: str) -> str:
        """Keyed digest of an event id or a content hash, as the event index holds them.

        Keyed (BLAKE2b with the index key), so a reader of the store cannot try
        contents against an event id.
        """
        return hashlib.blake2b(value.encode(), key=self.index_key, digest_size=16).hexdigest()

    def delivery(self, citizen_key: str, content_key: str) -> str:
        """Keyed digest of a delivery of an event id: its citizen and content (`digest` of
        its content hash), as the event-id claims across partition groups hold it."""
        return self.digest(f"{citizen_key}|{content_key}")

    def stored_fact(
        self, citizen_key: str, version: int, kind: EventType, content: dict[str, Any],
        chain_hash: str,
    ) -> StoredEvent:
        """The stored record of the fact event `Citizen.record` would trigger as this
        version, without making the event object."""
        return self._stored(citizen_key, version, Citizen.EVENT_CLASSES[kind],
                            {**content, "chain_hash": chain_hash})

    def stored_registration(
        self, citizen_key: str, birth_date: date, sealed_cpr: str
    ) -> tuple[StoredEvent, Head]:
        """The stored record of the event `Citizen.register` triggers, and the new head,
        without making the aggregate."""
        fields = registration(citizen_key, birth_date, sealed_cpr)
        record = self._stored(citizen_key, 1, Citizen.Registered,
                              {"originator_topic": _CITIZEN_TOPIC, **fields})
        return record, Head(citizen_key, 1, fields["chain_hash"])

    def _stored(
        self, citizen_key: str, version: int, event_class: type, fields: dict[str, Any]
    ) -> StoredEvent:
        """What the mapper writes for an event of this class with these fields (all but
        id, version and timestamp, in the event's order), stamped now: its state through
        the same transcoder, compressor and cipher.

        The timestamp goes in already in its transcoded form (`DatetimeAsISO`), so the
        encoder calls back into Python for nothing.
        """
        topic, class_version = _event_class_facts(event_class)
        state = {
            "timestamp": {"_type_": "datetime_iso",
                          "_data_": event_class.create_timestamp().isoformat()},  # type: ignore[attr-defined]
            **fields,
        }
        if class_version > 1:
            state["class_version"] = class_version
        mapper = self.mapper
        data = mapper.transcoder.encode(state)
        if mapper.compressor:
            data = mapper.compressor.compress(data)
        if mapper.cipher:
            data = mapper.cipher.encrypt(data)
        return StoredEvent(citizen_id(citizen_key), version, topic, data)

    def append(
        self, stored: list[StoredEvent], heads: dict[str, tuple[int, str]],
        index: list[IndexEntry], **kwargs: Any,
    ) -> None:
        """Save stored records (`stored_fact`, or `mapper.to_stored_event` of new events)
        in one transaction with the citizens' new heads and index entries (and the
        recorder's other arguments: `ledger`, `fence`), as `save` would without the
        domain events, which the ingest never needs."""
        self.recorder.insert_events(stored, heads=heads, index=index, **kwargs)

    def _record(self, processing_event: ProcessingEvent[Any]) -> list[Recording[Any]]:
        heads, index = self._heads_of(processing_event.events)
        processing_event.saved_kwargs.update(heads=heads, index=index)
        return super()._record(processing_event)

    def _heads_of(
        self, events: Iterable[Any]
    ) -> tuple[dict[str, tuple[int, str]], list[IndexEntry]]:
        """The citizens' heads after these events, and index entries for their facts."""
        heads: dict[str, tuple[int, str]] = {}
        index: list[IndexEntry] = []
        for event in events:
            chain = getattr(event, "chain_hash", None)
            if chain is None:
                continue
            key = event.originator_id.hex
            heads[key] = (event.originator_version, chain)
            if isinstance(event, Citizen.FactRecorded):
                index.append(IndexEntry(
                    self.digest(event.event_id), key, self.digest(event.content_hash)
                ))
        return heads, index

    def backfill_heads(self, batch_size: int = 5000) -> int:
        """Write the heads and index of a store older than them; returns events read."""
        recorder: Any = self.recorder
        heads: dict[str, tuple[int, str]] = {}
        index: list[IndexEntry] = []
        start, read = 0, 0
        while notifications := recorder.select_notifications(
            start=start, limit=batch_size, inclusive_of_start=False
        ):
            events = [self.mapper.to_domain_event(n) for n in notifications]
            more_heads, more_index = self._heads_of(events)
            heads.update(more_heads)
            index.extend(more_index)
            read += len(notifications)
            start = notifications[-1].id
        recorder.backfill_heads(heads, index)
        return read

    def forget_cached(self, citizen_keys: list[str]) -> None:
        """Drop cached aggregates, where an aggregate cache is configured."""
        cache = self.repository.cache
        if cache is None:
            return
        for key in citizen_keys:
            with contextlib.suppress(KeyError):
                cache.get(citizen_id(key), evict=True)
