"""Fitted runs: one typed object per fit (``FittedRun``) and per ensemble fit (``EnsembleRun``).

``fit`` makes a FittedRun: it builds the spec's model on its data, samples, adds predictive draws,
gates the run and derives every table once; ``store`` alone saves and loads runs. The report,
``compare``, ensembles and the analysis consume these objects.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from .data import ModelData, model_data
from .spec import Sampler, Spec, load_spec
from .summaries import MleEstimates

log = logging.getLogger(__name__)
DEFAULT_SEED = 20150601


@dataclass
class FittedRun:
    """One fitted model: its spec, validated data, InferenceData, the MLE and the derived tables.

    ``record`` is what ``run.json`` holds (seed, hashes, versions, sampler settings, diagnostics,
    timings). ``folder`` is where it was saved (None for an unsaved run); ``reused`` is true when it
    was loaded from an earlier identical fit instead of sampled.
    """

    spec: Spec
    data: ModelData
    idata: az.InferenceData
    mle: MleEstimates | None
    tables: dict[str, pd.DataFrame]
    record: dict
    folder: Path | None = None
    reused: bool = False

    @property
    def name(self) -> str:
        return self.record["run_id"]

    @property
    def entry(self):
        return self.spec.entry

    @property
    def data_sha256(self) -> str:
        return self.record["data_sha256"]

    @property
    def seed(self) -> int:
        return self.record["seed"]

    @property
    def diagnostics(self) -> dict:
        return self.record["diagnostics"]

    @property
    def passed(self) -> bool:
        return bool(self.record["diagnostics"]["passed"])

    @property
    def table5(self) -> pd.DataFrame | None:
        """Posterior Table 5 beside the paper and the MLE (None for a measurement-only model)."""
        return self.tables.get("table5")

    @property
    def coefficients(self) -> pd.DataFrame | None:
        """Coefficients in log-odds and odds ratios: paper, MLE and posterior (None without an outcome)."""
        return self.tables.get("coefficients")


@dataclass
class EnsembleRun:
    """One spec fitted on every reconstruction of the shipped ensemble, pooled (``fit --ensemble``)."""

    spec: Spec
    coefficients: pd.DataFrame  # per term: pooled mean, 94% HDI, between- and within-reconstruction SD
    table5: pd.DataFrame  # the same per Table 5 cell
    record: dict
    folder: Path | None = None
    claims: pd.DataFrame | None = None  # per member and claim of the study: its posterior probability

    @property
    def name(self) -> str:
        return self.record["run_id"]


def run_id(spec: Spec, data_sha: str, seed: int, quick: bool) -> str:
    """``<model>-<spec hash>-<data hash>-seed<N>[-quick]``: a rerun of the same three replaces its own folder."""
    return f"{spec.model}-{spec.hash()[:8]}-{data_sha[:8]}-seed{seed}{'-quick' if quick else ''}"


def expected_tables(spec: Spec) -> tuple[str, ...]:
    from .summaries import ITEM_TABLES, RUN_TABLES

    entry = spec.entry
    return (RUN_TABLES if entry.outcome else ()) + (ITEM_TABLES if entry.item_level else ())


def resolve(spec: Spec | str | Path, *, sampler: dict | None = None, quick: bool = False) -> Spec:
    """A spec from a path or a Spec, with ``sampler`` overrides of its [sampler] (or [quick]) settings."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    return spec.with_sampler(sampler, quick=quick) if sampler else spec


def _reusable(folder: Path, spec: Spec, data_sha: str, sampler: Sampler, seed: int) -> FittedRun | None:
    """An earlier complete run of the same spec, data, seed and sampler settings, or None."""
    from .store import load

    if not (folder / "run.json").exists():
        return None
    try:
        run = load(folder, spec_hash=spec.hash(), data_hash=data_sha)
    except Exception as exc:  # noqa: BLE001 (an interrupted, mismatched or older run is refitted, not trusted)
        log.info("not reusing %s: %s", folder, exc)
        return None
    if run.record.get("sampler") != sampler.__dict__ or run.record.get("seed") != seed:
        return None
    if not all(name in run.tables for name in expected_tables(spec)):
        return None
    run.reused = True
    return run


def fit(spec: Spec | str | Path, *, data: str | Path | ModelData | None = None, codebook: str | Path | None = None,
        seed: int = DEFAULT_SEED, quick: bool = False, sampler: dict | None = None, out: str | Path | None = None,
        progress: bool = False, reuse: bool = False, command: str | None = None, study=None) -> FittedRun:
    """Fit a model specification on its data and return the run; saved under ``out`` when given.

    ``study`` (a Study, a shipped study's name or a study file): the outcome model takes the study's
    predictors and coding, and its data are the study's reconstruction (or ``data``, with its columns).
    ``data``: a data file (default: what the spec names); ``codebook`` for a survey file;
    ``sampler``: overrides of the spec's sampler settings, e.g. ``{"draws": 200, "tune": 200}``;
    ``quick``: the spec's [quick] settings. With ``reuse`` (and ``out``), a complete earlier run of the
    same spec, data, seed and sampler settings is loaded instead of refitted.
    """
    from .inference import add_predictive, diagnose, draw_prior, gate_variables, sample
    from .models import build_model
    from .store import package_versions, save_run
    from .summaries import derive_tables, fit_mle

    clock = _Clock()
    spec, chosen, study, data, data_sha, name = _prepare(spec, data, codebook, seed, quick, sampler, study)
    if reuse and out is not None and (earlier := _reusable(Path(out) / name, spec, data_sha, chosen, seed)):
        return earlier
    model = build_model(spec, data)
    clock.lap("data_and_model")
    log.info("sampling %s: %d chains x %d draws (%s)", spec.model, chosen.chains, chosen.draws, chosen.backend)
    # Work that needs no posterior, or the posterior only, is done beside: the prior draws while the model
    # compiles (on one core), the gate while the predictive draws and the tables are computed.
    with Beside(draw_prior, model, seed=seed) as prior_drawing:
        idata = sample(model, chosen, seed=seed, progress=progress)
        seconds = clock.lap("sampling")
        prior = prior_drawing.result()
    with Beside(diagnose, idata, *gate_variables(model)) as gate:
        add_predictive(idata, model, spec, seed=seed, outcome=data.design.outcome, prior=prior)
        clock.lap("predictive_draws")
        mle = fit_mle(spec, data)
        tables, extras = derive_tables(spec, idata, data, mle, study)
        clock.lap("tables")
        diagnostics = gate.result().to_dict()
        clock.lap("diagnostics")  # the wait for the gate beyond the draws and the tables
    record = {
        "kind": "fit", "run_id": name, "model": spec.model, "description": spec.description, "spec": str(spec.source),
        "spec_sha256": spec.hash(), "spec_document": spec.raw, "data": data.source, "data_sha256": data_sha,
        "data_provenance": data.provenance, "seed": seed, "sampler": chosen.__dict__,
        "sampling_seconds": round(seconds, 1), "compile_seconds": idata.attrs.get("compile_seconds"),
        "compile_cache_hit": bool(idata.attrs["compile_cache_hit"]) if "compile_cache_hit" in idata.attrs else None,
        "seconds": clock.laps, "quick": quick, "priors": {k: v.describe() for k, v in spec.priors.items()},
        "capinno_levels": extras.get("capinno_levels"), "item_ppc_overall": extras.get("item_ppc_overall"),
        "chi_square_ppp": extras.get("chi_square_ppp"),
        "mle": mle.to_dict() if mle is not None else None, "design": data.design.to_dict(),
        "survey": _survey_facts(data), "study": study.to_dict() if study is not None else None,
        "diagnostics": diagnostics, "versions": package_versions(),
        "command": command if command is not None else "bayes-intl " + " ".join(sys.argv[1:]),
    }
    run = FittedRun(spec, data, idata, mle, tables, record)
    if out is not None:
        run.folder = save_run(run, Path(out) / name)
        log.info("saved in %.1f s", clock.lap("saving"))
    return run


def _prepare(spec, data, codebook, seed: int, quick: bool, sampler: dict | None, study):
    """What a fit reads before sampling: the spec (with its study's predictors), the chosen sampler
    settings, the study, the validated data, their hash and the run's name."""
    spec = resolve(spec, sampler=sampler, quick=quick)
    chosen = spec.quick if quick else spec.sampler
    if study is not None:
        from .data import read_study_data, study_model_data
        from .study import Study, load_study

        study = study if isinstance(study, Study) else load_study(study)
        spec = spec.for_study(study)
        if not isinstance(data, ModelData):
            data = study_model_data(study, read_study_data(study, data))
    data = data if isinstance(data, ModelData) else model_data(spec, data, seed=seed, codebook=codebook)
    data_sha = data.sha256()
    return spec, chosen, study, data, data_sha, run_id(spec, data_sha, seed, quick)


def saved_fit(spec, *, out: str | Path, data=None, codebook=None, seed: int = DEFAULT_SEED, quick: bool = False,
              sampler: dict | None = None, study=None, **_fit_only) -> FittedRun | None:
    """The complete earlier run that ``fit(..., reuse=True)`` would load instead of sampling, or None
    (``fit``'s other arguments are taken and ignored, so one set of arguments serves both)."""
    spec, chosen, _, _, data_sha, name = _prepare(spec, data, codebook, seed, quick, sampler, study)
    return _reusable(Path(out) / name, spec, data_sha, chosen, seed)


class FitsBeside:
    """Fits run in a second process while this one does other work, on a machine with two cores or more.

    Sampling keeps both cores busy, but the predictive draws, the gate, the tables and compiling use one:
    two fits side by side take about three quarters of the time of one after the other
    (benchmarks/results.md). Each fit is saved under its ``out`` and ``take`` loads that folder, so
    its numbers are those of the same fit run here. Fits already saved, and
    every fit on a one-core machine or where processes cannot be forked (Windows, macOS), are left
    to ``take`` to load or fit here.
    """

    def __init__(self, jobs: dict[str, dict]):
        import multiprocessing

        self.jobs, self._pool, self._pending = jobs, None, {}
        self._saved = {key: saved_fit(**kw) for key, kw in jobs.items()}
        todo = {key: kw for key, kw in jobs.items() if self._saved[key] is None}
        if not todo or not _forks_beside():
            return
        self._pool = multiprocessing.get_context("fork").Pool(1, initializer=_quiet_worker,
                                                              initargs=(logging.getLogger().level,))
        self._pending = {key: (time.perf_counter(), self._pool.apply_async(_fit_saved, kwds=kw))
                         for key, kw in todo.items()}

    def take(self, key: str) -> tuple[FittedRun, float | None]:
        """The run of job ``key`` and the seconds its fit beside took (None: loaded or fitted here)."""
        from .store import load

        if key in self._pending:
            started, pending = self._pending.pop(key)
            return load(pending.get()), time.perf_counter() - started  # the worker's exception is raised here
        return self._saved[key] or fit(**self.jobs[key], reuse=True), None

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if self._pool is not None:
            # On an error or an interrupt here, a fit still running beside is stopped, not waited for.
            (self._pool.terminate if kind is not None else self._pool.close)()
            self._pool.join()


class Beside:
    """``fn(*args)`` computed in a forked second process while this one goes on, for work on data already in
    memory (the child reads them without a copy) whose result is small; ``result`` waits for it. Where
    processes cannot be forked (``_forks_beside``), it is computed here when ``result`` is called: the same
    numbers either way."""

    def __init__(self, fn, *args, **kwargs):
        import multiprocessing

        self._call, self._process = (fn, args, kwargs), None
        if not _forks_beside():
            return
        context = multiprocessing.get_context("fork")
        self._conn, child_end = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_back, args=(child_end, fn, args, kwargs), daemon=True)
        self._process.start()
        child_end.close()

    def result(self):
        fn, args, kwargs = self._call
        if self._process is not None:
            try:
                ok, value = self._conn.recv()
            except EOFError:
                ok, value = False, "the second process ended without a result"
            self.close()
            if ok:
                return value
            log.debug("computing here instead: %s", value)
        return fn(*args, **kwargs)

    def close(self) -> None:
        """Stop the second process if it still runs (an error or an interrupt here)."""
        if self._process is not None:
            self._process.terminate()
            self._process.join()
            self._conn.close()
            self._process = None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def _forks_beside() -> bool:
    """Whether work can go to a forked second process: two cores or more, not already a worker (which cannot
    have children), and fork available. Forked only: a spawned process would import the user's own script
    again, and on macOS forking a process that has loaded Apple's system libraries is unsafe."""
    import multiprocessing
    import os

    return ((os.cpu_count() or 1) >= 2 and not multiprocessing.current_process().daemon
            and "fork" in multiprocessing.get_all_start_methods() and sys.platform != "darwin")


def _send_back(conn, fn, args, kwargs) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # The parent stops this process with SIGTERM when it needs its result no more: end quietly, not through the
    # command's handler inherited by the fork (which raised KeyboardInterrupt here and printed a traceback).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        conn.send((True, fn(*args, **kwargs)))
    except Exception as exc:  # noqa: BLE001 (the parent computes it again and sees the error itself)
        conn.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _quiet_worker(level: int) -> None:
    """A worker logs as its parent does (PyMC's INFO lines only with -v; the warning filters come inherited).
    Ctrl-C is the parent's to handle: it stops the worker, which then ends at once."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    logging.getLogger().setLevel(level)
    if level > logging.INFO:
        logging.getLogger("pymc").setLevel(logging.WARNING)


def _fit_saved(**kw) -> str:
    return str(fit(**kw, reuse=True).folder)


def _survey_facts(data: ModelData) -> dict | None:
    """What a researcher should know about the survey a run read: rows dropped, responses missing, levels unused."""
    if data.survey is None:
        return None
    from .survey import unused_levels

    survey = data.survey
    return {"respondents": len(survey.firms), "dropped_rows": list(survey.dropped), "missing_policy":
            survey.codebook.missing, "missing_responses": survey.missing_responses,
            "unused_levels": unused_levels(survey)}


class _Clock:
    """Seconds spent in each phase of a fit (recorded in run.json as ``seconds``)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        self.laps[name] = round(seconds, 2)
        return seconds


# --- the reconstruction ensemble ----------------------------------------------------------------

def ensemble_tables(study=None) -> list[tuple[float, object]]:
    """A study's shipped reconstruction ensemble (default: Sonora's): (k, CellTable) per member, best first."""
    from .data import CellTable
    from .errors import SpecError
    from .reconstruct import PROVENANCE
    from .study import load_study

    study = load_study() if study is None else study
    if not study.reconstruction:
        raise SpecError(f"study {study.source}: no reconstruction is shipped with it ([study] reconstruction)")
    table_path = Path(study.reconstruction)
    path = table_path.with_name(table_path.stem + "_ensemble.csv")
    if not path.exists():
        raise SpecError(f"study {study.source}: no reconstruction ensemble ({path.name}) is shipped beside "
                        f"{table_path.name}; `bayes-intl reconstruct --study ...` writes one (ensemble.csv)")
    frame = pd.read_csv(path)
    names = [p.name for p in study.predictors]
    members = []
    for member, cells in frame.groupby("member", sort=True):
        table = cells[[*names, "n", "y"]].reset_index(drop=True).astype("int64")
        provenance = str(cells["data_provenance"].iloc[0]) if "data_provenance" in cells else PROVENANCE
        members.append((float(cells["k"].iloc[0]), CellTable(table, f"{path} member {member}", provenance)))
    return members


def _mcse(draws: np.ndarray, chains: int) -> float:
    """Monte Carlo standard error of a posterior mean (draws flattened chain by chain)."""
    import arviz as az

    return float(np.asarray(az.mcse(draws.reshape(chains, -1))).squeeze())


def _spread(draws: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per term or cell: pooled mean and HDI, the between-reconstruction SD of the members' posterior means, the
    within-posterior SD, and ``mc_sd``, the Monte Carlo noise in a member's mean (root-mean-square MCSE), which
    alone would make the means differ by about that much: a between-SD near it is sampling noise, not the design."""
    from .summaries import hdi

    rows = []
    for name, group in draws.groupby(key, sort=False):
        by_member = group.groupby("member")["value"]
        interval = hdi(group["value"].to_numpy()[:, None])[0]
        rows.append({key: name, "members": by_member.ngroups, "pooled_mean": group["value"].mean(),
                     "hdi_low": interval[0], "hdi_high": interval[1], "between_sd": by_member.mean().std(ddof=1),
                     "within_sd": by_member.std(ddof=1).mean(),
                     "mc_sd": float(np.sqrt((group.groupby("member")["mcse"].first() ** 2).mean())),
                     "member_mean_min": by_member.mean().min(), "member_mean_max": by_member.mean().max()})
    return pd.DataFrame(rows)


ENSEMBLE_NOTE = "RECONSTRUCTED data: the shipped ensemble of reconstructions (not the real survey)"


def fit_ensemble(spec: Spec | str | Path, *, seed: int = DEFAULT_SEED, members: int | None = None, quick: bool = False,
                 sampler: dict | None = None, out: str | Path | None = None, progress: bool = False,
                 study=None) -> EnsembleRun:
    """Fit ``spec`` on each reconstruction of the ensemble; pool the draws and split the spread.

    For every coefficient and Table 5 cell: the pooled posterior mean and 94% HDI, the
    between-reconstruction SD (of the members' posterior means) and the within-posterior SD
    (the members' posterior SDs, averaged).
    """
    from tqdm.auto import tqdm

    from .data import synthetic_survey
    from .inference import SeriesSampler
    from .models import build_model
    from .store import package_versions, save_ensemble
    from .summaries import coefficient_draws, grid_probabilities, prediction_grid, table5_grid

    spec = resolve(spec, sampler=sampler, quick=quick)
    chosen = spec.quick if quick else spec.sampler
    if study is not None:
        from .data import study_model_data
        from .study import Study, load_study

        study = study if isinstance(study, Study) else load_study(study)
        spec = spec.for_study(study)
    from .claims import claim_events
    from .study import load_study

    coef_rows, cell_rows, claim_rows = [], [], []
    claimed = study if study is not None else load_study()
    members_used = ensemble_tables(study)[: members or None]
    grid = None if study is not None else table5_grid()
    draw = SeriesSampler(chosen)
    bar = tqdm(members_used, desc=f"ensemble {spec.model}", unit="fit", disable=not progress, leave=False)
    for i, (k, table) in enumerate(bar):
        if study is not None:
            data = study_model_data(study, table)
            grid = prediction_grid(spec, data.design, data.firms) if grid is None else grid
        elif spec.entry.item_level:
            survey = synthetic_survey(table, seed=seed, source=f"synthetic survey of {table.source}")
            data = ModelData(survey.firms, survey, survey.source, survey.provenance)
        else:
            data = ModelData(table.to_firms().firms, None, table.source, table.provenance)
        idata = draw(build_model(spec, data), seed=seed + i)
        coefficients = coefficient_draws(spec, idata.posterior, data.design)
        chains = idata.posterior.sizes["chain"]
        for term, draws in coefficients.items():
            coef_rows.append(pd.DataFrame({"member": i + 1, "k": k, "term": term, "value": draws,
                                           "mcse": _mcse(draws, chains)}))
        probs = grid_probabilities(spec, idata.posterior, data.firms, grid, data.design)
        cell_rows += [pd.DataFrame({"member": i + 1, "k": k, "id": cell, "value": probs[:, j],
                                    "mcse": _mcse(probs[:, j], chains)}) for j, cell in enumerate(grid["id"])]
        events = claim_events(claimed, coefficients, probs, grid)
        claim_rows += [{"member": i + 1, "k": k, "claim": c, "probability": float(e.mean())} for c, e in events.items()]
    n = len(members_used)
    name = f"{spec.model}-{spec.hash()[:8]}-ensemble{n}-seed{seed}{'-quick' if quick else ''}"
    record = {"kind": "ensemble", "run_id": name, "model": spec.model, "spec": str(spec.source),
              "study": study.id if study is not None else "sonora",
              "outcome": study.outcome if study is not None else "internationalized",
              "spec_sha256": spec.hash(), "spec_document": spec.raw, "members": n, "seed": seed,
              "sampler": chosen.__dict__, "compilations": draw.compiled, "compilations_reused": draw.reused, "versions": package_versions(),
              "data_provenance": ENSEMBLE_NOTE if study is None else
              f"RECONSTRUCTED data: the shipped ensemble of reconstructions of study '{study.id}' (not its real rows)"}
    run = EnsembleRun(spec, _spread(pd.concat(coef_rows), "term"), _spread(pd.concat(cell_rows), "id"), record,
                      claims=pd.DataFrame(claim_rows, columns=["member", "k", "claim", "probability"]))
    if out is not None:
        run.folder = save_ensemble(run, Path(out) / name)
    return run
