import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def write_csv(tmp_path):
    """Write text to a CSV under tmp_path and return its path."""
    def _write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return _write


@pytest.fixture
def random_cells(rng) -> pd.DataFrame:
    rows = []
    for s in range(3):
        for c in range(3):
            for a in range(2):
                n = int(rng.integers(2, 12))
                rows.append((s, c, a, n, int(rng.integers(0, n + 1))))
    return pd.DataFrame(rows, columns=["size", "capinno", "activity", "n", "y"])


TINY_SAMPLER = "[quick]\nchains = 2\ndraws = 60\ntune = 60\n"


@pytest.fixture(scope="session")
def quick_analysis(tmp_path_factory):
    """One small end-to-end `run` (paper_logit and latent_factor, tiny sampler) shared by the report tests."""
    import re
    from pathlib import Path

    from bayes_intl.pipeline import run_analysis
    from bayes_intl.spec import load_analysis

    root = tmp_path_factory.mktemp("analysis")
    models = Path(__file__).resolve().parents[1] / "models"
    for name in ("paper_logit", "latent_factor"):
        text = (models / f"{name}.toml").read_text()
        (root / f"{name}.toml").write_text(re.sub(r"\[quick\].*\Z", TINY_SAMPLER, text, flags=re.S))
    (root / "analysis.toml").write_text(
        'seed = 7\nmodels = ["paper_logit.toml", "latent_factor.toml"]\n[quick.reconstruct]\nsearch = false\n'
        '[[ensemble]]\nspec = "paper_logit.toml"\nquick_members = 3\n'
        '[[ensemble]]\nspec = "latent_factor.toml"\nmembers = 0\nquick_members = 1\n')
    analysis = load_analysis(root / "analysis.toml")
    result = run_analysis(analysis, quick=True, out=root / "out", progress=False)
    return analysis, result, root
