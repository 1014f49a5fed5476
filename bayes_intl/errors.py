"""Typed errors with the location a user needs to fix their input, and the exit code the CLI uses.

Exit codes: 1 failed to run; 2 bad values in a data file; 3 bad specification (model, analysis or
codebook TOML); 4 unreadable file; 5 file too large; 6 data and codebook disagree; 130 interrupted.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager

# Set by the CLI's SIGINT/SIGTERM handler. nutpie catches KeyboardInterrupt and returns the draws
# made so far; long steps check this flag so that an interrupted run is never saved as complete.
INTERRUPTED = threading.Event()


def check_interrupted() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


class BayesIntlError(Exception):
    """Base class: a failure the user can act on; the CLI prints one line and exits non-zero."""

    exit_code = 1


class InputError(BayesIntlError):
    """Bad input data: names the file, column and row, and what was expected there."""

    exit_code = 2

    def __init__(self, file, expected: str, *, column: str | None = None, row: int | None = None,
                 found: object = None):
        self.file, self.column, self.row, self.expected, self.found = str(file), column, row, expected, found
        where = [f"file {self.file}"]
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            # row is the 1-based data row; the header is line 1 of a delimited file.
            where.append(f"row {row} (line {row + 1})")
        message = ", ".join(where) + f": expected {expected}"
        if found is not None:
            if hasattr(found, "item") and callable(found.item):  # numpy scalars print as plain numbers
                found = found.item()
            if isinstance(found, float) and found.is_integer():
                found = int(found)
            message += f", found {found!r}"
        super().__init__(message)
        self._fields = (file, expected, {"column": column, "row": row, "found": found})

    def __reduce__(self):  # raised in the analysis's second process, rebuilt whole in the first
        file, expected, named = self._fields
        return _rebuild, (type(self), (file, expected), named)


def _rebuild(cls, args, named):
    return cls(*args, **named)


class UnreadableFileError(InputError):
    """The file cannot be read as a table at all: missing, empty, truncated, wrong delimiter, not UTF-8."""

    exit_code = 4


class TooLargeError(InputError):
    """The file is larger than the input size limit (BAYES_INTL_MAX_INPUT_MB)."""

    exit_code = 5


class MismatchError(InputError):
    """The data file and its codebook disagree (an item or column absent, value labels that differ)."""

    exit_code = 6


class SpecError(BayesIntlError):
    """Bad specification file (unknown key, wrong type, unknown model)."""

    exit_code = 3


@contextmanager
def library_warnings(*, shown: bool):
    """Libraries' warnings, banners and log lines (ArviZ's FutureWarning, statsmodels' separation warnings,
    PyMC's "Sampling: [...]") stay off the terminal unless -v: what matters of them is reported in plain words (the
    diagnostic gate, the baseline's separation notes). Worker processes inherit the same setting."""
    if shown:
        yield
        return
    import logging

    saved = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = "ignore"
    pymc_log = logging.getLogger("pymc")  # in a script PyMC logs "Sampling: [...]" at INFO by default
    saved_level = pymc_log.level
    pymc_log.setLevel(max(saved_level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pymc_log.setLevel(saved_level)
        if saved is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = saved
