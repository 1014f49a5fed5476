"""bayes_intl: a Bayesian re-analysis toolkit for published logistic regressions (first: SME internationalization on CAPINNO).

For scripts: ``bayes_intl.load_study``, ``run_audit``, ``fit``, ``load``, ``compare`` and ``report`` (see api.py).
"""

__version__ = "0.1.0"


def _configure_blas() -> None:
    """Point PyTensor at the system OpenBLAS before PyTensor is imported.

    A pip-installed PyTensor does not detect Debian's libopenblas and falls back to a path many
    times slower; `make` installs libopenblas-dev, and this names it. A user's own
    PYTENSOR_FLAGS blas setting, or an already imported PyTensor, is left alone.
    """
    import ctypes.util
    import os
    import sys

    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "pytensor" in sys.modules or "blas__ldflags" in flags or not ctypes.util.find_library("openblas"):
        return
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, "blas__ldflags=-lopenblas"]))


_configure_blas()

from .api import compare, fit, load, load_study, report, run_audit  # noqa: E402  (after the BLAS setting, before any PyTensor import)

__all__ = ["compare", "fit", "load", "load_study", "report", "run_audit"]
