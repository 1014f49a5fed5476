"""Rendering: terminal lines and tables, Markdown tables, and a report's sections as Markdown and one
self-contained HTML page.

A section is text, tables and figures (``Section``); what goes in each is reporting.py's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

LONG_TABLE = 40  # an HTML table longer than this folds away (its CSV holds it too)


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def survey_line(survey: dict) -> str:
    """One line on the survey as read: respondents, dropped rows, missing responses, ordinal levels nobody chose."""
    parts = [f"Survey: {survey['respondents']} respondents"]
    if survey["dropped_rows"]:
        dropped = len(survey["dropped_rows"])
        parts.append(f"{dropped} row{'s' if dropped > 1 else ''} dropped for missing values")
    if survey["missing_responses"]:
        parts.append(f"{survey['missing_responses']} missing item responses left out of the likelihood")
    if survey["unused_levels"]:
        parts.append("levels no respondent chose (their cutpoints rest on the prior): " + "; ".join(
            f"{item} {', '.join(map(str, levels))}" for item, levels in survey["unused_levels"].items()))
    return "; ".join(parts) + "\n"


def gate_lines(d: dict) -> list[str]:
    """The diagnostic gate's verdict as a fit prints it: the figures, what was checked, what missed, what to try."""
    state = "PASSED" if d["passed"] else "MISSED"
    lines = [f"Diagnostic gate {state}: max R-hat {d['r_hat_max']:.2f}, min ESS bulk {d['ess_bulk_min']:.0f} / "
             f"tail {d['ess_tail_min']:.0f}, {d['divergences']} divergences (need <= 1.01, >= 400, 0)"]
    checked = d["checked"]
    lines.append(f"  checked: {', '.join(checked['parameters'])}"
                 + (f"; per-respondent scores: {', '.join(checked['per_respondent_scores'])}"
                    if checked["per_respondent_scores"] else ""))
    if d["scores_note"]:
        lines.append(f"  note: {d['scores_note']}")
    lines += [f"  missed: {item}" for item in d["failing"]]
    if d.get("failing_total", 0) > len(d["failing"]):
        lines.append(f"  ... and {d['failing_total'] - len(d['failing'])} more (run.json: diagnostics.failing_total)")
    if d["advice"]:
        lines.append(f"  what to try: {d['advice']}")
    return lines


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


@dataclass
class Block:
    kind: str  # "text" | "table" | "figure"
    text: str = ""
    frame: pd.DataFrame | None = None
    name: str = ""  # table: CSV file stem; figure: PNG file stem
    figure: object = None  # a matplotlib Figure (drawn by plots.py)


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.blocks.append(Block("text", text))

    def table(self, frame: pd.DataFrame, name: str, caption: str = "") -> None:
        self.blocks.append(Block("table", caption, frame, name))

    def figure(self, figure, name: str, caption: str) -> None:
        self.blocks.append(Block("figure", caption, name=name, figure=figure))


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:.3f}"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return str(value)


def _rows(frame: pd.DataFrame) -> list[list[str]]:
    return [[_cell(v) for v in row] for row in frame.itertuples(index=False)]


def render_markdown(title: str, sections: list[Section], note: str, figure_dir: str = "figures") -> str:
    parts = [f"# {title}", "", f"> {note}", ""]
    for section in sections:
        parts += [f"## {section.title}", ""]
        for b in section.blocks:
            if b.kind == "text":
                parts += [b.text, ""]
            elif b.kind == "table":
                if b.text:
                    parts += [f"*{b.text}* (`{b.name}.csv`)", ""]
                parts += [markdown_table(list(map(str, b.frame.columns)), _rows(b.frame)), ""]
            else:
                parts += [f"![{b.text}]({figure_dir}/{b.name}.png)", "", f"*{b.text}*", ""]
    return "\n".join(parts)


def render_html(title: str, sections: list[Section], images: dict[str, bytes], note: str) -> str:
    """One self-contained page: styles inline, figures embedded as data URIs, no scripts, no links out."""
    import base64
    from html import escape

    css = ("body{font-family:Georgia,serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
           "h1{font-size:1.7em}h2{border-bottom:1px solid #ccc;margin-top:2em}table{border-collapse:collapse;"
           "font:13px/1.3 monospace;margin:.6em 0;display:block;overflow-x:auto}"
           "th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f3f3f3}"
           "td.t,th.t{text-align:left;max-width:24em;overflow-wrap:anywhere}nav ol{columns:2;font-size:.9em}"
           ".note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em}"
           "figure{margin:1em 0}figcaption{font-style:italic;color:#444}img{max-width:100%}"
           ".caption{font-style:italic;color:#444}")
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{escape(title)}</title><style>{css}</style></head><body>",
           f"<h1>{escape(title)}</h1>", f"<p class=\"note\">{escape(note)}</p>", "<nav><ol>"]
    out += [f"<li><a href=\"#s{i + 1}\">{escape(s.title)}</a></li>" for i, s in enumerate(sections)]
    out.append("</ol></nav>")
    for i, section in enumerate(sections):
        out.append(f"<section id=\"s{i + 1}\"><h2>{escape(section.title)}</h2>")
        for b in section.blocks:
            if b.kind == "text":
                out.append(f"<p>{escape(b.text)}</p>")
            elif b.kind == "table":
                if b.text:
                    out.append(f"<p class=\"caption\">{escape(b.text)} ({escape(b.name)}.csv)</p>")
                text = ["" if pd.api.types.is_numeric_dtype(b.frame[c]) else "t" for c in b.frame.columns]
                head = "".join(f"<th class=\"{k}\">{escape(str(c))}</th>" if k else f"<th>{escape(str(c))}</th>"
                               for k, c in zip(text, b.frame.columns))
                body = "".join("<tr>" + "".join(f"<td class=\"{k}\">{escape(c)}</td>" if k else f"<td>{escape(c)}</td>"
                                                for k, c in zip(text, row)) + "</tr>" for row in _rows(b.frame))
                table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                if len(b.frame) > LONG_TABLE:  # long tables fold away; the CSV holds them too
                    table = f"<details><summary>Show all {len(b.frame)} rows</summary>{table}</details>"
                out.append(table)
            else:
                data = base64.b64encode(images[b.name]).decode()
                out.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{escape(b.text)}\">"
                           f"<figcaption>{escape(b.text)}</figcaption></figure>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)
