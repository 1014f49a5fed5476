"""Rounding-aware audit of the paper's figures.

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

from .paper import TABLE4_TERMS, Figure, PaperFigures, load_paper, table5_cells, table5_id

Z975 = float(stats.norm.ppf(0.975))  # SPSS uses the exact quantile, 1.959964...
TABLE5_COEF = ("Capinno", "Activity", "Size")  # cell codes (capinno, activity, size) multiply these


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
    model: str  # "step0" (Table 2) or "step1" (Tables 4, 5, equation 2, text)
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


def _counts_records(paper: PaperFigures) -> list[AuditRecord]:
    v = paper.value
    no, yes = v("table3.no.no") + v("table3.no.yes"), v("table3.yes.no") + v("table3.yes.yes")
    n_cells = no + yes
    out = [
        _record(paper["sample.n"], v("sample.IT") + v("sample.MM"), v("sample.IT") + v("sample.MM"),
                f"IT + MM = {v('sample.IT'):.0f} + {v('sample.MM'):.0f}; Table 3's four cells also sum to {n_cells:.0f}"),
        _record(paper["frame.N"], v("frame.IT") + v("frame.MM"), v("frame.IT") + v("frame.MM"), "IT + MM in the frame"),
    ]
    b_lo, b_hi = paper["table2.Constant.b"].interval
    out.append(_record(paper["sample.internationalized"], no * math.exp(b_lo), no * math.exp(b_hi),
                       f"76 x exp(B) with Table 2's B = {paper['table2.Constant.b'].printed}; Table 3: 13 + 27 = {yes:.0f}"))
    return out


def _table2_records(paper: PaperFigures) -> list[AuditRecord]:
    """Step 0 from the counts alone: B = ln(y / (n - y)), SE = sqrt(1/y + 1/(n - y))."""
    y = paper.value("table3.yes.no") + paper.value("table3.yes.yes")
    n = paper.value("sample.n")
    b = math.log(y / (n - y))
    se = math.sqrt(1 / y + 1 / (n - y))
    note = f"from the counts: {y:.0f} internationalized of {n:.0f}"
    values = {"b": b, "se": se, "wald": _wald(b, se), "sig": _sig(_wald(b, se)), "exp_b": math.exp(b)}
    return [_record(paper[f"table2.Constant.{k}"], x, x, note) for k, x in values.items()]


def _table3_records(paper: PaperFigures) -> list[AuditRecord]:
    v = paper.value
    no_no, no_yes, yes_no, yes_yes = v("table3.no.no"), v("table3.no.yes"), v("table3.yes.no"), v("table3.yes.yes")
    pcts = {
        "table3.no.pct": (100 * no_no / (no_no + no_yes), "specificity = 65 / (65 + 11)"),
        "table3.yes.pct": (100 * yes_yes / (yes_no + yes_yes), "sensitivity = 27 / (13 + 27)"),
        "table3.overall.pct": (100 * (no_no + yes_yes) / (no_no + no_yes + yes_no + yes_yes), "(65 + 27) / 116"),
    }
    return [_record(paper[k], x, x, note) for k, (x, note) in pcts.items()]


def _table4_records(paper: PaperFigures) -> list[AuditRecord]:
    out = []
    for term in TABLE4_TERMS:
        f = lambda col: paper.get(f"table4.{term}.{col}")  # noqa: E731
        b, se = f("b").interval, f("se").interval
        lo, hi = corner_range(_wald, b, se)
        out.append(_record(f("wald"), lo, hi, "(B / SE)^2 from printed B and SE"))
        wlo, whi = f("wald").interval
        slo, shi = corner_range(_sig, (wlo, whi))
        via_b = corner_range(lambda bb, ss: _sig(_wald(bb, ss)), b, se)
        out.append(_record(f("sig"), slo, shi,
                           f"chi-square(1) tail of the printed Wald; from B and SE: [{via_b[0]:.5f}, {via_b[1]:.5f}]"))
        out.append(_record(f("exp_b"), *corner_range(math.exp, b), "exp(B)"))
        if f("ci_lower") is not None:
            out.append(_record(f("ci_lower"), *corner_range(lambda bb, ss: math.exp(bb - Z975 * ss), b, se),
                               "exp(B - 1.96 SE)"))
            out.append(_record(f("ci_upper"), *corner_range(lambda bb, ss: math.exp(bb + Z975 * ss), b, se),
                               "exp(B + 1.96 SE)"))
    return out


def _linear_predictor_range(paper: PaperFigures, codes: tuple[int, int, int]) -> tuple[float, float]:
    s, c, a = codes
    boxes = [paper[f"table4.{t}.b"].interval for t in ("Constant", "Capinno", "Activity", "Size")]
    return corner_range(lambda b0, bc, ba, bs: b0 + bc * c + ba * a + bs * s, *boxes)


def _table5_records(paper: PaperFigures) -> list[AuditRecord]:
    out = []
    for size, level, act, codes in table5_cells():
        lo, hi = _linear_predictor_range(paper, codes)
        s, c, a = codes
        note = f"logistic(Constant + {c} Capinno + {a} Activity + {s} Size) with Table 4's B"
        out.append(_record(paper[table5_id(size, level, act)], expit(lo), expit(hi), note))
    small_average = {"equation2.p": (1, 1, 1), "text.small_MM_average.p": (1, 1, 0)}
    for fid, codes in small_average.items():
        lo, hi = _linear_predictor_range(paper, codes)
        out.append(_record(paper[fid], expit(lo), expit(hi), "small firm, intermediate capabilities, Table 4's B"))
    return out


def sample_size(population: float, *, z: float, e: float, p: float) -> float:
    """Equation 1 before the correction factor: n0 = N z^2 p q / (N e^2 + z^2 p q)."""
    q = 1 - p
    return population * z**2 * p * q / (population * e**2 + z**2 * p * q)


def _design_records(paper: PaperFigures) -> list[AuditRecord]:
    z, e, p = paper.value("equation1.z"), paper.value("equation1.e"), paper.value("equation1.p")
    n0 = sample_size(paper.value("frame.N"), z=z, e=e, p=p)
    n0_strata = [sample_size(paper.value(f"frame.{s}"), z=z, e=e, p=p) for s in ("IT", "MM")]
    n = paper.value("sample.n")
    fig = paper["sample.n"]
    note = (f"Equation 1 for N = 672, z = 1.96, e = 0.10, p = q = 0.5 gives n0 = {n0:.2f} before correction; "
            f"the achieved n = 116 implies f = {n / n0:.3f} (a {100 * (n / n0 - 1):.0f}% allowance for error and "
            f"non-response). Per stratum n0 = {n0_strata[0]:.1f} (IT) + {n0_strata[1]:.1f} (MM) = "
            f"{sum(n0_strata):.1f}, more than 116, so the sample was not sized per sector.")
    record = AuditRecord("equation1.n", fig.value, fig.printed, n, n, n0, n0, bool(n >= n0), note,
                         "Section 3.2, Equation 1")
    return [record]


def _link_record(paper: PaperFigures) -> AuditRecord:
    """Does a probit link with the printed coefficients reproduce Table 5? (The text says 'Probit'.)"""
    reproduced = {"probit": 0, "logit": 0}
    for size, level, act, codes in table5_cells():
        lo, hi = _linear_predictor_range(paper, codes)
        plo, phi = paper[table5_id(size, level, act)].interval
        for link, cdf in (("probit", stats.norm.cdf), ("logit", expit)):
            if cdf(lo) <= phi and cdf(hi) >= plo:
                reproduced[link] += 1
    micro_low_mm = stats.norm.cdf(paper.value("table4.Constant.b"))
    note = (f"the text calls the model 'logistic regression -Probit-'; with a probit link the printed B "
            f"reproduce {reproduced['probit']} of 18 Table 5 cells (e.g. micro/low/MM: Phi(-2.193) = "
            f"{micro_low_mm:.3f} against 0.10), with a logit link {reproduced['logit']} of 18. The published "
            f"arithmetic (Exp(B) as odds ratios, equation 2) is a logit; 'Probit' is a mislabel.")
    n = reproduced["probit"]
    return AuditRecord("text.link", None, "Probit", None, None, float(n), float(n), n == 18, note,
                       "Section 3.2 text ('logistic regression -Probit-')")


# ---------------------------------------------------------------- joint region (linear programme)

@dataclass(frozen=True)
class _Constraint:
    name: str
    coef: np.ndarray
    low: float
    high: float


def _coefficient_constraints(paper: PaperFigures, prefix: str, term: str, b_at: int, se_at: int,
                             width: int) -> list[_Constraint]:
    """Printed B, SE, Wald, Sig, Exp(B), CI bounds of one term, each as low <= a.x <= high."""
    def unit(*pairs):
        a = np.zeros(width)
        for i, w in pairs:
            a[i] = w
        return a

    get = lambda col: paper.get(f"{prefix}.{term}.{col}")  # noqa: E731
    b_fig = get("b")
    sign = 1.0 if b_fig.value > 0 else -1.0
    out = [_Constraint(b_fig.id, unit((b_at, 1)), *b_fig.interval),
           _Constraint(get("se").id, unit((se_at, 1)), *get("se").interval)]
    # |B| / SE in [sqrt(W_lo), sqrt(W_hi)]  <=>  |B| - r SE between 0 and 0, as two one-sided rows.
    walds = [(get("wald").id, get("wald").interval)]
    slo, shi = get("sig").interval
    w_from_sig = (float(stats.chi2.isf(shi, 1)), float(stats.chi2.isf(slo, 1)) if slo > 0 else math.inf)
    walds.append((get("sig").id, w_from_sig))
    for name, (wlo, whi) in walds:
        out.append(_Constraint(name, unit((b_at, sign), (se_at, -math.sqrt(wlo))), 0.0, math.inf))
        if math.isfinite(whi):
            out.append(_Constraint(name, unit((b_at, sign), (se_at, -math.sqrt(whi))), -math.inf, 0.0))
    elo, ehi = get("exp_b").interval
    out.append(_Constraint(get("exp_b").id, unit((b_at, 1)), math.log(elo), math.log(ehi)))
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


def joint_region(paper: PaperFigures) -> list[JointRegion]:
    """The (B, SE) boxes consistent with every printed figure of Table 2, and of Tables 4-5 at once."""
    step0 = _solve_region("step0", ["Constant"], _coefficient_constraints(paper, "table2", "Constant", 0, 1, 2),
                          "Table 2: B, SE, Wald, Sig, Exp(B)")
    terms = list(TABLE4_TERMS)
    width = 2 * len(terms)
    constraints = []
    for k, term in enumerate(terms):
        constraints += _coefficient_constraints(paper, "table4", term, k, len(terms) + k, width)
    cells = [(table5_id(*cell[:3]), cell[3]) for cell in table5_cells()]
    cells += [("equation2.p", (1, 1, 1)), ("text.small_MM_average.p", (1, 1, 0))]
    index = {t: i for i, t in enumerate(terms)}
    for fid, (s, c, a) in cells:
        coef = np.zeros(width)
        coef[index["Constant"]], coef[index["Capinno"]], coef[index["Activity"]], coef[index["Size"]] = 1, c, a, s
        plo, phi = paper[fid].interval
        constraints.append(_Constraint(fid, coef, float(logit(plo)), float(logit(phi))))
    step1 = _solve_region("step1", terms, constraints,
                          "Table 4 (B, SE, Wald, Sig, Exp(B), CI) with all 18 Table 5 cells, equation 2 and the 0.60")
    return [step0, step1]


def run_audit(paper: PaperFigures | None = None) -> AuditResult:
    """Recompute every derivable published figure and the joint (B, SE) region."""
    paper = paper if paper is not None else load_paper()
    records = (_counts_records(paper) + _table2_records(paper) + _table3_records(paper)
               + _table4_records(paper) + _table5_records(paper) + _design_records(paper) + [_link_record(paper)])
    joint = joint_region(paper)
    inconsistent = [r.id for r in records if not r.consistent]
    summary = {
        "figures_checked": len(records),
        "consistent": len(records) - len(inconsistent),
        "inconsistent": inconsistent,
        "joint_feasible": {j.model: j.feasible for j in joint},
    }
    return AuditResult(records, joint, summary)
