"""One synthetic citizen's true history, written as upstream events in effective order.

Each citizen gets a benefit history with the four breaks that hide real durations (moves, the
2018 case-system conversion, data breaks, reforms), genuine exits, and social interventions
that follow the citizen's target group (so the demo's coordination figures look like the
field's). Only substitute CPR numbers (day of month + 60) are generated, so no record can be
a real person. Everything is drawn from the citizen's own ``random.Random``.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib.resources import files
from itertools import accumulate

from casehistory.population.casework import (
    CASELOAD,
    CASEWORK_FROM,
    JOB_CENTRE_SHARE,
    REASSIGNMENT_RATE,
    Casework,
    Emit,
    teams,
)
from casehistory.population.draws import Event, day_between, new_event_id, pick, timestamp

Incident = Callable[[date], int | None]
"""Something that happens inside a benefit period; returns the days until payment resumes,
or None when the history ends there."""

LEGACY_SYSTEM = "legacy-fasit-2018"
SOCIAL_SYSTEM = "sof-cura"
CHILDREN_SYSTEM = "dubu"
CASE_PREFIX = {
    LEGACY_SYSTEM: "LF",
    "fasit": "FAS",
    "momentum": "MOM",
    SOCIAL_SYSTEM: "SC",
    CHILDREN_SYSTEM: "DUBU",
}

HISTORY_FROM = date(2000, 1, 1)
EARLY_COHORT_UNTIL = date(2004, 12, 31)
EARLY_SHARE = 0.30
"""Share of histories going back to 2000-2004."""
HEAVY_SHARE = 0.04
"""Share of citizens far from the labour market: long, broken spells."""
HEAVY_EARLY_SHARE = 0.40
"""The same among citizens far from the labour market (they carry the 10-year anchor)."""
RESSOURCEFORLOEB_FROM = date(2013, 1, 1)
REFORM_2014 = date(2014, 1, 1)
JOBAFKLARING_FROM = date(2014, 7, 1)
SELF_SUPPORT_REFORM = date(2019, 7, 1)
SENIORPENSION_FROM = date(2020, 1, 1)
LONG_AGO = timedelta(days=15_000)

CASH_SYSTEM = frozenset(
    {"kontanthjaelp", "uddannelseshjaelp", "overgangsydelse", "selvforsorgelsesydelse"}
)
PERMANENT = frozenset({"foertidspension", "seniorpension"})
FIXED_GROUP = {
    "dagpenge": "dagpengemodtager",
    "sygedagpenge": "sygedagpengemodtager",
    "jobafklaringsydelse": "jobafklaring",
    "ressourceforloebsydelse": "ressourceforloeb",
    "ledighedsydelse": "fleksjobvisiteret",
    "fleksloentilskud": "fleksjobvisiteret",
    "revalideringsydelse": "revalidering",
}
MATCH_GROUPS = {"match_1_jobklar": 45, "match_2_indsatsklar": 35, "match_3_midlertidig_passiv": 20}
REFORMED_GROUP = {  # (match group, under 30) -> the LAB group it became on 2014-01-01
    ("match_1_jobklar", False): "jobparat",
    ("match_1_jobklar", True): "uddannelsesparat",
    ("match_2_indsatsklar", False): "aktivitetsparat_voksen",
    ("match_2_indsatsklar", True): "aktivitetsparat_ung",
    ("match_3_midlertidig_passiv", False): "aktivitetsparat_voksen",
    ("match_3_midlertidig_passiv", True): "aktivitetsparat_ung",
}
REASSESSMENT = {
    "match_1_jobklar": ("match_2_indsatsklar",),
    "match_2_indsatsklar": ("match_1_jobklar", "match_3_midlertidig_passiv"),
    "match_3_midlertidig_passiv": ("match_2_indsatsklar",),
    "jobparat": ("aktivitetsparat_voksen",),
    "aktivitetsparat_voksen": ("jobparat",),
    "uddannelsesparat": ("aktivitetsparat_ung",),
    "aktivitetsparat_ung": ("uddannelsesparat",),
}
FOLLOW_UP_RATE = 0.65
"""Yearly rate of a follow-up that restates the target group, before casework went live."""
AGE_30_GROUP = {"uddannelsesparat": "jobparat", "aktivitetsparat_ung": "aktivitetsparat_voksen"}

CASH, PENSION, SENIOR = "<cash>", "<pension>", "<senior>"  # successors by age and date
EXITS: dict[str, tuple[tuple[float, str, str | None], ...]] = {  # (weight, reason, successor)
    "cash": (
        (30, "job", None),
        (10, "education", None),
        (14, "self_support", None),
        (3, "benefit_change", "ressourceforloebsydelse"),
        (5, "benefit_change", "sygedagpenge"),
        (2, "pension", PENSION),
        (3, "pension", SENIOR),
        (2, "emigrated", None),
        (1, "died", None),
        (5, "other", None),
    ),
    "dagpenge": (
        (60, "job", None),
        (1.5, "benefit_change", CASH),
        (3, "pension", SENIOR),
        (6, "education", None),
        (5, "self_support", None),
        (4, "other", None),
    ),
    "sygedagpenge": (
        (65, "job", None),
        (15, "benefit_change", "jobafklaringsydelse"),
        (2, "benefit_change", CASH),
        (1, "pension", PENSION),
        (3, "pension", SENIOR),
        (6, "other", None),
    ),
    "jobafklaringsydelse": (
        (30, "job", None),
        (7, "benefit_change", "ressourceforloebsydelse"),
        (2, "benefit_change", "ledighedsydelse"),
        (5, "pension", PENSION),
        (20, "benefit_change", CASH),
    ),
    "ressourceforloebsydelse": (
        (5, "benefit_change", "ledighedsydelse"),
        (8, "pension", PENSION),
        (25, "benefit_change", CASH),
        (10, "job", None),
        (10, "other", None),
    ),
    "ledighedsydelse": (
        (60, "job", "fleksloentilskud"),
        (4, "pension", PENSION),
        (15, "other", None),
        (15, "self_support", None),
    ),
    "fleksloentilskud": (
        (5, "other", "ledighedsydelse"),
        (5, "pension", PENSION),
        (25, "self_support", None),
        (15, "job", None),
    ),
    "revalideringsydelse": (
        (50, "job", None),
        (30, "education", None),
        (20, "benefit_change", CASH),
    ),
}
MEAN_DAYS = {  # (minimum, mean extra) days of a planned benefit period
    "cash": (30, 95),
    "cash_heavy": (365, 5500),
    "dagpenge": (30, 320),
    "sygedagpenge": (14, 120),
    "jobafklaringsydelse": (60, 350),
    "ressourceforloebsydelse": (365, 700),
    "ledighedsydelse": (30, 450),
    "fleksloentilskud": (730, 4000),
    "revalideringsydelse": (180, 500),
}
NEED_RATE = {  # yearly rate of a new social intervention while in the target group
    "aktivitetsparat_voksen": 0.13,
    "aktivitetsparat_ung": 0.34,
    "ressourceforloeb": 0.26,
    "fleksjobvisiteret": 0.030,
    "match_2_indsatsklar": 0.0625,
    "match_3_midlertidig_passiv": 0.1,
}
OTHER_NEED_RATE = 0.0045  # any other group, or none
EDGE_GROUPS = frozenset(
    {"aktivitetsparat_voksen", "aktivitetsparat_ung", "ressourceforloeb", "fleksjobvisiteret"}
    | {"match_2_indsatsklar", "match_3_midlertidig_passiv"}
)
STEP_WEIGHT = {  # the kind of intervention a need brings, by how far from the labour market
    "far": {"1": 2.0, "2": 3.0, "3": 2.0, "4": 1.5, "children": 2.0},  # heavy, at the edge
    "edge": {"1": 2.0, "2": 3.0, "3": 2.0, "4": 0.2, "children": 2.0},  # others at the edge
    "other": {"1": 12.0, "2": 0.25, "3": 0.1, "4": 0.01, "children": 0.3},
}
SOCIAL_ONLY_SHARE = 0.08  # citizens with aids, extra costs or the like (not coordination-relevant)
INTERVENTION_DAYS = {
    "1": (180, 1500),
    "2": (192, 1440),
    "3": (96, 1440),
    "4": (700, 3000),
    "children": (288, 2400),
    "none": (30, 2500),
}
BIG_CITIES = {"101": 10, "751": 6, "461": 4, "851": 4}
HOME_SHARE = 0.9
"""With a home municipality: the share of first homes, and of moves, that are the home one."""
HOME_CASELOAD_SHARE = 0.135
"""With a home municipality: the share of the citizens in its job centre's caseloads on a day
(fewer than ``JOB_CENTRE_SHARE``: moves take some away; 0.137 and 0.134 measured at 8,000
citizens, seeds 1 and 2)."""
MERGER_2007 = date(2007, 1, 1)  # the structural reform: merged municipalities migrated history


@cache
def _reference(name: str) -> tuple[dict[str, str], ...]:
    """Rows of a reference table in ``domain/data``."""
    text = (files("casehistory.domain") / "data" / f"{name}.csv").read_text(encoding="utf-8")
    return tuple(csv.DictReader(text.splitlines()))


@cache
def _group_validity() -> dict[str, tuple[date, date]]:
    """Each target group's first and last valid day."""
    return {
        row["code"]: (
            date.fromisoformat(row["valid_from"] or "1900-01-01"),
            date.fromisoformat(row["valid_to"] or "9999-12-31"),
        )
        for row in _reference("target_groups")
    }


@cache
def _municipalities(home: str | None = None) -> tuple[list[str], list[float]]:
    """Municipality codes with cumulative weights (the big cities have more citizens).

    With a ``home`` municipality, it has ``HOME_SHARE`` of the weight and the rest keep
    their national proportions.
    """
    codes = [row["code"] for row in _reference("municipalities")]
    weights = [float(BIG_CITIES.get(code, 1)) for code in codes]
    if home is not None:
        others = sum(weights) - weights[codes.index(home)]
        weights[codes.index(home)] = others * HOME_SHARE / (1 - HOME_SHARE)
    return codes, list(accumulate(weights))


@cache
def _interventions() -> dict[str, list[str]]:
    """Intervention codes by support step ("1".."4", "children", "none")."""
    by_step: dict[str, list[str]] = {}
    for row in _reference("interventions"):
        by_step.setdefault(row["support_step"], []).append(row["code"])
    return by_step


@cache
def _staff(citizens: int, municipality: str) -> int:
    """Caseworkers in the municipality's job centre: about ``CASELOAD`` citizens each."""
    share = BIG_CITIES.get(municipality, 1) / _municipalities()[1][-1]
    return max(1, round(citizens * share * JOB_CENTRE_SHARE / CASELOAD))


def _migrated_in_2007(municipality: str) -> bool:
    """Whether the municipality's pre-2007 history reached the topic in one 2007 batch."""
    return int(municipality) % 3 == 0


def _batch_time(rng: random.Random, day: date) -> str:
    """A moment in the evening batch window of ``day`` (a migration runs for hours)."""
    return timestamp(rng, day, 18, 24)


def _conversion_date(municipality: str) -> date:
    """The day the municipality's cases were converted out of the legacy system in 2018."""
    return date(2018, 1 + int(municipality) % 9, 1)


def _system_for(municipality: str, day: date) -> str:
    """The job-centre case system the municipality used on ``day``."""
    if day < _conversion_date(municipality):
        return LEGACY_SYSTEM
    return "momentum" if int(municipality) % 4 == 0 else "fasit"


def _substitute_cpr(rng: random.Random, birth: date) -> str:
    """A substitute CPR number (day + 60) whose 7th digit gives the right century."""
    yy = birth.year % 100
    if birth.year < 2000:
        digits = "0123" + ("49" if yy > 36 else "")
    else:
        digits = ("49" if yy <= 36 else "") + ("5678" if yy <= 57 else "")
    serial = f"{rng.choice(digits)}{rng.randrange(1000):03d}"
    return f"{birth.day + 60:02d}{birth.month:02d}{yy:02d}{serial}"


@dataclass
class _Period:
    """The benefit period currently open (one case in one source system)."""

    benefit: str
    group: str | None
    system: str
    municipality: str
    case_ref: str
    start: date


@dataclass
class _GroupSpan:
    """A target group upstream announced, in force in one case from ``start`` until ``end``."""

    group: str
    start: date
    end: date | None
    period: _Period


class Citizen:
    """One citizen's true history, written as upstream events in effective order."""

    def __init__(
        self,
        rng: random.Random,
        used_cprs: set[str],
        until: date,
        population: int = 1000,
        home: str | None = None,
    ) -> None:
        self.rng = rng
        self.home = home
        self.casework = Casework(
            rng,
            lambda municipality: _staff(population, municipality),
            home,
            teams(population * HOME_CASELOAD_SHARE) if home else {},
        )
        self.last_stop: date | None = None
        self.until = until
        self.heavy = rng.random() < HEAVY_SHARE
        self.data_break_rate = 0.5 if self.heavy else 0.15
        self.comeback = 0.9 if self.heavy else rng.choice((0.88, 0.93, 0.96))
        self.first_start = self._first_start()
        age = rng.choice((18, 20, 22, 25, 28, 30, 35, 40, 45, 50, 55))
        self.birth = self.first_start - timedelta(days=int(age * 365.25) + rng.randrange(365))
        self.cpr = _substitute_cpr(rng, self.birth)
        while self.cpr in used_cprs:
            self.birth -= timedelta(days=1)
            self.cpr = _substitute_cpr(rng, self.birth)
        used_cprs.add(self.cpr)
        codes, weights = _municipalities(self.home)
        self.municipality = rng.choices(codes, cum_weights=weights)[0]
        self.moves: list[tuple[date, str]] = [(date.min, self.municipality)]
        self.end = until + timedelta(days=1)  # first day outside the history
        self.horizon = min(self.end, self._birthday(67))  # first day no benefit can be paid
        self.needs: list[tuple[date, str]] = []  # (start, intervention) the history called for
        self.events: list[Event] = []
        self.period: _Period
        self.group_spans: list[_GroupSpan] = []
        """Days each announced target group was in force in its case (for the follow-ups)."""

    # --- age and dates -------------------------------------------------------------------

    def _first_start(self) -> date:
        """Many histories go back to 2000-2004; the rest start any time up to recently."""
        if self.rng.random() < (HEAVY_EARLY_SHARE if self.heavy else EARLY_SHARE):
            day = day_between(self.rng, HISTORY_FROM, EARLY_COHORT_UNTIL)
        else:
            day = day_between(self.rng, EARLY_COHORT_UNTIL, self.until - timedelta(days=30))
        return min(day, self.until)

    def _birthday(self, years: int) -> date:
        """The day the citizen turns ``years`` (29 February ages on 1 March)."""
        try:
            return self.birth.replace(year=self.birth.year + years)
        except ValueError:
            return date(self.birth.year + years, 3, 1)

    def _age(self, day: date) -> int:
        before_birthday = (day.month, day.day) < (self.birth.month, self.birth.day)
        return day.year - self.birth.year - before_birthday

    def _municipality_at(self, day: date) -> tuple[str, date]:
        """Where the citizen lived on ``day``, and when they next moved."""
        i = bisect_right(self.moves, day, key=lambda move: move[0])
        next_move = self.moves[i][0] if i < len(self.moves) else date.max
        return self.moves[i - 1][1], next_move

    # --- event writing -------------------------------------------------------------------

    def _recorded_at(self, day: date) -> str:
        """Usually registered within days; some weeks later; a few months or years later."""
        r = self.rng.random()
        if r < 0.85:
            lag = int(r / 0.85 * 4)
        elif r < 0.96:
            lag = 4 + int((r - 0.85) / 0.11 * 56)
        else:
            lag = 60 + int((r - 0.96) / 0.04 * 1440)
        return timestamp(self.rng, min(day + timedelta(days=lag), self.until))

    def _optional(self, event: Event, key: str, value: str | None, absent_share: float) -> None:
        """Set an optional field, sometimes leaving it out (absent, or now and then null)."""
        if value is None or self.rng.random() < absent_share:
            if self.rng.random() < 0.25:
                event[key] = None
        else:
            event[key] = value

    def _emit(
        self,
        event_type: str,
        day: date,
        system: str,
        municipality: str,
        case_ref: str | None,
        fields: Event,
        recorded_on: date | None = None,
    ) -> Event:
        event: Event = {
            "event_id": new_event_id(self.rng),
            "event_type": event_type,
            "cpr": self.cpr,
            "effective_date": day.isoformat(),
            "recorded_at": self._recorded_at(recorded_on or day),
            "source_system": system,
        }
        self._optional(
            event, "source_case_ref", case_ref, 0.15 if system == LEGACY_SYSTEM else 0.04
        )
        event["municipality"] = municipality
        event.update(fields)
        self.events.append(event)
        return event

    def _emit_in(self, period: _Period) -> Emit:
        """Writes events of ``period``'s case (its system, municipality and reference)."""

        def emit(event_type: str, day: date, fields: Event) -> Event:
            return self._emit(
                event_type, day, period.system, period.municipality, period.case_ref, fields
            )

        return emit

    def _case_ref(self, system: str, municipality: str) -> str:
        return f"{CASE_PREFIX[system]}-{municipality}-{self.rng.randrange(10**7):07d}"

    # --- benefit periods -----------------------------------------------------------------

    def _open(
        self,
        day: date,
        benefit: str,
        group: str | None,
        *,
        announce_group: bool = True,
        reported_start: date | None = None,
    ) -> Event:
        """A new case opens; ``reported_start`` is a start the source got wrong or carried over."""
        system = _system_for(self.municipality, day)
        self.period = _Period(
            benefit,
            group,
            system,
            self.municipality,
            self._case_ref(system, self.municipality),
            day,
        )
        fields: Event = {"benefit": benefit}
        valid_from, valid_to = _group_validity().get(str(group), (date.max, date.min))
        announced = announce_group and valid_from <= (reported_start or day) <= valid_to
        self._optional(fields, "target_group", group if announced else None, 0.08)
        self._end_span(day)
        if group is not None and fields.get("target_group") == group:
            self.group_spans.append(_GroupSpan(group, day, None, self.period))
        recorded_on = day if reported_start else None
        if benefit not in PERMANENT:
            new_spell = self.last_stop is None or (day - self.last_stop).days > 31
            self.casework.started(
                day, self.municipality, group, new_spell, self._emit_in(self.period)
            )
        return self._emit(
            "BenefitStarted",
            reported_start or day,
            system,
            self.municipality,
            self.period.case_ref,
            fields,
            recorded_on,
        )

    def _close(self, day: date, reason: str, period: _Period | None = None) -> Event:
        p = period or self.period
        if p is self.period:
            self.last_stop = day
            self.casework.stopped(day)
            self._end_span(day)
        return self._emit(
            "BenefitStopped",
            day,
            p.system,
            p.municipality,
            p.case_ref,
            {"benefit": p.benefit, "reason": reason},
        )

    def _change_group(self, day: date, group: str, reason: str) -> None:
        """Re-assessment into another target group that keeps the case (not a break)."""
        p = self.period
        self._emit(
            "TargetGroupChanged",
            day,
            p.system,
            p.municipality,
            p.case_ref,
            {"from_group": p.group, "to_group": group, "reason": reason},
        )
        self.casework.group_changed(day, p.municipality, p.group, group, reason, self._emit_in(p))
        p.group = group
        self._end_span(day)
        self.group_spans.append(_GroupSpan(group, day, None, p))

    def _end_span(self, day: date) -> None:
        if self.group_spans and self.group_spans[-1].end is None:
            self.group_spans[-1].end = day

    def _cash_benefit(self, day: date) -> str:
        young_after_reform = day >= REFORM_2014 and self._age(day) < 30
        return "uddannelseshjaelp" if young_after_reform else "kontanthjaelp"

    def _current_form(self, benefit: str, day: date) -> str:
        """What the benefit is called on ``day`` after the reforms."""
        if benefit in ("kontanthjaelp", "uddannelseshjaelp"):
            return self._cash_benefit(day)
        if benefit == "overgangsydelse" and day >= SELF_SUPPORT_REFORM:
            return "selvforsorgelsesydelse"
        return benefit

    def _group_options(self, benefit: str, day: date) -> tuple[tuple[int, str, None], ...]:
        """The target groups valid for ``benefit`` on ``day``, weighted."""
        if benefit in PERMANENT:
            return ()
        if benefit in FIXED_GROUP:
            return ((1, FIXED_GROUP[benefit], None),)
        if day < REFORM_2014:
            return tuple((weight, group, None) for group, weight in MATCH_GROUPS.items())
        active = 95 if self.heavy else 35
        if self._age(day) < 30:
            return ((100 - active, "uddannelsesparat", None), (active, "aktivitetsparat_ung", None))
        return ((100 - active, "jobparat", None), (active, "aktivitetsparat_voksen", None))

    def _group_for(self, benefit: str, day: date, keep: str | None = None) -> str | None:
        """``keep`` if it is still a valid group for the benefit on ``day``, else a new one."""
        options = self._group_options(benefit, day)
        if not options:
            return None
        if any(group == keep for _, group, _ in options):
            return keep
        return pick(self.rng, options)[0]

    def _entry_benefit(self, day: date) -> str:
        """The benefit a citizen coming from outside the system starts on."""
        adult = self._age(day) >= 25
        options = (
            (70 if self.heavy else 3, self._cash_benefit(day), None),
            (10 if self.heavy else 40, "dagpenge", None),
            (15 if self.heavy else 35, "sygedagpenge", None),
            (6 if self.heavy else 1, self._current_form("overgangsydelse", day), None),
            (2, "revalideringsydelse", None),
            (1 if adult and day >= RESSOURCEFORLOEB_FROM else 0, "ressourceforloebsydelse", None),
            (0.3 if adult else 0, "ledighedsydelse", None),
        )
        return pick(self.rng, options)[0]

    def _resolve(self, successor: str, day: date) -> str | None:
        """The concrete benefit for an exit table's successor, or None if it did not exist yet."""
        if successor == CASH:
            return self._cash_benefit(day)
        if successor == SENIOR:  # worn out after a long working life: from 2020, aged 58+
            senior = day >= SENIORPENSION_FROM and self._age(day) >= 58
            return "seniorpension" if senior else None
        if successor == PENSION:
            senior = day >= SENIORPENSION_FROM and self._age(day) >= 58
            return "seniorpension" if senior else "foertidspension"
        if successor == "ressourceforloebsydelse" and day < RESSOURCEFORLOEB_FROM:
            return None
        if successor == "jobafklaringsydelse" and day < JOBAFKLARING_FROM:
            return None
        return successor

    def _planned_days(self, benefit: str) -> int:
        if benefit in PERMANENT:
            return LONG_AGO.days
        family = benefit if benefit in MEAN_DAYS else "cash_heavy" if self.heavy else "cash"
        minimum, mean = MEAN_DAYS[family]
        return minimum + int(self.rng.expovariate(1 / mean))

    def benefit_history(self) -> None:
        """Periods from the first start until the history ends (open at ``until``, exit, 67)."""
        day, benefit = self.first_start, self._entry_benefit(self.first_start)
        while True:
            self._open(day, benefit, self._group_for(benefit, day))
            exit_day = self._live_through(day + timedelta(days=self._planned_days(benefit)))
            if exit_day is None:
                return
            step = self._exit(exit_day)
            if step is None:
                return
            day, benefit = step

    def _live_through(self, planned_end: date) -> date | None:
        """Apply the incidents inside the open period; its exit day, or None if none comes."""
        cursor = self.period.start
        while True:
            day, incident = self._next_incident(cursor)
            if day >= min(planned_end, self.horizon):
                break
            gap = incident(day)
            if gap is None:
                return None
            planned_end += timedelta(days=gap)
            cursor = day + timedelta(days=gap)
        if planned_end < self.horizon:
            return planned_end
        if self.horizon < self.end:  # turns 67: over to the state pension
            self._close(self.horizon, "pension")
        return None

    def _next_incident(self, cursor: date) -> tuple[date, Incident]:
        """The earliest of the fixed changes (reforms, conversion, age 30) and a random one."""
        p = self.period
        fixed: list[tuple[date, Incident]] = []
        if p.group in MATCH_GROUPS:
            fixed.append((REFORM_2014, self._reform_2014))
        if p.benefit == "uddannelseshjaelp":
            fixed.append((self._birthday(30), self._turn_30))
        if p.benefit == "overgangsydelse":
            fixed.append((SELF_SUPPORT_REFORM, self._reform_2019))
        if p.system == LEGACY_SYSTEM:
            fixed.append((_conversion_date(p.municipality), self._convert))
        if p.benefit not in PERMANENT and p.start < CASEWORK_FROM:
            fixed.append((CASEWORK_FROM, self._casework_opening))
        incidents, rates = zip(*self._incident_rates(), strict=True)
        random_day = cursor + timedelta(days=1 + int(self.rng.expovariate(sum(rates)) * 365))
        chosen = self.rng.choices(incidents, weights=rates)[0]
        upcoming = [change for change in fixed if change[0] > cursor]
        return min((*upcoming, (random_day, chosen)), key=lambda change: change[0])

    def _incident_rates(self) -> list[tuple[Incident, float]]:
        """Random incidents and their yearly rates for the open period."""
        p = self.period
        if p.benefit in PERMANENT:
            return [(self._move, 0.02), (self._social_need, OTHER_NEED_RATE)]
        data_break = self.data_break_rate * (1.0 if p.benefit in CASH_SYSTEM else 0.4)
        rates: list[tuple[Incident, float]] = [
            (self._move, 0.05),
            (self._data_break, data_break),
            (self._social_need, self._need_rate()),
            (self._reassign, REASSIGNMENT_RATE),
        ]
        if p.group in REASSESSMENT:
            reassess = self._reassessment_rate()
            rates += [(self._reassess, reassess), (self._case_split, reassess / 4)]
        return rates

    def _casework_opening(self, day: date) -> int:
        """The go-live batch names the caseworker of everyone then on a job-centre benefit."""
        p = self.period
        event = self.casework.opening(day, p.municipality, p.group, self._emit_in(p))
        if event is not None:
            event["recorded_at"] = _batch_time(self.rng, day)
            event["migration_batch"] = f"casework-opening-{p.system}-{p.municipality}"
        return 0

    def _reassign(self, day: date) -> int:
        """Staff turnover or a new team: another caseworker takes over the case."""
        self.casework.reassign(day, self.period.municipality, self._emit_in(self.period))
        return 0

    def _reassessment_rate(self) -> float:
        """Yearly rate of a re-assessment: towards the edge for heavy citizens, away for light."""
        at_edge = self.period.group in EDGE_GROUPS
        if self.heavy:
            return 0.04 if at_edge else 0.6
        return 0.4 if at_edge else 0.08

    def _reopen(self, day: date, gap: int) -> int | None:
        """Payment resumes in a new case after ``gap`` days (in the benefit's current form)."""
        restart = day + timedelta(days=gap)
        if restart >= self.horizon:
            return None
        p = self.period
        benefit = self._current_form(p.benefit, restart)
        self._open(restart, benefit, self._group_for(benefit, restart, keep=p.group))
        return gap

    def _data_break(self, day: date) -> int | None:
        """Databrud: closed for no contact or a sanction, reopened days or weeks later."""
        self._close(day, "no_contact_or_sanction")
        short = self.rng.random() < (0.88 if self.heavy else 0.7)
        return self._reopen(day, self.rng.randint(2, 25) if short else self.rng.randint(26, 75))

    def _move(self, day: date) -> int | None:
        """Moving municipality: the citizen must apply again where they now live."""
        self._close(day, "moved_municipality")
        self._relocate(day)
        r = self.rng.random()
        gap = (
            self.rng.randint(1, 28)
            if r < 0.55
            else self.rng.randint(29, 60)
            if r < 0.85
            else self.rng.randint(61, 150)
        )
        return self._reopen(day, gap)

    def _relocate(self, day: date) -> None:
        codes, weights = _municipalities(self.home)
        old = self.municipality
        while self.municipality == old:
            self.municipality = self.rng.choices(codes, cum_weights=weights)[0]
        self.moves.append((day, self.municipality))
        self._emit(
            "CitizenMoved",
            day,
            _system_for(self.municipality, day),
            self.municipality,
            None,
            {"from_municipality": old, "to_municipality": self.municipality},
        )

    def _reassess(self, day: date) -> int:
        group = self.rng.choice(REASSESSMENT[str(self.period.group)])
        self._change_group(day, group, "reassessment" if self.rng.random() < 0.85 else "other")
        return 0

    def _case_split(self, day: date) -> int:
        """A re-assessment handled by closing the case and opening one in the new group."""
        p = self.period
        self._close(day, "target_group_change")
        self._open(day, p.benefit, self.rng.choice(REASSESSMENT[str(p.group)]))
        return 0

    def _reform_2014(self, day: date) -> int:
        """Match groups abolished; under-30s on kontanthjælp move to uddannelseshjælp."""
        p = self.period
        young = self._age(day) < 30
        group = REFORMED_GROUP[str(p.group), young]
        if p.benefit == "kontanthjaelp" and young:
            self._close(day, "benefit_change")
            self._open(day, "uddannelseshjaelp", group)
        elif self.rng.random() < 0.35:
            self._close(day, "target_group_change")
            self._open(day, p.benefit, group)
        else:
            self._change_group(day, group, "reform")
        return 0

    def _turn_30(self, day: date) -> int:
        """Uddannelseshjælp ends at 30: a kontanthjælp case, group set by a separate change."""
        p = self.period
        self._close(day, "benefit_change")
        self._open(day, "kontanthjaelp", p.group, announce_group=False)
        self._change_group(day, AGE_30_GROUP[str(p.group)], "age")
        return 0

    def _reform_2019(self, day: date) -> int:
        """Integrationsydelse replaced by selvforsørgelses- og hjemrejseydelse."""
        self._close(day, "benefit_change")
        self._open(day, "selvforsorgelsesydelse", self.period.group)
        return 0

    def _convert(self, day: date) -> int:
        """The 2018 conversion: the legacy case stops and the converted case starts that day.

        Half the time cleanly; otherwise the legacy extract keeps reporting days the converted
        case also covers, or the converted case carries the original start (migrated later).
        """
        legacy = self.period
        r = self.rng.random()
        if r < 0.25:
            converted = [self._open(day, legacy.benefit, legacy.group)]
            legacy_stop = day + timedelta(days=self.rng.randint(1, 45))
            if legacy_stop < self.end:
                self._close(legacy_stop, "system_conversion", legacy)
        else:
            stop = self._close(day, "system_conversion")
            carried = legacy.start if r < 0.5 else None
            converted = [
                stop,
                self._open(day, legacy.benefit, legacy.group, reported_start=carried),
            ]
        batch = f"{self.period.system}-conversion-2018-{legacy.municipality}"
        for event in converted:  # the conversion job registers them all in one evening
            event["recorded_at"] = _batch_time(self.rng, day)
            event["migration_batch"] = batch
        return 0

    def _exit(self, day: date) -> tuple[date, str] | None:
        """Close the period for an exit or a change of benefit; the next start, if any."""
        p = self.period
        table = EXITS.get(p.benefit, EXITS["cash"])
        while True:
            reason, token = pick(self.rng, table)
            successor = self._resolve(token, day) if token else None
            if token is None or successor not in (None, p.benefit):
                break
        self._close(day, reason)
        if successor is not None:
            return day, successor
        if reason == "died":
            self.end = self.horizon = day
            return None
        comeback = 0.2 if reason == "emigrated" else self.comeback
        if self.rng.random() >= comeback:
            return None
        r = self.rng.random()
        gap = (
            self.rng.randint(10, 70)
            if r < 0.25
            else self.rng.randint(71, 1000)
            if r < 0.8
            else self.rng.randint(701, 2500)
        )
        restart = day + timedelta(days=gap)
        if self.rng.random() < 0.12:
            moved = day + timedelta(days=self.rng.randrange(1, gap))
            if moved < self.horizon:
                self._relocate(moved)
        if restart >= self.horizon:
            return None
        return restart, self._entry_benefit(restart)

    # --- social interventions ------------------------------------------------------------

    def _social_need(self, day: date) -> int:
        """A social intervention starts; its kind depends on how far from the labour market."""
        at_edge = self.period.group in EDGE_GROUPS
        weights = STEP_WEIGHT["far" if at_edge and self.heavy else "edge" if at_edge else "other"]
        step = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        self.needs.append((day, self.rng.choice(_interventions()[step])))
        return 0

    def _need_rate(self) -> float:
        return NEED_RATE.get(str(self.period.group), OTHER_NEED_RATE)

    def social_interventions(self) -> None:
        """The interventions the history called for, plus aids and the like for a few.

        An intervention runs its course or ends when the citizen moves away; a second one of
        the same kind waits until the first has ended.
        """
        if self.rng.random() < SOCIAL_ONLY_SHARE:
            earliest = max(self.first_start - timedelta(days=730), self._birthday(16))
            start = day_between(self.rng, earliest, self.end - timedelta(days=1))
            self.needs.append((start, self.rng.choice(_interventions()["none"])))
        running_until: dict[str, date] = {}
        steps = {code: step for step, codes in _interventions().items() for code in codes}
        for start, code in sorted(self.needs):
            if start >= self.end or running_until.get(code, date.min) > start:
                continue
            municipality, next_move = self._municipality_at(start)
            low, high = INTERVENTION_DAYS[steps[code]]
            days = 1 if code == "one_off_benefit" else self.rng.randint(low, high)
            end = min(start + timedelta(days=days), next_move)
            running_until[code] = end
            system = CHILDREN_SYSTEM if steps[code] == "children" else SOCIAL_SYSTEM
            case_ref = self._case_ref(system, municipality)
            fields: Event = {"intervention": code}
            self._emit("SocialInterventionStarted", start, system, municipality, case_ref, fields)
            if end < self.end:
                self._emit("SocialInterventionEnded", end, system, municipality, case_ref, fields)

    # --- the whole history ---------------------------------------------------------------

    def history(self) -> list[Event]:
        """Every event of the citizen's history, as registered (effective order, roughly)."""
        self.benefit_history()
        self.casework.meetings(self.end)
        self.social_interventions()
        self._follow_ups()
        self._migrate_2007()
        return self.events

    def _follow_ups(self) -> None:
        """Follow-ups that re-assess a citizen and restate the group, before casework went live.

        Drawn from a stream of their own (seeded by the CPR number), so the rest of the
        history is the one drawn without them; a restated group changes no measure, and
        before the go-live no meeting clock runs.
        """
        main, self.rng = self.rng, random.Random(self.cpr)
        try:
            for span in self.group_spans:
                end = min(span.end or self.end, CASEWORK_FROM, self.end)
                day = span.start
                while (gap := 1 + self.rng.expovariate(FOLLOW_UP_RATE) * 365) < (end - day).days:
                    day += timedelta(days=int(gap))
                    p = span.period
                    self._emit("TargetGroupChanged", day, p.system, p.municipality, p.case_ref,
                               {"from_group": span.group, "to_group": span.group,
                                "reason": "reassessment"})
        finally:
            self.rng = main

    def _migrate_2007(self) -> None:
        """History registered before 2007 in a merged municipality arrives in one batch."""
        for event in self.events:
            municipality = str(event["municipality"])
            if str(event["recorded_at"]) < "2007" and _migrated_in_2007(municipality):
                batch_day = MERGER_2007 + timedelta(days=int(municipality) % 20)
                event["recorded_at"] = _batch_time(self.rng, batch_day)
                event["migration_batch"] = f"merger-2007-{municipality}"
