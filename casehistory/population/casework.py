"""Caseworkers and meetings: the job centre's contact with a citizen (contract v3 events).

The job centres' systems publish ``CaseworkerAssigned`` and ``MeetingHeld`` from
``CASEWORK_FROM`` (when the contract's new version went live upstream): an opening batch names
the caseworker of every citizen then on a job-centre benefit; afterwards a caseworker is
assigned when a job-centre benefit starts a new spell or the case moves to another unit, and
on reassignments (staff turnover). Staff are sized for about ``CASELOAD`` citizens each.
With a home municipality (the demo's), only its job centre publishes staff ids (another
job centre's meetings come without one), and it is staffed unit by unit (``teams``).
Citizens in a target group with a right to a coordinating caseworker get a visitation meeting
on their group assignment, a first meeting mostly within 14 days and joint meetings about
every four weeks after that; some are late, and ``other`` meetings do not reset the clock.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from casehistory.population.draws import Event

CASEWORK_FROM = date(2025, 4, 1)
CASELOAD = 70
JOB_CENTRE_SHARE = 0.2  # of the generated citizens on a job-centre benefit on a given day
CADENCE_GROUPS = frozenset(
    {"aktivitetsparat_voksen", "aktivitetsparat_ung", "jobafklaring", "ressourceforloeb"}
)
UNIT_OF_GROUP = {
    "uddannelsesparat": "ung",
    "aktivitetsparat_ung": "ung",
    "aktivitetsparat_voksen": "ressource",
    "ressourceforloeb": "ressource",
    "fleksjobvisiteret": "ressource",
    "sygedagpengemodtager": "sygedagpenge",
    "jobafklaring": "sygedagpenge",
    "revalidering": "sygedagpenge",
}
UNITS = ("job", "ung", "ressource", "sygedagpenge")
REASSIGNMENT_RATE = 0.3  # a year, on a job-centre benefit

UNIT_SHARE = {"job": 0.49, "ung": 0.02, "ressource": 0.19, "sygedagpenge": 0.30}
"""Each unit's share of a job centre's caseloads (measured on a home municipality's citizens,
8,000 citizens, seeds 1 and 2)."""

Emit = Callable[[str, date, Event], Event]
"""Writes one event of the open case: (event type, effective date, own fields)."""
Teams = dict[str, tuple[str, tuple[int, ...]]]
"""Per unit of the groups: the unit that serves it and that unit's caseworker numbers."""


def teams(citizens: float) -> Teams:
    """A job centre staffed unit by unit for ``citizens`` in caseloads, ``CASELOAD`` each;
    a unit with too few citizens for a caseworker of its own is served by the job unit."""
    numbers: dict[str, tuple[int, ...]] = {}
    for unit in UNITS:
        staff = round(citizens * UNIT_SHARE[unit] / CASELOAD)
        if unit == "job":
            staff = max(1, staff)
        first = sum(map(len, numbers.values()))
        numbers[unit] = tuple(range(first, first + staff))
    return {
        unit: (unit, team) if team else ("job", numbers["job"]) for unit, team in numbers.items()
    }


def unit_of(group: str | None) -> str:
    """The job-centre unit that serves a target group."""
    return UNIT_OF_GROUP.get(str(group), "job")


@dataclass
class _Stretch:
    """Days in one case under one visitation (or since the opening batch, without one)."""

    visitation: date | None
    start: date
    end: date | None
    emit: Emit


class Casework:
    """One citizen's caseworker assignments and meetings, as the history unfolds."""

    def __init__(
        self,
        rng: random.Random,
        staff: Callable[[str], int],
        home: str | None = None,
        home_teams: Teams | None = None,
    ) -> None:
        self.rng = rng
        self.staff = staff
        self.home = home
        """With a home municipality, only its job centre publishes caseworkers' staff ids."""
        self.home_teams = home_teams or {}
        self.assignments: list[tuple[date, str]] = []
        self.unit: str | None = None
        self.stretches: list[_Stretch] = []

    def _assign(self, day: date, municipality: str, unit: str, emit: Emit) -> Event | None:
        """A caseworker of ``unit`` takes over, where the job centre is big enough for units.

        Caseworker k of a municipality works in unit ``UNITS[k % 4]``; a job centre with
        fewer than four caseworkers has them serve every group. Returns the event, or None
        when the job centre does not publish it (one other than the home one).
        """
        if municipality == self.home:
            serving, team = self.home_teams[unit]
            k = self.rng.choice(team)
        else:
            staff = self.staff(municipality)
            if staff >= len(UNITS):
                first = UNITS.index(unit)
                k = first + len(UNITS) * self.rng.randrange((staff - first + 3) // len(UNITS))
            else:
                k = self.rng.randrange(staff)
            serving = UNITS[k % len(UNITS)]
        caseworker = f"jc{municipality}-{k:04d}"
        self.assignments.append((day, caseworker))
        self.unit = unit
        fields: Event = {"caseworker": caseworker}
        if self.rng.random() < 0.9 or municipality == self.home:  # the home's system always
            fields["unit"] = f"jc{municipality}-{serving}"
        if not self._published(caseworker):
            return None
        return emit("CaseworkerAssigned", day, fields)

    def _published(self, caseworker: str) -> bool:
        return self.home is None or caseworker.startswith(f"jc{self.home}-")

    def opening(
        self, day: date, municipality: str, group: str | None, emit: Emit
    ) -> Event | None:
        """The go-live batch: the caseworker of a citizen already on a job-centre benefit."""
        event = self._assign(day, municipality, unit_of(group), emit)
        if group in CADENCE_GROUPS:
            self._stop(day)
            self.stretches.append(_Stretch(None, day, None, emit))
        return event

    def started(
        self, day: date, municipality: str, group: str | None, new_spell: bool, emit: Emit
    ) -> None:
        """A job-centre benefit starts (a new case); ``group`` is the one it announces."""
        if day < CASEWORK_FROM:
            return
        unit = unit_of(group)
        if new_spell or unit != self.unit or self.rng.random() < 0.2:
            self._assign(day, municipality, unit, emit)
        self._stop(day)
        if group in CADENCE_GROUPS:
            self.stretches.append(_Stretch(day, day, None, emit))

    def group_changed(
        self, day: date, municipality: str, old: str | None, new: str, reason: str, emit: Emit
    ) -> None:
        if day < CASEWORK_FROM:
            return
        unit = unit_of(new)
        if unit != self.unit:
            self._assign(day, municipality, unit, emit)
        if reason == "age" and old in CADENCE_GROUPS and new in CADENCE_GROUPS:
            return  # ung to voksen at 30: no visitation, the clock runs on
        self._stop(day)
        if new in CADENCE_GROUPS:
            self.stretches.append(_Stretch(day, day, None, emit))

    def stopped(self, day: date) -> None:
        """The case closes: its meetings stop."""
        self._stop(day)

    def reassign(self, day: date, municipality: str, emit: Emit) -> None:
        if day >= CASEWORK_FROM and self.unit is not None:
            self._assign(day, municipality, self.unit, emit)

    def _stop(self, day: date) -> None:
        if self.stretches and self.stretches[-1].end is None:
            self.stretches[-1].end = day

    def caseworker_on(self, day: date) -> str | None:
        i = bisect_right(self.assignments, day, key=lambda assignment: assignment[0])
        return self.assignments[i - 1][1] if i else None

    def meetings(self, history_end: date) -> None:
        """Write each stretch's meetings: visitation, first, then joint about every 4 weeks."""
        for stretch in self.stretches:
            end = min(stretch.end or history_end, history_end)
            if stretch.visitation is not None and self.rng.random() < 0.7:
                self._meeting(stretch, stretch.visitation, "visitation")
            if stretch.visitation is None:
                day = stretch.start + timedelta(days=self.rng.randint(1, 28))
                kind = "joint"
            else:
                late = self.rng.random() < 0.15
                day = stretch.start + timedelta(
                    days=self.rng.randint(15, 45) if late else self.rng.randint(1, 14)
                )
                kind = "first" if self.rng.random() < 0.7 else "joint"
            while day < end:
                self._meeting(stretch, day, kind)
                late = self.rng.random() < 0.12
                day += timedelta(
                    days=self.rng.randint(29, 60) if late else self.rng.randint(18, 28)
                )
                kind = "joint" if self.rng.random() < 0.9 else "other"

    def _meeting(self, stretch: _Stretch, day: date, kind: str) -> None:
        fields: Event = {"meeting_kind": kind}
        caseworker = self.caseworker_on(day)
        if caseworker is not None and self.rng.random() < 0.7 and self._published(caseworker):
            fields["caseworker"] = caseworker
        stretch.emit("MeetingHeld", day, fields)
