"""Reference tables (benefits, LAB target groups, interventions, municipalities).

The tables ship with the package as CSV copies of the shared reference data; they
are read once and exposed as immutable lookups.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from types import MappingProxyType

CASH_BENEFIT_SYSTEM = "cash_benefit_system"
PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Benefit:
    code: str
    danish_name: str
    family: str

    @property
    def in_cash_benefit_system(self) -> bool:
        return self.family == CASH_BENEFIT_SYSTEM

    @property
    def is_job_centre_benefit(self) -> bool:
        """Any benefit outside the permanent family (the 'temporary benefits')."""
        return self.family != PERMANENT


@dataclass(frozen=True, slots=True)
class TargetGroup:
    code: str
    danish_name: str
    main_group: str
    right_to_coordinating_caseworker: bool
    valid_from: date | None
    valid_to: date | None

    def valid_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to


@dataclass(frozen=True, slots=True)
class Intervention:
    code: str
    danish_name: str
    support_step: int | None
    """1-4 for adult interventions; None for children's measures and non-steps."""
    for_child: bool
    coordination_relevant: bool


def _rows(name: str) -> list[dict[str, str]]:
    data = resources.files("casehistory.domain").joinpath("data", f"{name}.csv")
    text = data.read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _optional_date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


@cache
def benefits() -> Mapping[str, Benefit]:
    return MappingProxyType(
        {r["code"]: Benefit(r["code"], r["danish_name"], r["family"]) for r in _rows("benefits")}
    )


@cache
def target_groups() -> Mapping[str, TargetGroup]:
    return MappingProxyType(
        {
            r["code"]: TargetGroup(
                code=r["code"],
                danish_name=r["danish_name"],
                main_group=r["main_group"],
                right_to_coordinating_caseworker=r["right_to_coordinating_caseworker"] == "yes",
                valid_from=_optional_date(r["valid_from"]),
                valid_to=_optional_date(r["valid_to"]),
            )
            for r in _rows("target_groups")
        }
    )


@cache
def interventions() -> Mapping[str, Intervention]:
    def step(text: str) -> int | None:
        return int(text) if text.isdigit() else None

    return MappingProxyType(
        {
            r["code"]: Intervention(
                code=r["code"],
                danish_name=r["danish_name"],
                support_step=step(r["support_step"]),
                for_child=r["support_step"] == "children",
                coordination_relevant=r["coordination_relevant"] == "yes",
            )
            for r in _rows("interventions")
        }
    )


@cache
def municipalities() -> Mapping[str, str]:
    """Kommunekode to name."""
    return MappingProxyType({r["code"]: r["name"] for r in _rows("municipalities")})
