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
