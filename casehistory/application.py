"""The event-sourced application: one `Citizen` aggregate per citizen."""

from __future__ import annotations

import contextlib
from typing import Any

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

    def forget_cached(self, citizen_keys: list[str]) -> None:
        """Drop cached aggregates (after a failed save they may hold unsaved events)."""
        cache = self.repository.cache
        if cache is None:
            return
        for key in citizen_keys:
            with contextlib.suppress(KeyError):
                cache.get(citizen_id(key), evict=True)
