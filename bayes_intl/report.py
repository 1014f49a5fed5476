"""Plain-text and Markdown rendering of result tables (no computation, no plotting)."""

from __future__ import annotations

import math
from typing import Sequence


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, max_width: int = 70) -> str:
    """A fixed-width table for the terminal; long cells are cut with an ellipsis."""
    rows = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join([line, rule, *body])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    escape = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def audit_rows(records) -> list[list[str]]:
    rows = []
    for r in records:
        digits = max(len(r.printed.split(".")[1]) + 2, 4) if r.printed and "." in r.printed else 4
        interval = (fmt(r.recomputed_low, digits) if r.recomputed_low == r.recomputed_high
                    else f"[{fmt(r.recomputed_low, digits)}, {fmt(r.recomputed_high, digits)}]")
        rows.append([r.id, r.printed or "", interval, "consistent" if r.consistent else "INCONSISTENT", r.note])
    return rows


AUDIT_HEADERS = ["figure", "published", "recomputed", "verdict", "note"]


def joint_rows(region) -> list[list[str]]:
    rows = []
    for t in region.terms:
        binds = sorted({name for names in t.binding.values() for name in names})
        rows.append([t.term, f"[{t.b[0]:.5f}, {t.b[1]:.5f}]", f"[{t.se[0]:.5f}, {t.se[1]:.5f}]", ", ".join(binds)])
    return rows


JOINT_HEADERS = ["term", "B consistent with all", "SE consistent with all", "figures that bind the box"]


def audit_markdown(result) -> str:
    s = result.summary
    parts = [
        "# Audit of the published figures",
        "",
        "Each derived figure is recomputed from the figures it depends on, with every printed value "
        "read as the interval its rounding allows (+/- half a unit in the last place), and is "
        "*consistent* when that interval overlaps the recomputed one.",
        "",
        f"**{s['consistent']} of {s['figures_checked']} checks consistent.** "
        f"Inconsistent: {', '.join(s['inconsistent']) or 'none'}.",
        "",
        markdown_table(AUDIT_HEADERS, audit_rows(result.records)),
        "",
        "## Joint consistency: which unrounded coefficients fit every printed figure at once",
        "",
    ]
    for region in result.joint:
        verdict = ("non-empty: the paper is consistent once rounding is accounted for" if region.feasible
                   else "EMPTY: no unrounded values reproduce every printed figure (a real contradiction)")
        parts += [f"### {region.model}: {region.note}", "", f"{region.constraints} printed relations; region {verdict}.", "",
                  markdown_table(JOINT_HEADERS, joint_rows(region)), ""]
    return "\n".join(parts)
