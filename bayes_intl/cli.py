"""The `bayes-intl` command line: parses arguments, calls the same functions as the analysis stages, prints.

This is the only module that prints.

Every command takes ``--json`` and then prints one JSON object on stdout instead of tables.
Errors the user can fix print one line on stderr and exit with the error's code (2 for bad
input data, 3 for a bad specification); exit 1 means the command failed to run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import BayesIntlError, library_warnings

log = logging.getLogger("bayes_intl")


_JSON_STREAM = None  # the real stdout while a --json command runs with file descriptor 1 sent to stderr


def _emit_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v)),
          file=_JSON_STREAM or sys.stdout, flush=True)


@contextmanager
def _json_only_stdout(enabled: bool):
    """With --json, stdout carries the JSON alone: whatever else reaches file descriptor 1 while the
    command runs (a solver's C-level messages, worker processes' prints) goes to stderr instead."""
    global _JSON_STREAM
    try:
        real = enabled and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # stdout replaced (captured, redirected in-process)
        real = False
    if not real:
        yield
        return
    from .store import stdout_fd_redirected

    with stdout_fd_redirected(2) as stdout:
        _JSON_STREAM = os.fdopen(os.dup(stdout), "w")
        try:
            yield
        finally:
            _JSON_STREAM.close()
            _JSON_STREAM = None


def cmd_audit(args) -> int:
    from .audit import AUDIT_HEADERS, JOINT_HEADERS, audit_rows, joint_rows
    from .pipeline import write_audit
    from .render import text_table

    out = Path(args.out)
    result, payload = write_audit(out, args.study)
    if args.json:
        _emit_json(payload)
        return 0
    s = result.summary
    print(f"Audit of the published figures of {payload['study']['title']} ({payload['study']['id']}; each printed "
          "value read as the interval its rounding allows)\n")
    print(text_table(AUDIT_HEADERS, audit_rows(result.records)))
    print(f"\n{s['consistent']} of {s['figures_checked']} checks consistent; "
          f"inconsistent: {', '.join(s['inconsistent']) or 'none'}\n")
    for region in result.joint:
        state = "non-empty (consistent once rounding is accounted for)" if region.feasible else "EMPTY (contradiction)"
        print(f"Joint region, {region.model} ({region.note}): {state}")
        print(text_table(JOINT_HEADERS, joint_rows(region), max_width=110) + "\n")
    print(f"Written: {out / 'audit.md'}, {out / 'audit.json'}")
    return 0


def cmd_baseline(args) -> int:
    from .data import load_default, read_outcome_data
    from .pipeline import write_baseline
    from .render import fmt, text_table

    if args.study:
        from .data import read_study_data
        from .study import load_study

        data = read_study_data(load_study(args.study), args.data)
    else:
        data = read_outcome_data(args.data) if args.data else load_default()
    fit, comparison, payload = write_baseline(data, Path(args.out), formula=args.formula, study=args.study)
    if args.json:
        _emit_json(payload)
        return 0
    print(f"Frequentist logit refit (statsmodels), {fit.formula}")
    print(f"Data: {data.source}\n      {data.provenance.upper()}; {fit.n_firms} cases\n")
    rows = [[r.id, r.row, r.column, fmt(r.published, 3), fmt(r.refit, 3), fmt(r.difference, 3),
             "same" if r.same_when_printed else "differs"] for r in comparison.itertuples()]
    print(text_table(["figure", "row", "column", "published", "refit", "difference", "when printed"], rows))
    same = int(comparison["same_when_printed"].sum())
    print(f"\n{same} of {len(comparison)} published figures printed identically by the refit; "
          f"-2LL = {fit.minus2ll:.3f} (not printed in the paper)")
    for note in fit.notes:
        print(f"Warning: {note}")
    print(f"Written: {', '.join(payload['written'])}")
    return 0


def cmd_reconstruct(args) -> int:
    from .pipeline import write_reconstruction
    from .render import fmt, text_table

    payload = write_reconstruction(Path(args.out), search=not args.shipped, seed=args.seed, starts=args.starts,
                                   rounds=args.rounds, solutions=args.solutions, firms=args.firms, study=args.study)
    if args.json:
        _emit_json(payload)
        return 0
    k = payload["k"]
    print(f"{payload['data_provenance']}\nBest cell table (k = {k:.2f}: every B and SE within {k * 0.0005:.4f} of "
          f"the published coefficients): {payload['how']}, seed {payload['seed']}\n")
    columns = list(payload["table"][0])
    print(text_table(columns, [[str(row[c]) for c in columns] for row in payload["table"]]))
    print("\nRefit beside the published classification table and coefficients")
    print(text_table(["figure", "published", "refit", "difference", "when printed"],
                     [[r["id"], fmt(r["published"], 3), fmt(r["refit"], 4), fmt(r["difference"], 4),
                       "same" if r["same_when_printed"] else "differs"] for r in payload["refit_vs_published"]]))
    print(f"\nDistinct designs scored: {payload['distinct_designs_scored']}; within "
          + ", ".join(f"{key}: {val}" for key, val in payload["within"].items()))
    print(f"Ensemble: {payload['ensemble_members']} distinct designs with k <= {payload['settings']['ensemble_k']}; "
          f"{'identical to' if payload['same_as_shipped'] else 'differs from'} the shipped table")
    print("Written: " + ", ".join(payload["written"]))
    return 0


def cmd_simulate(args) -> int:
    from .data import load_default, read_outcome_data, read_study_data
    from .errors import SpecError
    from .pipeline import write_survey
    from .study import load_study

    if args.study and not args.frame:
        study = load_study(args.study)
        names = [p.name for p in study.predictors]
        if sorted(names) != ["activity", "capinno", "size"]:
            raise SpecError(f"study {study.source}: the synthetic survey simulates the items behind CAPINNO for firms "
                            f"with size, capinno and activity; study '{study.id}' has {', '.join(names)}, and no "
                            "item-level construct to simulate")
        frame = read_study_data(study)
    else:
        frame = read_outcome_data(args.frame) if args.frame else load_default()
    payload = write_survey(frame, Path(args.out), seed=args.seed)
    if args.json:
        _emit_json(payload)
        return 0
    print(f"{payload['data_provenance']}\n{payload['firms']} firms x {payload['items']} items from {frame.source} "
          f"(seed {payload['seed']}); every firm's CAPINNO band, recomputed from its items, equals the frame's.")
    print("Written: " + ", ".join(payload["written"]))
    return 0


def _print_outcome_tables(run) -> None:
    from .render import fmt, text_table
    from .summaries import table5_labels

    coef, design = run.coefficients, run.data.design
    paper = bool(coef["paper_b"].notna().any())  # the study's printed figures stand beside the posterior
    interval = lambda lo, hi: f"[{fmt(lo, 2)}, {fmt(hi, 2)}]" if fmt(lo) or fmt(hi) else ""  # noqa: E731 (none: no MLE)
    print("Coefficients (log-odds): " + ("paper 95% CI, " if paper else "") + "MLE 95% CI, posterior mean and 94% HDI")
    print(text_table(["term", *(["paper B", "paper CI"] if paper else []), "MLE B", "MLE CI", "posterior", "94% HDI"], [
        [r.term, *([fmt(r.paper_b, 3), interval(r.paper_ci_low, r.paper_ci_high)] if paper else []), fmt(r.mle_b, 3),
         interval(r.mle_ci_low, r.mle_ci_high), fmt(r.post_mean, 3), interval(r.hdi_low, r.hdi_high)]
        for r in coef[coef.scale == "log-odds"].itertuples()]))
    labels = table5_labels(run.table5)
    print(f"\nTable 5, posterior predictive: P({design.outcome_label}), 94% HDI, P(p > 0.5)")
    print(text_table([*labels, *(["paper"] if paper else []), "MLE", "posterior", "94% HDI", "P(p>0.5)"], [
        [*(str(r[c]) for c in labels), *([fmt(r["paper"], 2)] if paper else []), fmt(r["mle"], 3), fmt(r["mean"], 3),
         interval(r["hdi_low"], r["hdi_high"]), fmt(r["p_above_half"], 2)] for _, r in run.table5.iterrows()]))
    prior = run.tables["table5_prior"]
    width = float((prior["hdi_high"] - prior["hdi_low"]).mean())
    verdict = ("wide: the posterior Table 5 is the data's doing" if width > 0.5
               else "narrow: the priors, not only the data, shape Table 5")
    print(f"Prior predictive check: before the data, each Table 5 cell's 94% interval is on average "
          f"{fmt(width, 2)} wide (table5_prior.csv); {verdict}.")


def cmd_fit(args) -> int:
    from .render import gate_lines, survey_line
    from .runs import fit

    if args.ensemble:
        return _fit_ensemble(args)
    run = fit(args.spec, data=args.data, seed=args.seed, quick=args.quick, out=args.out, progress=not args.json,
              study=args.study)
    record, d = run.record, run.diagnostics
    outcome = run.entry.outcome
    if args.json:
        _emit_json({"run": str(run.folder), "diagnostics": d,
                    "coefficients": run.coefficients.to_dict(orient="records") if outcome else [],
                    "table5": run.table5.to_dict(orient="records") if outcome else [],
                    "priors": record["priors"], "data_provenance": record["data_provenance"],
                    "design": record["design"], "survey": record["survey"],
                    "chi_square_ppp": record["chi_square_ppp"], "item_ppc_overall": record["item_ppc_overall"]})
        return 1 if (args.strict and not d["passed"]) else 0
    sampler = record["sampler"]
    print(f"{run.spec.model}: {run.spec.description}\nData: {record['data']} ({record['data_provenance']})")
    print("Priors: " + "; ".join(f"{k} ~ {v}" for k, v in record["priors"].items()))
    print(f"Sampler: {sampler['backend']}, {sampler['chains']} chains x {sampler['draws']} draws "
          f"({sampler['tune']} tuning), {record['sampling_seconds']:.1f} s\n")
    survey = record.get("survey")
    if survey:
        print(survey_line(survey))
    if outcome:
        _print_outcome_tables(run)
    if run.entry.item_level:
        from .summaries import measurement_fit_lines

        print("Fit of the measurement model:\n" + "\n".join(f"  {line}" for line in measurement_fit_lines(record)))
    print("\n" + "\n".join(gate_lines(d)))
    print(f"Written: {run.folder}/ (posterior.nc, run.json, " + ", ".join(f"{n}.csv" for n in run.tables) + ")")
    return 1 if (args.strict and not d["passed"]) else 0


def cmd_compile(args) -> int:
    from .pipeline import compile_spec

    rows = []
    for spec in args.specs:
        row = compile_spec(spec, data=args.data, seed=args.seed)
        rows.append(row)
        if not args.json:
            if row["seconds"] is None:
                print(f"{row['model']}: backend {row['backend']} keeps no compiled model between runs; nothing to do")
            else:
                how = ("reused from the compile cache" if row["reused"] else "compiled and cached" if row["cached"]
                       else "compiled; this model cannot be cached, so each fit compiles it again")
                print(f"{row['model']}: {how} in {row['seconds']:.1f} s ({row['spec']})")
    if args.json:
        _emit_json({"compiled": rows})
    return 0


def _fit_ensemble(args) -> int:
    from .render import fmt, text_table
    from .runs import fit_ensemble

    run = fit_ensemble(args.spec, seed=args.seed, members=args.members, quick=args.quick, out=args.out,
                       progress=not args.json, study=args.study)
    coef, cells, n = run.coefficients, run.table5, run.record["members"]
    if args.json:
        _emit_json({"run": str(run.folder), "coefficients": coef.to_dict(orient="records"),
                    "table5": cells.to_dict(orient="records"), "members": n})
        return 0
    print(f"{run.spec.model} across {n} reconstructions ({run.record['data_provenance']})\n")
    print("Coefficients: pooled posterior, and how much of the spread is the reconstruction's")
    print(text_table(["term", "pooled mean", "94% HDI", "between-reconstruction SD", "within-posterior SD",
                      "Monte Carlo SD", "member means"], [
        [r.term, fmt(r.pooled_mean, 3), f"[{fmt(r.hdi_low, 2)}, {fmt(r.hdi_high, 2)}]", fmt(r.between_sd, 3),
         fmt(r.within_sd, 3), fmt(r.mc_sd, 3), f"{fmt(r.member_mean_min, 2)} .. {fmt(r.member_mean_max, 2)}"]
        for r in coef.itertuples()]))
    print("(Monte Carlo SD: how far members' means would differ from sampling noise alone.)")
    print(f"\nPredicted-probability cells: pooled P({run.record['outcome']}) with between- and within-spread")
    print(text_table(["cell", "pooled mean", "94% HDI", "between SD", "within SD"], [
        [r.id, fmt(r.pooled_mean, 3), f"[{fmt(r.hdi_low, 2)}, {fmt(r.hdi_high, 2)}]", fmt(r.between_sd, 3),
         fmt(r.within_sd, 3)] for r in cells.itertuples()]))
    print(f"Written: {run.folder}/ (ensemble_coefficients.csv, ensemble_table5.csv, run.json)")
    return 0


def cmd_compare(args) -> int:
    from .api import fitted_runs
    from .pipeline import write_comparison
    from .render import fmt, text_table

    out = Path(args.out)
    frame, payload = write_comparison(fitted_runs(args.runs, outcome=True), out)
    if args.json:
        _emit_json(payload)
        return 0
    print("Model comparison, PSIS-LOO on the outcome (internationalized) only; higher elpd is better")
    print(text_table(["outcome data", "run", "rank", "elpd_loo", "SE", "elpd diff", "diff SE", "p_loo", "max Pareto k",
                      "k > 0.7"], [
        [r.outcome_data, r.run, str(r.rank), fmt(r.elpd_loo, 2), fmt(r.se, 2), fmt(r.elpd_diff, 2), fmt(r.dse, 2),
         fmt(r.p_loo, 2), fmt(r.pareto_k_max, 2), str(r.pareto_k_over_0_7)] for r in frame.itertuples()], max_width=80))
    print("A difference smaller than about twice its SE is not a difference. Pareto k > 0.7 marks firms whose "
          "influence makes that firm's LOO estimate unreliable. Runs fitted to different outcome data are ranked "
          "separately (outcome data).")
    print("Written: " + ", ".join(payload["written"]))
    return 0


def cmd_run(args) -> int:
    from .pipeline import check_modes, run_analysis
    from .spec import load_analysis

    analysis = load_analysis(args.analysis)
    check_modes(args.quick, args.full)

    def on_stage(stage) -> None:
        if args.json:
            return
        state = "reused (inputs unchanged)" if stage.reused else f"{stage.seconds:.1f} s"
        print(f"[{stage.name}] {state}: {stage.summary}", flush=True)

    if not args.json:
        what = (f"study {args.study} with the models of {analysis.source}" if args.study
                else analysis.description or analysis.source)
        print(f"Re-analysis: {what}{' (--quick preset)' if args.quick else ' (--full ensemble)' if args.full else ''}")
    result = run_analysis(analysis, quick=args.quick, full=args.full, search=True if args.search else None, out=args.out,
                          progress=not args.json, on_stage=on_stage, study=args.study)
    if args.json:
        _emit_json(result)
        return 0
    for line in result["models_skipped"]:
        print(f"Skipped: {line}")
    reused = sum(s["reused"] for s in result["stages"])
    print(f"\nDone in {result['seconds']:.0f} s ({reused} of {len(result['stages'])} stages reused from the cache).")
    print(f"Report: {result['report']}  (also report.md, tables/*.csv, figures/*.png beside it)")
    return 0


def cmd_report(args) -> int:
    from .api import report

    written = report(args.runs, out=args.out, command="bayes-intl report " + " ".join(map(str, args.runs)),
                     study=args.study)
    payload = {"index": str(written.index), "sections": written.sections, "figures": written.figures,
               "written": [str(p) for p in written.files]}
    if args.json:
        _emit_json(payload)
        return 0
    print(f"Report of {len(args.runs)} run(s): {len(written.sections)} sections, {written.figures} figures")
    print(f"Written: {written.index} (open it in a browser), {Path(written.index).parent / 'report.md'}, tables/, figures/")
    return 0


def cmd_sbc(args) -> int:
    import io
    import time

    from . import plots
    from .calibration import SBC_BINS, SBC_RANK_DRAWS, SBCSettings, run_sbc
    from .render import fmt, text_table
    from .spec import load_spec
    from .store import package_versions, write_bytes, write_csv, write_json

    spec = load_spec(args.spec)
    settings = SBCSettings(sims=args.sims, chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed,
                           target_accept=args.target_accept)
    started = time.perf_counter()
    ranks, tests = run_sbc(args.spec, settings, data_path=args.data, jobs=args.jobs, scheduler=args.scheduler)
    seconds = time.perf_counter() - started
    out = Path(args.out) / spec.model
    note = f"SIMULATED data: {settings.sims} data sets drawn from the prior of {spec.model} (not the real survey)"
    written = [write_csv(out / "ranks.csv", ranks, header_note=note), write_csv(out / "uniformity.csv", tests, header_note=note)]
    for name, figure in (("ranks", plots.sbc_histograms(ranks, SBC_RANK_DRAWS, SBC_BINS, f"{spec.model}: SBC rank histograms")),
                         ("ecdf", plots.sbc_ecdf_difference(ranks, SBC_RANK_DRAWS, f"{spec.model}: SBC ECDF difference"))):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        written.append(write_bytes(out / f"{name}.png", buffer.getvalue()))
    rejected = tests.loc[tests["rejected_at_1pct"], "parameter"].tolist()
    rejected_holm = tests.loc[tests["rejected_at_1pct_holm"], "parameter"].tolist()
    payload = {"model": spec.model, "spec": args.spec, "spec_sha256": spec.hash(), "settings": settings.__dict__,
               "rank_draws": SBC_RANK_DRAWS, "bins": SBC_BINS, "uniformity": tests.to_dict(orient="records"),
               "rejected_at_1pct": rejected, "rejected_at_1pct_holm": rejected_holm, "divergent_fits": int((ranks.groupby("sim")["divergences"].first() > 0).sum()),
               "failed_fits": int((ranks.groupby("sim")["rank"].first() < 0).sum()), "seconds": round(seconds, 1),
               "versions": package_versions(), "written": [str(p) for p in written] + [str(out / "sbc.json")]}
    write_json(out / "sbc.json", payload)
    if args.json:
        _emit_json(payload)
        return 0
    print(f"Simulation-based calibration of {spec.model}: {settings.sims} simulations from the prior, each fitted "
          f"({settings.chains} chain x {settings.draws} draws); rank of the truth among {SBC_RANK_DRAWS} thinned draws\n")
    print(text_table(["parameter", "chi-square", "p-value", "Holm p", "mean rank", "verdict"], [
        [r.parameter, fmt(r.chi2, 1), fmt(r.p_value, 3), fmt(r.p_holm, 3), fmt(r.mean_rank, 1),
         "REJECTED at 1%" if r.rejected_at_1pct else "uniform"] for r in tests.itertuples()]))
    print(f"\nUniform ranks (expected mean {SBC_RANK_DRAWS / 2:.0f}) mean the model's posterior is calibrated: its "
          "intervals hold the truth as often as they claim. Rejected: " + (", ".join(rejected) or "none")
          + "; after Holm's adjustment for testing many parameters: " + (", ".join(rejected_holm) or "none") + ".")
    print(f"Fits with divergences: {payload['divergent_fits']} of {settings.sims}; fits that could not start: "
          f"{payload['failed_fits']}; {seconds:.0f} s")
    print(f"Written: {out}/ (ranks.csv, uniformity.csv, ranks.png, ecdf.png, sbc.json)")
    return 0


DESCRIPTION = """Bayesian re-analysis of a published logistic regression: audit its printed figures, reconstruct
data consistent with its tables, fit Bayesian models and report them beside the paper."""
EPILOG = """Start with:  bayes-intl run --quick      (the whole re-analysis in about a minute; the report's path at the end)
Then:        bayes-intl fit models/paper_logit.toml   (one model, with the paper's and the MLE's numbers beside it)
Each command's options:  bayes-intl COMMAND --help.  Every command takes --json for machine-readable output.
Exit codes: 0 done, 1 failed to run, 2 bad data values, 3 bad specification file, 4 unreadable file,
5 file too large, 6 data and codebook disagree, 130 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-intl", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bayes-intl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show progress messages and the libraries' own warnings on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    _data_commands(sub)
    _model_commands(sub)
    return parser


def _study_argument(p) -> None:
    p.add_argument("--study", default=None, metavar="FILE",
                   help="a study file (TOML) or a shipped study's name (default: sonora, the source paper)")


def _data_commands(sub) -> None:
    """The commands about the paper and its data: audit, baseline, reconstruct, simulate."""
    p = sub.add_parser("audit", help="recompute every derivable published figure, rounding-aware")
    _study_argument(p)
    p.add_argument("--out", default="reports/audit", help="output folder (default: reports/audit)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("baseline", help="SPSS-style frequentist logit refit (Tables 2-5) beside the paper")
    p.add_argument("--data", help="firm rows or cell counts (.csv/.parquet); default: the embedded reconstruction")
    _study_argument(p)
    p.add_argument("--formula", default=None,
                   help="logit formula (default: the study's; e.g. 'internationalized ~ capinno + activity + "
                        "C(size)' for size as dummies)")
    p.add_argument("--out", default="reports/baseline", help="output folder (default: reports/baseline)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("reconstruct", help="reconstruct cell tables consistent with the published classification "
                                           "table, coefficients and margins")
    _study_argument(p)
    p.add_argument("--seed", type=int, default=20150601, help="random seed (default: 20150601)")
    p.add_argument("--starts", type=int, default=24, help="start designs matched to the printed SEs (default: 24)")
    p.add_argument("--rounds", type=int, default=6, help="rounds of lattice search around the best (default: 6)")
    p.add_argument("--solutions", type=int, default=10000,
                   help="lattice points enumerated around each design (default: 10000)")
    p.add_argument("--firms", action="store_true", help="also write the best table expanded to firm rows")
    p.add_argument("--shipped", action="store_true",
                   help="do not search: check the shipped reconstruction by refitting it (seconds)")
    p.add_argument("--out", default="reports/reconstruct", help="output folder (default: reports/reconstruct)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("simulate", help="synthesize an item-level survey (csv, parquet, sav) behind CAPINNO")
    _study_argument(p)
    p.add_argument("--frame", help="firm rows or cell counts to simulate for; default: the embedded reconstruction")
    p.add_argument("--seed", type=int, default=20150601, help="random seed (default: 20150601)")
    p.add_argument("--out", default="reports/simulate", help="output folder (default: reports/simulate)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_simulate)


def _model_commands(sub) -> None:
    """The commands about models and runs: fit, compile, compare, sbc, run, report."""
    p = sub.add_parser("fit", help="sample a model spec (models/*.toml) and write a run folder")
    p.add_argument("spec", help="a model specification, e.g. models/paper_logit.toml")
    p.add_argument("--study", default=None, metavar="FILE",
                   help="fit the spec's model with a study's predictors on its reconstruction (a study file or a "
                        "shipped study's name, e.g. titanic)")
    p.add_argument("--data", help="data file (default: what the spec names, or the study's reconstruction)")
    p.add_argument("--seed", type=int, default=20150601, help="one seed for prior, posterior and predictive draws")
    p.add_argument("--quick", action="store_true", help="the spec's [quick] sampler settings, for a first look")
    p.add_argument("--strict", action="store_true", help="exit 1 when the diagnostic gate is missed")
    p.add_argument("--ensemble", action="store_true",
                   help="fit across the reconstruction ensemble and split the spread into between- and within-")
    p.add_argument("--members", type=int, default=None, help="with --ensemble: the best N members (default: all)")
    p.add_argument("--out", default="reports/runs", help="where run folders go (default: reports/runs)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("compile", help="compile model specs on their data ahead of the first fit (make does this)")
    p.add_argument("specs", nargs="+", help="model specifications, e.g. models/latent_factor.toml")
    p.add_argument("--data", help="data file (default: what each spec names)")
    p.add_argument("--seed", type=int, default=20150601, help="seed of a synthetic survey (default: 20150601)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("compare", help="PSIS-LOO comparison of saved runs on the same outcome data")
    p.add_argument("runs", nargs="+", help="run folders written by bayes-intl fit")
    p.add_argument("--out", default="reports/compare", help="output folder (default: reports/compare)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sbc", help="simulation-based calibration: simulate from the prior, fit, rank the truth")
    p.add_argument("spec", help="a model specification, e.g. models/paper_logit.toml")
    p.add_argument("--sims", type=int, default=200, help="simulated data sets (default: 200)")
    p.add_argument("--chains", type=int, default=1, help="chains per fit (default: 1)")
    p.add_argument("--draws", type=int, default=500, help="draws per chain (default: 500; thinned to 100)")
    p.add_argument("--tune", type=int, default=500, help="tuning steps per chain (default: 500)")
    p.add_argument("--target-accept", type=float, default=0.9, help="NUTS target acceptance rate (default: 0.9)")
    p.add_argument("--seed", type=int, default=20150601, help="seed of the prior draws; fit i uses seed + 1 + i")
    p.add_argument("--data", help="data whose shape the simulations take (default: what the spec names)")
    p.add_argument("--jobs", type=int, default=2, help="local worker processes (default: 2)")
    p.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786): run the fits on that cluster")
    p.add_argument("--out", default="reports/sbc", help="output folder (default: reports/sbc)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_sbc)

    p = sub.add_parser("run", help="the whole re-analysis: audit -> reconstruct -> survey -> refit -> models -> report")
    p.add_argument("analysis", nargs="?", default="models/analysis.toml",
                   help="an analysis specification (default: models/analysis.toml)")
    _study_argument(p)
    p.add_argument("--quick", action="store_true", help="the quick preset: shipped reconstruction, short sampling")
    p.add_argument("--full", action="store_true", help="the ensemble stages at their full_members: every model of "
                   "[[ensemble]] on its stated share of the reconstructions (make analysis FULL=1; about an hour)")
    p.add_argument("--search", action="store_true",
                   help="rerun the reconstruction search (about 20 seconds on 2 cores for the Sonora study) instead of checking the shipped one")
    p.add_argument("--out", default=None, help="output folder (default: the analysis file's 'out'; for another "
                   "study, that with _<study id> appended)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write index.html, report.md and CSV tables for saved runs")
    p.add_argument("runs", nargs="+", help="run folders written by bayes-intl fit or run")
    p.add_argument("--study", default=None, metavar="FILE",
                   help="the study the runs were fitted on (default: read from the runs; refused if they differ)")
    p.add_argument("--out", default="reports/report", help="output folder (default: reports/report)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=cmd_report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _json_only_stdout(getattr(args, "json", False)), library_warnings(shown=args.verbose):
            return args.func(args)
    except BayesIntlError as exc:
        print(f"bayes-intl {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"bayes-intl {args.command}: interrupted; files already written are intact and nothing half-written "
              "was kept or marked complete", file=sys.stderr)
        return 130
    except Exception as exc:  # a fault of this program, not of the input: one line, the traceback under -v
        if args.verbose:
            raise
        message = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"bayes-intl {args.command}: internal error ({type(exc).__name__}: {message}); files already written "
              "are intact; rerun with -v for the details and please report it", file=sys.stderr)
        return 70
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run() -> int:
    """The console command: ``main``, then a quick exit: with every file written and closed, the libraries'
    objects are frozen out of the interpreter's last garbage collection (1.3 s after a fit, benchmarks/results.md).
    ``main`` leaves the collector alone: tests and scripts call it in a process that goes on."""
    import gc

    code = main()
    gc.freeze()
    return code


def _interrupt(signum, frame):
    """Ctrl-C and SIGTERM unwind the same way, so temporary files and folders are removed on the way
    out; the flag stops work that swallows KeyboardInterrupt (nutpie keeps partial draws)."""
    from .errors import INTERRUPTED

    INTERRUPTED.set()
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
