"""Reconstruct cell tables consistent with a study's published classification table and coefficients.

With categorical predictors the data are cells (every combination of the predictors' levels) with
n cases and y outcomes each. The logit's likelihood depends on y only through X'y, so a candidate
is a *design* (the n per cell) plus an integer X'y; its fit is scored by k = max over the published
B and SE of |refit - published| / 0.0005 (half a unit in SPSS's third decimal).

Search: annealing over designs (moves keep every printed margin and the count classified Yes), each
scored by the best integer X'y near the score equations (linearised: B - B_pub = I^-1 (X'y - X'p));
a trust-region MILP (HiGHS) polish and greedy local search on the exact k (Newton refits); designs met
in the middle around the best; a MILP for outcomes y with that X'y and the classification's counts.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit, gammaln
from tqdm.auto import tqdm

from .data import CellTable
from .errors import SpecError
from .store import stdout_fd_redirected
from .study import CONSTANT, Study, load_study

log = logging.getLogger(__name__)

HALF_UNIT = 0.0005
# Work limits, not time limits, so that results do not depend on the machine's speed.
MILP_OPTIONS = {"node_limit": 1500, "mip_rel_gap": 0.02}
ENUMERATE_MAX_TERMS = 8  # meeting in the middle tries 2^terms carries; past this the search skips it
POOL_K = 10.0  # exactly scored tables kept for the ensemble and the k <= 2/5/8/10 counts
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


class _Moves:
    """Moves that keep every constraint row: one case from a cell to another with the same constraint
    signature, or two such transfers whose changes to the signature cancel; drawn with a size."""

    def __init__(self, problem: Problem, max_size: int):
        sig = [tuple(col) for col in problem.a.T]
        m = len(sig)
        singles = [(i, j) for i, j in itertools.permutations(range(m), 2) if sig[i] == sig[j]]
        self.singles = np.array(singles, dtype=np.int64).reshape(-1, 2)
        buckets: dict[tuple, list] = {}
        for i, j in itertools.permutations(range(m), 2):
            if sig[i] != sig[j]:
                buckets.setdefault(tuple(np.subtract(sig[j], sig[i])), []).append((i, j))
        keys = sorted(buckets)
        offsets = dict(zip(keys, itertools.accumulate((len(buckets[k]) for k in keys), initial=0)))
        flat = [pair for key in keys for pair in buckets[key]]
        paired = [(pair, offsets[o], len(buckets[o])) for key in keys if (o := tuple(-v for v in key)) in buckets
                  for pair in buckets[key]]
        first, partner_start, partner_len = ([p[i] for p in paired] for i in range(3))
        self.first = np.array(first, dtype=np.int64).reshape(-1, 2)
        self.partner_start = np.array(partner_start, dtype=np.int64)
        self.partner_len = np.array(partner_len, dtype=np.int64)
        self.flat = np.array(flat, dtype=np.int64).reshape(-1, 2)
        self.cells = m
        self.max_size = max(1, max_size)
        if not len(self.singles) and not len(self.first):
            raise SpecError("the published margins leave no freedom: every cell count is fixed")

    def neighbourhood(self, limit: int = 20000) -> np.ndarray:
        """Every one-case move (single, or a pair of cross-signature transfers; each first transfer with
        just its first partner when all pairs would exceed ``limit``), as rows of design changes."""
        total = int(self.partner_len.sum())
        firsts = np.repeat(np.arange(len(self.first)), self.partner_len if total <= limit else 1)
        partners = (np.concatenate([self.partner_start[i] + np.arange(self.partner_len[i])
                                    for i in range(len(self.first))]) if total <= limit and len(self.first)
                    else self.partner_start.copy())
        deltas = np.zeros((len(self.singles) + len(firsts), self.cells))
        deltas[np.arange(len(self.singles)), self.singles[:, 0]] -= 1
        deltas[np.arange(len(self.singles)), self.singles[:, 1]] += 1
        rows = len(self.singles) + np.arange(len(firsts))
        a, b = self.first[firsts], self.flat[partners]
        for cols, sign in ((a[:, 0], -1), (a[:, 1], 1), (b[:, 0], -1), (b[:, 1], 1)):
            np.add.at(deltas, (rows, cols), sign)
        keep = np.abs(deltas).sum(axis=1) > 0  # a transfer and its exact reverse cancel
        return np.unique(deltas[keep], axis=0)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, cells) integer changes of the design."""
        delta = np.zeros((size, self.cells), dtype=np.int64)
        rows = np.arange(size)
        use_single = (rng.random(size) < (0.75 if len(self.first) else 1.0)) & (len(self.singles) > 0)
        step = rng.integers(1, self.max_size + 1, size) if self.max_size > 1 else np.ones(size, dtype=np.int64)
        if len(self.singles):
            s = self.singles[rng.integers(0, len(self.singles), size)]
            np.add.at(delta, (rows[use_single], s[use_single, 0]), -step[use_single])
            np.add.at(delta, (rows[use_single], s[use_single, 1]), step[use_single])
        pair = ~use_single
        if len(self.first) and pair.any():
            f = rng.integers(0, len(self.first), size)
            g = self.partner_start[f] + (rng.random(size) * self.partner_len[f]).astype(np.int64)
            a, b = self.first[f], self.flat[g]
            for cols, sign in ((a[:, 0], -1), (a[:, 1], 1), (b[:, 0], -1), (b[:, 1], 1)):
                np.add.at(delta, (rows[pair], cols[pair]), sign * step[pair])
        return delta


def _offsets(d: int) -> np.ndarray:
    """Integer steps tried around floor(X'p) for the free sums of X'y: a full box where it is small."""
    if d <= 4:
        return np.array(list(itertools.product(range(-1, 3), repeat=d)), dtype=float)
    if d <= 8:
        return np.array(list(itertools.product(range(0, 2), repeat=d)), dtype=float)
    return np.concatenate([np.zeros((1, d)), np.eye(d), -np.eye(d) + 1.0])


def _score(t: np.ndarray, info: np.ndarray, problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearised deviations (in half-units) for a batch of designs, choosing the best integer X'y.

    Returns (deviations [batch, 2 x terms], chosen X'y [batch, terms], k_approx [batch]).
    """
    inv = np.linalg.inv(info)
    se = np.sqrt(np.clip(np.diagonal(inv, axis1=1, axis2=2), 0, None))
    free = problem.free
    offsets = _offsets(len(free))
    s = np.empty((len(t), len(offsets), t.shape[1]))
    s[:, :, free] = np.floor(t[:, free])[:, None, :] + offsets[None]
    s[:, :, problem.constant] = problem.yes
    d_beta = np.einsum("bij,bmj->bmi", inv, s - t[:, None, :]) / HALF_UNIT
    worst = np.abs(d_beta).max(axis=2)
    pick = worst.argmin(axis=1)
    rows = np.arange(len(t))
    dev = np.concatenate([d_beta[rows, pick], (se - problem.se) / HALF_UNIT], axis=1)
    return dev, s[rows, pick], np.abs(dev).max(axis=1)


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


def _initial_designs(rng: np.random.Generator, chains: int, problem: Problem) -> np.ndarray:
    """Random designs meeting every constraint: the closest (L1) integer design to a random spread."""
    m = len(problem.x)
    designs = np.zeros((chains, m), dtype=np.int64)
    for b in range(chains):
        res = _closest_integer(problem.n * rng.dirichlet(np.ones(m) * 2), problem.a, problem.c, np.full(m, np.inf), 200)
        if res.x is None:
            raise SpecError("no cell table meets the published margins and classification counts together; "
                            "check the study's [[margin]] and [classification] figures")
        designs[b] = np.round(res.x[:m]).astype(np.int64)
    return designs


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


def _walk(rng, moves: _Moves, designs: np.ndarray, p: np.ndarray, problem: Problem, steps: int) -> np.ndarray:
    """Population annealing of designs on the RMS of their linearised deviations (in half-units, with
    the best integer X'y for each); returns the final energies."""
    x = problem.x
    w = p * (1 - p)
    px = p[:, None] * x
    t = designs @ px
    info = np.einsum("bc,c,ci,cj->bij", designs, w, x, x)
    e = np.sqrt((_score(t, info, problem)[0] ** 2).mean(axis=1))
    chains = len(designs)
    for step, temp in enumerate(np.geomspace(30.0, 0.3, steps)):
        delta = moves.draw(rng, chains)
        proposal = designs + delta
        ok = (proposal >= 0).all(axis=1)
        t_new = t + delta @ px
        info_new = info + np.einsum("bc,c,ci,cj->bij", delta, w, x, x)
        with np.errstate(invalid="ignore"):
            e_new = np.sqrt((_score(t_new, info_new, problem)[0] ** 2).mean(axis=1))
        accept = ok & np.isfinite(e_new) & (rng.random(chains) < np.exp(np.clip((e - e_new) / temp, -50, 0)))
        designs[accept], t[accept], info[accept], e[accept] = (
            proposal[accept], t_new[accept], info_new[accept], e_new[accept])
        if step % 1000 == 999:  # the worse half restarts from copies of the better half
            order = np.argsort(e, kind="stable")
            src, dst = order[: chains // 2], order[chains // 2:]
            designs[dst], t[dst], info[dst], e[dst] = designs[src], t[src], info[src], e[src]
    return e


def _combinations(moves: np.ndarray, rng, limit: int = 600) -> np.ndarray:
    """No move, every basic move, and every sum of two (from at most ``limit`` basic moves)."""
    if len(moves) > limit:
        moves = moves[np.sort(rng.choice(len(moves), limit, replace=False))]
    i, j = np.triu_indices(len(moves), k=1)
    return np.concatenate([np.zeros((1, moves.shape[1])), moves, moves[i] + moves[j]])


def _enumerate(problem: Problem, base: np.ndarray, p: np.ndarray, combos: np.ndarray, k_max: float) -> list:
    """Designs near ``base`` whose linearised refit is within ``k_max`` half-units of every printed B and SE,
    met in the middle: pairs of move sums whose X'p changes bring X'p within reach of an integer X'y.

    A pair's residual r = X'y - X'p is c - f_i - f_j on the free sums (f: fractional parts, c: the carry,
    0 or 1 per sum) and yes - u_i - v_j on the constant's; its linearised B deviation is I^-1 r in
    half-units, so both sides go to z = I^-1 (.) / half and are matched in max-norm (a k-d tree)."""
    from scipy.spatial import cKDTree

    x, free, c = problem.x, problem.free, problem.constant
    w = p * (1 - p)
    info = np.einsum("c,c,ci,cj->ij", base, w, x, x)
    inv = np.linalg.inv(info)
    se0 = np.sqrt(np.diag(inv))
    g = -(w[None, :] * (inv @ x.T) ** 2) / (2 * se0[:, None])  # d SE / d n, per cell
    t0 = base @ (p[:, None] * x)
    v = combos @ (p[:, None] * x)
    u = t0 + v
    left, right_base = np.empty_like(u), np.empty_like(v)
    left[:, free], left[:, c] = u[:, free] - np.floor(u[:, free]), u[:, c] - problem.yes
    right_base[:, free], right_base[:, c] = -(v[:, free] - np.floor(v[:, free])), -v[:, c]
    m = inv / HALF_UNIT
    tree = cKDTree(left @ m.T)
    i_all, j_all = [], []
    for carry in itertools.product((0.0, 1.0), repeat=len(free)):
        right = right_base.copy()
        right[:, free] += carry
        hits = cKDTree(right @ m.T).query_ball_tree(tree, r=k_max, p=np.inf)
        if sum(len(h) for h in hits):
            j_all.append(np.repeat(np.arange(len(hits)), [len(h) for h in hits]))
            i_all.append(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits if h]))
    if not i_all:
        return []
    i, j = np.concatenate(i_all), np.concatenate(j_all)
    delta = combos[i] + combos[j]
    ok = (base[None] + delta >= 0).all(axis=1)
    delta, u = delta[ok], t0 + v[i[ok]] + v[j[ok]]
    s = np.empty_like(u)
    s[:, free], s[:, c] = np.round(u[:, free]), problem.yes
    dev_b = (s - u) @ inv.T / HALF_UNIT
    dev_se = (se0 - problem.se)[None] / HALF_UNIT + delta @ g.T / HALF_UNIT
    keep = np.maximum(np.abs(dev_b).max(axis=1), np.abs(dev_se).max(axis=1)) <= k_max
    designs = (base[None] + delta[keep]).astype(np.int64)
    return list(zip(map(tuple, designs.tolist()), map(tuple, s[keep].astype(np.int64).tolist())))


def _milp_step(problem: Problem, n: np.ndarray, s: np.ndarray, p: np.ndarray,
               radius: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One trust-region step: the integer design change and integer X'y minimising the worst deviation.

    The deviations are exact at the current table (from its Newton refit) and linear in the change:
    X'p and the information matrix are linear in the design, so B moves by I^-1 (dX'y - dX'p) and
    each SE by its gradient in the cell counts. HiGHS solves the resulting MILP.
    """
    x, free = problem.x, problem.free
    m, q, d = len(n), x.shape[1], len(free)
    w = p * (1 - p)
    b_now, se_now = _newton(problem, n[None], s[None], problem.b[None])
    if not np.isfinite(b_now).all():
        return None
    inv = np.linalg.inv(np.einsum("c,c,ci,cj->ij", n, w, x, x))
    d_t = (p[:, None] * x).T
    d_se = -(w[None, :] * (inv @ x.T) ** 2) / (2 * np.sqrt(np.diag(inv))[:, None])
    nv = m + d + 1  # design change (m), the free sums of X'y (d), the worst deviation z
    rows, lo, hi = [], [], []
    for row in problem.a:  # every constraint's total stays fixed
        rows.append(np.concatenate([row, np.zeros(d + 1)]))
        lo.append(0.0)
        hi.append(0.0)
    for j in range(2 * q):
        a = np.zeros(nv)
        if j < q:  # B_j now + [I^-1 (S_new - S_now - dX'p)]_j, with the free S_new the integer unknowns
            a[:m], a[m:m + d] = -(inv[j] @ d_t) / HALF_UNIT, inv[j, free] / HALF_UNIT
            const = (b_now[0, j] - problem.b[j] - inv[j, free] @ s[free]) / HALF_UNIT
        else:
            a[:m] = d_se[j - q] / HALF_UNIT
            const = (se_now[0, j - q] - problem.se[j - q]) / HALF_UNIT
        rows += [a - np.eye(nv)[-1], a + np.eye(nv)[-1]]  # -z <= a.x + const <= z
        lo += [-np.inf, -const]
        hi += [-const, np.inf]
    lower = np.concatenate([-np.minimum(n, radius), s[free] - radius, [0.0]])
    upper = np.concatenate([np.full(m, float(radius)), s[free] + radius, [np.inf]])
    res = _milp(np.eye(nv)[-1], constraints=optimize.LinearConstraint(np.array(rows), lo, hi),
                bounds=optimize.Bounds(lower, upper), integrality=np.concatenate([np.ones(m + d), [0]]),
                options=MILP_OPTIONS)
    if res.x is None:
        return None
    s_new = s.copy()
    s_new[free] = np.round(res.x[m:m + d])
    return n + np.round(res.x[:m]), s_new


def _polish_task(args) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Trust-region MILP descent on the exact k (accept improving steps, else shrink the radius), as a
    picklable task for the process pool."""
    problem, n, s, p = args
    pool: dict = {}
    k = float(exact_k(problem, n, s)[0][0])
    radius = 4
    while radius >= 1:
        step = _milp_step(problem, n, s, p, radius)
        if step is None:
            radius -= 1
            continue
        k_new = float(exact_k(problem, *step)[0][0])
        pool[(tuple(step[0].astype(int)), tuple(step[1].astype(int)))] = k_new
        if k_new < k - 1e-9:
            (n, s), k = step, k_new
        else:
            radius -= 1
    return n, s, k, pool


def _local_search(problem: Problem, n: np.ndarray, s: np.ndarray, k: float, moves: _Moves,
                  pool: dict) -> None:
    """Greedy descent on the exact k over single and paired one-case moves and X'y lattice steps."""
    free = problem.free
    lattice = np.zeros((3 ** len(free) if len(free) <= 4 else 2 * len(free) + 1, len(problem.b)))
    steps = (np.array(list(itertools.product((-1, 0, 1), repeat=len(free)))) if len(free) <= 4
             else np.concatenate([np.zeros((1, len(free))), np.eye(len(free)), -np.eye(len(free))]))
    lattice[:, free] = steps
    deltas = moves.neighbourhood()
    while True:
        cand_n = n[None] + deltas
        keep = (cand_n >= 0).all(axis=1)
        cand_n = np.repeat(cand_n[keep], len(lattice), axis=0)
        cand_s = np.tile(s[None] + lattice, (int(keep.sum()), 1))
        ks, _, _ = exact_k(problem, cand_n, cand_s)
        for i in np.flatnonzero(ks < POOL_K):
            pool[(tuple(cand_n[i].astype(int)), tuple(cand_s[i].astype(int)))] = float(ks[i])
        best = int(np.nanargmin(ks))
        if not ks[best] < k - 1e-12:
            return
        n, s, k = cand_n[best], cand_s[best], float(ks[best])


def _search_pool(problem: Problem, rng, *, chains: int, steps: int, polish: int, refine: int,
                 jobs: int | None) -> dict:
    """Every exactly scored (design, X'y) with its k: designs annealed on their linearised deviations, a
    trust-region MILP polish of the best, greedy local search, and the designs met in the middle around them."""
    p = expit(problem.x @ problem.b)
    w = p * (1 - p)
    moves = _Moves(problem, max_size=problem.n // 200)
    designs = _initial_designs(rng, chains, problem)
    log.info("annealing %d designs x %d steps", chains, steps)
    energy = _walk(rng, moves, designs, p, problem, steps)
    order = list(dict.fromkeys(tuple(designs[i]) for i in np.argsort(energy, kind="stable")))[:polish]
    starts = np.array(order, dtype=float).reshape(-1, len(problem.x))
    _, s_all, _ = _score(starts @ (p[:, None] * problem.x), np.einsum("bc,c,ci,cj->bij", starts, w, problem.x,
                                                                     problem.x), problem)
    tasks = [(problem, n, s, p) for n, s in zip(starts, s_all)]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    log.info("MILP polish of %d designs on %d processes", len(tasks), workers)
    executor = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    results = executor.map(_polish_task, tasks) if executor else map(_polish_task, tasks)
    pool: dict = {}
    polished = []
    for n, s, k, more in tqdm(results, total=len(tasks), desc="MILP polish", unit="design",
                              disable=not log.isEnabledFor(logging.INFO)):
        polished.append((n, s, k))
        pool.update(more)
    if executor:
        executor.shutdown()
    polished.sort(key=lambda item: item[2])
    for n, s, k in tqdm(polished[:refine], desc="local search", unit="design",
                        disable=not log.isEnabledFor(logging.INFO)):
        _local_search(problem, n, s, k, moves, pool)
    if len(problem.free) <= ENUMERATE_MAX_TERMS:  # the designs met in the middle around the best
        combos = _combinations(moves.neighbourhood(), rng, limit=int(min(600, np.sqrt(2e7 / len(problem.x)))))
        bases = list(dict.fromkeys(n for (n, _), _ in sorted(pool.items(), key=lambda item: (item[1], item[0]))))
        found = [key for n in bases[:refine] for key in _enumerate(problem, np.array(n, float), p, combos, POOL_K)]
        found = [key for key in dict.fromkeys(found) if key not in pool]
        if found:
            ks, _, _ = exact_k(problem, np.array([k[0] for k in found]), np.array([k[1] for k in found]))
            pool.update({key: float(kk) for key, kk in zip(found, ks)})
    return pool


def reconstruct(study: Study | None = None, *, seed: int = 20150601, chains: int = 192, steps: int = 4000,
                polish: int = 32, refine: int = 4, ensemble_size: int = 250, ensemble_k: float = 8.0,
                jobs: int | None = None) -> Reconstruction:
    """Search for cell tables whose logit refit matches the published coefficients and whose
    classification matches the published classification table (default study: the Sonora paper).

    Deterministic for a given seed and settings, whatever ``jobs`` (worker processes for the MILP
    polish; default: all cores): step counts and solver node limits, not wall time, bound the search.
    """
    started = time.perf_counter()
    problem = problem_of(study if study is not None else load_study())
    rng = np.random.default_rng(seed)
    pool = _search_pool(problem, rng, chains=chains, steps=steps, polish=polish, refine=refine, jobs=jobs)
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
        raise RuntimeError("no reconstruction met the hard constraints; raise the steps or chains")
    ks_all = np.array([kk for _, (_, kk) in best_per_design.items()])
    within = {f"k<={t}": int((ks_all <= t).sum()) for t in (1, 2, 5, 8, 10)}
    settings = {"chains": chains, "steps": steps, "polish": polish, "refine": refine,
                "ensemble_size": ensemble_size, "ensemble_k": ensemble_k}
    return Reconstruction(ensemble[0], ensemble, seed, settings, len(best_per_design), within,
                          time.perf_counter() - started, design_space_log10(problem))


def ensemble_frame(result: Reconstruction) -> pd.DataFrame:
    """The ensemble in long form: one row per (member, cell), with each member's k."""
    frames = [c.cells().assign(member=i + 1, k=c.k) for i, c in enumerate(result.ensemble)]
    names = list(result.best.names)
    return pd.concat(frames, ignore_index=True)[["member", "k", *names, "n", "y"]].assign(
        data_provenance=result.best.provenance)
