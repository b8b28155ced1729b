"""Compiled CPU kernels (numba, optional): the histogram's fused bin-and-count
(and its steady state, the batch's range test in the same pass), its L2
search, and single-pass (min, max), for NumPy arrays and CPU torch tensors.

Each function here returns the library path's result bit for bit, or None
where the kernels are off or do not take the input (then the caller runs the
library path, which stays the reference). The kernels are on where numba can
be imported and the environment variable ``ARRAYOBS_NUMBA`` is not ``"0"``
(read at every call, so a process can switch). numba is imported at the first
kernel call, never by ``import arrayobs``; the kernels are compiled then and
cached on disk (``cache=True``), so a later process loads them.

The kernels are serial and release the GIL; a large input is cut into one
contiguous part per core, run on a thread pool of this package, and the
parts' results combined in part order. (Not numba's ``parallel=True``: its
OpenMP threads spin at a barrier, so on a shared machine one busy core
stalls every part; bench/results/kernels.md.)
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from arrayobs._backends import _host as host_helpers
from arrayobs._core._keys import order_keys

# Below this many bytes one thread runs the kernel (starting the pool costs more).
PARALLEL_MIN_BYTES = 1 << 18
# Below this many bytes (by item size) the (min, max) kernels are not used: their fixed
# cost (about 25 us of glue) exceeds the library reduction's there (bench/results/tuning.md).
MIN_BYTES = {2: 1 << 16, 4: 1 << 22, 8: 1 << 22}


def _small(a: np.ndarray) -> bool:
    return a.size == 0 or a.nbytes < MIN_BYTES.get(a.itemsize, 0)


def _surely_small(x: Any) -> bool:
    """Below every item size's MIN_BYTES: decided before the dtype is looked at (a
    100-element batch should cost the library path nothing more)."""
    nbytes = getattr(x, "nbytes", None)
    return isinstance(nbytes, int) and nbytes < min(MIN_BYTES.values(), default=0)


_FLOATS = {"float16": np.int16, "bfloat16": np.int16, "float32": np.int32, "float64": np.int64}
# The same bits as unsigned integers (the (min, max) kernel reads both views).
_UNSIGNED = {np.dtype(f"i{n}"): np.dtype(f"u{n}") for n in (2, 4, 8)}
# Keys of +inf: beyond them (or below -1 - them) lies a NaN.
_INF_KEY = {"float16": 0x7C00, "bfloat16": 0x7F80, "float32": 0x7F800000, "float64": 0x7FF << 52}


@functools.cache
def _importable() -> bool:
    return importlib.util.find_spec("numba") is not None


def enabled() -> bool:
    """Whether the kernels run: numba importable and ``ARRAYOBS_NUMBA`` not ``"0"``."""
    return os.environ.get("ARRAYOBS_NUMBA") != "0" and _importable()


def _parts(kernel: Callable[..., Any], n: int, nbytes: int, *args: Any) -> list[Any]:
    """``kernel(*args, start, stop)`` over ``[0, n)``: one part, or one contiguous part
    per core on the backends' shared pool (large inputs); the results in part order."""
    parts = 1 if nbytes < PARALLEL_MIN_BYTES else min(host_helpers.workers(), n)
    if parts <= 1:
        return [kernel(*args, 0, n)]
    bounds = [(n * p // parts, n * (p + 1) // parts) for p in range(parts)]
    return list(host_helpers.pool().map(lambda b: kernel(*args, *b), bounds))


def _host(x: Any) -> tuple[np.ndarray, str] | None:
    """``x`` as a NumPy array (bfloat16 and float16 as int16 bits) and its dtype's
    name: a NumPy array, or a CPU torch tensor viewed without a copy; None otherwise."""
    if type(x) is np.ndarray:
        name = x.dtype.name
        if name not in _FLOATS or (x.dtype.type.__module__ == "ml_dtypes" and name != "bfloat16"):
            return None
        return (x.view(_FLOATS[name]) if name in ("float16", "bfloat16") else x), name
    if not type(x).__module__.startswith("torch") or getattr(x, "device", None) is None:
        return None
    import torch

    if not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.is_conj() or x.is_neg():
        return None
    name = str(x.dtype).rsplit(".", 1)[-1]
    if name not in _FLOATS:
        return None
    x = x.detach()
    return (x.view(torch.int16) if name in ("float16", "bfloat16") else x).numpy(), name


def _flat(a: np.ndarray) -> np.ndarray | None:
    """The 1-d view of an array contiguous in any order (None for other layouts)."""
    if a.flags.c_contiguous or a.flags.f_contiguous:
        return np.ravel(a, order="K")
    return None


# -- (min, max) ------------------------------------------------------------------------------
def _keys(a: np.ndarray, name: str) -> tuple[Any, Any] | None:
    from arrayobs._backends._kernels import _minmax

    flat = _flat(a)
    if flat is None:
        return None
    bits = flat if flat.dtype.kind == "i" else flat.view(_FLOATS[name])
    unsigned = bits.view(_UNSIGNED[bits.dtype])
    done = np.stack(_parts(_minmax.keys, bits.size, bits.nbytes, bits, unsigned))
    return done[:, 0].min(), done[:, 1].max()


def _values(keys: np.ndarray, name: str) -> np.ndarray:
    """The floats (float32 for 16-bit ones, else their own dtype) of ``keys``, NaN
    where a key lies beyond an infinity's."""
    inf = _INF_KEY[name]
    nan = (keys > inf) | (keys < -1 - inf)
    bits = order_keys(keys)
    if name == "bfloat16":  # the top half of a float32
        out = (bits.astype(np.uint16).astype(np.uint32) << 16).view(np.float32)
    elif name == "float16":
        out = bits.view(np.float16).astype(np.float32)
    else:
        out = bits.view(np.float32 if name == "float32" else np.float64).copy()
    out[nan] = np.nan
    return out  # type: ignore[no-any-return]


def _pair(x: Any) -> tuple[Any, Any] | None:
    """(min, max) of a non-empty array in its own dtype (float32 for 16-bit floats);
    both NaN where it holds a NaN."""
    found = None if _surely_small(x) or not enabled() else _host(x)
    if found is None or _small(found[0]):
        return None
    keys = _keys(*found)
    if keys is None:
        return None
    lo, hi = _values(np.asarray(keys, _FLOATS[found[1]]), found[1])
    if np.isnan(lo) or np.isnan(hi):  # NaN propagates to both, as the library's reductions
        return lo.dtype.type(np.nan), lo.dtype.type(np.nan)
    return lo, hi


def aminmax(x: Any) -> tuple[np.float32, np.float32] | None:
    """The backends' per-tensor (min, max) as float32 scalars, or None."""
    found = _pair(x)
    if found is None:
        return None
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the reference's cast
        return np.float32(found[0]), np.float32(found[1])


def value_range(x: Any) -> tuple[float, float] | None:
    """``Backend.value_range``: (min, max) as Python floats of the input's values, or None."""
    found = _pair(x)
    return None if found is None else (float(found[0]), float(found[1]))


def aminmax_axis(x: Any, ch_axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (min, max), (C,) float32, of a C-contiguous array of 2+ axes, or None."""
    found = None if _surely_small(x) or not enabled() else _host(x)
    if found is None or found[0].ndim < 2 or _small(found[0]):
        return None
    a, name = found
    if not a.flags.c_contiguous:
        return None
    from arrayobs._backends._kernels import _minmax

    shape = a.shape
    bits = a if a.dtype.kind == "i" else a.view(_FLOATS[name])
    v = bits.reshape(int(np.prod(shape[:ch_axis])), shape[ch_axis], -1)
    unsigned = v.view(_UNSIGNED[v.dtype])
    done = np.stack(_parts(_minmax.keys_axis, v.shape[0] * v.shape[1], v.nbytes, v, unsigned))
    lo, hi = done[:, 0].min(axis=0), done[:, 1].max(axis=0)
    lo_values, hi_values = _values(lo, name), _values(hi, name)
    nan = np.isnan(lo_values) | np.isnan(hi_values)
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, as the reference's cast
        lo32, hi32 = lo_values.astype(np.float32), hi_values.astype(np.float32)
    lo32[nan] = hi32[nan] = np.nan
    return lo32, hi32


# -- histogram -------------------------------------------------------------------------------
def _histc_input(x: Any, bins: int) -> np.ndarray | None:
    """The flat float32 or float64 array a histogram kernel reads, or None."""
    found = _host(x) if enabled() else None
    if found is None or found[1] not in ("float32", "float64") or bins > 2**24:
        return None
    a = found[0]
    flat = _flat(a)
    return a.reshape(-1) if flat is None else flat  # a copy of a strided layout: order is moot


def _edges(flat: np.ndarray, bins: int, lo: float, hi: float) -> tuple[Any, Any, Any, Any]:
    """(left, right, bins, right - left) in ``flat``'s dtype, as ATen's CPU histc has them."""
    t = flat.dtype.type
    left, right = t(lo), t(hi)
    with np.errstate(over="ignore", invalid="ignore"):
        return left, right, t(bins), right - left


def _summed(parts: list[np.ndarray]) -> np.ndarray:
    counts = parts[0]
    for more in parts[1:]:  # integers: exact in any order, and this one is fixed
        counts += more
    return counts


def histc(x: Any, bins: int, lo: float, hi: float) -> np.ndarray | None:
    """:func:`arrayobs._core._histogram.histc` of a float32 or float64 array (any
    values: outside ``[lo, hi]`` and NaN are skipped), float32 counts, or None."""
    flat = _histc_input(x, bins)
    if flat is None:
        return None
    from arrayobs._backends._kernels import _histogram

    edges = _edges(flat, bins, lo, hi)
    if not np.isfinite(edges[3]):
        # ATen's linspace edges are NaN where hi - lo overflows x's dtype: nothing counts.
        return np.zeros(bins, dtype=np.float32)
    parts = _parts(_histogram.histc, flat.size, flat.nbytes, flat, *edges, bins)
    return _summed(parts).astype(np.float32)  # type: ignore[no-any-return]


def steady_histc(x: Any, bins: int, lo: float, hi: float) -> np.ndarray | None:
    """``Backend.steady_histc``: :func:`histc` of ``x`` over an observed state's
    range ``[lo, hi]`` (finite, ``lo < hi``: histc's own edges) where every value
    of ``x`` lies in it, in one pass; None where one does not (NaN, an infinity,
    a value outside: the forward's (min, max) would move the range or raise) or
    where the kernels do not take ``x``."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        return None
    flat = _histc_input(x, bins)
    if flat is None or flat.size == 0:
        return None
    from arrayobs._backends._kernels import _histogram

    edges = _edges(flat, bins, lo, hi)
    if not np.isfinite(edges[3]):
        return None  # histc counts nothing there: rare, left to the library path
    counts = _summed(_parts(_histogram.steady, flat.size, flat.nbytes, flat, *edges, bins))
    if counts[bins]:
        return None
    return counts[:bins].astype(np.float32)  # type: ignore[no-any-return]


# -- the search ------------------------------------------------------------------------------
@functools.cache
def _quantiles() -> tuple[np.ndarray, np.ndarray]:
    from arrayobs._core._search import _quantiles as steps

    alphas, betas = steps()
    return np.asarray(alphas), np.asarray(betas)


def search_range(
    histogram: np.ndarray, min_val: float, max_val: float, nbins: int
) -> tuple[float, float] | None:
    """:func:`arrayobs._core._search.search_range` in one compiled call, or None."""
    if not enabled() or histogram.dtype != np.float32 or not 0 < histogram.size <= 32768:
        return None
    from arrayobs._backends._kernels import _search
    from arrayobs._core._search import chosen_range

    bins = histogram.size
    width = (max_val - min_val) / bins
    start, end = _search.searched(np.ascontiguousarray(histogram), width, nbins, *_quantiles())
    if start < 0:
        return None  # a loaded histogram with negative counts: torch's literal scan
    return chosen_range(min_val, max_val, bins, (int(start), int(end)))
