"""Shared test wiring: real-service fixtures (Kafka, PostgreSQL) and hypothesis profiles."""

import os

from hypothesis import settings

pytest_plugins = ["tests.fixtures_kafka", "tests.fixtures_postgres"]

settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
