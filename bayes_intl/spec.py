"""Model specifications: TOML files in ``models/`` parsed into frozen dataclasses.

A spec names a model from a closed set, its outcome predictors and their coding, its priors
(from a closed set of distributions: no string from a file is ever evaluated) and its sampler
settings. Unknown keys are refused with a "did you mean ...?" hint; defaults are merged as
``defaults | user``. The analysis file (``models/analysis.toml``: which specs, seed and ensembles
``bayes-intl run`` takes) is read here the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecError

CODINGS = ("linear", "categorical")
BACKENDS = ("nutpie", "pymc", "numpyro")
# The closed set of prior distributions and the parameters each takes.
DISTRIBUTIONS = {
    "Normal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "StudentT": ("nu", "mu", "sigma"),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "LKJ": ("eta",),
}
TOP_KEYS = {"schema_version", "model", "description", "data", "outcome", "hierarchy", "measurement", "priors",
            "sampler", "quick"}
SAMPLER_KEYS = {"backend", "chains", "draws", "tune", "target_accept", "mass_matrix"}
# population: each group's intercept and varying slopes deviate from a population mean (``intercept``, ``slope``);
# zero_sum: the deviations sum to zero over the groups, so ``intercept`` and ``slope`` are the groups' average
# (effect coding). The same prior on every contrast between groups; benchmarks/scaling.md for when each samples well.
DEVIATIONS = ("population", "zero_sum")
MASS_MATRICES = ("diagonal", "low_rank")  # low_rank: nutpie's low-rank modified mass matrix, for correlated posteriors
DEFAULT_SAMPLER = {"backend": "nutpie", "chains": 4, "draws": 1000, "tune": 1000, "target_accept": 0.9,
                   "mass_matrix": "diagonal"}
DEFAULT_QUICK = {"chains": 2, "draws": 300, "tune": 300}
PAPER_PREDICTORS = [{"name": "capinno", "coding": "linear"}, {"name": "activity", "coding": "linear"},
                    {"name": "size", "coding": "linear"}]
@dataclass(frozen=True)
class Prior:
    dist: str
    params: tuple[tuple[str, float], ...]

    def kwargs(self) -> dict[str, float]:
        return dict(self.params)

    def describe(self) -> str:
        return f"{self.dist}({', '.join(f'{k}={v:g}' for k, v in self.params)})"


@dataclass(frozen=True)
class Predictor:
    name: str
    coding: str = "linear"  # linear: the code as a number; categorical: dummies against level 0


@dataclass(frozen=True)
class Sampler:
    backend: str
    chains: int
    draws: int
    tune: int
    target_accept: float
    mass_matrix: str = "diagonal"


@dataclass(frozen=True)
class Spec:
    model: str
    description: str
    data_source: str  # "reconstruction", "synthetic" or a file path
    codebook: str  # for survey files; "" = the synthetic survey's codebook
    predictors: tuple[Predictor, ...]
    interactions: tuple[tuple[str, ...], ...]
    group: str  # grouping variable of the hierarchical outcome ("activity": the sector)
    varying: tuple[str, ...]  # slopes that vary by group
    municipality: bool
    structure: str  # measurement: "second_order" or "correlated"
    priors: dict[str, Prior]
    sampler: Sampler
    quick: Sampler
    source: str = "<spec>"
    raw: dict = field(default_factory=dict, compare=False, repr=False)
    banded: str = "capinno"  # the predictor read at the model's own levels (a study's banded index)
    deviations: str = "population"  # group deviations around a population mean, or "zero_sum" (effect coding)

    def factor_structure(self, n_dimensions: int) -> str:
        """The measurement model's factor structure for a survey of ``n_dimensions``: "single" (one dimension: one
        factor, whatever ``structure`` says), "second_order" or "correlated"."""
        return "single" if n_dimensions == 1 else self.structure

    @property
    def entry(self):
        """The model's registry entry (registry.ModelEntry): everything the code knows about the model."""
        from .registry import REGISTRY

        return REGISTRY[self.model]

    def with_sampler(self, changes: dict, *, quick: bool = False) -> "Spec":
        """This spec with some [sampler] (or [quick]) settings changed, checked as in a spec file."""
        import dataclasses

        base = self.quick if quick else self.sampler
        where = "[quick]" if quick else "[sampler]"
        sampler = _sampler(dict(changes), base.__dict__, f"{where} (changed)", self.source)
        return dataclasses.replace(self, **{"quick" if quick else "sampler": sampler})

    def for_study(self, study) -> "Spec":
        """This spec with a study's predictors, coded as the study's paper coded them, as its outcome predictors.

        Refuses in one line a model the study cannot feed: an item-level model (a study publishes no
        items), a banded-index model without that banded predictor, a grouping the study does not declare.
        """
        import copy
        import dataclasses

        where = f"spec {self.source} ({self.model}) with study {study.id}"
        if self.entry.item_level:
            raise SpecError(f"{where}: an item-level model needs a survey, and a study publishes only its tables; "
                            "fit it on a survey file with a codebook instead")
        names = {p.name: p for p in study.predictors}
        banded = [p.name for p in study.predictors if p.banded and p.coding == "linear"]
        if self.entry.banded_predictor and len(banded) != 1:
            raise SpecError(f"{where}: this model reads one predictor as a banded index, and the study declares "
                            f"{len(banded) or 'no'} linear-coded [[predictor]] with banded = true")
        group, varying = self.group, self.varying
        if self.entry.hierarchical and group not in names:  # the study's own grouping, its intercepts varying
            group, varying = next((p.name for p in study.predictors if p.group), group), ()
        if self.entry.hierarchical and (group not in names or names[group].coding != "indicator"):
            raise SpecError(f"{where}: [hierarchy] group = '{group}' must be one of the study's indicator-coded "
                            f"predictors ({', '.join(p.name for p in study.predictors if p.coding == 'indicator')}), "
                            "or the study marks one with group = true")
        for term in [*self.interactions, *([varying] if self.entry.hierarchical else [])]:
            if any(name not in names for name in term):
                raise SpecError(f"{where}: {list(term)} ([outcome] interactions or [hierarchy] varying) names a "
                                f"predictor the study does not declare ({', '.join(names)})")
        predictors = [{"name": p.name, "coding": "linear" if p.coding == "linear" else "categorical"}
                      for p in study.predictors]
        raw = copy.deepcopy(self.raw)
        raw.setdefault("outcome", {})["predictors"] = predictors
        if self.entry.hierarchical:
            raw.setdefault("hierarchy", {}).update(group=group, varying=list(varying))
        return dataclasses.replace(self, predictors=tuple(Predictor(**p) for p in predictors), raw=raw,
                                   banded=banded[0] if banded else "", group=group, varying=tuple(varying))

    def hash(self) -> str:
        """SHA-256 of the parsed spec (canonical JSON): the spec identity recorded with every run."""
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()


def did_you_mean(key: str, options) -> str:
    """'; did you mean 'x'?' for the closest option, or ''."""
    close = difflib.get_close_matches(key, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""



def read_toml(path: str | Path, what: str) -> dict:
    """Parse a TOML configuration file, refusing a missing or malformed one with a one-line SpecError."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{what} {path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{what} {path}: not valid TOML ({exc})") from None


def _keys(table: Any, allowed, where: str, source: str) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"spec {source}: {where} must be a table")
    for key in table:
        if key not in allowed:
            raise SpecError(f"spec {source}: unknown key '{key}' in {where}{did_you_mean(key, allowed)}")
    return table


def _prior(name: str, raw: Any, source: str) -> Prior:
    if not isinstance(raw, dict) or "dist" not in raw:
        raise SpecError(f"spec {source}: prior '{name}' must be a table like {{ dist = \"Normal\", mu = 0, sigma = 1 }}")
    dist = raw["dist"]
    if dist not in DISTRIBUTIONS:
        raise SpecError(f"spec {source}: prior '{name}' uses unknown distribution {dist!r}; "
                        f"expected one of {', '.join(DISTRIBUTIONS)}{did_you_mean(str(dist), DISTRIBUTIONS)}")
    params = []
    for key, value in raw.items():
        if key == "dist":
            continue
        if key not in DISTRIBUTIONS[dist]:
            raise SpecError(f"spec {source}: prior '{name}' ({dist}) has no parameter '{key}'; "
                            f"it takes {', '.join(DISTRIBUTIONS[dist])}{did_you_mean(key, DISTRIBUTIONS[dist])}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"spec {source}: prior '{name}' parameter '{key}' must be a number, not {value!r}")
        params.append((key, float(value)))
    missing = [k for k in DISTRIBUTIONS[dist] if k not in dict(params)]
    if missing:
        raise SpecError(f"spec {source}: prior '{name}' ({dist}) needs {', '.join(missing)}")
    return Prior(dist, tuple(params))


def _sampler(raw: dict, defaults: dict, where: str, source: str) -> Sampler:
    merged = defaults | _keys(raw, SAMPLER_KEYS, where, source)
    if merged["backend"] not in BACKENDS:
        raise SpecError(f"spec {source}: {where} backend {merged['backend']!r} is not one of {', '.join(BACKENDS)}")
    for key in ("chains", "draws", "tune"):
        if not isinstance(merged[key], int) or isinstance(merged[key], bool) or merged[key] < 1:
            raise SpecError(f"spec {source}: {where} {key} must be a positive whole number, not {merged[key]!r}")
    if not isinstance(merged["target_accept"], float) or not 0.5 <= merged["target_accept"] < 1:
        raise SpecError(f"spec {source}: {where} target_accept must be a number in [0.5, 1), not {merged['target_accept']!r}")
    if merged["mass_matrix"] not in MASS_MATRICES or (merged["mass_matrix"] != "diagonal" and merged["backend"] != "nutpie"):
        raise SpecError(f"spec {source}: {where} mass_matrix must be one of {', '.join(MASS_MATRICES)} ('low_rank' "
                        f"with backend 'nutpie' only), not {merged['mass_matrix']!r}")
    return Sampler(merged["backend"], merged["chains"], merged["draws"], merged["tune"], merged["target_accept"],
                   merged["mass_matrix"])


def spec_from_dict(raw: dict, *, source: str = "<spec>") -> Spec:
    _keys(raw, TOP_KEYS, "the top level", source)
    if raw.get("schema_version") != 1:
        raise SpecError(f"spec {source}: schema_version must be 1, not {raw.get('schema_version')!r}")
    from .registry import ITEM_PRIORS, OPTIONAL_PRIORS, REGISTRY

    model = raw.get("model")
    if model not in REGISTRY:
        raise SpecError(f"spec {source}: unknown model {model!r}; expected one of {', '.join(REGISTRY)}"
                        f"{did_you_mean(str(model), REGISTRY)}")
    needed = REGISTRY[model].priors
    data = _keys(raw.get("data", {}), {"source", "codebook"}, "[data]", source)
    outcome = _keys(raw.get("outcome", {}), {"predictors", "interactions"}, "[outcome]", source)
    predictors = []
    for k, entry in enumerate(outcome.get("predictors", PAPER_PREDICTORS), start=1):
        _keys(entry, {"name", "coding"}, f"[outcome] predictor {k}", source)
        if entry.get("coding", "linear") not in CODINGS:
            raise SpecError(f"spec {source}: predictor '{entry.get('name')}' coding must be one of {', '.join(CODINGS)}")
        if not isinstance(entry.get("name"), str):
            raise SpecError(f"spec {source}: [outcome] predictor {k} needs a name")
        predictors.append(Predictor(entry["name"], entry.get("coding", "linear")))
    names = {p.name for p in predictors}
    interactions = tuple(tuple(i) for i in outcome.get("interactions", []))
    for inter in interactions:
        for name in inter:
            if name not in names:
                raise SpecError(f"spec {source}: interaction term '{name}' is not a predictor{did_you_mean(name, names)}")
    hierarchy = _keys(raw.get("hierarchy", {}), {"group", "varying", "municipality", "deviations"}, "[hierarchy]", source)
    deviations = hierarchy.get("deviations", "population")
    if deviations not in DEVIATIONS:
        raise SpecError(f"spec {source}: [hierarchy] deviations must be one of {', '.join(DEVIATIONS)}, not {deviations!r}")
    measurement = _keys(raw.get("measurement", {}), {"structure"}, "[measurement]", source)
    structure = measurement.get("structure", "second_order")
    if structure not in ("second_order", "correlated"):
        raise SpecError(f"spec {source}: [measurement] structure must be 'second_order' or 'correlated'")
    allowed = set(needed) | set(OPTIONAL_PRIORS) | (set(ITEM_PRIORS) if REGISTRY[model].item_level else set())
    priors_raw = _keys(raw.get("priors", {}), allowed, "[priors]", source)
    priors = {name: _prior(name, value, source) for name, value in priors_raw.items()}
    for name in needed:
        if name not in priors:
            raise SpecError(f"spec {source}: model {model} needs a prior for '{name}' in [priors]")
    sampler = _sampler(raw.get("sampler", {}), DEFAULT_SAMPLER, "[sampler]", source)
    quick = _sampler(raw.get("quick", {}), DEFAULT_SAMPLER | DEFAULT_QUICK | {"backend": sampler.backend,
                                                                               "target_accept": sampler.target_accept,
                                                                               "mass_matrix": sampler.mass_matrix},
                     "[quick]", source)
    varying = tuple(hierarchy.get("varying", ()))
    for name in varying:
        if name not in names:
            raise SpecError(f"spec {source}: varying slope '{name}' is not a predictor{did_you_mean(name, names)}")
    return Spec(model, raw.get("description", ""), data.get("source", "reconstruction"), data.get("codebook", ""),
                tuple(predictors), interactions, hierarchy.get("group", "activity"), varying,
                bool(hierarchy.get("municipality", True)), structure, priors, sampler, quick, source, raw,
                deviations=deviations)


def load_spec(path: str | Path) -> Spec:
    """Read a spec file; a relative [data] path that exists beside the spec is taken from there."""
    import dataclasses

    spec = spec_from_dict(read_toml(path, "spec"), source=str(path))
    here = Path(path).parent
    moved = {}
    for field_name in ("data_source", "codebook"):
        value = getattr(spec, field_name)
        if value and value not in ("reconstruction", "synthetic") and not Path(value).is_absolute() \
                and (here / value).exists() and not Path(value).exists():
            moved[field_name] = os.path.normpath(here / value)  # models/surveys/../../x.csv -> x.csv
    return dataclasses.replace(spec, **moved) if moved else spec


# --- the analysis file (models/analysis.toml): which models, which seed, which ensembles --------------

ANALYSIS_KEYS = {"schema_version", "description", "seed", "out", "models", "reconstruct", "quick", "ensemble"}
ENSEMBLE_KEYS = {"spec", "members", "quick_members", "full_members"}
ENSEMBLE_MODES = {"default": "members", "quick": "quick_members", "full": "full_members"}
RECONSTRUCT_KEYS = {"search", "starts", "rounds", "solutions"}
QUICK_KEYS = {"reconstruct"}
# The search is opt-in: its result is shipped (bayes_intl/data/reconstruction.csv) and checked by a refit.
SEARCH_DEFAULTS = {"search": False, "starts": 24, "rounds": 6, "solutions": 10000}


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
    # the ensemble stages: {"spec": path, "members": N, "quick_members": N, "full_members": N} per model
    ensemble: tuple[dict, ...] = ()

    def ensemble_for(self, mode: str) -> list[tuple[str, int]]:
        """(spec path, members) of each ensemble stage of a mode (default, quick or full); 0 members leaves one out."""
        return [(e["spec"], e[ENSEMBLE_MODES[mode]]) for e in self.ensemble if e[ENSEMBLE_MODES[mode]] > 0]


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
        for key in ("starts", "rounds", "solutions"):
            if key in table and (not isinstance(table[key], int) or isinstance(table[key], bool) or table[key] < 1):
                raise bad(f"{where}.{key}", "a positive whole number", repr(table[key]))
        if "search" in table and not isinstance(table["search"], bool):
            raise bad(f"{where}.search", "true or false", repr(table["search"]))
    ensemble = _ensemble_entries(raw.get("ensemble", []), path, bad, keys)
    seed = raw.get("seed", 20150601)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise bad("seed", "a non-negative whole number", repr(seed))
    return Analysis(str(path), seed, str(raw.get("out", "reports/analysis")), tuple(resolved),
                    SEARCH_DEFAULTS | reconstruct,
                    SEARCH_DEFAULTS | reconstruct | quick_reconstruct,
                    str(raw.get("description", "")), ensemble)


def _ensemble_entries(raw, path: Path, bad, keys) -> tuple[dict, ...]:
    """The [[ensemble]] entries (a single [ensemble] table is one entry), checked, spec paths resolved."""
    entries = [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise bad("ensemble", "[[ensemble]] tables of settings")
    checked = []
    for i, entry in enumerate(entries):
        where = f"ensemble[{i}]" if isinstance(raw, list) else "ensemble"
        entry = dict(keys(entry, ENSEMBLE_KEYS, where))
        spec_path = path.parent / str(entry.get("spec", ""))
        if not spec_path.is_file():
            raise bad(f"{where}.spec", "an existing model specification file", str(spec_path))
        entry.setdefault("members", 50)
        entry.setdefault("quick_members", min(8, entry["members"]))
        entry.setdefault("full_members", entry["members"])
        for key in ("members", "quick_members", "full_members"):
            value = entry[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"{where}.{key}", "a whole number, 0 or more (0: not in that analysis)", repr(value))
        checked.append(entry | {"spec": str(spec_path)})
    return tuple(checked)
