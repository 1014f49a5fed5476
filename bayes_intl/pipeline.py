"""The whole re-analysis as stages: audit, reconstruct, survey, refit, model ladder, comparison, report.

Each stage's outputs are reused when its inputs have not changed: a stage's cache key hashes its
settings, the hashes of its inputs and the package's source, and ``cache.json`` in the analysis
folder records the key beside the outputs. A fitted run is reused when a complete run folder with
the same spec hash, data hash, seed and sampler settings exists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import SpecError
from .spec import Analysis

log = logging.getLogger(__name__)


def code_hash() -> str:
    """Hash of the package's source and shipped data: a cached stage is stale when the code changed."""
    digest = hashlib.sha256()
    root = resources.files("bayes_intl")
    for name in sorted(p.name for p in root.iterdir() if p.name.endswith(".py")):
        digest.update(root.joinpath(name).read_bytes())
    data = Path(str(root.joinpath("data")))
    for path in sorted(p for p in data.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(data).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --- the writers each command shares with its analysis stage: one function, one schema per artefact ---

def compile_spec(spec_path: str | Path, *, data: str | None = None, seed: int = 20150601) -> dict:
    """Compile a spec's model on its data into the compile cache without sampling, so the first
    fit of it is fast (what the install does for the shipped specs on the embedded data)."""
    from .compile_cache import compile_nutpie
    from .data import model_data
    from .models import build_model
    from .spec import load_spec

    spec = load_spec(spec_path)
    data_ = model_data(spec, data, seed=seed)
    row = {"spec": str(spec_path), "model": spec.model, "backend": spec.sampler.backend,
           "data_sha256": data_.sha256(), "seconds": None, "reused": False, "cached": False}
    if spec.sampler.backend == "nutpie":  # the others keep no compiled model between processes
        built = compile_nutpie(build_model(spec, data_))
        row.update(seconds=round(built.seconds, 2), reused=built.reused, cached=built.cached)
    return row


def write_audit(folder: Path, study=None) -> tuple[object, dict]:
    """Run the audit of a study (default: the shipped Sonora study) and write ``audit.json`` (with the
    study file's hash and package versions) and ``audit.md``; shared by ``bayes-intl audit`` and the
    analysis stage. Returns (result, payload)."""
    from .audit import run_audit
    from .audit import audit_markdown
    from .store import file_hash, package_versions, write_json, write_text
    from .study import load_study

    study = load_study(study) if not hasattr(study, "figures") else study
    result = run_audit(study)
    payload = result.to_dict()
    payload["study"] = study.to_dict()
    payload["provenance"] = {"study_sha256": file_hash(study.source), "versions": package_versions()}
    payload["written"] = [str(folder / "audit.json"), str(folder / "audit.md")]
    write_text(folder / "audit.md", audit_markdown(result) + "\n")
    write_json(folder / "audit.json", payload)
    return result, payload


def write_baseline(data, folder: Path, *, formula: str | None = None, study=None):
    """Refit the logit on outcome data and write ``tables.csv``, ``comparison.csv`` and
    ``baseline.json`` (labelled with the data's provenance); shared by ``bayes-intl baseline`` and the
    analysis stage. Returns (fit, comparison, payload)."""
    from .baselines import compare, fit_logit, fit_summary, published_tables
    from .data import data_hash
    from .store import package_versions, write_csv, write_json
    from .study import load_study

    study = load_study(study) if not hasattr(study, "figures") else study
    fit = fit_logit(data, study=study, formula=formula)
    comparison = compare(published_tables(study), fit.tables)
    note = f"data: {data.source} ({data.provenance})"
    written = [str(folder / "tables.csv"), str(folder / "comparison.csv"), str(folder / "baseline.json")]
    write_csv(folder / "tables.csv", fit.tables.assign(data_provenance=data.provenance), header_note=note)
    write_csv(folder / "comparison.csv", comparison.assign(data_provenance=data.provenance), header_note=note)
    payload = {"study": study.to_dict(), "predicted_table": study.predicted_table, "data": data.source,
               "data_provenance": data.provenance, "data_sha256": data_hash(data), "fit": fit_summary(fit), "comparison": comparison.to_dict(orient="records"),
               "versions": package_versions(), "written": written}
    write_json(folder / "baseline.json", payload)
    return fit, comparison, payload


def write_reconstruction(folder: Path, *, search: bool, seed: int, starts: int = 24, rounds: int = 6,
                         solutions: int = 10000, firms: bool = False, study=None) -> dict:
    """Rerun the reconstruction search (``search``) or take the study's shipped reconstruction, refit it
    beside the published classification table and coefficients, and write ``best_table.csv``,
    ``ensemble.csv`` and ``reconstruction.json``; shared by ``bayes-intl reconstruct`` and the analysis
    stage. Returns the JSON payload."""
    import pandas as pd

    from .baselines import compare, fit_logit, fit_summary, published_tables
    from .data import data_hash, read_study_data
    from .reconstruct import HALF_UNIT, ensemble_frame, reconstruct
    from .store import package_versions, write_csv, write_json
    from .study import load_study

    study = load_study(study) if not hasattr(study, "figures") else study
    shipped = read_study_data(study) if study.reconstruction else None
    shipped_path = Path(study.reconstruction) if study.reconstruction else None
    meta_path = shipped_path.with_suffix(".json") if shipped_path else None
    meta = json.loads(meta_path.read_text()) if meta_path and meta_path.exists() else {}
    started = time.perf_counter()
    if search:
        found = reconstruct(study, seed=seed, starts=starts, rounds=rounds, solutions=solutions)
        table, ensemble, settings = found.best.table(), ensemble_frame(found), found.settings
        how = f"search rerun here in {found.seconds:.0f} s; {found.coverage()}"
        within, scored = found.within, found.distinct_designs_scored
    elif shipped is None:
        raise SpecError(f"study {study.source}: no reconstruction is shipped with it ([study] reconstruction); "
                        "run the search (`bayes-intl reconstruct --study ...` without --shipped)")
    else:
        table, settings = shipped, meta.get("settings", {})
        ensemble_path = shipped_path.with_name(shipped_path.stem + "_ensemble.csv")
        ensemble = pd.read_csv(ensemble_path) if ensemble_path.exists() else pd.DataFrame(columns=["member"])
        how = f"shipped reconstruction ({shipped_path.name}); search not rerun"
        within, scored = meta.get("within", {}), meta.get("distinct_designs_scored")
    keys = [p.name for p in study.predictors] + ["n", "y"]
    same = shipped is not None and table.cells[keys].reset_index(drop=True).equals(shipped.cells[keys].reset_index(drop=True))
    fit = fit_logit(table, study=study)
    comparison = compare(published_tables(study), fit.tables)
    tables = [study[f"{study.classification}.no.no"].table] if study.classification else []
    refit = comparison[comparison["table"].isin(tables + [study.coefficient_table])]
    coefficients = refit[(refit["table"] == study.coefficient_table) & refit["column"].isin(["b", "se"])]
    k = float(coefficients["difference"].abs().max() / HALF_UNIT)  # the refit's own k, never a recorded one
    written = [write_csv(folder / "best_table.csv", table.cells.assign(data_provenance=table.provenance)),
               write_csv(folder / "ensemble.csv", ensemble.assign(data_provenance=table.provenance))]
    if firms:
        written.append(write_csv(folder / "best_firms.csv", table.to_firms(study.outcome).firms))
    levels = {p.name: {str(c): lab for c, lab in zip(p.codes, p.labels)} for p in study.predictors}
    payload = {"study": study.to_dict(), "levels": levels, "k": k, "how": how,
               "table": table.cells[keys].to_dict(orient="records"),
               "refit": fit_summary(fit), "refit_vs_published": refit.to_dict(orient="records"),
               "classification": {r.id: float(r.refit) for r in comparison.itertuples() if r.table in tables},
               "within": within, "distinct_designs_scored": scored,
               "ensemble_members": int(ensemble["member"].nunique()), "same_as_shipped": bool(same),
               "shipped_k": meta.get("k"), "seed": seed, "settings": settings,
               "seconds": round(time.perf_counter() - started, 1), "data_provenance": table.provenance,
               "table_sha256": data_hash(table), "versions": package_versions(),
               "written": [str(p) for p in written] + [str(folder / "reconstruction.json")]}
    write_json(folder / "reconstruction.json", payload)
    return payload


def write_survey(table, folder: Path, *, seed: int) -> dict:
    """Synthesize the item-level survey behind ``table`` and write it as .csv, .parquet and .sav (SPSS,
    with value labels), with ``codebook.toml`` and ``truth.json``; shared by ``bayes-intl simulate``
    and the analysis stage. Returns the JSON payload."""
    from .data import data_hash
    from .simulate import ITEM_TABLE, codebook_toml, simulate_survey
    from .store import package_versions, write_frame, write_json, write_text

    survey = simulate_survey(table, seed=seed)
    value_labels = {"activity": {0: "MM", 1: "IT"}, "size": {0: "micro", 1: "small", 2: "medium"},
                    "internationalized": {0: "no", 1: "yes"}}
    value_labels |= {name: {0: "no", 1: "yes"} for name, _, kind, *_ in ITEM_TABLE if kind == "binary"}
    column_labels = {name: label for name, *_, label in ITEM_TABLE}
    written = [write_frame(folder / f"survey{ext}", survey.frame, value_labels=value_labels,
                           column_labels=column_labels) for ext in (".csv", ".parquet", ".sav")]
    written.append(write_text(folder / "codebook.toml", codebook_toml()))
    written.append(write_json(folder / "truth.json", survey.truth | {"frame": table.source,
                                                                    "frame_sha256": data_hash(table),
                                                                    "versions": package_versions()}))
    return {"data_provenance": survey.truth["data_provenance"], "seed": survey.seed, "firms": len(survey.frame),
            "items": len(ITEM_TABLE), "frame": table.source, "survey": str(written[0]),
            "written": [str(p) for p in written]}


def write_comparison(runs: list, folder: Path) -> tuple[object, dict]:
    """PSIS-LOO of fitted runs on the outcome, ranked within groups fitted to the same outcomes; writes
    ``loo.csv`` and ``loo.json``; shared by ``bayes-intl compare`` and the analysis stage."""
    from .inference import compare_groups
    from .store import write_csv, write_json

    frame = compare_groups({run.name: run.idata for run in runs})
    payload = {"loo": frame.to_dict(orient="records"), "runs": [run.name for run in runs],
               "note": "PSIS-LOO on the outcome log-likelihood only; elpd_loo higher is better; runs are ranked only "
                       "against runs fitted to the same outcome data (outcome_data)",
               "written": [str(folder / "loo.csv"), str(folder / "loo.json")]}
    write_csv(folder / "loo.csv", frame)
    write_json(folder / "loo.json", payload)
    return frame, payload


# --- the whole analysis -----------------------------------------------------------------------

@dataclass
class StageResult:
    name: str
    reused: bool
    seconds: float
    outputs: list[str]
    summary: str
    detail: dict = field(default_factory=dict)
    value: object = None  # the stage's result in memory, for the stages after it


class _Cache:
    """``cache.json``: stage name -> key and outputs; written atomically after every stage."""

    def __init__(self, folder: Path):
        self.path = folder / "cache.json"
        try:
            self.entries = json.loads(self.path.read_text()) if self.path.exists() else {}
        except json.JSONDecodeError:
            self.entries = {}

    def hit(self, stage: str, key: str) -> dict | None:
        entry = self.entries.get(stage)
        if entry and entry.get("key") == key and all(Path(p).exists() for p in entry.get("outputs", [])):
            return entry
        return None

    def store(self, stage: str, key: str, outputs: list[str], summary: str, detail: dict) -> None:
        from .store import write_json

        self.entries[stage] = {"key": key, "outputs": outputs, "summary": summary, "detail": detail}
        write_json(self.path, self.entries)


def _read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


class _Stages:
    """Runs stages in order, reusing those whose key is in the cache, and reports each as it ends."""

    def __init__(self, out: Path, total: int, progress: bool, on_stage):
        from tqdm.auto import tqdm

        self.cache, self.done, self.on_stage = _Cache(out), [], on_stage
        self.bar = tqdm(total=total, desc="analysis", unit="stage", disable=not progress)

    def finish(self, result: StageResult) -> StageResult:
        self.done.append(result)
        self.bar.update(1)
        if self.on_stage:
            self.on_stage(result)
        return result

    def run(self, name: str, key: str, work, load) -> StageResult:
        """``work() -> (outputs, summary, detail, value)``; on a cache hit, ``load(detail)`` gives the value."""
        self.bar.set_postfix_str(name)
        hit = self.cache.hit(name, key)
        started = time.perf_counter()
        if hit:
            return self.finish(StageResult(name, True, 0.0, hit["outputs"], hit["summary"], hit.get("detail", {}),
                                           load(hit.get("detail", {}))))
        outputs, summary, detail, value = work()
        result = StageResult(name, False, time.perf_counter() - started, [str(p) for p in outputs], summary, detail,
                             value)
        self.cache.store(name, key, result.outputs, summary, detail)
        return self.finish(result)


def _stage_audit(folder: Path, study=None):
    result, payload = write_audit(folder, study)
    s = result.summary
    return (payload["written"], f"{s['consistent']} of {s['figures_checked']} checks consistent; inconsistent: "
            f"{', '.join(s['inconsistent']) or 'none'}", {"json": payload["written"][0]}, payload)


def _stage_reconstruct(folder: Path, preset: dict, seed: int, study=None):
    payload = write_reconstruction(folder, search=preset["search"], seed=seed, starts=preset["starts"],
                                   rounds=preset["rounds"], solutions=preset["solutions"], study=study)
    refit = payload["refit_vs_published"]
    printed_same = sum(bool(r["same_when_printed"]) for r in refit)
    summary = (f"k = {payload['k']:.2f} ({payload['how']}); refit prints {printed_same} of {len(refit)} classification "
               f"and coefficient figures identically; "
               f"{'identical to' if payload['same_as_shipped'] else 'differs from'} the shipped table")
    json_path = payload["written"][-1]
    return payload["written"], summary, {"table": payload["written"][0], "json": json_path,
                                         "table_sha256": payload["table_sha256"]}, payload


def _stage_survey(folder: Path, table, seed: int):
    payload = write_survey(table, folder, seed=seed)
    return (payload["written"], f"{payload['firms']} firms, SYNTHETIC item-level survey (seed {seed})",
            {"survey": payload["survey"]}, payload)


def _stage_baseline(folder: Path, table, study=None):
    _, comparison, payload = write_baseline(table, folder, study=study)
    same = int(comparison["same_when_printed"].sum())
    return (payload["written"], f"{same} of {len(comparison)} published figures printed identically by the refit",
            {"json": payload["written"][2]}, payload)


def _fit_jobs(models: list[str], data: dict[str, str], analysis: Analysis, quick: bool, out: Path, study,
              command: str) -> dict[str, dict]:
    """``fit``'s arguments for each model of the analysis."""
    return {m: {"spec": m, "data": data[m], "seed": analysis.seed, "quick": quick, "out": out / "runs",
                "command": command, "study": study} for m in models}


def _fit_stage(stages: _Stages, spec_path: str, job: dict, progress: bool, beside=None):
    """A fit of the analysis; ``beside``: the FitsBeside that may have fitted it in a second process."""
    from .runs import fit

    name = f"fit {Path(spec_path).stem}"
    stages.bar.set_postfix_str(name)
    started = time.perf_counter()
    run, seconds = beside.take(spec_path) if beside else (fit(**job, progress=progress, reuse=True), None)
    d = run.diagnostics
    summary = (f"{'gate passed' if d['passed'] else 'gate MISSED'}: max R-hat {d['r_hat_max']:.2f}, "
               f"min ESS {d['ess_bulk_min']:.0f}, {d['divergences']} divergences")
    stages.finish(StageResult(name, run.reused, seconds or time.perf_counter() - started, [str(run.folder)],
                              summary, {"run": str(run.folder), "passed": d["passed"]}, run))
    return run


def _ensembles_for(analysis: Analysis, mode: str, study) -> tuple[list[tuple[str, int]], list[str]]:
    """The ensemble stages of a mode this study can feed (item-level models need the paper's survey design)."""
    from .spec import load_spec

    kept, skipped = [], []
    for spec_path, members in analysis.ensemble_for(mode):
        spec = load_spec(spec_path)
        try:
            if study is not None:
                spec.for_study(study)
                if spec.entry.item_level:
                    raise SpecError(f"ensemble of {spec.model}: study '{study.id}' has no item-level survey design")
            kept.append((spec_path, members))
        except SpecError as exc:
            skipped.append(str(exc))
    return kept, skipped


def _models_for(analysis: Analysis, study) -> tuple[list[str], list[str]]:
    """The analysis's specs this study can feed, and a line for each it cannot (see ``Spec.for_study``)."""
    from .spec import load_spec

    kept, skipped = [], []
    for spec_path in analysis.models:
        try:
            if study is not None:
                load_spec(spec_path).for_study(study)
            kept.append(spec_path)
        except SpecError as exc:
            skipped.append(str(exc))
    return kept, skipped


def check_modes(quick: bool, full: bool) -> None:
    """--quick (short sampling, a small ensemble) and --full (the whole ensemble at full settings) exclude each other."""
    if quick and full:
        raise SpecError("--quick and --full exclude each other (--full fits the ensemble at full settings)")


def run_analysis(analysis: Analysis, *, quick: bool = False, full: bool = False, search: bool | None = None,
                 out: str | Path | None = None, progress: bool = True, on_stage=None, study=None) -> dict:
    """Run every stage in order and write the report; returns what was done and where it lies.

    ``study``: the published logit to re-analyse (a Study, a shipped study's name or a study file;
    default: the Sonora paper). ``search`` overrides the analysis file's reconstruct.search (rerun the
    reconstruction search, minutes, or take the shipped table). ``full``: the ensemble stages at their
    ``full_members`` (``make analysis FULL=1``). ``on_stage(StageResult)`` is called as each stage ends.
    """
    check_modes(quick, full)
    import pandas as pd

    from .data import read_study_data, study_design
    from .reporting import ReportInputs
    from .spec import load_spec
    from .store import file_hash
    from .study import load_study

    study = study if hasattr(study, "figures") else load_study(study)
    # The shipped specs are written for the paper's design; another study gives them its predictors.
    fit_study = None if study_design(study).paper else study
    models, skipped = _models_for(analysis, fit_study)
    out = Path(out or (analysis.out if fit_study is None else f"{analysis.out}_{study.id}"))
    out.mkdir(parents=True, exist_ok=True)
    code = (code_hash(), file_hash(study.source))
    preset = analysis.quick_reconstruct if quick else analysis.reconstruct
    preset = preset if search is None else preset | {"search": search}
    started = time.perf_counter()
    item_level = [m for m in models if load_spec(m).entry.item_level]
    ensembles, skipped_ensembles = _ensembles_for(analysis, "quick" if quick else "full" if full else "default",
                                                  fit_study)
    skipped += skipped_ensembles
    stages = _Stages(out, 5 + bool(item_level) + len(models) + len(ensembles), progress, on_stage)
    audit = stages.run("audit", _key("audit", code), lambda: _stage_audit(out / "audit", study),
                       lambda d: _read_json(d["json"]))
    recon = stages.run("reconstruct", _key("reconstruct", code, preset, analysis.seed),
                       lambda: _stage_reconstruct(out / "reconstruct", preset, analysis.seed, study),
                       lambda d: _read_json(d["json"]))
    table_csv, table_sha = recon.detail["table"], recon.detail["table_sha256"]
    table = read_study_data(study, table_csv)
    survey = None
    if item_level:
        survey = stages.run("survey", _key("survey", code, table_sha, analysis.seed),
                            lambda: _stage_survey(out / "survey", table, analysis.seed), lambda d: None)
    baseline = stages.run("baseline", _key("baseline", code, table_sha),
                          lambda: _stage_baseline(out / "baseline", table, study), lambda d: _read_json(d["json"]))
    command = f"bayes-intl run {analysis.source}{' --quick' if quick else ''}"
    jobs = _fit_jobs(models, {m: survey.detail["survey"] if m in item_level else table_csv for m in models},
                     analysis, quick, out, fit_study, command)
    runs, fitted = _model_stages(stages, jobs, item_level, ensembles, code, analysis, quick, out, fit_study, progress)
    outcome_runs = [r for r in runs if r.entry.outcome]
    run_keys = [r.name for r in runs]
    compare = stages.run("compare", _key("compare", code, run_keys),
                         lambda: _stage_compare(out / "compare", outcome_runs),
                         lambda d: pd.read_csv(d["csv"]) if d.get("csv") else None)
    inputs = ReportInputs.collect(runs, audit.value, recon.value, baseline.value, compare.value, command,
                                  fitted)
    report = stages.run("report", _key("report", code, run_keys, analysis.source, quick),
                        lambda: _stage_report(out / "report", inputs), lambda d: None)
    stages.bar.close()
    return {"analysis": analysis.source, "study": study.to_dict(), "quick": quick, "out": str(out),
            "seconds": round(time.perf_counter() - started, 1), "report": report.detail["index"],
            "runs": [str(r.folder) for r in runs], "models_skipped": skipped,
            "report_sections": report.detail.get("sections", []), "report_tables": report.detail.get("tables", []),
            "stages": [{"name": s.name, "reused": s.reused, "seconds": round(s.seconds, 1), "summary": s.summary,
                        "outputs": s.outputs} for s in stages.done]}


def _model_stages(stages: _Stages, jobs: dict[str, dict], item_level: list[str], ensembles, code, analysis: Analysis,
                  quick: bool, out: Path, study, progress: bool) -> tuple[list, list]:
    """The fits (in the analysis's order) and the ensembles. The item-level fits, the longest, run in a second
    process beside the others and the ensembles (``FitsBeside``)."""
    from .runs import FitsBeside
    from .store import file_hash, load

    beside_jobs = {m: jobs[m] for m in item_level} if len(item_level) < len(jobs) or ensembles else {}
    runs, fitted = {}, []
    with FitsBeside(beside_jobs) as beside:
        for spec_path in [m for m in jobs if m not in beside_jobs]:
            runs[spec_path] = _fit_stage(stages, spec_path, jobs[spec_path], progress)
        for spec_path, members in ensembles:
            name = f"ensemble {Path(spec_path).stem}"
            fitted.append(stages.run(name, _key(name, code, members, file_hash(spec_path), quick, analysis.seed),
                                     lambda: _stage_ensemble(out / "ensemble", spec_path, members, quick,
                                                             analysis.seed, study, progress),
                                     lambda d: load(d["folder"])).value)
        for spec_path in beside_jobs:
            runs[spec_path] = _fit_stage(stages, spec_path, jobs[spec_path], progress, beside)
    return [runs[m] for m in jobs], fitted


def _stage_ensemble(folder: Path, spec: str, members: int, quick: bool, seed: int, study, progress: bool):
    from .runs import fit_ensemble

    run = fit_ensemble(spec, seed=seed, members=members, quick=quick, out=folder, study=study, progress=progress)
    n, between = run.record["members"], run.coefficients["between_sd"] / run.coefficients["within_sd"]
    spread = (f"between-reconstruction SD {between.min():.2f}-{between.max():.2f} of the within-posterior SD" if n > 1
              else "one member, so no between-reconstruction spread")
    return ([str(run.folder)], f"{run.spec.model} on {n} reconstruction{'s' * (n > 1)}: {spread}",
            {"folder": str(run.folder)}, run)


def _stage_compare(folder: Path, runs: list):
    if not runs:
        return [], "no run with an outcome to compare", {}, None
    frame, payload = write_comparison(runs, folder)
    best = frame.sort_values("rank").groupby("outcome_data").head(1)
    return payload["written"], "best by PSIS-LOO: " + ", ".join(best["run"]), {"csv": payload["written"][0]}, frame


def _stage_report(folder: Path, inputs):
    from .reporting import write_report

    written = write_report(inputs, folder)
    tables = [Path(f).stem for f in written.files if Path(f).parent.name == "tables"]
    return (written.files, f"{len(written.sections)} sections, {written.figures} figures",
            {"index": str(written.index), "sections": written.sections, "tables": tables}, written)


def report_inputs(runs: list, out: Path, *, command: str, seed: int = 20150601, study=None):
    """What the report needs beside the runs, made for a report outside the analysis: for runs of one
    study (or of the paper's design), its audit, shipped reconstruction and frequentist refit are
    recomputed (seconds) into ``out/inputs``; PSIS-LOO of the runs with an outcome is computed.
    ``study`` (a name or file), when given, must be the study every run was fitted on."""
    from .data import read_study_data
    from .inference import compare_groups
    from .reporting import ReportInputs
    from .study import load_study

    audit = recon = baseline = None
    sources = {(r.record.get("study") or {}).get("source") for r in runs}
    if study is not None:
        study = load_study(study)
        ids = {(r.record.get("study") or {}).get("id") or ("sonora" if r.data.design.paper else None) for r in runs}
        if ids != {study.id}:
            raise SpecError(f"report --study {study.id}: the runs were fitted on "
                            f"{', '.join(sorted(str(i) for i in ids))}, not on study '{study.id}'")
        sources = {study.source}
    if len(sources) == 1 and None not in sources:  # runs of one study's design
        study = load_study(sources.pop())
    elif all(r.data.design.paper for r in runs):  # runs of the paper's design
        study = load_study()
    if study is not None and study.reconstruction:  # the study's stages belong only in a report of its runs
        inputs = out / "inputs"
        _, audit = write_audit(inputs / "audit", study)
        recon = write_reconstruction(inputs / "reconstruct", search=False, seed=seed, study=study)
        _, _, baseline = write_baseline(read_study_data(study), inputs / "baseline", study=study)
    outcome = {r.name: r.idata for r in runs if r.entry.outcome}
    loo = compare_groups(outcome) if outcome else None
    return ReportInputs.collect(runs, audit, recon, baseline, loo, command)

