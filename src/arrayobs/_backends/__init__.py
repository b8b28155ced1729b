"""One module per array library, each implementing :class:`Backend`.

An observer picks its backend once, when it binds to a namespace
(:func:`new`); the functional API uses one shared instance per namespace
(:func:`shared`). A library without a module here runs the generic backend
(``_generic``), which is also the reference every other backend is tested
against. Adding a backend: a module that subclasses ``Backend`` and sets
``BACKEND``, a loader that imports it, and its line in ``_REGISTRY``.

Modules are imported on first use only, so importing arrayobs imports no
optional library.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from arrayobs._backends._generic import Backend
from arrayobs._compat import backend_name

__all__ = ["Backend", "backend_class", "new", "shared"]


# backend_name(xp) -> its backend class, imported on first use. Import
# statements, not importlib: torch.compile traces the first call of the
# functional API, and it executes an import statement but refuses importlib.
def _load_numpy() -> type[Backend]:
    from arrayobs._backends._numpy import BACKEND

    return BACKEND


def _load_torch() -> type[Backend]:
    from arrayobs._backends._torch import BACKEND

    return BACKEND


def _load_jax() -> type[Backend]:
    from arrayobs._backends._jax import BACKEND

    return BACKEND


def _load_dask() -> type[Backend]:
    from arrayobs._backends._dask import BACKEND

    return BACKEND


def _load_cupy() -> type[Backend]:
    from arrayobs._backends._cupy import BACKEND

    return BACKEND


_REGISTRY: dict[str, Callable[[], type[Backend]]] = {
    "numpy": _load_numpy,
    "torch": _load_torch,
    "jax": _load_jax,
    "dask": _load_dask,
    "cupy": _load_cupy,
}
# Plain dicts keyed by the namespace's name, not lru_caches keyed by the module:
# torch.compile traces these lookups too, and cannot compare modules.
_CLASSES: dict[str, type[Backend]] = {}
_SHARED: dict[tuple[str, bool], Backend] = {}


def backend_class(xp: ModuleType) -> type[Backend]:
    """The backend class for namespace ``xp`` (the generic one if it has no module)."""
    cls = _CLASSES.get(xp.__name__)
    if cls is None:
        load = _REGISTRY.get(backend_name(xp))
        cls = _CLASSES.setdefault(xp.__name__, Backend if load is None else load())
    return cls


def new(xp: ModuleType, fast: bool = True) -> Backend:
    """A backend instance of its own, for one observer."""
    return backend_class(xp)(xp, fast)


def shared(xp: ModuleType, fast: bool = True) -> Backend:
    """One backend instance per (namespace, fast), for the functional API."""
    backend = _SHARED.get((xp.__name__, fast))
    if backend is None:
        backend = _SHARED.setdefault((xp.__name__, fast), new(xp, fast))
    return backend
