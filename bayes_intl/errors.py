"""Typed errors with the location a user needs to fix their input, and the exit code the CLI uses."""

from __future__ import annotations

import threading

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
            message += f", found {found!r}"
        super().__init__(message)


class SpecError(BayesIntlError):
    """Bad specification file (unknown key, wrong type, unknown model)."""

    exit_code = 3
