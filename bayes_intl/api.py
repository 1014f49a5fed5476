"""The Python API for analysis scripts and notebooks: ``load_study``, ``run_audit``, ``fit``, ``load``, ``compare``, ``report``.

The same objects the commands print: ``fit`` and ``load`` return a ``FittedRun`` (its ``idata`` for
``arviz.plot_*``, its ``table5`` and ``coefficients`` as DataFrames), ``compare`` the PSIS-LOO table,
``report`` the written report. Heavy libraries are imported on first use, not with the package.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from .errors import library_warnings


def _quiet():
    """Libraries' warnings stay off a script's output unless the ``bayes_intl`` logger is at INFO or lower."""
    return library_warnings(shown=logging.getLogger("bayes_intl").isEnabledFor(logging.INFO))


def fit(spec, *, data=None, codebook=None, seed: int = 20150601, quick: bool = False, sampler: dict | None = None,
        out=None, progress: bool = False, study=None):
    """Fit a model specification (a ``models/*.toml`` path or a Spec) and return its ``FittedRun``.

    ``study``: a published logit to re-analyse (a shipped study's name such as ``"titanic"``, a study
    file, or a Study): the model takes its predictors and, by default, its reconstruction as data.
    ``data``: a data file (default: what the spec names); ``codebook``: the codebook of a survey file;
    ``sampler``: changes to the spec's sampler settings, e.g. ``{"draws": 200, "tune": 200}``;
    ``out``: a folder to save the run in (``<out>/<run id>/``), as ``bayes-intl fit`` does.
    """
    from .runs import fit as fit_run

    with _quiet():
        return fit_run(spec, data=data, codebook=codebook, seed=seed, quick=quick, sampler=sampler, out=out,
                       progress=progress, command="bayes_intl.fit (Python API)", study=study)


def load_study(name_or_path=None):
    """A study (default: the Sonora paper): its predictors, coding and printed figures (``.figures``)."""
    from .study import load_study as load

    return load(name_or_path)


def run_audit(study=None):
    """The rounding-aware audit of a study's printed figures (``records``, ``joint``, ``summary``)."""
    from .audit import run_audit as audit
    from .study import Study

    return audit(study if isinstance(study, Study) else load_study(study))


def load(folder):
    """Load a saved run folder: a ``FittedRun``, or an ``EnsembleRun`` for ``fit --ensemble`` output."""
    from .store import load as load_folder

    with _quiet():
        return load_folder(folder)


def fitted_runs(runs: Iterable, *, outcome: bool = False) -> list:
    """FittedRuns from run objects or run folders; anything else is refused with one line naming it."""
    from .errors import InputError
    from .runs import EnsembleRun, FittedRun

    out = []
    for run in runs:
        run = run if isinstance(run, FittedRun) else load(run) if isinstance(run, (str, Path)) else run
        if isinstance(run, EnsembleRun):
            raise InputError(run.folder or run.name, "a fitted run (bayes-intl fit or run); this is an ensemble "
                             "summary (bayes-intl fit --ensemble), which has no posterior to compare or report")
        if not isinstance(run, FittedRun):
            raise InputError(repr(run)[:60], "a fitted run or a run folder (bayes-intl fit or run)")
        if outcome and not run.entry.outcome:
            raise InputError(run.folder or run.name, "a run with an outcome to compare; this is a measurement-only "
                             "model", column="model", found=run.spec.model)
        out.append(run)
    return out


def compare(runs: Iterable):
    """PSIS-LOO on the outcome of fitted runs (objects or folders), ranked within runs of the same outcome data."""
    from .inference import compare_groups

    runs = fitted_runs(runs, outcome=True)
    with _quiet():
        return compare_groups({run.name: run.idata for run in runs})


def report(runs: Iterable, *, out, command: str = "bayes_intl.report (Python API)", study=None):
    """Write the report of fitted runs (objects or folders) to ``out``: index.html, report.md, tables, figures.

    The audit, the shipped reconstruction and its frequentist refit are recomputed into ``out/inputs``;
    ``study``, when given, must be the study the runs were fitted on (refused in one line otherwise).
    """
    from .pipeline import report_inputs
    from .reporting import write_report

    runs = fitted_runs(runs)
    out = Path(out)
    with _quiet():
        return write_report(report_inputs(runs, out, command=command, study=study), out)
