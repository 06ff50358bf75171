"""Waiting out transient faults: a store or broker that is down, restarting or refusing.

A transient fault (a lost or refused connection, a broker that does not answer, a
dead letter the broker did not acknowledge) never stops a consumer: the failed
step is retried with exponential backoff, each wait logged and counted, until it
succeeds or the process is asked to stop. Anything else is a bug and propagates.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError

log = logging.getLogger(__name__)
T = TypeVar("T")


class DeadLetterNotSent(Exception):
    """The dead-letter destination did not take a letter; the batch must not be acknowledged."""


class Stopped(Exception):
    """The process was asked to stop while waiting out a transient fault."""


TRANSIENT: tuple[type[BaseException], ...] = (
    InterfaceError,
    OperationalError,  # eventsourcing's wrapping of a lost or refused database connection
    IntegrityError,  # another writer appended to the same citizens again and again
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,  # "database is locked"
    KafkaError,
    DeadLetterNotSent,
    ConnectionError,
    TimeoutError,
)


REBALANCED: tuple[type[BaseException], ...] = (CommitFailedError, RebalanceInProgressError)
"""A commit refused because the group moved on: not retried, the consumer rejoins instead."""


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT) and not isinstance(error, REBALANCED)


@dataclass
class Backoff:
    """Exponential backoff between retries, with a count of the faults waited out."""

    first: float = 0.2
    longest: float = 15.0
    faults: int = 0

    def retry(
        self, step: Callable[[], T], what: str, stop: threading.Event | None = None
    ) -> T:
        """Run `step` until it succeeds; transient faults are logged, counted and waited out.

        Raises `Stopped` if `stop` is set while waiting.
        """
        delay = self.first
        while True:
            try:
                return step()
            except Exception as error:
                if not is_transient(error):
                    raise
                self.faults += 1
                log.warning(
                    "transient fault while %s (%s: %s); retry %d in %.1fs",
                    what, type(error).__name__, _first_line(error), self.faults, delay,
                )
                if stop is not None and stop.wait(delay):
                    raise Stopped(what) from error
                if stop is None:
                    threading.Event().wait(delay)
                delay = min(delay * 2, self.longest)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else ""
