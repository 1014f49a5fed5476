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
from .spec import did_you_mean, read_toml

log = logging.getLogger(__name__)
ANALYSIS_KEYS = {"schema_version", "description", "seed", "out", "models", "reconstruct", "quick"}
RECONSTRUCT_KEYS = {"search", "chains", "steps", "polish"}
QUICK_KEYS = {"reconstruct"}


@dataclass(frozen=True)
class Analysis:
    """An analysis specification (``models/analysis.toml``): which models, which seed, which settings."""

    source: str
    seed: int
    out: str
    models: tuple[str, ...]
    reconstruct: dict
    quick_reconstruct: dict
    description: str = ""


def load_analysis(path: str | Path) -> Analysis:
    """Read and check an analysis specification; model paths are relative to the file."""
    path = Path(path)
    raw = read_toml(path, "analysis specification")

    def bad(key: str, expected: str, found=None):
        return SpecError(f"analysis {path}: key '{key}': expected {expected}" + (f", found {found}" if found else ""))

    def keys(table, allowed, where):
        if not isinstance(table, dict):
            raise bad(where, "a table of settings")
        for key in table:
            if key not in allowed:
                raise bad(f"{where}.{key}", f"one of {sorted(allowed)} (unknown key){did_you_mean(key, allowed)}")
        return table

    for key in raw:
        if key not in ANALYSIS_KEYS:
            raise bad(key, f"one of {sorted(ANALYSIS_KEYS)} (unknown key){did_you_mean(key, ANALYSIS_KEYS)}")
    models = raw.get("models", [])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise bad("models", "a non-empty list of model specification files")
    resolved = []
    for name in models:
        spec_path = (path.parent / name) if not Path(name).is_absolute() else Path(name)
        if not spec_path.exists():
            raise bad("models", "existing model specification files", f"{spec_path} (no such file)")
        resolved.append(str(spec_path))
    reconstruct = keys(raw.get("reconstruct", {}), RECONSTRUCT_KEYS, "reconstruct")
    quick = keys(raw.get("quick", {}), QUICK_KEYS, "quick")
    quick_reconstruct = keys(quick.get("reconstruct", {}), RECONSTRUCT_KEYS, "quick.reconstruct")
    for where, table in (("reconstruct", reconstruct), ("quick.reconstruct", quick_reconstruct)):
        for key in ("chains", "steps", "polish"):
            if key in table and (not isinstance(table[key], int) or isinstance(table[key], bool) or table[key] < 1):
                raise bad(f"{where}.{key}", "a positive whole number", repr(table[key]))
        if "search" in table and not isinstance(table["search"], bool):
            raise bad(f"{where}.search", "true or false", repr(table["search"]))
    seed = raw.get("seed", 20150601)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad("seed", "a non-negative whole number", repr(seed))
    return Analysis(str(path), seed, str(raw.get("out", "reports/analysis")), tuple(resolved),
                    {"search": True, "chains": 192, "steps": 4000, "polish": 64} | reconstruct,
                    {"search": True, "chains": 192, "steps": 4000, "polish": 64} | reconstruct | quick_reconstruct,
                    str(raw.get("description", "")))


def code_hash() -> str:
    """Hash of the package's source and shipped data: a cached stage is stale when the code changed."""
    digest = hashlib.sha256()
    root = resources.files("bayes_intl")
    for name in sorted(p.name for p in root.iterdir() if p.name.endswith(".py")):
        digest.update(root.joinpath(name).read_bytes())
    for name in sorted(p.name for p in root.joinpath("data").iterdir()):
        digest.update(root.joinpath("data", name).read_bytes())
    return digest.hexdigest()


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --- fitting one spec -------------------------------------------------------------------------

@dataclass
class FitRun:
    folder: Path
    record: dict
    tables: dict
    diagnostics: dict
    reused: bool = False


RUN_TABLES = ("table5", "table5_prior", "coefficients", "capinno_contrast")


def run_id(spec, data_sha: str, seed: int, quick: bool) -> str:
    return f"{spec.model}-{spec.hash()[:8]}-{data_sha[:8]}-seed{seed}{'-quick' if quick else ''}"


def compile_spec(spec_path: str | Path, *, data: str | None = None, seed: int = 20150601) -> dict:
    """Compile a spec's model on its data into the compile cache without sampling, so the first
    fit of it is fast (what the install does for the shipped specs on the embedded data)."""
    from .inference import compile_nutpie, load_model_data, model_data_hash
    from .models import build_model
    from .spec import load_spec

    spec = load_spec(spec_path)
    model_data = load_model_data(spec, data, seed=seed)
    row = {"spec": str(spec_path), "model": spec.model, "backend": spec.sampler.backend,
           "data_sha256": model_data_hash(model_data), "seconds": None, "reused": False, "cached": False}
    if spec.sampler.backend == "nutpie":  # the others keep no compiled model between processes
        built = compile_nutpie(build_model(spec, model_data))
        row.update(seconds=round(built.seconds, 2), reused=built.reused, cached=built.cached)
    return row


def fit_run(spec_path: str | Path, *, data: str | None = None, seed: int = 20150601, quick: bool = False,
            out: str | Path = "reports/runs", progress: bool = True, reuse: bool = False,
            command: str | None = None) -> FitRun:
    """Sample a spec on its data, add predictive draws and summaries, and save a run folder.

    With ``reuse``, a complete run folder with the same spec hash, data hash, seed and sampler
    settings is loaded instead of refitting.
    """
    import pandas as pd

    from .inference import (add_predictive, capinno_contrast, coefficient_table, diagnose, level_points, load_model_data,
                            model_data_hash, parameter_names, sample, table5)
    from .models import build_model
    from .spec import load_spec
    from .store import load_run, package_versions, save_run

    spec = load_spec(spec_path)
    sampler = spec.quick if quick else spec.sampler
    model_data = load_model_data(spec, data, seed=seed)
    spec_sha, data_sha = spec.hash(), model_data_hash(model_data)
    folder = Path(out) / run_id(spec, data_sha, seed, quick)
    if reuse and (folder / "run.json").exists():
        try:
            _, record = load_run(folder, spec_hash=spec_sha, data_hash=data_sha)
        except Exception as exc:  # an interrupted or mismatched run is refitted, not trusted
            log.info("not reusing %s: %s", folder, exc)
        else:
            expected = RUN_TABLES if spec.has_outcome else ()
            if (record.get("sampler") == sampler.__dict__ and record.get("seed") == seed
                    and all((folder / f"{name}.csv").exists() for name in expected)):
                tables = {p.stem: pd.read_csv(p, comment="#") for p in folder.glob("*.csv")}
                return FitRun(folder, record, tables, record["diagnostics"], reused=True)
    model = build_model(spec, model_data)
    log.info("sampling %s: %d chains x %d draws (%s)", spec.model, sampler.chains, sampler.draws, sampler.backend)
    started = time.perf_counter()
    idata = sample(model, sampler, seed=seed, progress=progress)
    seconds = time.perf_counter() - started
    add_predictive(idata, model, spec, seed=seed)
    diagnostics = diagnose(idata, parameter_names(model)).to_dict()
    tables = {}
    if spec.has_outcome:
        tables["table5"] = table5(spec, idata, model_data)
        tables["table5_prior"] = table5(spec, idata, model_data, group="prior")
        tables["coefficients"] = coefficient_table(spec, idata, model_data)
        tables["capinno_contrast"] = capinno_contrast(spec, idata, model_data)
    record = {
        "run_id": folder.name, "model": spec.model, "description": spec.description, "spec": str(spec.source),
        "spec_sha256": spec_sha, "data": model_data.source, "data_sha256": data_sha,
        "data_provenance": model_data.provenance, "seed": seed, "sampler": sampler.__dict__,
        "sampling_seconds": round(seconds, 1), "compile_seconds": idata.attrs.get("compile_seconds"),
        "compile_cache_hit": bool(idata.attrs["compile_cache_hit"]) if "compile_cache_hit" in idata.attrs else None,
        "quick": quick,
        "priors": {k: v.describe() for k, v in spec.priors.items()},
        "capinno_levels": level_points(spec, idata, model_data) if spec.has_outcome else None,
        "diagnostics": diagnostics, "versions": package_versions(),
        "command": command if command is not None else "bayes-intl " + " ".join(sys.argv[1:]),
    }
    save_run(folder, idata=idata, tables=tables, record=record)
    return FitRun(folder, record, tables, diagnostics)


# --- the whole analysis -----------------------------------------------------------------------

@dataclass
class StageResult:
    name: str
    reused: bool
    seconds: float
    outputs: list[str]
    summary: str
    detail: dict = field(default_factory=dict)


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


def run_analysis(analysis: Analysis, *, quick: bool = False, out: str | Path | None = None,
                 progress: bool = True, on_stage=None) -> dict:
    """Run every stage in order and write the report; returns what was done and where it lies.

    ``on_stage(StageResult)`` is called as each stage ends (the CLI prints from it).
    """
    from tqdm.auto import tqdm

    out = Path(out or analysis.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = _Cache(out)
    code = code_hash()
    preset = analysis.quick_reconstruct if quick else analysis.reconstruct
    stages: list[StageResult] = []
    started = time.perf_counter()
    names = ["audit", "reconstruct", "survey", "baseline", *[f"fit {Path(m).stem}" for m in analysis.models],
             "compare", "report"]
    bar = tqdm(total=len(names), desc="analysis", unit="stage", disable=not progress)

    def stage(name: str, key: str, work):
        bar.set_postfix_str(name)
        hit = cache.hit(name, key)
        t0 = time.perf_counter()
        if hit:
            result = StageResult(name, True, 0.0, hit["outputs"], hit["summary"], hit.get("detail", {}))
        else:
            outputs, summary, detail = work()
            result = StageResult(name, False, time.perf_counter() - t0, [str(p) for p in outputs], summary, detail)
            cache.store(name, key, result.outputs, summary, detail)
        stages.append(result)
        bar.update(1)
        if on_stage:
            on_stage(result)
        return result

    audit = stage("audit", _key("audit", code), lambda: _stage_audit(out / "audit"))
    recon = stage("reconstruct", _key("reconstruct", code, preset, analysis.seed),
                  lambda: _stage_reconstruct(out / "reconstruct", preset, analysis.seed))
    table_csv = recon.detail["table"]
    table_sha = recon.detail["table_sha256"]
    survey = stage("survey", _key("survey", code, table_sha, analysis.seed),
                   lambda: _stage_survey(out / "survey", table_csv, analysis.seed))
    baseline = stage("baseline", _key("baseline", code, table_sha),
                     lambda: _stage_baseline(out / "baseline", table_csv))
    runs = []
    for spec_path in analysis.models:
        name = f"fit {Path(spec_path).stem}"
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        from .spec import load_spec

        spec = load_spec(spec_path)
        data = survey.detail["survey"] if spec.is_item_level else table_csv
        fit = fit_run(spec_path, data=data, seed=analysis.seed, quick=quick, out=out / "runs", progress=progress,
                      reuse=True, command=f"bayes-intl run {analysis.source}{' --quick' if quick else ''}")
        d = fit.diagnostics
        summary = (f"{'gate passed' if d['passed'] else 'gate MISSED'}: max R-hat {d['r_hat_max']:.3f}, "
                   f"min ESS {d['ess_bulk_min']:.0f}, {d['divergences']} divergences")
        result = StageResult(name, fit.reused, time.perf_counter() - t0, [str(fit.folder)], summary,
                             {"run": str(fit.folder), "passed": d["passed"]})
        stages.append(result)
        runs.append(fit.folder)
        bar.update(1)
        if on_stage:
            on_stage(result)
    run_keys = [json.loads((r / "run.json").read_text())["run_id"] for r in runs]
    stage("compare", _key("compare", code, run_keys), lambda: _stage_compare(out / "compare", runs))
    context = {"audit": audit.detail["json"], "reconstruction": recon.detail["json"],
               "baseline": baseline.detail["json"], "analysis": analysis.source, "quick": quick,
               "command": f"bayes-intl run {analysis.source}{' --quick' if quick else ''}"}
    report = stage("report", _key("report", code, run_keys, context),
                   lambda: _stage_report(out / "report", runs, context))
    bar.close()
    return {"analysis": analysis.source, "quick": quick, "out": str(out), "seconds": round(time.perf_counter() - started, 1),
            "report": report.detail["index"], "runs": [str(r) for r in runs],
            "stages": [{"name": s.name, "reused": s.reused, "seconds": round(s.seconds, 1), "summary": s.summary,
                        "outputs": s.outputs} for s in stages]}


def write_audit(folder: Path):
    """Run the audit and write ``audit.json`` (with the paper file's hash and package versions) and
    ``audit.md``; shared by ``bayes-intl audit`` and the analysis stage. Returns (result, payload)."""
    from .audit import run_audit
    from .paper import load_paper
    from .report import audit_markdown
    from .store import file_hash, package_versions, write_json, write_text

    result = run_audit(load_paper())
    payload = result.to_dict()
    paper_file = resources.files("bayes_intl").joinpath("data/paper.toml")
    payload["provenance"] = {"paper_figures_sha256": file_hash(str(paper_file)), "versions": package_versions()}
    payload["written"] = [str(write_json(folder / "audit.json", payload)),
                          str(write_text(folder / "audit.md", audit_markdown(result) + "\n"))]
    return result, payload


def write_baseline(data, folder: Path, *, formula: str | None = None):
    """Refit the logit on outcome data and write ``tables.csv``, ``comparison.csv`` and
    ``baseline.json`` (labelled with the data's provenance); shared by ``bayes-intl baseline`` and the
    analysis stage. Returns (fit, comparison, payload)."""
    from .baselines import PAPER_FORMULA, compare, fit_logit, fit_summary, published_tables
    from .data import data_hash
    from .store import package_versions, write_csv, write_json

    fit = fit_logit(data, formula=formula or PAPER_FORMULA)
    comparison = compare(published_tables(), fit.tables)
    note = f"data: {data.source} ({data.provenance})"
    written = [str(folder / "tables.csv"), str(folder / "comparison.csv"), str(folder / "baseline.json")]
    write_csv(folder / "tables.csv", fit.tables.assign(data_provenance=data.provenance), header_note=note)
    write_csv(folder / "comparison.csv", comparison.assign(data_provenance=data.provenance), header_note=note)
    payload = {"data": data.source, "data_provenance": data.provenance, "data_sha256": data_hash(data),
               "fit": fit_summary(fit), "comparison": comparison.to_dict(orient="records"),
               "versions": package_versions(), "written": written}
    write_json(folder / "baseline.json", payload)
    return fit, comparison, payload


def _stage_audit(folder: Path):
    result, payload = write_audit(folder)
    s = result.summary
    return payload["written"], (f"{s['consistent']} of {s['figures_checked']} checks consistent; inconsistent: "
                                f"{', '.join(s['inconsistent']) or 'none'}"), {"json": str(payload["written"][0])}


def _stage_reconstruct(folder: Path, preset: dict, seed: int):
    """Rerun the reconstruction search, or (``search = false``) take the shipped reconstruction."""
    from .baselines import compare, fit_logit, fit_summary, published_tables
    from .data import data_hash, default_data_path, load_default
    from .store import package_versions, write_csv, write_json

    shipped = load_default()
    meta = json.loads(resources.files("bayes_intl").joinpath("data/reconstruction.json").read_text())
    if preset["search"]:
        from .reconstruct import reconstruct

        found = reconstruct(seed=seed, chains=preset["chains"], steps=preset["steps"], polish=preset["polish"])
        table, k, how = found.best.table(), found.best.k, f"search rerun here in {found.seconds:.0f} s"
        settings = found.settings
    else:
        table, k, how = shipped, meta["k"], f"shipped reconstruction ({default_data_path().name}); search not rerun"
        settings = meta["settings"]
    same = table.cells[["size", "capinno", "activity", "n", "y"]].reset_index(drop=True).equals(
        shipped.cells[["size", "capinno", "activity", "n", "y"]].reset_index(drop=True))
    fit = fit_logit(table)
    comparison = compare(published_tables(), fit.tables)
    refit = comparison[comparison["table"].isin(["Table 3", "Table 4"])]
    csv = write_csv(folder / "best_table.csv", table.cells.assign(data_provenance=table.provenance))
    payload = {"k": k, "how": how, "settings": settings, "seed": seed, "same_as_shipped": bool(same),
               "shipped_k": meta["k"], "table": table.cells.to_dict(orient="records"), "refit": fit_summary(fit),
               "refit_vs_published": refit.to_dict(orient="records"), "data_provenance": table.provenance,
               "ensemble_within": meta.get("within", {}), "distinct_designs_scored": meta.get("distinct_designs_scored"),
               "versions": package_versions()}
    js = write_json(folder / "reconstruction.json", payload)
    printed_same = int(refit["same_when_printed"].sum())
    summary = (f"k = {k:.2f} ({how}); refit prints {printed_same} of {len(refit)} Table 3-4 figures identically; "
               f"{'identical to' if same else 'differs from'} the shipped table")
    return [csv, js], summary, {"table": str(csv), "json": str(js), "table_sha256": data_hash(table)}


def _stage_survey(folder: Path, table_csv: str, seed: int):
    from .data import read_outcome_data
    from .simulate import codebook_toml, simulate_survey
    from .store import write_frame, write_json, write_text

    survey = simulate_survey(read_outcome_data(table_csv), seed=seed)
    csv = write_frame(folder / "survey.csv", survey.frame)
    book = write_text(folder / "codebook.toml", codebook_toml())
    truth = write_json(folder / "truth.json", survey.truth)
    return ([csv, book, truth], f"{len(survey.frame)} firms, SYNTHETIC item-level survey (seed {seed})",
            {"survey": str(csv)})


def _stage_baseline(folder: Path, table_csv: str):
    from .data import read_outcome_data

    _, comparison, payload = write_baseline(read_outcome_data(table_csv), folder)
    same = int(comparison["same_when_printed"].sum())
    return payload["written"], f"{same} of {len(comparison)} published figures printed identically by the refit", \
        {"json": payload["written"][2]}


def _stage_compare(folder: Path, runs: list[Path]):
    from .inference import compare_groups
    from .store import load_run, write_csv

    loaded = {}
    for folder_ in runs:
        idata, record = load_run(folder_)
        loaded[record["run_id"]] = idata
    frame = compare_groups(loaded)
    csv = write_csv(folder / "loo.csv", frame)
    best = frame.sort_values("rank").groupby("outcome_data").head(1)
    return [csv], "best by PSIS-LOO: " + ", ".join(best["run"]), {"csv": str(csv)}


def _stage_report(folder: Path, runs: list[Path], context: dict):
    written = report_runs(runs, folder, context=context)
    return written.files, f"{len(written.sections)} sections, {written.figures} figures", {"index": str(written.index)}


def report_runs(runs: list[str | Path], out: str | Path, *, context: dict | None = None, seed: int = 20150601):
    """Write the report for saved runs. Without a pipeline context, the audit, the shipped
    reconstruction and the frequentist refit are recomputed (seconds) into ``out/inputs``."""
    from .report import write_report

    out = Path(out)
    if context is None:
        inputs = out / "inputs"
        audit = _stage_audit(inputs / "audit")[2]
        recon = _stage_reconstruct(inputs / "reconstruct", {"search": False}, seed)[2]
        baseline = _stage_baseline(inputs / "baseline", recon["table"])[2]
        context = {"audit": audit["json"], "reconstruction": recon["json"], "baseline": baseline["json"],
                   "command": "bayes-intl report " + " ".join(map(str, runs))}
    return write_report(runs, out, context=context)
