"""The source paper's published figures, loaded from the one data file that holds them.

Every figure keeps its source (table, row, column) and its printed precision, so that any
comparison can cite where a number comes from and how much rounding it carries.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Iterator, Mapping

SIZES = ("micro", "small", "medium")  # coded 0, 1, 2 as in the paper
LEVELS = ("low", "average", "high")  # CAPINNO bands, coded 0, 1, 2
ACTIVITIES = ("MM", "IT")  # coded 0 (reference), 1
TABLE4_TERMS = ("Capinno", "Activity", "Size", "Constant")


@dataclass(frozen=True)
class Figure:
    """One published figure: its printed text, value, precision and source."""

    id: str
    printed: str
    table: str
    row: str
    column: str
    kind: str = "decimal"  # decimal: rounded to `decimals`; count or constant: exact
    note: str = ""

    @property
    def value(self) -> float:
        return float(self.printed)

    @property
    def decimals(self) -> int:
        return len(self.printed.split(".")[1]) if "." in self.printed else 0

    @property
    def half_unit(self) -> float:
        """Half a unit in the last printed place (0 for exact counts and constants)."""
        return 0.5 * 10.0 ** -self.decimals if self.kind == "decimal" else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The true values this printed figure stands for, given its rounding."""
        lo, hi = self.value - self.half_unit, self.value + self.half_unit
        if self.column == "sig":  # a p-value cannot be negative; ".000" means [0, 0.0005]
            lo = max(lo, 0.0)
        return lo, hi

    @property
    def source(self) -> str:
        return f"{self.table}, row '{self.row}', column '{self.column}'"


class PaperFigures(Mapping[str, Figure]):
    """Read-only mapping from figure id (e.g. ``table4.Size.wald``) to :class:`Figure`."""

    def __init__(self, figures: Mapping[str, Figure]):
        self._figures = MappingProxyType(dict(figures))

    def __getitem__(self, key: str) -> Figure:
        try:
            return self._figures[key]
        except KeyError:
            raise KeyError(f"no published figure with id {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def value(self, key: str) -> float:
        return self[key].value

    def with_printed(self, overrides: Mapping[str, str]) -> "PaperFigures":
        """A copy with some printed figures replaced (for what-if audits and tests)."""
        figures = dict(self._figures)
        for key, printed in overrides.items():
            figures[key] = replace(self[key], printed=printed)
        return PaperFigures(figures)

    def table(self, name: str) -> list[Figure]:
        return [f for f in self._figures.values() if f.table == name]


@lru_cache(maxsize=1)
def load_paper() -> PaperFigures:
    """Load the packaged ``data/paper.toml``."""
    text = resources.files("bayes_intl").joinpath("data/paper.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    figures = {}
    for entry in raw["figure"]:
        fig = Figure(**entry)
        if fig.id in figures:
            raise ValueError(f"duplicate figure id {fig.id!r} in paper.toml")
        figures[fig.id] = fig
    return PaperFigures(figures)


def table5_id(size: str, level: str, activity: str) -> str:
    return f"table5.{size}.{level}.{activity}"


def table5_cells() -> list[tuple[str, str, str, tuple[int, int, int]]]:
    """The 18 Table 5 cells as (size, level, activity, (size code, capinno code, activity code))."""
    return [
        (size, level, act, (s, c, a))
        for c, level in enumerate(LEVELS)
        for s, size in enumerate(SIZES)
        for a, act in enumerate(ACTIVITIES)
    ]
