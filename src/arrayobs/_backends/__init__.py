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

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _core as core
from arrayobs._backends import _host, _kernels
from arrayobs._backends._generic import Backend
from arrayobs._compat import backend_name
from arrayobs._config import QuantConfig
from arrayobs._core._histogram import HistogramState, dst_nbins
from arrayobs._core._search import search_range

__all__ = ["Backend", "backend_class", "new", "searched_qparams", "shared"]


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


def searched_qparams(
    state: HistogramState, config: QuantConfig, backend: Backend, device: Any
) -> tuple[Any, Any]:
    """``(scale, zero_point)`` (shape (1,)) of an observed state: torch's
    ``_non_linear_param_search`` and ``_calculate_qparams``. The state is read
    back once (one transfer) and searched on the host, where a 2048-bin
    histogram is small and each step's branch costs no device sync; the
    result goes back to ``device`` once. A NaN range (the functional core's
    mark of a NaN batch) raises ValueError."""
    xp = backend.xp
    counts, mn, mx = backend.read_float32(*state)
    zp_dtype = core.zero_point_dtype(config, xp=xp, device=device)
    if mn == math.inf and mx == -math.inf:  # never observed (the functional core)
        return backend.from_host(([1.0], [0]), (xp.float32, zp_dtype), device)  # type: ignore[return-value]
    if math.isnan(mn) or math.isnan(mx):
        msg = "the histogram state's range is NaN: a batch held NaN (torch's histc raises)"
        raise ValueError(msg)
    args = (np.asarray(counts, np.float32), float(mn), float(mx), dst_nbins(config.dtype))
    lo, hi = _kernels.search_range(*args) or search_range(*args)
    # The two-value qparams run on the host too, on host scalars (tested bit for
    # bit against the generic ones): a few small device ops would cost more.
    pair = _host.host_qparams(np.float32(lo), np.float32(hi), config)
    assert pair is not None  # only a check refuses, and none is asked for
    scale, zero_point = pair
    if not config.zero_point_fits_int32:
        config.check_zero_point(int64=zp_dtype == xp.int64)
    return backend.from_host((scale, zero_point), (xp.float32, zp_dtype), device)  # type: ignore[return-value]
