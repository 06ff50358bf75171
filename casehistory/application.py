"""The event-sourced application: one `Citizen` aggregate per citizen."""

from __future__ import annotations

import contextlib
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application

from domain.citizen import Citizen, citizen_id


class CaseHistory(Application[Any]):
    """Stores citizens' facts; persistence is chosen by the environment (see settings)."""

    name = "casehistory"
    env = {  # noqa: RUF012 - the library's own convention for defaults
        "AGGREGATE_CACHE_MAXSIZE": "20000",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }

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
