"""Writing outputs safely: every file goes to a temporary name in its folder and is renamed into place.

Also provenance (package versions, hashes) recorded beside every output, and where stray writes to
standard output go.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pandas as pd

PACKAGES = ("bayes_intl", "numpy", "scipy", "pandas", "statsmodels", "pymc", "pytensor", "arviz", "highspy")


@contextmanager
def stdout_fd_redirected(target: int | str):
    """Point file descriptor 1 at ``target`` (a file descriptor, or a path such as ``os.devnull``) for
    the block, so C code and child processes write there too; yields a duplicate of the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    opened = os.open(target, os.O_WRONLY) if isinstance(target, str) else None
    try:
        os.dup2(target if opened is None else opened, 1)
        yield saved
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if opened is not None:
            os.close(opened)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically: a reader sees the old file or the new one, never half of either."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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


def save_run(folder: str | Path, *, idata, tables: dict[str, pd.DataFrame], record: dict) -> Path:
    """Write a run folder atomically: built under a temporary name, renamed into place when complete.

    ``run.json`` carries ``complete: true``; an interrupted run leaves only a hidden temporary
    folder, never a half-written run folder.
    """
    import shutil

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        idata.to_netcdf(str(staging / "posterior.nc"))
        for name, frame in tables.items():
            write_csv(staging / f"{name}.csv", frame, header_note=record.get("data_provenance"))
        write_json(staging / "run.json", record | {"complete": True})
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def load_run(folder: str | Path, *, spec_hash: str | None = None, data_hash: str | None = None):
    """Load a saved run (NetCDF and JSON only); refuse it if it is incomplete or its hashes differ."""
    import arviz as az

    from .errors import InputError

    folder = Path(folder)
    record_path = folder / "run.json"
    if not record_path.exists():
        raise InputError(folder, "a run folder with run.json (written by bayes-intl fit)")
    record = json.loads(record_path.read_text())
    if not record.get("complete"):
        raise InputError(record_path, "a complete run (this one was interrupted)", column="complete")
    for key, wanted in (("spec_sha256", spec_hash), ("data_sha256", data_hash)):
        if wanted is not None and record.get(key) != wanted:
            raise InputError(record_path, f"{key} {wanted[:12]}... (the spec/data asked for); this run was made "
                             "from a different one: refit it", column=key, found=str(record.get(key))[:12])
    return az.from_netcdf(str(folder / "posterior.nc")), record
