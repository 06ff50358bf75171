"""The compose stack's serve, Prometheus and Grafana fit the server the code runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from casehistory.entrypoints.cli.main import parser
from tests.fixtures_serve import Served

ROOT = Path(__file__).resolve().parent.parent


def _yaml(path: str) -> dict:  # type: ignore[type-arg]
    loaded: dict = yaml.safe_load((ROOT / path).read_text())  # type: ignore[type-arg]
    return loaded


def test_serve_in_the_stack_is_a_real_command_prometheus_scrapes() -> None:
    services = _yaml("docker-compose.yml")["services"]
    command = services["serve"]["command"]
    args = parser().parse_args(command[1:])
    assert (args.host, args.follow) == ("0.0.0.0", False)
    scrape = _yaml("prometheus/prometheus.yml")["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == [f"serve:{args.port}"]
    secret = Path(scrape["basic_auth"]["password_file"]).name
    assert secret in services["prometheus"]["secrets"]
    assert any(v.endswith(":/etc/prometheus/prometheus.yml:ro")
               for v in services["prometheus"]["volumes"])


def test_grafana_is_provisioned_with_the_committed_dashboard() -> None:
    services = _yaml("docker-compose.yml")["services"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in services["grafana"]["volumes"])
    provider = _yaml("grafana/provisioning/dashboards/casehistory.yml")["providers"][0]
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    source = _yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    dashboard = json.loads((ROOT / "grafana/dashboards/casehistory.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {source["uid"]}
    assert source["url"].startswith("http://prometheus:")


def test_every_metric_the_dashboard_queries_is_served(served: Served) -> None:
    dashboard = json.loads((ROOT / "grafana/dashboards/casehistory.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"] for target in panel["targets"]
        for name in re.findall(r"casehistory_[a-z_]+", target["expr"])
    }
    status, _, body = served.request("/metrics", role="operator")
    assert status == 200
    exported = set(re.findall(r"^# TYPE (casehistory_[a-z_]+) (\w+)", body.decode(), re.M))
    names = {name for name, _ in exported}
    names |= {f"{name}_total" for name, kind in exported if kind == "counter"}
    names |= {f"{name}_bucket" for name, kind in exported if kind == "histogram"}
    # Consumer lag is exported only when Kafka is configured, as it is in the stack.
    missing = queried - names - {"casehistory_consumer_lag_records"}
    assert missing == set()
    assert len(queried) >= 7
