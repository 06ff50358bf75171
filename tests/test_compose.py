"""docker-compose.yml describes the deployable stack the code actually expects."""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path

import yaml

from casehistory.devservices.kafka import KAFKA_VERSION
from casehistory.entrypoints.cli.main import needs, parser
from casehistory.services.access import Action, Role, check, identity_from_env
from casehistory.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SERVICES = ("router", "store-g0", "store-g1", "projections", "serve")
KEYS = tuple(f.name for f in fields(Settings) if f.name.endswith("_key"))
KEY_FILES = {PREFIX + key.upper() + "_FILE" for key in KEYS}
CALLER = {PREFIX + "USER", PREFIX + "ROLE"}
"""Who runs a container's command (casehistory.services.access.identity_from_env)."""


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_kafka_postgres_ingest_and_projection_workers() -> None:
    services = compose()["services"]
    assert {"kafka", "postgres", "router", "store-g0", "projections"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["image"].split(":")[1].split(".")[0] == KAFKA_VERSION.split(".")[0]


def test_engine_settings_in_the_stack_are_settings_the_code_reads() -> None:
    services = compose()["services"]
    known = {PREFIX + f.name.upper() for f in fields(Settings)} | KEY_FILES | CALLER
    for name in ("router", "store-g0", "store-g1", "projections"):
        env = services[name]["environment"]
        groups = int(env.get(PREFIX + "STORE_GROUPS", 1))
        per_group = {f"{PREFIX}GROUP_{g}_{what}"
                     for g in range(groups) for what in ("STORE", "SCHEMA")}
        assert set(env) <= known | per_group, set(env) - known - per_group
        settings = Settings.load({k: str(v) for k, v in env.items()
                                  if k not in KEY_FILES | CALLER})
        assert settings.uses_postgres
        assert settings.kafka_bootstrap == "kafka:9092"
        defaults = Settings.load({PREFIX + "PSEUDONYM_KEY": "00"})
        assert settings.kafka_topic == defaults.kafka_topic
        assert settings.kafka_dlq_topic == defaults.kafka_dlq_topic
        assert settings.kafka_group == defaults.kafka_group


def test_every_engine_container_reads_every_key_from_the_same_secret() -> None:
    """Containers that made their own keys would give one citizen several pseudonyms and
    could not read each other's encrypted events (docs/privacy.md, "The keys")."""
    stack = compose()
    assert len(KEYS) == 5, KEYS
    for name in ENGINE_SERVICES:
        service = stack["services"][name]
        env = service["environment"]
        for key in KEYS:
            secret = env.get(PREFIX + key.upper() + "_FILE", "")
            assert secret == f"/run/secrets/{key}", (name, key, secret)
            assert key in service["secrets"], (name, key)
            assert key in stack["secrets"], key
            assert PREFIX + key.upper() not in env, (name, key)  # no key in clear in the file


def test_each_partition_group_has_one_store_writer_and_group_1_its_own_server() -> None:
    services = compose()["services"]
    settings = Settings.load({k: str(v) for k, v in services["router"]["environment"].items()
                              if k not in KEY_FILES | CALLER})
    writers = {name: service["command"] for name, service in services.items()
               if "--store-group" in service.get("command", [])}
    groups = sorted(int(command[command.index("--store-group") + 1])
                    for command in writers.values())
    assert groups == list(range(settings.store_groups)) and settings.store_groups == 2
    assert all(services[name].get("deploy", {}).get("replicas", 1) == 1 for name in writers)
    assert settings.group_store(1).url.split("@")[1].split(":")[0] in services
    assert settings.group_store(0).url == settings.store


def test_service_commands_are_real_cli_commands_their_callers_may_run() -> None:
    services = compose()["services"]
    for name in ENGINE_SERVICES:
        command = services[name]["command"]
        argv = command if isinstance(command, list) else shlex.split(command)
        assert argv[0] == "casehistory"
        args = parser().parse_args(argv[1:])  # raises SystemExit on an unknown command or flag
        caller = identity_from_env({k: str(v) for k, v in services[name]["environment"].items()})
        assert caller.roles == {Role.OPERATOR}, name  # runs the engine, sees no personal data
        assert needs(args) is Action.OPERATE, name
        check(caller, Action.OPERATE)


def test_the_image_the_stack_builds_exists() -> None:
    assert (ROOT / "Dockerfile").is_file()
    assert "pip install" in (ROOT / "Dockerfile").read_text()
