"""A citizen's history as an SVG timeline over the years, drawn on the server.

Lanes from top to bottom: one per benefit source and municipality (the benefit
periods as the case systems hold them), the paid runs (days unioned), the
all-benefits spells (runs joined by the month rule; a bridged gap is drawn as
a thin line), the cash-benefit-system spells, the social interventions, and the
target-group assignments as ticks. The page's tables carry the same facts as
text, so the drawing is one view among others, not the only one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from html import escape

from casehistory.domain.spells import union
from casehistory.entrypoints.web.i18n import day, label, text
from casehistory.services.reports import CitizenStory, StorySpell

WIDTH = 1000
LEFT = 230
LANE = 26
BAR = 14
COLOURS = ("#005fa3", "#7a3e00", "#2f6b2f", "#6b2f6b", "#8a1538", "#3d4a5c", "#00636b")
"""Dark enough for 3:1 against white (WCAG 1.4.11, non-text contrast)."""


def render(story: CitizenStory, lang: str) -> str:
    first = min(
        [p.start for p in story.periods] + [p.start for p in story.interventions]
        + [a.effective_date for a in story.timeline.group_assignments if a.effective_date
           <= story.as_of] + [story.as_of],
    )
    start, end = date(first.year, 1, 1), date(story.as_of.year + 1, 1, 1)
    span = (end - start).days

    def x(when: date) -> float:
        return LEFT + (WIDTH - LEFT - 10) * (min(max(when, start), end) - start).days / span

    lanes: list[tuple[str, list[str]]] = []
    colour = {code: shade for code, (_, shade) in legend(story, lang).items()}
    sources = sorted({(p.source_system, p.municipality) for p in story.periods})
    for source, municipality in sources:
        bars = []
        for p in story.periods:
            if (p.source_system, p.municipality) != (source, municipality):
                continue
            stop = p.stop or story.as_of
            bars.append(_bar(x(p.start), x(stop), colour[p.code],
                             f"{label(p.code, lang)}: {day(p.start, lang)} – "
                             f"{day(p.stop, lang) if p.stop else text('ongoing', lang)}"
                             + (f" ({p.stop_reason})" if p.stop_reason else "")))
        lanes.append((f"{source} · {label(municipality, lang)}", bars))
    runs = union((p.start, min(p.stop or story.as_of, story.as_of)) for p in story.periods)
    lanes.append((text("legend_run", lang), [
        _bar(x(r.start), x(r.end), "#1a1a1a", f"{day(r.start, lang)} – {day(r.end, lang)}")
        for r in runs
    ]))
    lanes.append((text("spells", lang), _spells(story.spells, x, lang)))
    lanes.append((text("cash_system", lang), _spells(story.cash_spells, x, lang)))
    if story.interventions:
        for code in sorted({p.code for p in story.interventions}):
            lanes.append((label(code, lang), [
                _bar(x(p.start), x(p.stop or story.as_of), "#6b2f6b",
                     f"{label(code, lang)}: {day(p.start, lang)} – {day(p.stop, lang)}")
                for p in story.interventions if p.code == code
            ]))
    ticks = [
        f'<g><title>{escape(label(a.target_group, lang))}: {escape(day(a.effective_date, lang))}'
        f'</title><rect x="{x(a.effective_date) - 2:.1f}" y="4" width="4" height="{BAR}" '
        f'fill="#8a1538"/></g>'
        for a in story.timeline.group_assignments if a.effective_date <= story.as_of
    ]
    lanes.append((text("target_group", lang), ticks))

    height = 30 + LANE * len(lanes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-labelledby="tl-title tl-desc" class="timeline">',
        f'<title id="tl-title">{escape(text("timeline", lang))}</title>',
        f'<desc id="tl-desc">{escape(text("timeline_desc", lang))}</desc>',
    ]
    for year in range(start.year, end.year + 1):
        left = x(date(year, 1, 1))
        parts.append(f'<line x1="{left:.1f}" y1="0" x2="{left:.1f}" y2="{height - 24}" '
                     'stroke="#d0d0d0" stroke-width="1"/>')
        if (year - start.year) % max(1, (end.year - start.year) // 12) == 0 and left < WIDTH - 30:
            parts.append(f'<text x="{left + 2:.1f}" y="{height - 8}" font-size="12" '
                         f'fill="#1a1a1a">{year}</text>')
    for index, (name, shapes) in enumerate(lanes):
        top = 4 + LANE * index
        parts.append(f'<text x="4" y="{top + 12}" font-size="12" fill="#1a1a1a">'
                     f'{escape(name[:34])}</text>')
        parts.append(f'<g transform="translate(0,{top - 4})">{"".join(shapes)}</g>')
    parts.append("</svg>")
    return "\n".join(parts)


def legend(story: CitizenStory, lang: str) -> dict[str, tuple[str, str]]:
    """Each benefit's name and colour in the drawing, by code."""
    codes = sorted({p.code for p in story.periods})
    return {code: (label(code, lang), COLOURS[i % len(COLOURS)]) for i, code in enumerate(codes)}


def _bar(left: float, right: float, fill: str, title: str) -> str:
    return (f'<g><title>{escape(title)}</title><rect x="{left:.1f}" y="4" '
            f'width="{max(right - left, 1.5):.1f}" height="{BAR}" fill="{fill}" rx="2"/></g>')


def _spells(spells: list[StorySpell], x: Callable[[date], float], lang: str) -> list[str]:
    shapes = []
    for spell in spells:
        for a, b in spell.runs:
            shapes.append(_bar(x(a), x(b), "#005fa3",
                               f"{text('legend_spell', lang)} {day(spell.start, lang)}"))
        for gap in spell.gaps:
            shapes.append(
                f'<g><title>{escape(day(gap.start, lang))} – {escape(day(gap.end, lang))}: '
                f'{escape(gap.why)}</title><line x1="{x(gap.start):.1f}" y1="{4 + BAR / 2}" '
                f'x2="{x(gap.end):.1f}" y2="{4 + BAR / 2}" stroke="#005fa3" stroke-width="2" '
                'stroke-dasharray="3,2"/></g>'
            )
    return shapes
