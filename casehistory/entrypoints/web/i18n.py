"""Danish first, English on request: the dashboard's words, numbers and dates.

Danish form: `1.234,5` and `08.05.2023`; English: `1,234.5` and `2023-05-08`.
Codes from the reference tables (benefits, target groups, interventions,
municipalities) are shown by their Danish names in both languages.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from casehistory.domain import reference

LANGUAGES = ("da", "en")

TEXTS: dict[str, dict[str, str]] = {
    "app_title": {"da": "Sagshistorik", "en": "Case history"},
    "authority": {"da": "Beskæftigelses- og socialforvaltningen",
                  "en": "Employment and social administration"},
    "skip": {"da": "Gå til sidens indhold", "en": "Skip to content"},
    "nav_overview": {"da": "Varighed", "en": "Durations"},
    "nav_coordination": {"da": "Fællesborgere", "en": "Coordination"},
    "nav_flows": {"da": "Strømme", "en": "Flows"},
    "nav_citizen": {"da": "Borger", "en": "Citizen"},
    "nav_operations": {"da": "Drift", "en": "Operations"},
    "nav_access_log": {"da": "Opslagslog", "en": "Lookup log"},
    "nav_api": {"da": "API", "en": "API"},
    "main_menu": {"da": "Hovedmenu", "en": "Main menu"},
    "language": {"da": "Sprog", "en": "Language"},
    "signed_in": {"da": "Logget ind som", "en": "Signed in as"},
    "as_of": {"da": "Opgjort pr.", "en": "As of"},
    "show": {"da": "Vis", "en": "Show"},
    "show_table": {"da": "Vis som tabel", "en": "Show as table"},
    "overview_title": {"da": "Reel varighed på offentlig forsørgelse",
                       "en": "True duration on public support"},
    "overview_lead": {
        "da": "Det reelle forløb på alle ydelser bygger bro over flytninger, konverteringer, "
              "databrud og reformer. Den naive måling tæller kun fra starten af den seneste "
              "åbne sag.",
        "en": "The true all-benefits spell bridges moves, conversions, data breaks and reforms. "
              "The naive measure counts only from the start of the latest open case."},
    "citizens": {"da": "Borgere", "en": "Citizens"},
    "on_benefit": {"da": "På ydelse", "en": "On benefit"},
    "buckets": {"da": "Varighed af nuværende forløb: reel og naiv",
                "en": "Current spell: true versus naive"},
    "cohorts": {"da": "Kohorter: forløb over N år", "en": "Cohorts: spell over N years"},
    "missed_by_break": {"da": "Det den naive måling overser, efter brud",
                        "en": "Missed by the naive measure, by break"},
    "missed_note": {
        "da": "En overset borger tælles under hver slags brud, forløbet byggede bro over.",
        "en": "A missed citizen counts once under each kind of break the spell bridged."},
    "trend": {"da": "Månedlig udvikling", "en": "Monthly trend"},
    "trend_from": {"da": "Fra", "en": "From"},
    "bucket": {"da": "Varighed", "en": "Duration"},
    "true": {"da": "Reel (alle ydelser)", "en": "True (all benefits)"},
    "naive": {"da": "Naiv (åben sag)", "en": "Naive (open case)"},
    "cash_system": {"da": "Kontanthjælpssystemet", "en": "Cash-benefit system"},
    "missed_by_naive": {"da": "Overset af naiv", "en": "Missed by naive"},
    "over_years": {"da": "Over år", "en": "Over years"},
    "month": {"da": "Måned", "en": "Month"},
    "move": {"da": "Flytning", "en": "Move"},
    "conversion": {"da": "Konvertering", "en": "Conversion"},
    "data_break": {"da": "Databrud", "en": "Data break"},
    "reform": {"da": "Reform", "en": "Reform"},
    "benefit_change": {"da": "Ydelsesskift", "en": "Benefit change"},
    "coordination_title": {"da": "Fællesborgere og koordinering",
                           "en": "Shared citizens and coordination"},
    "by_target_group": {"da": "Fællesborgere pr. målgruppe",
                        "en": "Shared citizens by target group"},
    "by_step": {"da": "Fællesborgere pr. støttetrin", "en": "Shared citizens by support step"},
    "flags": {"da": "Koordineringsflag", "en": "Coordination flags"},
    "by_intervention": {"da": "Borgere pr. målgruppe og indsats",
                        "en": "Citizens by target group and intervention"},
    "target_group": {"da": "Målgruppe", "en": "Target group"},
    "faellesborgere": {"da": "Fællesborgere", "en": "Shared citizens"},
    "share": {"da": "Andel", "en": "Share"},
    "support_step": {"da": "Støttetrin", "en": "Support step"},
    "edge_of_labour_market_share": {"da": "Andel på kanten af arbejdsmarkedet",
                                    "en": "Share at the edge of the labour market"},
    "flag": {"da": "Flag", "en": "Flag"},
    "intervention": {"da": "Indsats", "en": "Intervention"},
    "all": {"da": "Alle borgere", "en": "All citizens"},
    "(none)": {"da": "(ingen)", "en": "(none)"},
    "flows_title": {"da": "Tilgang pr. halvår", "en": "Inflow per half-year"},
    "inflow": {"da": "Tilgang pr. halvår", "en": "Inflow per half-year"},
    "awaiting_flexjob": {"da": "Ledige fleksjobvisiterede",
                         "en": "Approved for flexjob, without one"},
    "half_year": {"da": "Halvår", "en": "Half-year"},
    "period_from": {"da": "Fra", "en": "From"},
    "period_to": {"da": "Til", "en": "To"},
    "citizen_title": {"da": "Slå en borger op", "en": "Look up a citizen"},
    "citizen_lead": {
        "da": "Opslag logges med tidspunkt, bruger og formål. CPR-nummeret sendes kun i "
              "formularens indhold og gemmes ikke.",
        "en": "Lookups are logged with time, user and purpose. The CPR number is sent only in "
              "the form's body and is not stored."},
    "cpr": {"da": "CPR-nummer", "en": "CPR number"},
    "citizen_key": {"da": "Pseudonym (citizen_key)", "en": "Pseudonym (citizen_key)"},
    "purpose": {"da": "Formål eller sagsnummer", "en": "Purpose or case reference"},
    "known_at": {"da": "Som kendt på tidspunktet (valgfrit)", "en": "As known at (optional)"},
    "known_at_hint": {"da": "Fx 2020-06-01T00:00:00Z", "en": "E.g. 2020-06-01T00:00:00Z"},
    "look_up": {"da": "Slå op", "en": "Look up"},
    "or": {"da": "eller", "en": "or"},
    "history": {"da": "Historik", "en": "History"},
    "timeline": {"da": "Tidslinje", "en": "Timeline"},
    "timeline_desc": {
        "da": "Ydelsesperioder pr. kilde og kommune, sammenhængende perioder (runs), forløb og "
              "sociale indsatser over årene.",
        "en": "Benefit periods by source and municipality, runs, spells and social "
              "interventions over the years."},
    "measures": {"da": "Målinger", "en": "Measures"},
    "measure": {"da": "Måling", "en": "Measure"},
    "value": {"da": "Værdi", "en": "Value"},
    "why": {"da": "Hvorfor", "en": "Why"},
    "rule": {"da": "Regel", "en": "Rule"},
    "events": {"da": "Hændelser", "en": "Events"},
    "spells": {"da": "Forløb på alle ydelser", "en": "All-benefits spells"},
    "start": {"da": "Start", "en": "Start"},
    "end": {"da": "Slut", "en": "End"},
    "ongoing": {"da": "i gang", "en": "ongoing"},
    "calendar_days": {"da": "Kalenderdage", "en": "Calendar days"},
    "paid_days": {"da": "Dage på ydelse", "en": "Paid days"},
    "gaps": {"da": "Huller og månedsreglen", "en": "Gaps and the month rule"},
    "breaks": {"da": "Brud forløbet byggede bro over", "en": "Breaks the spell bridged"},
    "municipalities": {"da": "Kommuner", "en": "Municipalities"},
    "benefits": {"da": "Ydelser", "en": "Benefits"},
    "interventions": {"da": "Sociale indsatser", "en": "Social interventions"},
    "facts": {"da": "Hændelser i ankomstrækkefølge", "en": "Events in arrival order"},
    "status": {"da": "Status", "en": "Status"},
    "standing": {"da": "gældende", "en": "standing"},
    "void": {"da": "annulleret", "en": "void (retracted)"},
    "not_yet_known": {"da": "endnu ikke kendt", "en": "not yet known"},
    "event": {"da": "Hændelse", "en": "Event"},
    "effective": {"da": "Virkningsdato", "en": "Effective"},
    "recorded": {"da": "Registreret", "en": "Recorded"},
    "source": {"da": "Kilde", "en": "Source"},
    "municipality": {"da": "Kommune", "en": "Municipality"},
    "details": {"da": "Detaljer", "en": "Details"},
    "stop_reason": {"da": "Ophørsårsag", "en": "Stop reason"},
    "gap_days": {"da": "Dage uden ydelse", "en": "Unpaid days"},
    "operations_title": {"da": "Drift", "en": "Operations"},
    "read_models": {"da": "Læsemodeller", "en": "Read models"},
    "read_model": {"da": "Læsemodel", "en": "Read model"},
    "position": {"da": "Position", "en": "Position"},
    "lag": {"da": "Efterslæb (hændelser)", "en": "Lag (events)"},
    "events_stored": {"da": "Hændelser i hændelseslageret", "en": "Events in the event store"},
    "ingest": {"da": "Indlæsning efter udfald", "en": "Ingest by outcome"},
    "dead_letters": {"da": "Afviste poster efter årsag", "en": "Dead letters by reason"},
    "outcome": {"da": "Udfald", "en": "Outcome"},
    "reason": {"da": "Årsag", "en": "Reason"},
    "records": {"da": "Poster", "en": "Records"},
    "partition": {"da": "Partition", "en": "Partition"},
    "consumer_lag": {"da": "Forbrugerefterslæb pr. partition", "en": "Consumer lag per partition"},
    "reconcile": {"da": "Afstemning (reconcile)", "en": "Reconciliation"},
    "reconcile_off": {
        "da": "Kafka er ikke sat op; filindlæsninger er afstemt i indlæsningsloggen.",
        "en": "Kafka is not configured; file ingests are accounted for in the ingest ledger."},
    "reconcile_now": {"da": "Afstem nu", "en": "Reconcile now"},
    "unaccounted": {"da": "Uafklarede offsets", "en": "Unaccounted offsets"},
    "not_yet_consumed": {"da": "endnu ikke læst", "en": "not yet consumed"},
    "committed": {"da": "Bekræftet offset", "en": "Committed offset"},
    "projection": {"da": "Projektion i denne proces", "en": "Projection in this process"},
    "batches": {"da": "Batches", "en": "Batches"},
    "freshness": {"da": "Friskhed (lagring til synlig)", "en": "Freshness (stored to visible)"},
    "access_log_title": {"da": "Opslagslog", "en": "Lookup log"},
    "chain_intact": {"da": "Kæden er intakt", "en": "The chain is intact"},
    "chain_broken": {"da": "Kæden er brudt", "en": "The chain is broken"},
    "at": {"da": "Tidspunkt", "en": "At"},
    "who": {"da": "Hvem", "en": "Who"},
    "kind": {"da": "Art", "en": "Kind"},
    "criterion": {"da": "Søgekriterium", "en": "Criterion"},
    "shown": {"da": "Vist", "en": "Shown"},
    "refused": {"da": "Afvist", "en": "Refused"},
    "lookup": {"da": "Opslag", "en": "Lookup"},
    "yes": {"da": "ja", "en": "yes"},
    "no": {"da": "nej", "en": "no"},
    "not_found": {"da": "Ingen borger fundet.", "en": "No such citizen."},
    "summary": {"da": "Overblik", "en": "Summary"},
    "api_title": {"da": "API-dokumentation", "en": "API documentation"},
    "legend_period": {"da": "Ydelsesperiode", "en": "Benefit period"},
    "legend_run": {"da": "Sammenhængende betaling (run)", "en": "Paid run"},
    "legend_spell": {"da": "Forløb", "en": "Spell"},
    "legend_intervention": {"da": "Social indsats", "en": "Social intervention"},
    "age": {"da": "Alder", "en": "Age"},
    "is_faellesborger": {"da": "Fællesborger", "en": "Shared citizen"},
    "all_benefits_spell_start": {"da": "Forløbets start (alle ydelser)",
                                 "en": "Spell start (all benefits)"},
    "all_benefits_spell_days": {"da": "Forløbets længde i dage", "en": "Spell length in days"},
    "benefit_days_in_spell": {"da": "Dage på ydelse i forløbet", "en": "Paid days in spell"},
    "breaks_bridged": {"da": "Brud i forløbet", "en": "Breaks bridged"},
    "naive_days": {"da": "Naiv varighed i dage", "en": "Naive days"},
    "share_last_10y_cash_system": {"da": "Andel af de sidste 10 år i kontanthjælpssystemet",
                                   "en": "Share of the last 10 years in the cash system"},
    "cash_system_spell_start": {"da": "Forløbets start (kontanthjælpssystemet)",
                                "en": "Spell start (cash-benefit system)"},
    "cash_system_spell_days": {"da": "Forløb i kontanthjælpssystemet, dage",
                               "en": "Cash-system spell days"},
    "nav_exits": {"da": "Afgange", "en": "Exits"},
    "nav_cohort": {"da": "Kohorte", "en": "Cohort"},
    "nav_casework": {"da": "Sagsbehandling", "en": "Casework"},
    "nav_lists": {"da": "Prioriteringslister", "en": "Prioritisation lists"},
    "exits_title": {"da": "Afgange fra kontanthjælpssystemet", "en": "Exits from the cash-benefit "
                    "system"},
    "exits_lead": {
        "da": "Afgange pr. halvår efter, hvad borgeren gik til, og målgruppe ved afgangen. En "
              "afgang kendes, når vinduet efter den er slut.",
        "en": "Exits per half-year by destination and target group at exit. An exit is known "
              "once the window after it has ended."},
    "known_as_of": {"da": "Som kendt pr.", "en": "As known on"},
    "by_destination": {"da": "Afgange efter destination", "en": "Exits by destination"},
    "cohort_title": {"da": "Kohorteopfølgning", "en": "Cohort follow-up"},
    "cohort_lead": {
        "da": "Borgere på ydelse på kohortedatoen, og hvor de er 6, 12 og 18 måneder senere.",
        "en": "Citizens on benefit on the cohort date, and where they are 6, 12 and 18 months "
              "later."},
    "cohort_date": {"da": "Kohortedato", "en": "Cohort date"},
    "min_years": {"da": "Mindst år i forløbet", "en": "At least years in the spell"},
    "by_horizon": {"da": "Udfald efter antal måneder", "en": "Outcomes by months after"},
    "outcomes": {"da": "Udfald i detaljer", "en": "Outcomes in detail"},
    "horizon_months": {"da": "Måneder efter", "en": "Months after"},
    "horizon_date": {"da": "Dato", "en": "Date"},
    "months": {"da": "mdr.", "en": "months"},
    "exited": {"da": "Afgået", "en": "Exited"},
    "neither": {"da": "Hverken eller", "en": "Neither"},
    "destination": {"da": "Destination", "en": "Destination"},
    "died": {"da": "Død", "en": "Died"},
    "emigrated": {"da": "Udvandret", "en": "Emigrated"},
    "disability_pension": {"da": "Førtidspension", "en": "Disability pension"},
    "senior_pension": {"da": "Seniorpension", "en": "Senior pension"},
    "flexjob": {"da": "Fleksjob", "en": "Flexjob"},
    "other_benefit": {"da": "Anden ydelse", "en": "Other benefit"},
    "job": {"da": "Job", "en": "Job"},
    "education": {"da": "Uddannelse", "en": "Education"},
    "self_support": {"da": "Selvforsørgelse", "en": "Self-support"},
    "moved_municipality": {"da": "Flyttet kommune", "en": "Moved municipality"},
    "unknown": {"da": "Ukendt", "en": "Unknown"},
    "casework_title": {"da": "Sagsstammer, kontaktkadence og kontinuitet",
                       "en": "Caseloads, contact cadence and continuity"},
    "casework_lead": {
        "da": "Borgere pr. sagsbehandler mod linjerne 50, 70 og 110; samtaler i tide; antal "
              "sagsbehandlere pr. borger de seneste 12 måneder.",
        "en": "Citizens per caseworker against the 50, 70 and 110 lines; meetings on time; "
              "caseworkers per citizen in the last 12 months."},
    "distribution": {"da": "Sagsstammer efter størrelse", "en": "Caseloads by size"},
    "band": {"da": "Sagsstamme (borgere)", "en": "Caseload (citizens)"},
    "caseworkers": {"da": "Sagsbehandlere", "en": "Caseworkers"},
    "by_status": {"da": "Kontaktkadence efter status", "en": "Contact cadence by status"},
    "ok": {"da": "I tide", "en": "On time"},
    "due_soon": {"da": "Snart", "en": "Due soon"},
    "overdue": {"da": "Overskredet", "en": "Overdue"},
    "by_caseworkers": {"da": "Borgere efter antal sagsbehandlere (12 mdr.)",
                       "en": "Citizens by number of caseworkers (12 months)"},
    "lists_title": {"da": "Prioriteringslister", "en": "Prioritisation lists"},
    "lists_lead": {
        "da": "Borgere på ydelse med et forløb over N år (længst først), og afklaringspuljen. "
              "Borgere vises med pseudonym.",
        "en": "Citizens on benefit with a spell over N years (longest first), and the "
              "clarification pool. Citizens are shown by pseudonym."},
    "lists_purpose": {
        "da": "Angiv formål eller sagsnummer for at se listerne. Opslaget logges.",
        "en": "Give a purpose or case reference to see the lists. The lookup is logged."},
    "years": {"da": "År", "en": "Years"},
    "long_durations": {"da": "Forløb over N år", "en": "Spells over N years"},
    "clarification_pool": {"da": "Afklaringspuljen", "en": "Clarification pool"},
    "spell_start": {"da": "Forløbets start", "en": "Spell start"},
    "spell_days": {"da": "Forløbets længde i dage", "en": "Spell length in days"},
}

FLAG_NAMES = {
    "coordinating_caseworker_due": {"da": "Ret til koordinerende sagsbehandler",
                                    "en": "Coordinating caseworker due"},
    "permanent_support_on_temporary_benefit": {"da": "Varigt botilbud på midlertidig ydelse",
                                               "en": "Permanent care on a temporary benefit"},
    "job_ready_in_shelter": {"da": "Jobparat og på herberg", "en": "Job-ready in a shelter"},
    "parent_with_child_measure": {"da": "Forælder med barn i foranstaltning",
                                  "en": "Parent with a child measure"},
    "youth_unified_effort": {"da": "Under 25: samlet ungeindsats", "en": "Under 25: youth effort"},
    "long_duration_with_social_needs": {"da": "Langt forløb og støttebehov",
                                        "en": "Long spell with social needs"},
}

BUCKET_NAMES = {
    "0-26 weeks": {"da": "0-26 uger", "en": "0-26 weeks"},
    "26-52 weeks": {"da": "26-52 uger", "en": "26-52 weeks"},
    "1-2 years": {"da": "1-2 år", "en": "1-2 years"},
    "2-3 years": {"da": "2-3 år", "en": "2-3 years"},
    "over 3 years": {"da": "Over 3 år", "en": "Over 3 years"},
}


def text(key: str, lang: str) -> str:
    """The word for `key` in `lang` (the key itself when there is none)."""
    entry = TEXTS.get(key) or FLAG_NAMES.get(key) or BUCKET_NAMES.get(key)
    return entry[lang] if entry else key


def label(value: Any, lang: str) -> str:
    """A code shown to people: reference names, flags, buckets, else the code."""
    if not isinstance(value, str):
        return number(value, lang)
    for table in (reference.target_groups(), reference.benefits(), reference.interventions()):
        if value in table:
            return str(table[value].danish_name)
    municipalities = reference.municipalities()
    if value in municipalities:
        return f"{municipalities[value]} ({value})"
    return text(value, lang)


def number(value: Any, lang: str, decimals: int | None = None) -> str:
    """1234.5 as `1.234,5` (Danish) or `1,234.5`; None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return text("yes" if value else "no", lang)
    if isinstance(value, date):
        return day(value, lang)
    if isinstance(value, int):
        shown = f"{value:,}"
    elif isinstance(value, float):
        shown = f"{value:,.{1 if decimals is None else decimals}f}"
    else:
        return str(value)
    if lang == "da":
        shown = shown.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return shown


def percent(value: float | None, lang: str) -> str:
    """0.125 as `12,5 %` (Danish) or `12.5%`."""
    if value is None:
        return "–"
    shown = number(value * 100, lang, 1)
    return f"{shown} %" if lang == "da" else f"{shown}%"


def day(value: date | datetime | None, lang: str) -> str:
    """A date as `08.05.2023` (Danish) or `2023-05-08`; a moment with its time."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        if lang == "da":
            return value.strftime("%d.%m.%Y %H:%M:%S %Z").strip()
        return value.isoformat()
    return value.strftime("%d.%m.%Y") if lang == "da" else value.isoformat()
