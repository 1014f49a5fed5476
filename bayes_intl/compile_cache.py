"""nutpie's compiled models, kept between processes: the compile cache and ``compile_nutpie``.

numba's disk cache keys a C callback by a pickle of its closure, which for nutpie's closures changes
in every process; here the key is made stable, so a later fit of the same model and data loads the
compiled log-density in about 3 s instead of compiling it again (benchmarks/results.md).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pymc as pm

from .errors import check_interrupted

log = logging.getLogger(__name__)


@contextmanager
def without_initvals(model: pm.Model):
    """Lift the custom starting values (the ordered cutpoints') off the model for the length of the
    block, yielding them by name: PyMC's freeze transform refuses a model that carries them, so they
    are handed to the sampler instead."""
    saved = dict(model.rvs_to_initial_values)
    try:
        for rv in saved:
            model.rvs_to_initial_values[rv] = None
        yield {rv.name: value for rv, value in saved.items() if value is not None}
    finally:
        model.rvs_to_initial_values.update(saved)


@dataclass
class CompileCache:
    """What ``nutpie_compile_cache`` could do: ``enabled`` when the hooks exist; ``refused`` lists
    functions that had no stable key and so were compiled without the cache."""

    enabled: bool
    refused: list[str]


@contextmanager
def nutpie_compile_cache():
    """Let numba's disk cache find nutpie's compiled log-density again in a later process.

    numba keys a cached C callback by a pickle of its closure. nutpie's closure holds numba
    functions whose pickle carries a per-process random id, so the key never repeated and every fit
    recompiled (8 of 11 s, benchmarks/results.md). Inside this block such a function is keyed by
    its code and closure instead, and a PyTensor-generated one by the key PyTensor's own numba
    cache trusts; the entries live in PyTensor's compile directory. If numba or PyTensor no longer
    have the hooks used here, fits compile as before.
    """
    try:
        from numba.core import ccallback
        from numba.core.caching import FunctionCache
        from pytensor import config
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

        closure_hash = _closure_hasher()
    except ImportError:
        yield CompileCache(False, [])
        return
    if not config.numba__cache:  # the user turned PyTensor's numba cache off
        yield CompileCache(False, [])
        return
    state = CompileCache(True, [])

    class StableFunctionCache(FunctionCache):
        def __init__(self, py_func):
            try:
                self._stable_hash = closure_hash(py_func)
                CACHED_SRC_FUNCTIONS[py_func] = self._stable_hash[:32]  # store beside PyTensor's entries
                super().__init__(py_func)
            except Exception as exc:  # noqa: BLE001 (no stable key, e.g. a C pointer; or no cache directory)
                log.debug("compiled model not cached: %s", exc)
                state.refused.append(f"{py_func.__qualname__}: {exc}")
                self._stable_hash = None  # then load_overload and save_overload do nothing

        def _index_key(self, sig, codegen):
            return sig, codegen.magic_tuple(), self._stable_hash

        def load_overload(self, sig, target_context):
            return None if self._stable_hash is None else super().load_overload(sig, target_context)

        def save_overload(self, sig, data):
            if self._stable_hash is not None:
                super().save_overload(sig, data)

    if getattr(ccallback, "FunctionCache", None) is not FunctionCache:
        yield CompileCache(False, [])
        return
    ccallback.FunctionCache = StableFunctionCache
    try:
        yield state
    finally:
        ccallback.FunctionCache = FunctionCache


def _closure_hasher():
    """A function's cache key from its code and closure, stable across processes (see ``nutpie_compile_cache``)."""
    import hashlib
    import importlib.metadata
    import io

    from numba.core import serialize
    from numba.core.dispatcher import Dispatcher
    from numba.core.extending import _Intrinsic
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    class StablePickler(serialize.NumbaPickler):
        # Keys are hashed, never unpickled: a dispatcher becomes a plain tuple naming what it compiles;
        # the builtin `tuple` pickles by name, so the key does not change with this file's place or lines.
        # (nutpie's own nested functions pickle with their file name: a new virtual environment compiles once.)
        def reducer_override(self, obj):
            if isinstance(obj, _Intrinsic):  # pickles with a per-process uuid: the ensemble's swappable models use one
                return tuple, (("numba intrinsic", obj._name, obj._defn, obj._prefer_literal),)
            if isinstance(obj, Dispatcher):
                key = CACHED_SRC_FUNCTIONS.get(obj.py_func)
                if key is not None:
                    return tuple, (("pytensor numba function", key),)
                return tuple, (("numba function", obj.py_func, obj.locals, obj.targetoptions),)
            return super().reducer_override(obj)

    # Module-level helpers pickle by name, not body, so the versions that define them are in the key.
    versions = " ".join(f"{name} {importlib.metadata.version(name)}" for name in ("nutpie", "pytensor", "numpy"))

    def closure_hash(py_func) -> str:
        cells = tuple(cell.cell_contents for cell in py_func.__closure__ or ())
        with io.BytesIO() as buffer:
            StablePickler(buffer, protocol=4).dump(cells)
            return hashlib.sha256(versions.encode() + py_func.__code__.co_code + buffer.getvalue()).hexdigest()

    return closure_hash


@dataclass
class CompiledModel:
    """nutpie's compiled model, the seconds it took, and whether the compile cache supplied it
    (``reused``) or will next time (``cached``)."""

    compiled: object
    seconds: float
    reused: bool
    cached: bool


def compile_nutpie(model: pm.Model) -> CompiledModel:
    """Compile a model for nutpie through the compile cache."""
    import nutpie

    # Frozen dims and data are compile-time constants: terms of the data alone fold away and
    # numba compiles less (benchmarks/results.md: 15% faster gradients, 15% shorter compile).
    started = time.perf_counter()
    with without_initvals(model) as initvals, nutpie_compile_cache() as cache:
        compiled = nutpie.compile_pymc_model(model, freeze_model=True, initial_points=initvals, cache=cache.enabled)
    check_interrupted()  # an interrupt during numba's compilation is swallowed by its callbacks
    reused = getattr(compiled.compiled_logp_func, "_cache_hits", 0) > 0
    return CompiledModel(compiled, time.perf_counter() - started, reused, cache.enabled and not cache.refused)
