"""Rounding-aware audit of a study's published figures.

A figure printed to k decimals stands for an interval of +/- half a unit in its last place.
Each derived figure is recomputed from the intervals of the figures it derives from, by
evaluating the formula at every corner of the input box (exact for formulas monotone in each
input, which all of these are on the boxes involved), and is *consistent* when its own
interval overlaps the recomputed one. The joint question (which unrounded B and SE satisfy
every printed figure at once) is a linear programme: after taking logs, logits and square
roots, every printed relation is linear in (B, SE).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, logit

from .study import CONSTANT, Figure, Predicted, Study, load_study

Z975 = float(stats.norm.ppf(0.975))  # SPSS uses the exact quantile, 1.959964...


@dataclass(frozen=True)
class AuditRecord:
    """One published figure set against its recomputation."""

    id: str
    published: float | None
    printed: str | None
    published_low: float | None
    published_high: float | None
    recomputed_low: float
    recomputed_high: float
    consistent: bool
    note: str
    source: str


@dataclass(frozen=True)
class JointTerm:
    """The box of unrounded (B, SE) values consistent with every printed figure at once."""

    term: str
    b: tuple[float, float]
    se: tuple[float, float]
    binding: dict[str, list[str]]  # "b_min", "b_max", "se_min", "se_max" -> figure ids


@dataclass(frozen=True)
class JointRegion:
    model: str  # "step0" (the constant-only block) or "step1" (the coefficients with the predicted probabilities)
    feasible: bool
    terms: list[JointTerm]
    constraints: int
    note: str


@dataclass(frozen=True)
class AuditResult:
    records: list[AuditRecord]
    joint: list[JointRegion]
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "summary": self.summary,
            "records": [asdict(r) for r in self.records],
            "joint": [asdict(j) for j in self.joint],
        }


def corner_range(f: Callable[..., float], *intervals: tuple[float, float]) -> tuple[float, float]:
    """Min and max of f over the corners of a box: the range of f when f is monotone in each input."""
    values = [f(*corner) for corner in itertools.product(*intervals)]
    return float(min(values)), float(max(values))


def _record(fig: Figure, lo: float, hi: float, note: str = "") -> AuditRecord:
    plo, phi = fig.interval
    consistent = bool(lo <= phi and hi >= plo)
    return AuditRecord(fig.id, fig.value, fig.printed, plo, phi, float(lo), float(hi), consistent, note, fig.source)


def _wald(b: float, se: float) -> float:
    return (b / se) ** 2


def _sig(wald: float) -> float:
    return float(stats.chi2.sf(wald, 1))


def _classification_counts(study: Study) -> dict[str, float] | None:
    if study.classification is None:
        return None
    return {k: study.value(f"{study.classification}.{k.replace('_', '.')}") for k in ("no_no", "no_yes", "yes_no", "yes_yes")}


def _margin_records(study: Study) -> list[AuditRecord]:
    """The sample size against the levels' counts, sums of text figures, and the outcome count against
    the constant-only B."""
    out = []
    counts = _classification_counts(study)
    total = next((m for m in study.margins if m.predictor is None and m.outcome is None), None)
    if total is not None:
        by_level: dict[str, list] = {}
        for m in study.margins:
            if m.predictor is not None:
                by_level.setdefault(m.predictor, []).append(m)
        complete = [ms for name, ms in by_level.items() if len(ms) == len(study.predictor(name).labels)]
        also = f"; {study[study.classification + '.no.no'].table}'s four cells also sum to {sum(counts.values()):.0f}" \
            if counts else ""
        if complete:
            ms = complete[0]
            value = sum(study.value(m.id) for m in ms)
            note = (f"{' + '.join(m.level for m in ms)} = {' + '.join(study[m.id].printed for m in ms)}" + also)
            out.append(_record(study[total.id], value, value, note))
        elif counts:
            value = sum(counts.values())
            out.append(_record(study[total.id], value, value, also[2:].replace(" also", "")))
    for check in study.checks:
        if check.kind == "sum":
            value = sum(study.value(fid) for fid in check.fields["of"])
            out.append(_record(study[check.fields["figure"]], value, value, str(check.fields.get("note", ""))))
    yes = next((m for m in study.margins if m.outcome == "yes"), None)
    if yes is not None and counts and study.constant_only:
        b = study[f"{study.constant_only}.b"]
        no = counts["no_no"] + counts["no_yes"]
        table = study[study.classification + ".no.no"].table
        out.append(_record(study[yes.id], no * math.exp(b.interval[0]), no * math.exp(b.interval[1]),
                           f"{no:.0f} x exp(B) with {b.table}'s B = {b.printed}; {table}: "
                           f"{counts['yes_no']:.0f} + {counts['yes_yes']:.0f} = {counts['yes_no'] + counts['yes_yes']:.0f}"))
    return out


def _constant_only_records(study: Study) -> list[AuditRecord]:
    """The constant-only block from the counts alone: B = ln(y / (n - y)), SE = sqrt(1/y + 1/(n - y))."""
    counts = _classification_counts(study)
    if study.constant_only is None or counts is None:
        return []
    y = counts["yes_no"] + counts["yes_yes"]
    n = sum(counts.values())
    b = math.log(y / (n - y))
    se = math.sqrt(1 / y + 1 / (n - y))
    note = f"from the counts: {y:.0f} {study.outcome} of {n:.0f}"
    values = {"b": b, "se": se, "wald": _wald(b, se), "sig": _sig(_wald(b, se)), "exp_b": math.exp(b)}
    return [_record(study[f"{study.constant_only}.{k}"], x, x, note) for k, x in values.items()
            if f"{study.constant_only}.{k}" in study]


def _classification_records(study: Study) -> list[AuditRecord]:
    counts = _classification_counts(study)
    if counts is None:
        return []
    no_no, no_yes, yes_no, yes_yes = (counts[k] for k in ("no_no", "no_yes", "yes_no", "yes_yes"))
    n = no_no + no_yes + yes_no + yes_yes
    pcts = {
        "no.pct": (100 * no_no / (no_no + no_yes), f"specificity = {no_no:.0f} / ({no_no:.0f} + {no_yes:.0f})"),
        "yes.pct": (100 * yes_yes / (yes_no + yes_yes), f"sensitivity = {yes_yes:.0f} / ({yes_no:.0f} + {yes_yes:.0f})"),
        "overall.pct": (100 * (no_no + yes_yes) / n, f"({no_no:.0f} + {yes_yes:.0f}) / {n:.0f}"),
    }
    return [_record(study[f"{study.classification}.{k}"], x, x, note) for k, (x, note) in pcts.items()
            if f"{study.classification}.{k}" in study]


def _coefficient_records(study: Study) -> list[AuditRecord]:
    out = []
    for term in study.terms:
        f = lambda col: study.get(f"{term.id}.{col}")  # noqa: E731
        b, se = f("b").interval, f("se").interval
        if f("wald") is not None:
            out.append(_record(f("wald"), *corner_range(_wald, b, se), "(B / SE)^2 from printed B and SE"))
        via_b = corner_range(lambda bb, ss: _sig(_wald(bb, ss)), b, se)
        if f("sig") is not None:
            if f("wald") is not None:
                slo, shi = corner_range(_sig, f("wald").interval)
                out.append(_record(f("sig"), slo, shi, f"chi-square(1) tail of the printed Wald; from B and SE: "
                                                       f"[{via_b[0]:.5f}, {via_b[1]:.5f}]"))
            else:
                out.append(_record(f("sig"), *via_b, "chi-square(1) tail of (B / SE)^2"))
        if f("exp_b") is not None:
            out.append(_record(f("exp_b"), *corner_range(math.exp, b), "exp(B)"))
        if f("ci_lower") is not None:
            out.append(_record(f("ci_lower"), *corner_range(lambda bb, ss: math.exp(bb - Z975 * ss), b, se),
                               "exp(B - 1.96 SE)"))
        if f("ci_upper") is not None:
            out.append(_record(f("ci_upper"), *corner_range(lambda bb, ss: math.exp(bb + Z975 * ss), b, se),
                               "exp(B + 1.96 SE)"))
    return out


def _design_row(study: Study, cell: Predicted) -> np.ndarray:
    import pandas as pd

    return study.design_matrix(pd.DataFrame([dict(cell.at)]), labels=True)[0]


def _linear_predictor_range(study: Study, x: np.ndarray) -> tuple[float, float]:
    """Range of Constant + sum of B x over the box of printed B (summed in that order, left to right)."""
    order = sorted(range(len(study.terms)), key=lambda i: study.terms[i].term != CONSTANT)
    boxes = [study[f"{study.terms[i].id}.b"].interval for i in order]
    xs = [float(x[i]) for i in order]

    def eta(*b: float) -> float:
        total = b[0] * xs[0]
        for bb, xx in zip(b[1:], xs[1:]):
            total = total + bb * xx
        return total

    return corner_range(eta, *boxes)


def _predicted_records(study: Study) -> list[AuditRecord]:
    out = []
    table = study.coefficient_table
    for cell in study.predicted:
        x = _design_row(study, cell)
        lo, hi = _linear_predictor_range(study, x)
        parts = [f"{x[i]:.0f} {study.printed_term(t.term)}" for i, t in enumerate(study.terms) if t.term != CONSTANT]
        note = cell.note or f"logistic(Constant + {' + '.join(parts)}) with {table}'s B"
        out.append(_record(study[cell.id], expit(lo), expit(hi), note))
    return out


def sample_size(population: float, *, z: float, e: float, p: float) -> float:
    """Equation 1 before the correction factor: n0 = N z^2 p q / (N e^2 + z^2 p q)."""
    q = 1 - p
    return population * z**2 * p * q / (population * e**2 + z**2 * p * q)


def _sample_size_record(study: Study, check) -> AuditRecord:
    c = check.fields
    z, e, p = study.value(c["z"]), study.value(c["e"]), study.value(c["p"])
    big_n = study.value(c["population"])
    n0 = sample_size(big_n, z=z, e=e, p=p)
    fig = study[c["sample"]]
    n = fig.value
    note = (f"{c.get('name', 'the sample-size formula')} for N = {big_n:.0f}, z = {study[c['z']].printed}, "
            f"e = {study[c['e']].printed}, p = q = {study[c['p']].printed} gives n0 = {n0:.2f} before correction; "
            f"the achieved n = {n:.0f} implies f = {n / n0:.3f} (a {100 * (n / n0 - 1):.0f}% allowance for error and "
            f"non-response).")
    strata = list(c.get("strata", []))
    if strata:
        n0s = [sample_size(study.value(s), z=z, e=e, p=p) for s in strata]
        parts = " + ".join(f"{v:.1f} ({study[s].column})" for v, s in zip(n0s, strata))
        verdict = f"more than {n:.0f}, so the sample was not sized per stratum" if sum(n0s) > n else \
            f"no more than {n:.0f}"
        note += f" Per stratum n0 = {parts} = {sum(n0s):.1f}, {verdict}."
    return AuditRecord(str(c["id"]), fig.value, fig.printed, n, n, n0, n0, bool(n >= n0), note,
                       str(c.get("source", fig.source)))


def _link_record(study: Study) -> list[AuditRecord]:
    """Does the link the text names (e.g. 'Probit') reproduce the predicted probabilities?"""
    stated = study.stated_link.get("")
    if not stated or not study.predicted:
        return []
    cdfs = {"probit": stats.norm.cdf, "logit": expit}
    reproduced = {"probit": 0, "logit": 0}
    for cell in study.predicted:
        lo, hi = _linear_predictor_range(study, _design_row(study, cell))
        plo, phi = study[cell.id].interval
        for link, cdf in cdfs.items():
            if cdf(lo) <= phi and cdf(hi) >= plo:
                reproduced[link] += 1
    total = len(study.predicted)
    slopes = [i for i, t in enumerate(study.terms) if t.term != CONSTANT]
    base = next((c for c in study.predicted if not _design_row(study, c)[slopes].any()), study.predicted[0])
    constant = study[f"{study.term(CONSTANT).id}.b"]
    fig = study[base.id]
    stated_key = stated.lower()
    other = "logit" if stated_key == "probit" else "probit"
    example = (f"{fig.row.replace(' / ', '/')}/{fig.column}: {'Phi' if stated_key == 'probit' else 'logistic'}"
               f"({constant.printed}) = {cdfs.get(stated_key, expit)(constant.value):.3f} against {fig.printed}")
    quote = study.stated_link.get("_quote", stated)
    n = reproduced.get(stated_key, 0)
    note = (f"the text calls the model '{quote}'; with a {stated_key} link the printed B reproduce {n} of {total} "
            f"predicted probabilities (e.g. {example}), with a {other} link {reproduced[other]} of {total}.")
    if n < total and reproduced[other] == total:
        note += f" The published arithmetic is a {other}; '{stated}' is a mislabel."
    source = study.stated_link.get("_source", "the paper's text")
    return [AuditRecord("text.link", None, stated, None, None, float(n), float(n), n == total, note, source)]


# ---------------------------------------------------------------- joint region (linear programme)

@dataclass(frozen=True)
class _Constraint:
    name: str
    coef: np.ndarray
    low: float
    high: float


def _coefficient_constraints(study: Study, prefix: str, b_at: int, se_at: int, width: int) -> list[_Constraint]:
    """Printed B, SE, Wald, Sig, Exp(B), CI bounds of one term, each as low <= a.x <= high."""
    def unit(*pairs):
        a = np.zeros(width)
        for i, w in pairs:
            a[i] = w
        return a

    get = lambda col: study.get(f"{prefix}.{col}")  # noqa: E731
    b_fig = get("b")
    sign = 1.0 if b_fig.value > 0 else -1.0
    out = [_Constraint(b_fig.id, unit((b_at, 1)), *b_fig.interval),
           _Constraint(get("se").id, unit((se_at, 1)), *get("se").interval)]
    # |B| / SE in [sqrt(W_lo), sqrt(W_hi)]  <=>  |B| - r SE between 0 and 0, as two one-sided rows.
    walds = [(get("wald").id, get("wald").interval)] if get("wald") is not None else []
    if get("sig") is not None:
        slo, shi = get("sig").interval
        walds.append((get("sig").id, (float(stats.chi2.isf(shi, 1)), float(stats.chi2.isf(slo, 1)) if slo > 0
                                      else math.inf)))
    for name, (wlo, whi) in walds:
        out.append(_Constraint(name, unit((b_at, sign), (se_at, -math.sqrt(wlo))), 0.0, math.inf))
        if math.isfinite(whi):
            out.append(_Constraint(name, unit((b_at, sign), (se_at, -math.sqrt(whi))), -math.inf, 0.0))
    if get("exp_b") is not None:
        elo, ehi = get("exp_b").interval
        out.append(_Constraint(get("exp_b").id, unit((b_at, 1)), math.log(max(elo, 1e-300)), math.log(ehi)))
    for col, z in (("ci_lower", -Z975), ("ci_upper", Z975)):
        fig = get(col)
        if fig is not None:
            lo, hi = fig.interval
            out.append(_Constraint(fig.id, unit((b_at, 1), (se_at, z)), math.log(max(lo, 1e-300)), math.log(hi)))
    return out


def _solve_region(model: str, terms: Sequence[str], constraints: list[_Constraint], note: str) -> JointRegion:
    width = 2 * len(terms)
    rows, bounds = [], []
    for con in constraints:
        if math.isfinite(con.high):
            rows.append(con.coef)
            bounds.append(con.high)
        if math.isfinite(con.low):
            rows.append(-con.coef)
            bounds.append(-con.low)
    a_ub, b_ub = np.array(rows), np.array(bounds)
    var_bounds = [(None, None)] * len(terms) + [(1e-9, None)] * len(terms)

    def extreme(i: int, sense: float):
        c = np.zeros(width)
        c[i] = sense
        return optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=var_bounds, method="highs")

    result_terms, feasible = [], True
    for k, term in enumerate(terms):
        box, binding = {}, {}
        for var, idx in (("b", k), ("se", len(terms) + k)):
            ends = []
            for label, sense in (("min", 1.0), ("max", -1.0)):
                res = extreme(idx, sense)
                if res.status != 0:
                    feasible = False
                    ends.append(math.nan)
                    binding[f"{var}_{label}"] = []
                    continue
                ends.append(float(res.x[idx]))
                binding[f"{var}_{label}"] = sorted({
                    con.name for con in constraints if con.coef[idx] != 0 and (
                        (math.isfinite(con.low) and abs(con.coef @ res.x - con.low) < 1e-9)
                        or (math.isfinite(con.high) and abs(con.coef @ res.x - con.high) < 1e-9))})
            box[var] = (ends[0], ends[1])
        result_terms.append(JointTerm(term, box["b"], box["se"], binding))
    return JointRegion(model, feasible, result_terms, len(constraints), note)


def joint_region(study: Study) -> list[JointRegion]:
    """The (B, SE) boxes consistent with every printed figure of the constant-only block, and of the
    coefficients and predicted probabilities at once."""
    regions = []
    if study.constant_only is not None and f"{study.constant_only}.se" in study:
        table = study[f"{study.constant_only}.b"].table
        regions.append(_solve_region("step0", [CONSTANT], _coefficient_constraints(study, study.constant_only, 0, 1, 2),
                                     f"{table}: B, SE, Wald, Sig, Exp(B)"))
    terms = [study.printed_term(t.term) for t in study.terms]
    width = 2 * len(terms)
    constraints = []
    for k, term in enumerate(study.terms):
        constraints += _coefficient_constraints(study, term.id, k, len(terms) + k, width)
    for cell in study.predicted:
        coef = np.zeros(width)
        coef[: len(terms)] = _design_row(study, cell)
        plo, phi = study[cell.id].interval
        constraints.append(_Constraint(cell.id, coef, float(logit(plo)), float(logit(phi))))
    tables: dict[str, int] = {}
    for cell in study.predicted:
        tables[study[cell.id].table] = tables.get(study[cell.id].table, 0) + 1
    parts = [f"all {n} cells of {t}" if n > 1 else t for t, n in tables.items()]
    with_cells = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else ""
    note = f"{study.coefficient_table} (B, SE, Wald, Sig, Exp(B), CI)" + (f" with {with_cells}" if tables else "")
    regions.append(_solve_region("step1", terms, constraints, note))
    return regions


def run_audit(study: Study | None = None) -> AuditResult:
    """Recompute every derivable published figure and the joint (B, SE) region."""
    study = study if study is not None else load_study()
    records = (_margin_records(study) + _constant_only_records(study) + _classification_records(study)
               + _coefficient_records(study) + _predicted_records(study)
               + [_sample_size_record(study, c) for c in study.checks if c.kind == "sample_size"]
               + _link_record(study))
    joint = joint_region(study)
    inconsistent = [r.id for r in records if not r.consistent]
    summary = {
        "study": study.id,
        "figures_checked": len(records),
        "consistent": len(records) - len(inconsistent),
        "inconsistent": inconsistent,
        "joint_feasible": {j.model: j.feasible for j in joint},
    }
    return AuditResult(records, joint, summary)


# --- the audit as rows and Markdown (audit.md, the CLI's tables) ---

def audit_rows(records) -> list[list[str]]:
    from .render import fmt

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
    from .render import markdown_table

    s = result.summary
    parts = ["# Audit of the published figures",
             "Each derived figure is recomputed from the figures it depends on, with every printed value read as the "
             "interval its rounding allows (+/- half a unit in the last place), and is *consistent* when that "
             "interval overlaps the recomputed one.",
             f"**{s['consistent']} of {s['figures_checked']} checks consistent.** "
             f"Inconsistent: {', '.join(s['inconsistent']) or 'none'}.",
             markdown_table(AUDIT_HEADERS, audit_rows(result.records)),
             "## Joint consistency: which unrounded coefficients fit every printed figure at once"]
    for region in result.joint:
        verdict = ("non-empty: the paper is consistent once rounding is accounted for" if region.feasible
                   else "EMPTY: no unrounded values reproduce every printed figure (a real contradiction)")
        parts += [f"### {region.model}: {region.note}", f"{region.constraints} printed relations; region {verdict}.",
                  markdown_table(JOINT_HEADERS, joint_rows(region))]
    return "\n\n".join(parts) + "\n"
