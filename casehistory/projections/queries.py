"""Any-date reports as SQL over the read model's tables (SQLite and PostgreSQL).

Every report takes the as-of date D as a parameter; nothing is recomputed per
citizen in Python. The few date cut-offs a report needs (D - 10 years, the
cohort years, the 26-week buckets) are computed once by the domain's own
functions and passed in as parameters, so calendar rules (29 February) live in
one place. `docs/read-models.md` documents the tables and these queries; the
differential tests hold every answer equal to the pure functions in `domain/`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from casehistory.domain.coordination import (
    AWAITING_FLEXJOB_BENEFIT,
    LONG_SPELL_MIN_STEP,
    MASSIVE_STEP,
    READY_FOR_JOB_OR_EDUCATION,
    SHELTER,
    YOUTH_AGE_LIMIT,
)
from casehistory.domain.durations import COHORT_YEARS, WEEKS_26
from casehistory.domain.facts import BREAK_KIND_OF_REASON, BreakKind
from casehistory.domain.priorities import (
    CLARIFICATION_POOL_GROUPS,
    CLARIFICATION_POOL_MIN_AGE,
    CLARIFICATION_POOL_MIN_SHARE,
)
from casehistory.domain.spells import years_before

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Dialect:
    name: str

    def days(self, later: str, earlier: str) -> str:
        """Whole days from `earlier` to `later` (ISO dates)."""
        if self.name == "sqlite":
            return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"
        # Through text first: a parameter's type is inferred from its first use.
        return f"(CAST(CAST({later} AS text) AS date) - CAST(CAST({earlier} AS text) AS date))"

    def least(self, a: str, b: str) -> str:
        return f"min({a}, {b})" if self.name == "sqlite" else f"least({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"max({a}, {b})" if self.name == "sqlite" else f"greatest({a}, {b})"

    def concat(self, expression: str) -> str:
        if self.name == "sqlite":
            return f"group_concat({expression}, ',')"
        return f"string_agg({expression}, ',')"

    def format(self, template: str, values: list[str]) -> str:
        """`template` with each `%s` replaced by the next of `values` (text)."""
        if self.name == "sqlite":
            return f"printf('{template}', {', '.join(values)})"
        escaped = template.replace("%", "%%")  # the driver's placeholders are `%`
        return f"format('{escaped}', {', '.join(values)})"

    def json_text(self, expression: str) -> str:
        """A JSON string of `expression` (escaped as `json.dumps` escapes it), or NULL."""
        if self.name == "sqlite":
            return f"json_quote({expression})"
        return f"to_json(CAST({expression} AS text))::text"

    def real(self, expression: str) -> str:
        return f"CAST({expression} AS REAL)" if self.name == "sqlite" else f"({expression})::float8"

    def bind(self, sql: str) -> str:
        """`:name` parameters in the driver's style."""
        if self.name == "sqlite":
            return sql
        return re.sub(r"(?<![:\w]):([a-z_][a-z0-9_]*)", r"%(\1)s", sql)


def covers(alias: str, start: str = "start_date", stop: str = "stop_date") -> str:
    """`alias` covers day :d (`[start, stop)`, open when stop is NULL)."""
    return f"{alias}.{start} <= :d AND ({alias}.{stop} IS NULL OR {alias}.{stop} > :d)"


def _age(birth: str) -> str:
    return (
        f"(CAST(substr(:d, 1, 4) AS INTEGER) - CAST(substr({birth}, 1, 4) AS INTEGER)"
        f" - CASE WHEN substr(:d, 6, 5) < substr({birth}, 6, 5) THEN 1 ELSE 0 END)"
    )


def date_params(day: date) -> dict[str, Any]:
    """D and the cut-offs the reports compare spell starts against."""
    window_start = years_before(day, 10)
    params: dict[str, Any] = {
        "d": day.isoformat(),
        "d1": (day + ONE_DAY).isoformat(),
        "w": (window_start + ONE_DAY).isoformat(),
        "wdays": (day - window_start).days,
        "c26w": (day - timedelta(days=WEEKS_26)).isoformat(),
        "c52w": (day - timedelta(days=2 * WEEKS_26)).isoformat(),
    }
    for years in {*COHORT_YEARS, 2, 3}:
        params[f"y{years}"] = years_before(day, years).isoformat()
    return params


# --- durations -----------------------------------------------------------------


def _breaks_bridged(alias: str, dialect: Dialect, only: str = "") -> str:
    """The stop reasons (one per period, 'other' when none) of the periods that stopped
    inside the spell of run `alias` on or before :d, comma-separated (`_counts` counts them).

    Such a period also started inside the spell (a period lies inside one run), before :d:
    the index range of the citizen's periods is bounded by both."""
    reasons = dialect.concat("coalesce(p.stop_reason, 'other')")
    return (
        f"(SELECT {reasons} FROM benefit_period p "
        f"WHERE p.citizen_key = {alias}.citizen_key AND p.start_date >= {alias}.spell_start "
        f"AND p.start_date < :d AND p.stop_date > {alias}.spell_start "
        f"AND p.stop_date <= :d{only})"
    )


def _naive_days(d: Dialect) -> str:
    """Days since the start of the in-force period that started last (one descending
    index step; the periods covering :d lie inside the run covering it, `a`)."""
    return f"""(SELECT {d.days(':d', 'p.start_date')} FROM benefit_period p
     WHERE p.citizen_key = c.citizen_key AND p.start_date >= a.start_date AND {covers('p')}
     ORDER BY p.start_date DESC LIMIT 1)"""


def _group_in_force() -> str:
    """The target group in force on :d, for a citizen a job-centre benefit pays that day
    (the periods covering :d lie inside the run covering it, `a`)."""
    return f"""CASE WHEN EXISTS (SELECT 1 FROM benefit_period p WHERE p.citizen_key = c.citizen_key
                      AND p.start_date >= a.start_date AND p.job_centre = 1 AND {covers('p')})
       THEN (SELECT g.target_group FROM target_group_interval g
             WHERE g.citizen_key = c.citizen_key AND {covers('g', 'valid_from', 'valid_to')}
             ORDER BY g.valid_from DESC LIMIT 1)
  END"""


def _window_days(d: Dialect) -> str:
    """The days of cash-system run `r` inside the 10-year window (:w, :d1)."""
    return d.days(d.least("coalesce(r.stop_date, :d1)", ":d1"), d.greatest("r.start_date", ":w"))


_CASH_RUNS_IN_WINDOW = """FROM benefit_run r
  WHERE r.citizen_key = c.citizen_key AND r.scope = 'cash' AND r.start_date < :d1
    AND (r.stop_date IS NULL OR r.stop_date > :w)"""
"""The citizen's cash-system runs that overlap the 10-year window."""

_MAY_PAY = f"(c.first_run_start IS NULL OR {covers('c', 'first_run_start', 'last_run_stop')})"
"""Whether an all-benefits run of citizen `c` may cover :d: its runs' bounds cover it, or
they are not stored (no run, or a row from before the bounds)."""
_MAY_PAY_CASH = (
    f"(c.first_run_start IS NULL OR {covers('c', 'first_cash_run_start', 'last_cash_run_stop')})"
)
"""Whether a cash-system run of `c` may cover :d (with stored bounds, none when the citizen
has no cash-system run: its bounds are NULL)."""
_MAY_HAVE_CASH_IN_WINDOW = (
    "(c.first_run_start IS NULL OR (c.first_cash_run_start < :d1"
    " AND (c.last_cash_run_stop IS NULL OR c.last_cash_run_stop > :w)))"
)
"""Whether a cash-system run of `c` may overlap the 10-year window (`_CASH_RUNS_IN_WINDOW`)."""


def _cash_days_in_window(d: Dialect) -> str:
    """The citizen's paid days in the cash-benefit system in the 10-year window."""
    paid = f"(SELECT coalesce(sum({_window_days(d)}), 0) {_CASH_RUNS_IN_WINDOW})"
    return f"CASE WHEN {_MAY_HAVE_CASH_IN_WINDOW} THEN {paid} ELSE 0 END"


def _runs_on(d: Dialect) -> str:
    """Every citizen with its all-benefits run (`a`) and cash-system run (`k`) covering :d.

    SQLite looks each up per citizen, so only where the bounds of the citizen's runs cover
    :d (elsewhere the key looked up is NULL, which it skips before the index seek);
    PostgreSQL joins the runs covering :d to the citizens in one merge join, by key."""
    if d.name != "sqlite":
        return f"""FROM durations_citizen c
LEFT JOIN benefit_run a ON a.citizen_key = c.citizen_key AND a.scope = 'all' AND {covers('a')}
LEFT JOIN benefit_run k ON k.citizen_key = a.citizen_key AND k.scope = 'cash' AND {covers('k')}"""
    return f"""FROM durations_citizen c
LEFT JOIN benefit_run a ON a.citizen_key = CASE WHEN {_MAY_PAY} THEN c.citizen_key END
  AND a.scope = 'all' AND {covers('a')}
LEFT JOIN benefit_run k ON k.citizen_key = CASE WHEN {_MAY_PAY_CASH} THEN a.citizen_key END
  AND k.scope = 'cash' AND {covers('k')}"""


def per_citizen_durations_sql(dialect: Dialect) -> str:
    """Every citizen's durations on :d, the citizens in key order so that each lookup reads
    the index pages after the last one's (covering indexes: no table row is read).

    The cash-system run and the period and group lookups run only for the citizens paid on
    :d (a cash-system run covering :d lies inside an all-benefits one, cash-system periods
    being periods; no period covers :d, or stopped inside a spell, for anyone else); the
    in-force period or group is the latest starting on or before :d that covers it, one
    descending index step.
    """
    d = dialect
    return f"""
SELECT c.citizen_key, c.birth_date,
  a.spell_start AS all_benefits_spell_start,
  {d.days(':d', 'a.spell_start')} AS all_benefits_spell_days,
  a.paid_before + {d.days(':d', 'a.start_date')} + 1 AS benefit_days_in_spell,
  k.spell_start AS cash_system_spell_start,
  {d.days(':d', 'k.spell_start')} AS cash_system_spell_days,
  CASE WHEN a.spell_start IS NOT NULL THEN {_naive_days(d)} END AS naive_days,
  CASE WHEN a.spell_start IS NOT NULL THEN {_breaks_bridged('a', d)} END AS breaks_bridged,
  {d.real(_cash_days_in_window(d))} / :wdays AS share_last_10y_cash_system,
  {_age('c.birth_date')} AS age,
  CASE WHEN a.spell_start IS NOT NULL THEN {_group_in_force()} END AS target_group
{_runs_on(d)}
"""


DURATION_COLUMNS = (
    "citizen_key", "birth_date", "all_benefits_spell_start", "all_benefits_spell_days",
    "benefit_days_in_spell", "cash_system_spell_start", "cash_system_spell_days", "naive_days",
    "breaks_bridged", "share_last_10y_cash_system", "age", "target_group",
)
_SPELL_START = DURATION_COLUMNS.index("all_benefits_spell_start")
_BREAKS = DURATION_COLUMNS.index("breaks_bridged")


def durations_records(
    store: Any, day: date, *, where: str = "", params: dict[str, Any] | None = None,
    limit: int | None = None, offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Per-citizen durations on `day`, in citizen-key order (the export's records)."""
    dialect = Dialect(store.dialect)
    sql = per_citizen_durations_sql(dialect)
    sql = f"SELECT * FROM ({sql}) q{f' WHERE {where}' if where else ''} ORDER BY citizen_key"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    with store.read() as cursor:
        cursor.execute(dialect.bind(sql), {**date_params(day), **(params or {})})
        while page := cursor.fetchmany(5000):
            for row in page:
                record = dict(zip(DURATION_COLUMNS, row, strict=True))
                record["breaks_bridged"] = _counts(row[_BREAKS])
                record["on_benefit"] = row[_SPELL_START] is not None
                yield record


EXPORT_FIELDS = (
    "citizen_key", "on_benefit", "all_benefits_spell_start", "all_benefits_spell_days",
    "cash_system_spell_start", "cash_system_spell_days", "benefit_days_in_spell",
    "breaks_bridged", "naive_days", "share_last_10y_cash_system", "age", "target_group",
)
"""The fields of an export line, in the order the line gives them."""
_NO_BREAKS = '"breaks_bridged": {}'


def share_json(paid_days: str) -> str:
    """The JSON of the 10-year cash-system share of `paid_days` (an SQL expression, NULL for
    none) as Python writes `round(paid_days / :wdays, 6)`: :wdays is 3,652 or 3,653, so the
    quotient is never a tie at the sixth decimal and rounds to whole millionths m exactly in
    integer arithmetic; m is written without trailing zeros ("0.0" for none)."""
    m = f"(CAST({paid_days} AS BIGINT) * 2000000 + :wdays) / (2 * :wdays)"
    fraction = f"({m} - {m} / 1000000 * 1000000)"  # m mod 10^6 (`%` is a driver placeholder)
    return f"""CASE WHEN {paid_days} IS NULL THEN '0.0'
    WHEN {fraction} = 0 THEN CAST({m} / 1000000 AS TEXT) || '.0'
    ELSE CAST({m} / 1000000 AS TEXT) || '.'
      || rtrim(substr(CAST(1000000 + {fraction} AS TEXT), 2), '0') END"""


def _share_text(dialect: Dialect) -> str:
    """The citizen's 10-year cash-system share on :d as JSON (`share_json`)."""
    paid_days = f"sum({_window_days(dialect)})"
    return (
        f"CASE WHEN {_MAY_HAVE_CASH_IN_WINDOW} THEN (SELECT {share_json(paid_days)} "
        f"{_CASH_RUNS_IN_WINDOW}) ELSE '0.0' END"
    )


def _text(expression: str) -> str:
    """A JSON string or null."""
    return f"""coalesce('"' || {expression} || '"', 'null')"""


def _number(expression: str) -> str:
    """A JSON integer or null."""
    return f"coalesce(CAST({expression} AS TEXT), 'null')"


_OFF_BENEFIT = {
    "citizen_key": '"%s"', "on_benefit": "false", "all_benefits_spell_start": "null",
    "all_benefits_spell_days": "null",
    "cash_system_spell_start": "null", "cash_system_spell_days": "null",
    "benefit_days_in_spell": "null", "breaks_bridged": "{}", "naive_days": "null",
    "target_group": "null",
}
"""How an export line writes a citizen no all-benefits run covers on :d (so no period or
cash-system run covers it either, and no spell has breaks): `_line`."""


def _line(dialect: Dialect, values: dict[str, str], written: dict[str, str]) -> str:
    """An export line, each field as `written` says (`%s` where its value from `values`
    goes), or its value as it is."""
    parts = {name: written.get(name, "%s") for name in EXPORT_FIELDS}
    template = "{" + ", ".join(f'"{name}": {part}' for name, part in parts.items()) + "}\n"
    return dialect.format(template, [values[name] for name, part in parts.items() if "%s" in part])


def durations_lines_sql(dialect: Dialect) -> str:
    """Every citizen's export line on :d as JSON (`EXPORT_FIELDS`, as Python's `json.dumps`
    writes them), in key order, with its breaks bridged as `{}` and beside it the stop
    reasons to count instead (`_breaks_bridged`; NULL for none). The periods and groups
    are looked up only for the citizens on benefit; the others' lines are mostly fixed."""
    d = dialect
    values = {
        "citizen_key": "c.citizen_key",
        "all_benefits_spell_start": "a.spell_start",
        "all_benefits_spell_days": d.days(":d", "a.spell_start"),
        "cash_system_spell_start": _text("k.spell_start"),
        "cash_system_spell_days": _number(d.days(":d", "k.spell_start")),
        "benefit_days_in_spell": f"a.paid_before + {d.days(':d', 'a.start_date')} + 1",
        "naive_days": _number(_naive_days(d)),
        "share_last_10y_cash_system": _share_text(d),
        "age": _age("c.birth_date"),
        "target_group": f"coalesce({d.json_text(_group_in_force())}, 'null')",
    }
    on_benefit = {
        "citizen_key": '"%s"', "on_benefit": "true", "all_benefits_spell_start": '"%s"',
        "breaks_bridged": "{}",
    }
    return f"""
SELECT CASE WHEN a.spell_start IS NULL THEN {_line(d, values, _OFF_BENEFIT)}
  ELSE {_line(d, values, on_benefit)} END AS line,
  CASE WHEN a.spell_start IS NOT NULL THEN {_breaks_bridged('a', d)} END AS breaks_bridged
{_runs_on(d)}
ORDER BY c.citizen_key
"""


def durations_lines(store: Any, day: date) -> Iterator[str]:
    """Every citizen's export line on `day` (JSON, `EXPORT_FIELDS`, newline-terminated), in
    citizen-key order: what `json.dumps` writes of `durations_records` with the share
    rounded to six decimals."""
    dialect = Dialect(store.dialect)
    counted: dict[str, str] = {}  # breaks bridged by their stop reasons, as JSON
    with store.read() as cursor:
        cursor.execute(dialect.bind(durations_lines_sql(dialect)), date_params(day))
        while page := cursor.fetchmany(5000):
            for line, reasons in page:
                if reasons is not None:
                    breaks = counted.get(reasons)
                    if breaks is None:
                        if len(counted) >= 10_000:
                            counted.clear()
                        breaks = counted[reasons] = '"breaks_bridged": ' + json.dumps(
                            _counts(reasons), ensure_ascii=False
                        )
                    line = line.replace(_NO_BREAKS, breaks, 1)
                yield line


def durations_of(store: Any, day: date, citizen_key: str) -> dict[str, Any] | None:
    """One citizen's durations on `day` (None for an unknown citizen)."""
    found = durations_records(store, day, where="citizen_key = :key", params={"key": citizen_key})
    return next(found, None)


def coordination_of(
    store: Any, day: date, citizen_key: str, long_spell_years: int = 3
) -> dict[str, Any] | None:
    """One citizen's coordination on `day` (None for an unknown citizen)."""
    return next(coordination_records(store, day, long_spell_years, citizen_key), None)


def _counts(reasons: str | None) -> dict[str, int]:
    """How many times each comma-separated reason occurs, by reason (none: empty)."""
    return dict(sorted(Counter(reasons.split(",")).items())) if reasons else {}


def _break_kinds_bridged() -> str:
    """A bit per break kind (`_KIND_BITS`) set when a period stopped for it inside the spell
    before :d: one index range per citizen instead of one per kind."""
    bits = " + ".join(
        f"{bit} * max(CASE WHEN p.stop_reason IN ({_reasons(kind)}) THEN 1 ELSE 0 END)"
        for kind, bit in _KIND_BITS.items()
    )
    return (
        f"(SELECT coalesce({bits}, 0) FROM benefit_period p WHERE p.citizen_key = a.citizen_key "
        "AND p.stop_date > a.spell_start AND p.stop_date <= :d)"
    )


def _reasons(kind: BreakKind) -> str:
    return ", ".join(f"'{r}'" for r, k in BREAK_KIND_OF_REASON.items() if k is kind)


_KIND_BITS = {kind: 1 << n for n, kind in enumerate(BreakKind)}


def _bucket(column: str) -> str:
    return (
        f"CASE WHEN {column} > :c26w THEN 0 WHEN {column} > :c52w THEN 1 "
        f"WHEN {column} >= :y2 THEN 2 WHEN {column} >= :y3 THEN 3 ELSE 4 END"
    )


def _cohorts_passed(column: str) -> str:
    """How many of `COHORT_YEARS` (ascending) `column` lies before: `column < :yN` holds
    exactly for the first that many cut-offs counted from the longest (0 for NULL)."""
    cases = " ".join(
        f"WHEN {column} < :y{years} THEN {len(COHORT_YEARS) - n}"
        for n, years in enumerate(sorted(COHORT_YEARS, reverse=True))
    )
    return f"CASE {cases} ELSE 0 END"


def headline_sql() -> str:
    """One row: counts of the headline report (buckets, cohorts, misses by break kind).

    The citizens paid on :d (`cur`, one row each, read once) are grouped by bucket,
    cohorts passed and break kinds (`g`, a few hundred groups), and the groups summed.
    Break kinds only count for a citizen the naive measure misses, whose spell began
    before the shortest cohort's cut-off, so only those are looked up.
    """
    current = f"""
SELECT a.spell_start AS s, k.spell_start AS cs,
  (SELECT max(p.start_date) FROM benefit_period p
     WHERE p.citizen_key = a.citizen_key AND {covers('p')}) AS ns,
  CASE WHEN a.spell_start < :y{min(COHORT_YEARS)} THEN {_break_kinds_bridged()} ELSE 0 END
    AS kinds
FROM benefit_run a
LEFT JOIN benefit_run k ON k.citizen_key = a.citizen_key AND k.scope = 'cash' AND {covers('k')}
WHERE a.scope = 'all' AND {covers('a')}"""
    grouped = f"""
SELECT {_bucket('s')} AS bs, {_bucket('ns')} AS bns, {_cohorts_passed('s')} AS ps,
  {_cohorts_passed('cs')} AS pcs, {_cohorts_passed('ns')} AS pns, kinds, count(*) AS n
FROM cur GROUP BY 1, 2, 3, 4, 5, 6"""
    sums = ["coalesce(sum(n), 0)"]
    for bucket in range(5):
        sums.append(f"sum(CASE WHEN bs = {bucket} THEN n ELSE 0 END)")
        sums.append(f"sum(CASE WHEN bns = {bucket} THEN n ELSE 0 END)")
    for years in COHORT_YEARS:
        passed = len(COHORT_YEARS) - sorted(COHORT_YEARS, reverse=True).index(years)
        missed = f"ps >= {passed} AND pns < {passed}"
        sums += [
            f"sum(CASE WHEN ps >= {passed} THEN n ELSE 0 END)",
            f"sum(CASE WHEN pcs >= {passed} THEN n ELSE 0 END)",
            f"sum(CASE WHEN pns >= {passed} THEN n ELSE 0 END)",
            f"sum(CASE WHEN {missed} THEN n ELSE 0 END)",
            *(
                f"sum(CASE WHEN {missed} AND (kinds & {bit}) <> 0 THEN n ELSE 0 END)"
                for bit in _KIND_BITS.values()
            ),
        ]
    return (
        f"WITH cur AS MATERIALIZED ({current}),\ng AS ({grouped})\n"
        f"SELECT {', '.join(sums)}, (SELECT count(*) FROM durations_citizen) FROM g"
    )


# --- coordination --------------------------------------------------------------


def coordination_sql(long_spell_years: int, where: str = "") -> str:
    """Per citizen on :d: target group, fællesborger status, support step and the flags."""
    return f"""
WITH base AS (
  SELECT c.citizen_key, {_age('c.birth_date')} AS age,
    EXISTS (SELECT 1 FROM benefit_period p WHERE p.citizen_key = c.citizen_key
            AND p.job_centre = 1 AND {covers('p')}) AS on_job_centre,
    (SELECT g.target_group FROM target_group_interval g
       WHERE g.citizen_key = c.citizen_key AND {covers('g', 'valid_from', 'valid_to')}) AS grp,
    (SELECT g.coordinating_caseworker_right FROM target_group_interval g
       WHERE g.citizen_key = c.citizen_key AND {covers('g', 'valid_from', 'valid_to')}) AS grp_cc,
    (SELECT g.main_group FROM target_group_interval g
       WHERE g.citizen_key = c.citizen_key AND {covers('g', 'valid_from', 'valid_to')}) AS grp_main,
    (SELECT count(*) FROM intervention_period i WHERE i.citizen_key = c.citizen_key
       AND i.coordination_relevant = 1 AND {covers('i')}) AS relevant,
    (SELECT coalesce(max(i.support_step), 0) FROM intervention_period i
       WHERE i.citizen_key = c.citizen_key AND {covers('i')}) AS step,
    EXISTS (SELECT 1 FROM intervention_period i WHERE i.citizen_key = c.citizen_key
            AND i.support_step = {MASSIVE_STEP} AND {covers('i')}) AS massive,
    EXISTS (SELECT 1 FROM intervention_period i WHERE i.citizen_key = c.citizen_key
            AND i.intervention = '{SHELTER}' AND {covers('i')}) AS shelter,
    EXISTS (SELECT 1 FROM intervention_period i WHERE i.citizen_key = c.citizen_key
            AND i.child_measure = 1 AND {covers('i')}) AS child_measure,
    EXISTS (SELECT 1 FROM benefit_run a WHERE a.citizen_key = c.citizen_key AND a.scope = 'all'
            AND {covers('a')} AND a.spell_start <= :y{long_spell_years}) AS long_spell
  FROM durations_citizen c {f"WHERE {where}" if where else ""}
)
SELECT citizen_key, age,
  CASE WHEN on_job_centre THEN grp END AS target_group,
  CASE WHEN on_job_centre AND relevant > 0 THEN 1 ELSE 0 END AS is_faellesborger,
  step AS support_step,
  CASE WHEN on_job_centre AND grp_main = 'edge_of_labour_market' THEN 1 ELSE 0 END AS edge,
  CASE WHEN on_job_centre AND grp_cc = 1 AND relevant > 0 THEN 1 ELSE 0 END
    AS coordinating_caseworker_due,
  CASE WHEN on_job_centre AND massive THEN 1 ELSE 0 END
    AS permanent_support_on_temporary_benefit,
  CASE WHEN on_job_centre AND grp_main = '{READY_FOR_JOB_OR_EDUCATION}' AND shelter
       THEN 1 ELSE 0 END AS job_ready_in_shelter,
  CASE WHEN on_job_centre AND child_measure THEN 1 ELSE 0 END AS parent_with_child_measure,
  CASE WHEN on_job_centre AND age < {YOUTH_AGE_LIMIT} THEN 1 ELSE 0 END AS youth_unified_effort,
  CASE WHEN step >= {LONG_SPELL_MIN_STEP} AND long_spell THEN 1 ELSE 0 END
    AS long_duration_with_social_needs
FROM base
"""


FLAG_COLUMNS = (
    "coordinating_caseworker_due", "permanent_support_on_temporary_benefit",
    "job_ready_in_shelter", "parent_with_child_measure", "youth_unified_effort",
    "long_duration_with_social_needs",
)
COORDINATION_COLUMNS = (
    "citizen_key", "age", "target_group", "is_faellesborger", "support_step", "edge",
    *FLAG_COLUMNS,
)


def coordination_records(
    store: Any, day: date, long_spell_years: int, citizen_key: str | None = None
) -> Iterator[dict[str, Any]]:
    """Per-citizen coordination on `day` (every citizen, or one), with active interventions."""
    dialect = Dialect(store.dialect)
    only = "i.citizen_key = :key AND " if citizen_key else ""
    interventions = (
        f"SELECT i.citizen_key, i.intervention FROM intervention_period i "
        f"WHERE {only}i.coordination_relevant = 1 AND {covers('i')} "
        "GROUP BY i.citizen_key, i.intervention ORDER BY i.citizen_key, i.intervention"
    )
    params = {**date_params(day), "key": citizen_key}
    where = "c.citizen_key = :key" if citizen_key else ""
    with store.read() as cursor:
        cursor.execute(dialect.bind(interventions), params)
        active: dict[str, list[str]] = {}
        for key, code in cursor.fetchall():
            active.setdefault(key, []).append(code)
        cursor.execute(
            dialect.bind(coordination_sql(long_spell_years, where) + " ORDER BY citizen_key"),
            params,
        )
        while page := cursor.fetchmany(5000):
            for row in page:
                record = dict(zip(COORDINATION_COLUMNS, row, strict=True))
                record["is_faellesborger"] = bool(record["is_faellesborger"])
                record["interventions"] = active.get(record["citizen_key"], [])
                record["flags"] = sorted(name for name in FLAG_COLUMNS if record.pop(name))
                yield record


def yearly_sql() -> str:
    """Citizens with two months on benefit in year :year, and of them the fællesborgere."""
    return """
WITH on_benefit AS (
  SELECT citizen_key FROM benefit_year WHERE year = :year
  UNION
  SELECT citizen_key FROM benefit_run
  WHERE scope = 'all' AND stop_date IS NULL AND start_date < :first
)
SELECT count(*),
  sum(CASE WHEN EXISTS (SELECT 1 FROM intervention_period i
        WHERE i.citizen_key = o.citizen_key AND i.coordination_relevant = 1
          AND i.start_date < :end AND (i.stop_date IS NULL OR i.stop_date > :first))
      THEN 1 ELSE 0 END)
FROM on_benefit o
"""


def inflow_sql() -> str:
    """Citizens entering each benefit per half-year between :first and :last."""
    return """
SELECT substr(start_date, 1, 4) || 'H' ||
       CASE WHEN substr(start_date, 6, 2) <= '06' THEN '1' ELSE '2' END AS half_year,
       benefit, count(DISTINCT citizen_key)
FROM inflow WHERE start_date >= :first AND start_date <= :last
GROUP BY 1, 2
"""


def awaiting_flexjob_sql(days: list[date]) -> str:
    """Citizens on ledighedsydelse on each of `days` (approved for a flexjob, without one)."""
    values = " UNION ALL ".join(f"SELECT '{day.isoformat()}' AS day" for day in days)
    return f"""
WITH days AS ({values})
SELECT days.day, count(DISTINCT p.citizen_key)
FROM days JOIN benefit_period p ON p.benefit = '{AWAITING_FLEXJOB_BENEFIT}'
  AND p.start_date <= days.day AND (p.stop_date IS NULL OR p.stop_date > days.day)
GROUP BY days.day
"""


# --- prioritisation lists ------------------------------------------------------


def long_durations_sql(dialect: Dialect, *, cash_system: bool) -> str:
    """Citizens on benefit on :d whose spell started before :cutoff, longest first."""
    d = dialect
    only_cash = " AND p.cash_system = 1" if cash_system else ""
    return f"""
SELECT a.citizen_key, a.spell_start, {d.days(':d', 'a.spell_start')} AS spell_days,
  {_breaks_bridged('a', d, only_cash)} AS breaks_bridged,
  (SELECT {d.days(':d', 'max(p.start_date)')} FROM benefit_period p
     WHERE p.citizen_key = a.citizen_key AND {covers('p')}) AS naive_days
FROM benefit_run a
WHERE a.scope = '{'cash' if cash_system else 'all'}' AND {covers('a')} AND a.spell_start < :cutoff
ORDER BY a.spell_start, a.citizen_key
"""


def long_durations(
    store: Any, day: date, years: int, *, cash_system: bool = False
) -> Iterator[dict[str, Any]]:
    """The long-durations list on `day` (spell over `years` years), longest first."""
    dialect = Dialect(store.dialect)
    params = {**date_params(day), "cutoff": years_before(day, years).isoformat()}
    with store.read() as cursor:
        cursor.execute(dialect.bind(long_durations_sql(dialect, cash_system=cash_system)), params)
        while page := cursor.fetchmany(5000):
            for key, start, spell_days, breaks, naive_days in page:
                yield {
                    "citizen_key": key, "spell_start": start, "spell_days": spell_days,
                    "breaks_bridged": _counts(breaks),
                    "naive_days": naive_days,
                }


CLARIFICATION_POOL_WHERE = (
    f"target_group IN ({', '.join(repr(g) for g in sorted(CLARIFICATION_POOL_GROUPS))}) "
    f"AND age >= {CLARIFICATION_POOL_MIN_AGE} "
    f"AND share_last_10y_cash_system >= {CLARIFICATION_POOL_MIN_SHARE}"
)
"""Afklaringspuljen on D, over the per-citizen durations (domain.priorities)."""


def clarification_pool(store: Any, day: date) -> Iterator[dict[str, Any]]:
    """Per-citizen durations of the clarification pool on `day`, in citizen-key order."""
    return durations_records(store, day, where=CLARIFICATION_POOL_WHERE)
