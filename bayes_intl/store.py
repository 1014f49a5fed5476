"""Writing outputs safely: every file goes to a temporary name in its folder and is renamed into place.

Also provenance (package versions, hashes) recorded beside every output.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = ("bayes_intl", "numpy", "scipy", "pandas", "statsmodels", "pymc", "pytensor", "arviz", "highspy")


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically: a reader sees the old file or the new one, never half of either."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, payload: dict) -> Path:
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")


def write_csv(path: str | Path, frame: pd.DataFrame, *, header_note: str | None = None) -> Path:
    """CSV atomically; ``header_note`` (e.g. 'RECONSTRUCTED data') becomes a leading '# ' line."""
    text = frame.to_csv(index=False, lineterminator="\n")
    if header_note:
        text = f"# {header_note}\n" + text
    return write_text(path, text)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_frame(path: str | Path, frame: pd.DataFrame, *, value_labels: dict | None = None,
                column_labels: dict | None = None) -> Path:
    """Write a table as .csv, .parquet or SPSS .sav (with value and column labels), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, lineterminator="\n")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".sav":
            import pyreadstat

            labels = [column_labels.get(c, "") for c in frame.columns] if column_labels else None
            pyreadstat.write_sav(frame, tmp, column_labels=labels, variable_value_labels=value_labels or {})
        else:
            raise ValueError(f"cannot write {path.name}: expected .csv, .parquet or .sav")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
