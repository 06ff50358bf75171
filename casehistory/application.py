"""The event-sourced application: one `Citizen` aggregate per citizen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder, Transcoder

from domain.citizen import Citizen, citizen_id


class OrjsonTranscoder(JSONTranscoder):
    """`eventsourcing`'s JSON format (typed values as `_type_`/`_data_`), encoded by orjson.

    Decoding stays the library's. Our event states hold only strings, numbers,
    dicts and the datetime timestamp, which orjson hands back to the registered
    transcodings, so the bytes equal what `JSONTranscoder` writes.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=orjson.OPT_PASSTHROUGH_DATETIME)


class CaseHistory(Application[Any]):
    """Stores citizens' facts; persistence is chosen by the environment (see settings).

    Cached aggregates are not fast-forwarded from the store on every lookup (one query
    per citizen per batch): a copy made stale by another writer fails its save on the
    version conflict, and the ingest then forgets it, reloads and retries.
    """

    name = "casehistory"
    env = {  # noqa: RUF012 - the library's own convention for defaults
        "AGGREGATE_CACHE_MAXSIZE": "20000",
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

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

    def find_many(self, citizen_keys: Iterable[str]) -> dict[str, Citizen]:
        """The citizens among these keys that exist, by key.

        Cached citizens come from the cache; of the rest, one query tells which have
        events, so a batch of new citizens (a bulk load) costs no lookup per citizen.
        """
        cache: Any = self.repository.cache
        found: dict[str, Citizen] = {}
        uncached: dict[UUID, str] = {}
        for key in dict.fromkeys(citizen_keys):
            aggregate_id = citizen_id(key)
            try:
                if cache is None:
                    raise KeyError(aggregate_id)
                found[key] = cache.get(aggregate_id)
            except KeyError:
                uncached[aggregate_id] = key
        if uncached:
            recorder: Any = self.recorder
            for aggregate_id in recorder.existing_originators(list(uncached)):
                citizen = self.find(uncached[aggregate_id])
                if citizen is not None:
                    found[uncached[aggregate_id]] = citizen
        return found

    def forget_cached(self, citizen_keys: list[str]) -> None:
        """Drop cached aggregates (after a failed save they may hold unsaved events)."""
        cache = self.repository.cache
        if cache is None:
            return
        for key in citizen_keys:
            with contextlib.suppress(KeyError):
                cache.get(citizen_id(key), evict=True)
