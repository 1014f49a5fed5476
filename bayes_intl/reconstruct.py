"""Reconstruct cell tables consistent with a study's published classification table and coefficients.

With categorical predictors the data are cells (every combination of the predictors' levels) with
n cases and y outcomes each. The logit's likelihood depends on y only through X'y, so a candidate
is a *design* (the n per cell) plus an integer X'y; its fit is scored by k = max over the published
B and SE of |refit - published| / 0.0005 (half a unit in SPSS's third decimal).

Search: start designs whose SEs match the printed ones (a smooth fit, then the closest integer design
meeting every printed margin and the count classified Yes); around each, and then around the best found,
the designs and X'y whose linearised deviations are smallest, enumerated on an integer lattice (fplll);
every candidate scored exactly (Newton refits); a MILP for outcomes y with that X'y and the
classification's counts.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit, gammaln
from tqdm.auto import tqdm

from .data import CellTable
from .errors import BayesIntlError, SpecError
from .store import stdout_fd_redirected
from .study import CONSTANT, Study, load_study

log = logging.getLogger(__name__)

HALF_UNIT = 0.0005
# Work limits, not time limits, so that results do not depend on the machine's speed.
LATTICE_K = 8.0  # the enumeration radius allows each B and SE this many half-units off ...
LATTICE_CASES = 6.0  # ... or, traded against them, a design change of this many cases (Euclidean)
LATTICE_SCALE = 50  # fplll works on integers: lattice coordinates are rounded at 1/50 of a half-unit
LATTICE_MAX_DIM = 24  # past this many design directions, each enumeration takes a random subset of cells
PROVENANCE = "RECONSTRUCTED from the paper's published tables (not the real survey)"


@dataclass(frozen=True)
class Problem:
    """What the search needs of a study, as arrays: cells, design matrix, targets, constraints on n."""

    names: tuple[str, ...]  # predictor names: the cell table's columns
    codes: np.ndarray  # (cells, predictors)
    x: np.ndarray  # (cells, terms), columns in the coefficients table's order
    constant: int  # the Constant's column
    b: np.ndarray
    se: np.ndarray
    n: int
    yes: int
    a: np.ndarray  # (constraints, cells): every design keeps a @ n == c
    c: np.ndarray
    predicted_yes: np.ndarray  # cells the published model classifies Yes at the cut
    correct_yes: int | None  # observed Yes among them (the classification table), when published
    cut: float
    provenance: str

    @property
    def free(self) -> np.ndarray:
        return np.array([j for j in range(self.x.shape[1]) if j != self.constant])


def problem_of(study: Study) -> Problem:
    """The search problem a study poses; refuses, in one line, a study that cannot pin down n or y."""
    cells = study.cells()
    x = study.design_matrix(cells)
    b = np.array([study.value(f"{t.id}.b") for t in study.terms])
    se = np.array([study.value(f"{t.id}.se") for t in study.terms])
    cls = study.classification
    counts = {k: int(study.value(f"{cls}.{k}")) for k in ("no.no", "no.yes", "yes.no", "yes.yes")} if cls else {}
    total = next((m for m in study.margins if m.predictor is None and m.outcome is None), None)
    n = int(study.value(total.id)) if total else sum(counts.values())
    yes_margin = next((m for m in study.margins if m.outcome == "yes"), None)
    yes = counts["yes.no"] + counts["yes.yes"] if counts else int(study.value(yes_margin.id)) if yes_margin else None
    if not n or yes is None:
        raise SpecError(f"study {study.source}: a reconstruction needs the sample size and the number with "
                        f"{study.outcome} = 1 ([classification], or [[margin]] rows for the total and outcome = 'yes')")
    rows, totals = [np.ones(len(cells))], [n]
    for m in study.margins:
        if m.predictor is not None:
            rows.append((cells[m.predictor] == study.predictor(m.predictor).code(m.level)).to_numpy(float))
            totals.append(int(study.value(m.id)))
    predicted_yes = expit(x @ b) > study.cut
    if counts:
        rows.append(predicted_yes.astype(float))
        totals.append(counts["no.yes"] + counts["yes.yes"])
    for name in {m.predictor for m in study.margins if m.predictor}:
        given = [int(study.value(m.id)) for m in study.margins if m.predictor == name]
        if len(given) == len(study.predictor(name).labels) and sum(given) != n:
            raise SpecError(f"study {study.source}: the [[margin]] counts of '{name}' sum to {sum(given)}, "
                            f"not to the sample size {n}")
    keep: list[int] = []  # a row implied by others (the last level's count) only slows the MILPs
    for i in range(len(rows)):
        if np.linalg.matrix_rank(np.array([rows[j] for j in keep + [i]])) > len(keep):
            keep.append(i)
    rows, totals = [rows[i] for i in keep], [totals[i] for i in keep]
    constant = next(i for i, t in enumerate(study.terms) if t.term == CONSTANT)
    provenance = (PROVENANCE if study.data == "published"
                  else f"RECONSTRUCTED from the printed tables of study '{study.id}' (not its real rows)")
    return Problem(tuple(cells.columns), cells.to_numpy(), x, constant, b, se, n, yes, np.array(rows),
                   np.array(totals, dtype=float), predicted_yes, counts.get("yes.yes") if counts else None, study.cut,
                   provenance)


@dataclass(frozen=True)
class Candidate:
    """A reconstructed table: design n, outcomes y, the exact refit and its score k."""

    n: tuple[int, ...]
    y: tuple[int, ...]
    k: float
    b: tuple[float, ...]
    se: tuple[float, ...]
    names: tuple[str, ...] = field(default=(), repr=False)
    codes: tuple[tuple[int, ...], ...] = field(default=(), repr=False)
    provenance: str = field(default=PROVENANCE, repr=False)

    def cells(self) -> pd.DataFrame:
        frame = pd.DataFrame(list(self.codes), columns=list(self.names), dtype="int64")
        return frame.assign(n=list(self.n), y=list(self.y))

    def table(self, source: str = "bayes-intl reconstruct") -> CellTable:
        return CellTable(self.cells(), source, self.provenance)


@dataclass(frozen=True)
class Reconstruction:
    best: Candidate
    ensemble: list[Candidate]
    seed: int
    settings: dict
    distinct_designs_scored: int
    within: dict[str, int]  # "k<=2" -> number of distinct designs found
    seconds: float
    design_space_log10: float = 0.0  # an upper bound on the number of designs (log10), for "not exhaustive"

    @property
    def exhaustive(self) -> bool:
        return self.design_space_log10 <= math.log10(max(self.distinct_designs_scored, 1))

    def coverage(self) -> str:
        """One sentence on how much of the design space was scored."""
        if self.exhaustive:
            return f"every one of the {self.distinct_designs_scored:,} possible designs was scored"
        return (f"not exhaustive: {self.distinct_designs_scored:,} distinct designs scored of up to "
                f"10^{self.design_space_log10:.0f} possible")


def design_space_log10(problem: Problem) -> float:
    """log10 of the number of ways to spread n cases over the cells (an upper bound: margins cut it down)."""
    cells = len(problem.x)
    return float((gammaln(problem.n + cells) - gammaln(problem.n + 1) - gammaln(cells)) / math.log(10))


def _integer_kernel(a: np.ndarray) -> np.ndarray:
    """A reduced basis (rows) of the integer design changes d with a @ d = 0: LLL on [I | W a'] leaves
    the rows whose constraint part vanishes first."""
    from fpylll import LLL, IntegerMatrix

    cells = a.shape[1]
    rows = np.concatenate([np.eye(cells, dtype=np.int64), np.rint(1e6 * a.T).astype(np.int64)], axis=1)
    basis = IntegerMatrix.from_matrix(rows.tolist())
    LLL.reduction(basis)
    reduced = np.array([[basis[i, j] for j in range(basis.ncols)] for i in range(basis.nrows)], dtype=np.int64)
    kernel = reduced[(reduced[:, cells:] == 0).all(axis=1), :cells]
    kernel = kernel[np.abs(kernel).sum(axis=1) > 0]
    if not len(kernel):
        raise SpecError("the published margins leave no freedom: every cell count is fixed")
    return kernel


def _start_designs(problem: Problem, rng: np.random.Generator, starts: int) -> list[np.ndarray]:
    """Integer designs meeting every constraint whose SEs (and expected Yes count) are close to the printed
    ones: a smooth least-squares fit over real-valued designs from a random spread, then the closest
    integer design (MILP). Every cell keeps a few cases, so that small moves stay feasible."""
    x, m = problem.x, len(problem.x)
    p = expit(x @ problem.b)
    w = p * (1 - p)
    floor = min(1.5, 0.5 * problem.n / m)

    def misfit(n: np.ndarray) -> float:
        info = np.einsum("c,c,ci,cj->ij", n, w, x, x)
        se = np.sqrt(np.abs(np.diag(np.linalg.pinv(info))))
        return float((((se - problem.se) / 0.01) ** 2).sum() + ((n @ p - problem.yes) / 0.5) ** 2)

    designs = []
    for _ in range(starts):
        spread = problem.n * rng.dirichlet(np.full(m, 2.0))
        with np.errstate(all="ignore"):
            fit = optimize.minimize(misfit, spread, method="SLSQP", bounds=[(floor, None)] * m,
                                    constraints=[{"type": "eq", "fun": lambda n: problem.a @ n - problem.c}],
                                    options={"maxiter": 200})
        if not np.isfinite(fit.x).all():
            continue
        res = _closest_integer(fit.x, problem.a, problem.c, np.full(m, np.inf), 200)
        if res.x is None:
            raise SpecError("no cell table meets the published margins and classification counts together; "
                            "check the study's [[margin]] and [classification] figures")
        designs.append(np.round(res.x[:m]))
    return designs


def _neighbours(problem: Problem, kernel: np.ndarray, n: np.ndarray, s: np.ndarray, p: np.ndarray,
                solutions: int) -> tuple[np.ndarray, np.ndarray]:
    """Designs and X'y near (n, s) whose linearised B and SE deviations are smallest, by lattice enumeration.

    Both deviations are linear in an integer change (d of the design, a kernel combination; e of the free
    sums of X'y): B moves by I^-1 (e - P'd) and each SE by its gradient in the cell counts. The changes
    form a lattice whose points, measured as (deviations in half-units, d weighted by each cell's
    1 / sqrt(count)), are enumerated closest-first
    to the point that cancels the current deviations (fplll's CVP enumeration, on an LLL-reduced basis).
    """
    from fpylll import LLL, Enumeration, EnumerationError, GSO, IntegerMatrix

    x, free = problem.x, problem.free
    w = p * (1 - p)
    b_now, se_now = _newton(problem, n[None], s[None], problem.b[None])
    if not np.isfinite(b_now).all():
        return np.zeros((0, len(n))), np.zeros((0, len(s)))
    inv = np.linalg.inv(np.einsum("c,c,ci,cj->ij", n, w, x, x))
    d_se = -(w[None, :] * (inv @ x.T) ** 2) / (2 * np.sqrt(np.diag(inv))[:, None])
    q, d = len(s), len(free)
    weight = np.sqrt((n.mean() + 0.5) / (n + 0.5))  # chi-square-like: small cells, bounded by zero, move least
    design_rows = np.concatenate([-(kernel @ (p[:, None] * x)) @ inv.T / HALF_UNIT, kernel @ d_se.T / HALF_UNIT,
                                  kernel * weight, np.zeros((len(kernel), d))], axis=1)
    sum_rows = np.concatenate([inv[:, free].T / HALF_UNIT, np.zeros((d, q + len(n))), np.eye(d)], axis=1)
    basis = np.concatenate([design_rows, sum_rows]) * LATTICE_SCALE
    target = np.concatenate([(problem.b - b_now[0]) / HALF_UNIT, (problem.se - se_now[0]) / HALF_UNIT,
                             np.zeros(len(n) + d)]) * LATTICE_SCALE
    lattice = IntegerMatrix.from_matrix(np.rint(basis).astype(np.int64).tolist())
    unimodular = IntegerMatrix.identity(lattice.nrows)
    LLL.reduction(lattice, unimodular)
    gso = GSO.Mat(lattice)
    gso.update_gso()
    radius = (2 * q * LATTICE_K ** 2 + LATTICE_CASES ** 2) * LATTICE_SCALE ** 2
    try:
        found = Enumeration(gso, nr_solutions=solutions).enumerate(
            0, lattice.nrows, radius, 0, target=gso.from_canonical(tuple(target.tolist())))
    except EnumerationError:  # no lattice point within the radius
        return np.zeros((0, len(n))), np.zeros((0, len(s)))
    u = np.array([[unimodular[i, j] for j in range(unimodular.ncols)] for i in range(unimodular.nrows)])
    coefficients = np.rint(np.array([c for _, c in found]) @ u).astype(np.int64)
    designs = n[None] + coefficients[:, :len(kernel)] @ kernel
    sums = np.repeat(s[None], len(coefficients), axis=0)
    sums[:, free] += coefficients[:, len(kernel):]
    keep = (designs >= 0).all(axis=1)
    return designs[keep], sums[keep]


def _milp(*args, **kwargs) -> optimize.OptimizeResult:
    """``scipy.optimize.milp`` with stdout sent to /dev/null: the HiGHS bundled with SciPy prints a
    leftover debug line ("HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();",
    ERGO-Code/HiGHS#2783) whatever its output options say."""
    with stdout_fd_redirected(os.devnull):
        return optimize.milp(*args, **kwargs)


def _closest_integer(target: np.ndarray, eq: np.ndarray, rhs: np.ndarray, upper: np.ndarray,
                     node_limit: int) -> optimize.OptimizeResult:
    """The MILP for integer z with eq z = rhs, 0 <= z <= upper, closest (L1) to target (z is ``x[:len(target)]``)."""
    m = len(target)
    abs_rows = np.block([[np.eye(m), -np.eye(m)], [-np.eye(m), -np.eye(m)]])
    return _milp(np.concatenate([np.zeros(m), np.ones(m)]),
                 constraints=[optimize.LinearConstraint(np.concatenate([eq, np.zeros_like(eq)], axis=1), rhs, rhs),
                              optimize.LinearConstraint(abs_rows, -np.inf, np.concatenate([target, -target]))],
                 bounds=optimize.Bounds(np.zeros(2 * m), np.concatenate([upper, np.full(m, np.inf)])),
                 integrality=np.concatenate([np.ones(m), np.zeros(m)]), options={"node_limit": node_limit})


def _newton(problem: Problem, n: np.ndarray, s: np.ndarray, b0: np.ndarray,
            iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Exact logit MLE for designs n with sufficient statistics X'y = s (batched Newton-Raphson).

    Rows that do not converge (separation, an empty column) come back as NaN.
    """
    x = problem.x
    b = np.array(b0, dtype=float, copy=True)
    ridge = 1e-12 * np.eye(x.shape[1])
    with np.errstate(all="ignore"):
        for _ in range(iters):
            p = expit(b @ x.T)
            t = np.einsum("bc,bc,ci->bi", n, p, x)
            info = np.einsum("bc,bc,ci,cj->bij", n, p * (1 - p), x, x) + ridge
            step = np.linalg.solve(info, (s - t)[..., None])[..., 0]
            b = np.clip(b + step, -50, 50)
            if np.nanmax(np.abs(step)) < 1e-13:
                break
        p = expit(b @ x.T)
        info = np.einsum("bc,bc,ci,cj->bij", n, p * (1 - p), x, x) + ridge
        se = np.sqrt(np.diagonal(np.linalg.inv(info), axis1=1, axis2=2))
    bad = ~(np.abs(step) < 1e-8).all(axis=1) | ~np.isfinite(se).all(axis=1)
    b[bad], se[bad] = np.nan, np.nan
    return b, se


def exact_k(problem: Problem, n: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k, B and SE of the exact refit of designs n with X'y = s (k = inf where the refit fails)."""
    n, s = np.atleast_2d(n).astype(float), np.atleast_2d(s).astype(float)
    b = np.full((len(n), len(problem.b)), np.nan)
    se = b.copy()
    for start in range(0, len(n), 4096):  # batches bound the memory of the einsums
        part = slice(start, start + 4096)
        b[part], se[part] = _newton(problem, n[part], s[part], np.broadcast_to(problem.b, (len(n[part]), len(problem.b))))
    dev = np.maximum(np.abs(b - problem.b).max(axis=1), np.abs(se - problem.se).max(axis=1)) / HALF_UNIT
    return np.where(np.isfinite(dev), dev, np.inf), b, se


def outcome_table(problem: Problem, n: np.ndarray, s: np.ndarray, p: np.ndarray) -> np.ndarray | None:
    """Integer y with X'y = s, 0 <= y <= n and the classification table's correct Yes, closest (L1) to n p."""
    rows, rhs = [problem.x.T], [s]
    if problem.correct_yes is not None:
        rows.append(problem.predicted_yes[None].astype(float))
        rhs.append([problem.correct_yes])
    res = _closest_integer(n * p, np.concatenate(rows), np.concatenate(rhs), n, 5000)
    return np.round(res.x[:len(n)]).astype(np.int64) if res.status == 0 else None


def _kernel_for(problem: Problem, kernel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The kernel itself, or, past LATTICE_MAX_DIM directions, that of a random subset of cells (the
    enumeration's cost grows exponentially with the lattice's dimension)."""
    if len(kernel) <= LATTICE_MAX_DIM:
        return kernel
    cells = np.sort(rng.choice(len(problem.x), LATTICE_MAX_DIM + np.linalg.matrix_rank(problem.a), replace=False))
    sub = np.zeros((0, len(problem.x)), dtype=np.int64)
    try:
        part = _integer_kernel(problem.a[:, cells])
        sub = np.zeros((len(part), len(problem.x)), dtype=np.int64)
        sub[:, cells] = part
    except SpecError:  # those cells alone leave no freedom
        pass
    return sub if len(sub) else kernel[:LATTICE_MAX_DIM]


def _search_pool(problem: Problem, rng, *, starts: int, rounds: int, expand: int, solutions: int) -> dict:
    """Every exactly scored (design, X'y) with its k: lattice neighbourhoods of SE-matched start designs,
    then, for ``rounds`` rounds, of the ``expand`` best designs not yet expanded (each re-linearised)."""
    p = expit(problem.x @ problem.b)
    kernel = _integer_kernel(problem.a)
    pool: dict = {}

    def score(designs: np.ndarray, sums: np.ndarray) -> None:
        if len(designs):
            ks, _, _ = exact_k(problem, designs, sums)
            for n, s, k in zip(designs.astype(int).tolist(), sums.astype(int).tolist(), ks):
                if np.isfinite(k):
                    pool[(tuple(n), tuple(s))] = float(k)

    log.info("lattice search from %d start designs, %d rounds", starts, rounds)
    for n in _start_designs(problem, rng, starts):
        s = np.round(n @ (p[:, None] * problem.x))
        s[problem.constant] = problem.yes
        score(*_neighbours(problem, _kernel_for(problem, kernel, rng), n, s, p, solutions))
    expanded: set = set()
    for _ in tqdm(range(rounds), desc="lattice rounds", unit="round", disable=not log.isEnabledFor(logging.INFO)):
        best = sorted(pool.items(), key=lambda item: (item[1], item[0]))
        todo = []
        for key, _ in best:
            if key[0] not in expanded and len(todo) < expand:
                expanded.add(key[0])
                todo.append(key)
        for n, s in todo:
            score(*_neighbours(problem, _kernel_for(problem, kernel, rng), np.array(n, float), np.array(s, float),
                               p, solutions))
    return pool


def reconstruct(study: Study | None = None, *, seed: int = 20150601, starts: int = 24, rounds: int = 6,
                expand: int = 12, solutions: int = 10000, ensemble_size: int = 250,
                ensemble_k: float = 8.0) -> Reconstruction:
    """Search for cell tables whose logit refit matches the published coefficients and whose
    classification matches the published classification table (default study: the Sonora paper).

    Deterministic for a given seed and settings: counts (start designs, rounds, designs expanded per
    round, lattice points per enumeration), not wall time, bound the search.
    """
    started = time.perf_counter()
    problem = problem_of(study if study is not None else load_study())
    rng = np.random.default_rng(seed)
    pool = _search_pool(problem, rng, starts=starts, rounds=rounds, expand=expand, solutions=solutions)
    p = expit(problem.x @ problem.b)
    best_per_design: dict = {}
    for (n_key, s_key), kk in pool.items():
        if n_key not in best_per_design or kk < best_per_design[n_key][1]:
            best_per_design[n_key] = (s_key, kk)
    ranked = sorted(best_per_design.items(), key=lambda item: (item[1][1], item[0]))
    ensemble: list[Candidate] = []
    codes = tuple(tuple(int(v) for v in row) for row in problem.codes)
    for n_key, (s_key, kk) in ranked:  # past ensemble_k only the best valid table, when none is within it
        if len(ensemble) >= ensemble_size or (kk > ensemble_k and ensemble):
            break
        n_vec, s_vec = np.array(n_key, dtype=float), np.array(s_key, dtype=float)
        y = outcome_table(problem, n_vec, s_vec, p)
        if y is None:
            continue
        k_exact, b, se = exact_k(problem, n_vec, s_vec)
        if problem.correct_yes is not None and ((expit(problem.x @ b[0]) > problem.cut) != problem.predicted_yes).any():
            continue  # the refit's own classification would differ from the published one
        ensemble.append(Candidate(tuple(int(v) for v in n_key), tuple(int(v) for v in y), float(k_exact[0]),
                                  tuple(float(v) for v in b[0]), tuple(float(v) for v in se[0]),
                                  problem.names, codes, problem.provenance))
    if not ensemble:
        raise BayesIntlError("the search found no cell table that meets the printed margins and classification "
                             "table together; rerun with more --starts or --rounds")
    ks_all = np.array([kk for _, (_, kk) in best_per_design.items()])
    within = {f"k<={t}": int((ks_all <= t).sum()) for t in (1, 2, 5, 8, 10)}
    settings = {"starts": starts, "rounds": rounds, "expand": expand, "solutions": solutions,
                "ensemble_size": ensemble_size, "ensemble_k": ensemble_k}
    return Reconstruction(ensemble[0], ensemble, seed, settings, len(best_per_design), within,
                          time.perf_counter() - started, design_space_log10(problem))


def ensemble_frame(result: Reconstruction) -> pd.DataFrame:
    """The ensemble in long form: one row per (member, cell), with each member's k."""
    frames = [c.cells().assign(member=i + 1, k=c.k) for i, c in enumerate(result.ensemble)]
    names = list(result.best.names)
    return pd.concat(frames, ignore_index=True)[["member", "k", *names, "n", "y"]].assign(
        data_provenance=result.best.provenance)
