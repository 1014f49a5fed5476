"""Reconstruct firm-level cell tables consistent with the published Tables 3 and 4.

The paper's model has three categorical predictors, so its data are 18 cells (size x capinno x
activity) with n firms and y internationalized each. The logit's likelihood depends on y only
through X'y, so a candidate is a *design* (the n per cell) plus an integer X'y; its fit is
scored by k = max over the four B and four SE of |refit - published| / 0.0005.

Search: vectorised simulated annealing over designs (moves that keep 116 firms, 55 IT and the 38
predicted-yes firms of Table 3), scoring each design by the best integer X'y near the score
equations at the published coefficients (linearised: B - B_pub = I^-1 (X'y - X'p)); then an exact
Newton refit of the best candidates, greedy local search on the exact k, and a MILP (HiGHS) for
an outcome table y with that X'y, 0 <= y <= n and Table 3's counts.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit
from tqdm.auto import tqdm

from .data import CellTable
from .paper import TABLE4_TERMS, load_paper
from .store import stdout_fd_redirected

log = logging.getLogger(__name__)

HALF_UNIT = 0.0005
# Work limits, not time limits, so that results do not depend on the machine's speed.
MILP_OPTIONS = {"node_limit": 1500, "mip_rel_gap": 0.02}
POOL_K = 10.0  # exactly scored tables kept for the ensemble and the k <= 2/5/10 counts
PROVENANCE = "RECONSTRUCTED from the paper's published tables (not the real survey)"
# Cell order: size-major, then capinno, then activity; X columns in TABLE4_TERMS order
# (Capinno, Activity, Size, Constant).
CELLS = np.array([(s, c, a) for s in range(3) for c in range(3) for a in range(2)])
X = np.column_stack([CELLS[:, 1], CELLS[:, 2], CELLS[:, 0], np.ones(len(CELLS))]).astype(float)


@dataclass(frozen=True)
class Targets:
    b: np.ndarray
    se: np.ndarray
    n: int
    n_it: int
    internationalized: int
    predicted_yes: int  # firms classified Yes at cut 0.5 (11 + 27)
    correct_yes: int  # of those, internationalized (27)


def published_targets() -> Targets:
    paper = load_paper()
    v = paper.value
    return Targets(
        b=np.array([v(f"table4.{t}.b") for t in TABLE4_TERMS]),
        se=np.array([v(f"table4.{t}.se") for t in TABLE4_TERMS]),
        n=int(v("sample.n")), n_it=int(v("sample.IT")),
        internationalized=int(v("table3.yes.no") + v("table3.yes.yes")),
        predicted_yes=int(v("table3.no.yes") + v("table3.yes.yes")),
        correct_yes=int(v("table3.yes.yes")),
    )


@dataclass(frozen=True)
class Candidate:
    """A reconstructed table: design n, outcomes y, the exact refit and its score k."""

    n: tuple[int, ...]
    y: tuple[int, ...]
    k: float
    b: tuple[float, ...]
    se: tuple[float, ...]

    def cells(self) -> pd.DataFrame:
        return pd.DataFrame({"size": CELLS[:, 0], "capinno": CELLS[:, 1], "activity": CELLS[:, 2],
                             "n": self.n, "y": self.y})

    def table(self, source: str = "bayes-intl reconstruct") -> CellTable:
        return CellTable(self.cells(), source, PROVENANCE)


@dataclass(frozen=True)
class Reconstruction:
    best: Candidate
    ensemble: list[Candidate]
    seed: int
    settings: dict
    distinct_designs_scored: int
    within: dict[str, int]  # "k<=2" -> number of distinct designs found
    seconds: float
    log: list[str] = field(default_factory=list)


class _Moves:
    """All moves that keep the totals fixed, as cell-count deltas, with their effect on X'p and I."""

    def __init__(self, p: np.ndarray, predicted_yes: np.ndarray):
        group = CELLS[:, 2] * 2 + predicted_yes.astype(int)  # activity x predicted-yes
        singles = [(i, j) for i, j in itertools.permutations(range(len(CELLS)), 2) if group[i] == group[j]]
        deltas = []
        for i, j in singles:
            d = np.zeros(len(CELLS), dtype=np.int64)
            d[i], d[j] = -1, 1
            deltas.append(d)
        n_single = len(deltas)
        it_yes, it_no = np.flatnonzero(group == 3), np.flatnonzero(group == 2)
        mm_yes, mm_no = np.flatnonzero(group == 1), np.flatnonzero(group == 0)
        # An IT firm leaves the predicted-yes cells while an MM firm enters them (or the reverse).
        for a, b, c, e in itertools.product(it_yes, it_no, mm_no, mm_yes):
            for sign in (1, -1):
                d = np.zeros(len(CELLS), dtype=np.int64)
                d[a], d[b], d[c], d[e] = -sign, sign, -sign, sign
                deltas.append(d)
        self.delta = np.array(deltas)
        self.single_fraction = n_single / len(deltas)
        self.n_single = n_single
        w = p * (1 - p)
        self.d_t = self.delta @ (p[:, None] * X)
        self.d_info = np.einsum("mc,c,ci,cj->mij", self.delta, w, X, X)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        singles = rng.integers(0, self.n_single, size)
        pairs = rng.integers(self.n_single, len(self.delta), size)
        return np.where(rng.random(size) < 0.75, singles, pairs)


def _score(t: np.ndarray, info: np.ndarray, target: Targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearised deviations (in half-units) for a batch of designs, choosing the best integer X'y.

    Returns (deviations [batch, 8], chosen X'y [batch, 4], k_approx [batch]).
    """
    inv = np.linalg.inv(info)
    se = np.sqrt(np.clip(np.diagonal(inv, axis1=1, axis2=2), 0, None))
    base = np.floor(t[:, :3])
    offsets = np.array(list(itertools.product(range(-1, 3), repeat=3)), dtype=float)  # 64 lattice points
    s = np.concatenate([base[:, None, :] + offsets[None], np.full((len(t), len(offsets), 1), target.internationalized)], axis=2)
    d_beta = np.einsum("bij,bmj->bmi", inv, s - t[:, None, :]) / HALF_UNIT
    worst = np.abs(d_beta).max(axis=2)
    pick = worst.argmin(axis=1)
    rows = np.arange(len(t))
    dev = np.concatenate([d_beta[rows, pick], (se - target.se) / HALF_UNIT], axis=1)
    return dev, s[rows, pick], np.abs(dev).max(axis=1)


def _initial_designs(rng: np.random.Generator, chains: int, target: Targets, predicted_yes: np.ndarray,
                     p: np.ndarray) -> np.ndarray:
    """Random designs meeting the totals: IT/MM counts and 38 firms in the predicted-yes cells."""
    designs = np.zeros((chains, len(CELLS)), dtype=np.int64)
    it = CELLS[:, 2] == 1
    for b in range(chains):
        it_yes = rng.integers(8, 20)
        quotas = {(True, True): it_yes, (True, False): target.n_it - it_yes,
                  (False, True): target.predicted_yes - it_yes,
                  (False, False): target.n - target.n_it - (target.predicted_yes - it_yes)}
        for (is_it, is_yes), quota in quotas.items():
            cells = np.flatnonzero((it == is_it) & (predicted_yes == is_yes))
            designs[b, cells] = rng.multinomial(quota, rng.dirichlet(np.ones(len(cells)) * 2))
    return designs


def _newton(n: np.ndarray, s: np.ndarray, b0: np.ndarray, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Exact logit MLE for designs n with sufficient statistics X'y = s (batched Newton-Raphson).

    Rows that do not converge (separation, an empty column) come back as NaN.
    """
    b = np.array(b0, dtype=float, copy=True)
    ridge = 1e-12 * np.eye(4)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            p = expit(b @ X.T)
            t = np.einsum("bc,bc,ci->bi", n, p, X)
            info = np.einsum("bc,bc,ci,cj->bij", n, p * (1 - p), X, X) + ridge
            step = np.linalg.solve(info, (s - t)[..., None])[..., 0]
            b = np.clip(b + step, -50, 50)
            if np.nanmax(np.abs(step)) < 1e-13:
                break
        p = expit(b @ X.T)
        info = np.einsum("bc,bc,ci,cj->bij", n, p * (1 - p), X, X) + ridge
        se = np.sqrt(np.diagonal(np.linalg.inv(info), axis1=1, axis2=2))
    bad = ~(np.abs(step) < 1e-8).all(axis=1) | ~np.isfinite(se).all(axis=1)
    b[bad], se[bad] = np.nan, np.nan
    return b, se


def exact_k(n: np.ndarray, s: np.ndarray, target: Targets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.atleast_2d(n).astype(float)
    s = np.atleast_2d(s).astype(float)
    b, se = _newton(n, s, np.broadcast_to(target.b, (len(n), 4)))
    k = np.maximum(np.abs(b - target.b).max(axis=1), np.abs(se - target.se).max(axis=1)) / HALF_UNIT
    k = np.where(np.isfinite(k), k, np.inf)
    return k, b, se


def _milp(*args, **kwargs) -> optimize.OptimizeResult:
    """``scipy.optimize.milp`` with stdout sent to /dev/null: the HiGHS bundled with SciPy prints a
    leftover debug line ("HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();",
    ERGO-Code/HiGHS#2783) whatever its output options say."""
    with stdout_fd_redirected(os.devnull):
        return optimize.milp(*args, **kwargs)


def outcome_table(n: np.ndarray, s: np.ndarray, p: np.ndarray, predicted_yes: np.ndarray,
                  target: Targets) -> np.ndarray | None:
    """Integer y with X'y = s, 0 <= y <= n and Table 3's 27 correct Yes, closest (L1) to n p; None if none."""
    m = len(CELLS)
    # Variables: y (m, integer), u (m, continuous) with u >= |y - n p|.
    c = np.concatenate([np.zeros(m), np.ones(m)])
    eq = np.zeros((5, 2 * m))
    eq[:4, :m] = X.T
    eq[4, :m] = predicted_yes
    rhs = np.concatenate([s, [target.correct_yes]])
    abs_rows = np.block([[np.eye(m), -np.eye(m)], [-np.eye(m), -np.eye(m)]])
    abs_rhs = np.concatenate([n * p, -n * p])
    constraints = [optimize.LinearConstraint(eq, rhs, rhs),
                   optimize.LinearConstraint(abs_rows, -np.inf, abs_rhs)]
    bounds = optimize.Bounds(np.zeros(2 * m), np.concatenate([n, np.full(m, np.inf)]))
    integrality = np.concatenate([np.ones(m), np.zeros(m)])
    res = _milp(c, constraints=constraints, bounds=bounds, integrality=integrality,
                options={"node_limit": 5000})
    if res.status != 0:
        return None
    return np.round(res.x[:m]).astype(np.int64)


def _anneal(rng, moves: _Moves, designs: np.ndarray, p: np.ndarray, target: Targets, steps: int) -> np.ndarray:
    """Population annealing on the RMS linearised deviation; returns the final designs' k_approx."""
    w = p * (1 - p)
    t = designs @ (p[:, None] * X)
    info = np.einsum("bc,c,ci,cj->bij", designs, w, X, X)
    dev, _, k = _score(t, info, target)
    energy = np.sqrt((dev**2).mean(axis=1))
    chains = len(designs)
    for step, temp in enumerate(np.geomspace(30.0, 0.3, steps)):
        m = moves.draw(rng, chains)
        proposal = designs + moves.delta[m]
        ok = (proposal >= 0).all(axis=1)
        t_new, info_new = t + moves.d_t[m], info + moves.d_info[m]
        dev_new, _, k_new = _score(t_new, info_new, target)
        e_new = np.sqrt((dev_new**2).mean(axis=1))
        accept = ok & (rng.random(chains) < np.exp(np.clip((energy - e_new) / temp, -50, 0)))
        designs[accept], t[accept], info[accept] = proposal[accept], t_new[accept], info_new[accept]
        energy[accept], k[accept] = e_new[accept], k_new[accept]
        if step % 1000 == 999:  # the worse half restarts from copies of the better half
            order = np.argsort(energy)
            src, dst = order[: chains // 2], order[chains // 2:]
            designs[dst], t[dst], info[dst], energy[dst], k[dst] = designs[src], t[src], info[src], energy[src], k[src]
    return k


def _milp_step(n: np.ndarray, s: np.ndarray, target: Targets, p: np.ndarray, predicted_yes: np.ndarray,
               radius: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One trust-region step: the integer design change and integer X'y minimising the worst deviation.

    The deviations are exact at the current table (from its Newton refit) and linear in the change:
    X'p and the information matrix are linear in the design, so B moves by I^-1 (dX'y - dX'p) and
    each SE by its gradient in the cell counts. HiGHS solves the resulting MILP.
    """
    m = len(n)
    w = p * (1 - p)
    b_now, se_now = _newton(n[None], s[None], target.b[None])
    if not np.isfinite(b_now).all():
        return None
    inv = np.linalg.inv(np.einsum("c,c,ci,cj->ij", n, w, X, X))
    d_t = (p[:, None] * X).T
    d_se = -(w[None, :] * (inv @ X.T) ** 2) / (2 * np.sqrt(np.diag(inv))[:, None])
    nv = m + 4  # design change (m), X'y sums for capinno, activity, size (3), worst deviation z
    rows, lo, hi = [], [], []
    for mask in (np.ones(m, bool), X[:, 1] == 1, predicted_yes):  # totals stay fixed
        rows.append(np.concatenate([mask.astype(float), np.zeros(4)]))
        lo.append(0.0)
        hi.append(0.0)
    for j in range(8):
        a = np.zeros(nv)
        if j < 4:  # B_j now + [I^-1 (S_new - S_now - dX'p)]_j, with S_new the integer unknowns
            a[:m], a[m:m + 3] = -(inv[j] @ d_t) / HALF_UNIT, inv[j, :3] / HALF_UNIT
            const = (b_now[0, j] - target.b[j] - inv[j, :3] @ s[:3]) / HALF_UNIT
        else:
            a[:m] = d_se[j - 4] / HALF_UNIT
            const = (se_now[0, j - 4] - target.se[j - 4]) / HALF_UNIT
        rows += [a - np.eye(nv)[-1], a + np.eye(nv)[-1]]  # -z <= a.x + const <= z
        lo += [-np.inf, -const]
        hi += [-const, np.inf]
    lower = np.concatenate([-np.minimum(n, radius), s[:3] - radius, [0.0]])
    upper = np.concatenate([np.full(m, float(radius)), s[:3] + radius, [np.inf]])
    res = _milp(np.eye(nv)[-1], constraints=optimize.LinearConstraint(np.array(rows), lo, hi),
                bounds=optimize.Bounds(lower, upper), integrality=np.concatenate([np.ones(m + 3), [0]]),
                options=MILP_OPTIONS)
    if res.x is None:
        return None
    return n + np.round(res.x[:m]), np.concatenate([np.round(res.x[m:m + 3]), [target.internationalized]])


def _polish(n: np.ndarray, s: np.ndarray, target: Targets, p: np.ndarray, predicted_yes: np.ndarray,
            pool: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Trust-region MILP descent on the exact k: accept improving steps, else shrink the radius."""
    k = float(exact_k(n, s, target)[0][0])
    radius = 4
    while radius >= 1:
        step = _milp_step(n, s, target, p, predicted_yes, radius)
        if step is None:
            radius -= 1
            continue
        k_new = float(exact_k(*step, target)[0][0])
        pool[(tuple(step[0].astype(int)), tuple(step[1].astype(int)))] = k_new
        if k_new < k - 1e-9:
            (n, s), k = step, k_new
        else:
            radius -= 1
    return n, s, k


def _polish_task(args) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """One polish as a picklable task for the process pool."""
    n, s, target, p, predicted_yes = args
    pool: dict = {}
    n, s, k = _polish(n, s, target, p, predicted_yes, pool)
    return n, s, k, pool


def _local_search(n: np.ndarray, s: np.ndarray, k: float, moves: _Moves, target: Targets,
                  pool: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy descent on the exact k over single/paired moves and X'y lattice steps."""
    lattice = np.array([d for d in itertools.product((-1, 0, 1), repeat=3)] , dtype=float)
    lattice = np.concatenate([lattice, np.zeros((len(lattice), 1))], axis=1)
    while True:
        cand_n = n[None] + moves.delta
        keep = (cand_n >= 0).all(axis=1)
        cand_n = np.repeat(cand_n[keep], len(lattice), axis=0)
        cand_s = np.tile(s[None] + lattice, (int(keep.sum()), 1))
        ks, _, _ = exact_k(cand_n, cand_s, target)
        for i in np.flatnonzero(ks < POOL_K):
            pool[(tuple(cand_n[i].astype(int)), tuple(cand_s[i].astype(int)))] = float(ks[i])
        best = int(np.nanargmin(ks))
        if not ks[best] < k - 1e-12:
            return n, s, k
        n, s, k = cand_n[best], cand_s[best], float(ks[best])


def reconstruct(*, seed: int = 20150601, chains: int = 192, steps: int = 4000, polish: int = 64, refine: int = 4,
                ensemble_size: int = 50, ensemble_k: float = 8.0, jobs: int | None = None) -> Reconstruction:
    """Search for cell tables whose logit refit matches Table 4 and whose classification matches Table 3.

    Deterministic for a given seed and settings, whatever ``jobs`` (worker processes for the MILP
    polish; default: all cores): step counts and solver node limits, not wall time, bound the search.
    """
    started = time.perf_counter()
    target = published_targets()
    rng = np.random.default_rng(seed)
    p = expit(X @ target.b)
    predicted_yes = p > 0.5
    moves = _Moves(p, predicted_yes)
    designs = _initial_designs(rng, chains, target, predicted_yes, p)
    log.info("annealing %d designs x %d steps", chains, steps)
    k_approx = _anneal(rng, moves, designs, p, target, steps)
    w = p * (1 - p)
    _, s_all, _ = _score(designs @ (p[:, None] * X), np.einsum("bc,c,ci,cj->bij", designs, w, X, X), target)
    pool: dict = {}
    starts = []
    seen: set = set()
    for i in np.argsort(k_approx, kind="stable"):
        if tuple(designs[i]) not in seen:
            seen.add(tuple(designs[i]))
            starts.append(i)
    tasks = [(designs[i].astype(float), s_all[i], target, p, predicted_yes) for i in starts[:polish]]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    log.info("MILP polish of %d designs on %d processes", len(tasks), workers)
    if workers == 1:
        results = map(_polish_task, tasks)
    else:
        executor = ProcessPoolExecutor(max_workers=workers)
        results = executor.map(_polish_task, tasks)
    polished = []
    for n, s, k, found in tqdm(results, total=len(tasks), desc="MILP polish", unit="design",
                               disable=not log.isEnabledFor(logging.INFO)):
        polished.append((n, s, k))
        pool.update(found)
    if workers > 1:
        executor.shutdown()
    polished.sort(key=lambda item: item[2])
    for n, s, k in tqdm(polished[:refine], desc="local search", unit="design",
                        disable=not log.isEnabledFor(logging.INFO)):
        _local_search(n, s, k, moves, target, pool)
    best_per_design: dict = {}
    for (n_key, s_key), kk in pool.items():
        if n_key not in best_per_design or kk < best_per_design[n_key][1]:
            best_per_design[n_key] = (s_key, kk)
    ranked = sorted(best_per_design.items(), key=lambda item: (item[1][1], item[0]))
    ensemble: list[Candidate] = []
    for n_key, (s_key, kk) in ranked:
        if len(ensemble) >= ensemble_size or kk > ensemble_k:
            break
        n_vec, s_vec = np.array(n_key, dtype=float), np.array(s_key, dtype=float)
        y = outcome_table(n_vec, s_vec, p, predicted_yes, target)
        if y is None:
            continue
        k_exact, b, se = exact_k(n_vec, s_vec, target)
        if (expit(X @ b[0]) > 0.5).tolist() != predicted_yes.tolist():
            continue  # the refit's own classification would differ from Table 3
        ensemble.append(Candidate(tuple(int(v) for v in n_key), tuple(int(v) for v in y), float(k_exact[0]),
                                  tuple(float(v) for v in b[0]), tuple(float(v) for v in se[0])))
    if not ensemble:
        raise RuntimeError("no reconstruction met the hard constraints; raise the steps or chains")
    ks_all = np.array([kk for _, (_, kk) in best_per_design.items()])
    within = {f"k<={t}": int((ks_all <= t).sum()) for t in (1, 2, 5, 8, 10)}
    settings = {"chains": chains, "steps": steps, "polish": polish, "refine": refine,
                "ensemble_size": ensemble_size, "ensemble_k": ensemble_k}
    return Reconstruction(ensemble[0], ensemble, seed, settings, len(best_per_design), within,
                          time.perf_counter() - started)


def ensemble_frame(result: Reconstruction) -> pd.DataFrame:
    """The ensemble in long form: one row per (member, cell), with each member's k."""
    frames = [c.cells().assign(member=i + 1, k=c.k) for i, c in enumerate(result.ensemble)]
    return pd.concat(frames, ignore_index=True)[["member", "k", "size", "capinno", "activity", "n", "y"]].assign(
        data_provenance=PROVENANCE)
