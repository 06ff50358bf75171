-- All-benefits spell per citizen as of $as_of: the query an analyst would write.
--
-- Input: table `facts`, one row per fact stored in the event store (so already
-- validated and de-duplicated by event id, first arrival standing), retractions
-- included as rows. Everything else is done here: retractions (chains up to
-- depth 3; bench/peer.py fails loudly on deeper ones), the as-of cut, pairing
-- starts and stops per (benefit, source system, municipality) with stops before
-- starts on one date and ignored duplicates, the union of overlapping periods
-- (islands), and the whole-calendar-month gap rule (spells).
-- Output: citizens paid on $as_of, with spell start and paid days in the spell.
WITH retractions AS (
    SELECT event_id, retracted_event_id AS target
    FROM facts WHERE event_type = 'EventRetracted'
),
-- void_k: voided when only chains shorter than k are considered; exact for depth < 4
void1 AS (SELECT DISTINCT target FROM retractions),
void2 AS (SELECT DISTINCT target FROM retractions WHERE event_id NOT IN (SELECT target FROM void1)),
void3 AS (SELECT DISTINCT target FROM retractions WHERE event_id NOT IN (SELECT target FROM void2)),
void4 AS (SELECT DISTINCT target FROM retractions WHERE event_id NOT IN (SELECT target FROM void3)),
benefit_events AS (
    SELECT citizen_key, benefit, source_system, municipality, event_type, effective_date,
           CASE event_type WHEN 'BenefitStopped' THEN 0 ELSE 1 END AS phase,
           recorded_at, event_id
    FROM facts
    WHERE event_type IN ('BenefitStarted', 'BenefitStopped')
      AND effective_date <= $as_of
      AND event_id NOT IN (SELECT target FROM void4)
),
-- A start while the key is open, or a stop while it is closed, changes nothing:
-- the state after any event is "open" after a start and "closed" after a stop,
-- so an event takes effect exactly when it differs from the previous one.
flips AS (
    SELECT * FROM (
        SELECT *, lag(event_type, 1, 'BenefitStopped') OVER key_order AS previous_type
        FROM benefit_events
        WINDOW key_order AS (
            PARTITION BY citizen_key, benefit, source_system, municipality
            ORDER BY effective_date, phase, recorded_at, event_id)
    ) WHERE event_type <> previous_type
),
periods AS (
    SELECT citizen_key, event_type, effective_date AS start,
           lead(effective_date) OVER (
               PARTITION BY citizen_key, benefit, source_system, municipality
               ORDER BY effective_date, phase, recorded_at, event_id) AS stop
    FROM flips
),
paid AS (  -- [start, stop) cut at the day after $as_of (periods stopping later are open)
    SELECT citizen_key, start, coalesce(stop, CAST($as_of AS DATE) + 1) AS stop
    FROM periods
    WHERE event_type = 'BenefitStarted' AND coalesce(stop, CAST($as_of AS DATE) + 1) > start
),
-- islands: a period starts a new run when it starts after every earlier period ended
reach AS (
    SELECT *, max(stop) OVER (
        PARTITION BY citizen_key ORDER BY start, stop
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reached
    FROM paid
),
run_numbers AS (
    SELECT *, sum(CASE WHEN reached IS NULL OR start > reached THEN 1 ELSE 0 END) OVER (
        PARTITION BY citizen_key ORDER BY start, stop ROWS UNBOUNDED PRECEDING) AS run_no
    FROM reach
),
runs AS (
    SELECT citizen_key, run_no, min(start) AS start, max(stop) AS stop
    FROM run_numbers GROUP BY citizen_key, run_no
),
-- a gap [previous end, start) breaks the spell iff a whole calendar month lies inside it
gaps AS (
    SELECT *, lag(stop) OVER (PARTITION BY citizen_key ORDER BY start) AS previous_end
    FROM runs
),
spell_numbers AS (
    SELECT *, sum(CASE
        WHEN previous_end IS NULL THEN 1
        WHEN CAST(CASE WHEN day(previous_end) = 1 THEN previous_end
                       ELSE date_trunc('month', previous_end) + INTERVAL 1 MONTH END
                  + INTERVAL 1 MONTH AS DATE) <= start THEN 1
        ELSE 0 END) OVER (PARTITION BY citizen_key ORDER BY start ROWS UNBOUNDED PRECEDING)
        AS spell_no
    FROM gaps
),
spells AS (
    SELECT citizen_key, spell_no, min(start) AS spell_start, max(stop) AS spell_end,
           sum(stop - start) AS paid_days
    FROM spell_numbers GROUP BY citizen_key, spell_no
)
SELECT citizen_key, spell_start AS all_benefits_spell_start,
       CAST(paid_days AS INTEGER) AS benefit_days_in_spell
FROM spells
WHERE spell_end = CAST($as_of AS DATE) + 1
ORDER BY citizen_key
