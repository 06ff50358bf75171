"""`casehistory route`: one member of the router group (input topic -> history topic),
and the topics of that pipeline."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from casehistory.bootstrap import build
from casehistory.consumers.retry import Backoff, Stopped
from casehistory.entrypoints.cli.common import console, kafka_bootstrap, stop_on_signals
from casehistory.settings import Settings

log = logging.getLogger("casehistory")


def ensure_pipeline_topics(settings: Settings, partitions: int) -> None:
    """Create the input, history, dead-letter and changelog topics; check the history topic."""
    from casehistory.consumers import topics

    topics.ensure_pipeline_topics(
        kafka_bootstrap(settings), settings.kafka_topic, settings.kafka_history_topic,
        settings.kafka_dlq_topic, partitions,
        input_retention_hours=settings.input_retention_hours,
        dlq_retention_days=settings.dead_letter_retention_days,
    )


def cmd_route(args: argparse.Namespace) -> int:
    """Route the input topic until SIGTERM/SIGINT (or `--idle-exit` seconds without records).

    Uses the pseudonym key, the key store (it seals CPRs) and the store key (the
    history topic's values are encrypted with it); it appends no event.
    """
    from casehistory.consumers.router import Router, RouterFenced

    stop = stop_on_signals()
    settings = Settings.load()
    bootstrap = kafka_bootstrap(settings)
    backoff = Backoff()
    try:
        engine = backoff.retry(build, "opening the key store", stop)
    except Stopped:
        return 0
    router = None
    try:
        backoff.retry(lambda: ensure_pipeline_topics(settings, args.partitions),
                      "creating topics", stop)
        router = backoff.retry(
            lambda: Router(
                engine.vault, bootstrap, settings.kafka_topic, settings.kafka_history_topic,
                settings.kafka_dlq_topic, settings.kafka_router_group,
                max_poll_records=args.max_poll_records, backoff=backoff,
                cipher=engine.app.mapper.cipher,
            ),
            "joining the router group", stop,
        )
        counters = router.run(
            stop, idle_exit_seconds=args.idle_exit,
            on_batch=lambda c: log.info(
                "consumed=%d forwarded=%d dead_lettered=%d aborted=%d",
                c.consumed, c.forwarded, c.dead_lettered, c.transactions_aborted,
            ),
        )
    except Stopped:
        return 0
    except RouterFenced as fenced:  # a newer router took over: this one must not write
        console.print(f"stopped: {fenced}")
        return 2
    finally:
        if router is not None:
            router.close()
        engine.close()
    console.print(
        f"consumed {counters.consumed:,}: forwarded {counters.forwarded:,}, dead-lettered "
        f"{counters.dead_lettered:,}, transactions aborted {counters.transactions_aborted:,}"
    )
    return 0


def add_parsers(sub: Any) -> None:
    route = sub.add_parser("route", help="run one router: input topic -> history topic")
    route.add_argument("--idle-exit", type=float,
                       help="stop after this many seconds without records")
    route.add_argument("--max-poll-records", type=int, default=2000)
    route.add_argument("--partitions", type=int, default=6, help="when creating the topics")
    route.set_defaults(func=cmd_route)
