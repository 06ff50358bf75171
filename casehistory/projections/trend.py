"""The monthly trend as one SQL query over the read model: for each day asked, the
citizens on benefit and how many have a spell over each of `COHORT_YEARS`, true
(all-benefits spell start) and naive (the latest start among periods open on the
day). The same counts as `headline_sql` on each day (held equal by a test), read
in one pass instead of one query per month.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from casehistory.domain.durations import COHORT_YEARS
from casehistory.domain.spells import years_before
from casehistory.projections.queries import Dialect


def trend_sql(days: int) -> str:
    """Rows (day, on benefit, true over N for each N, naive over N for each N) for the days
    bound as :d0, :d1, ... with their cut-offs :d0_y2, ... (days with nobody paid are absent)."""
    cutoffs = [f"y{years}" for years in COHORT_YEARS]
    values = ", ".join(
        "(" + ", ".join([f"CAST(:d{n} AS TEXT)", *(f"CAST(:d{n}_{c} AS TEXT)" for c in cutoffs)])
        + ")"
        for n in range(days)
    )
    current = f"""
SELECT m.d, m.{', m.'.join(cutoffs)}, a.spell_start AS s,
  (SELECT max(p.start_date) FROM benefit_period p
     WHERE p.citizen_key = a.citizen_key AND p.start_date <= m.d
       AND (p.stop_date IS NULL OR p.stop_date > m.d)) AS ns
FROM m JOIN benefit_run a ON a.scope = 'all' AND a.start_date <= m.d
  AND (a.stop_date IS NULL OR a.stop_date > m.d)"""
    sums = [f"sum(CASE WHEN s < {c} THEN 1 ELSE 0 END)" for c in cutoffs]
    sums += [f"sum(CASE WHEN ns < {c} THEN 1 ELSE 0 END)" for c in cutoffs]
    return (
        f"WITH m (d, {', '.join(cutoffs)}) AS (VALUES {values}),\ncur AS ({current})\n"
        f"SELECT d, count(*), {', '.join(sums)} FROM cur GROUP BY d ORDER BY d"
    )


def trend_counts(
    store: Any, days: Sequence[date]
) -> dict[date, tuple[int, dict[int, int], dict[int, int]]]:
    """Per day: (on benefit, true over N years by N, naive over N years by N)."""
    if not days:
        return {}
    params: dict[str, Any] = {}
    for n, day in enumerate(days):
        params[f"d{n}"] = day.isoformat()
        for years in COHORT_YEARS:
            params[f"d{n}_y{years}"] = years_before(day, years).isoformat()
    found = {day: (0, dict.fromkeys(COHORT_YEARS, 0), dict.fromkeys(COHORT_YEARS, 0))
             for day in days}
    with store.read() as cursor:
        cursor.execute(Dialect(store.dialect).bind(trend_sql(len(days))), params)
        for row in cursor.fetchall():
            counts = [int(v or 0) for v in row[2:]]
            k = len(COHORT_YEARS)
            found[date.fromisoformat(str(row[0]))] = (
                int(row[1]),
                dict(zip(COHORT_YEARS, counts[:k], strict=True)),
                dict(zip(COHORT_YEARS, counts[k:], strict=True)),
            )
    return found
