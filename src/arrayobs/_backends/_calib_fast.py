"""The ORT histogram updates of :mod:`arrayobs._core._calib_nphist` for host
arrays (NumPy, CPU torch through a NumPy view), eagerly, in two passes over the batch.

The state after each update is the generic step's, bit for bit. Everything but
the counts depends on the batch only through a few per-row numbers (min, max,
the smallest magnitude), so the generic step runs on a (C, 3) stand-in row
holding them, which gives those fields exactly. With numba
(:mod:`arrayobs._backends._kernels._calib_hist`) one compiled pass finds those
numbers and a second bins and counts the batch, each on the cores in parts;
without it, NumPy's reductions and ``np.histogram`` itself, row by row. Where
the stand-in could differ (a NaN, an empty batch, a zero minimum or maximum in
a row holding both signed zeros, a span past float32, a device array) the
caller runs the generic step: these functions return None.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from arrayobs._core import _calib_nphist as nphist
from arrayobs._core._keys import order_keys

_INF_KEY = 0x7F800000  # float32 +inf's key: beyond it (or below -1 - it) lies a NaN

_NP: Any = None


def _np() -> Any:
    global _NP  # noqa: PLW0603 - the compat namespace, imported once
    if _NP is None:
        from arrayobs._compat import resolve_namespace

        _NP = resolve_namespace(np)
    return _NP


def _host(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array without a copy (NumPy, or a CPU torch tensor), or None."""
    if type(x) is np.ndarray:
        return x
    if isinstance(x, np.generic):  # a 0-d result of NumPy's arithmetic
        return np.asarray(x)
    if not type(x).__module__.startswith("torch"):
        return None
    import torch

    if not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.is_conj() or x.is_neg():
        return None
    return x.detach().numpy()  # type: ignore[no-any-return]


def _to_host_state(state: Any) -> tuple[Any, bool] | None:
    fields = [_host(v) for v in state]
    if any(v is None for v in fields):
        return None
    return type(state)(*fields), type(state.counts) is not np.ndarray


def _back(state: Any, torch_out: bool) -> Any:
    if not torch_out:
        return state
    import torch

    return type(state)(*(torch.from_numpy(np.array(v, copy=True)) for v in state))


def _extremes(x: np.ndarray, magnitude: bool) -> tuple[Any, Any, Any] | None:
    """Row min and max of ``x`` ((C, M) float32) as the generic step takes them,
    and with ``magnitude`` each row's smallest magnitude, or None where they may
    not be (a NaN; a zero extreme in a row holding both signed zeros)."""
    if _kernels_on():
        from arrayobs._backends._kernels import _calib_hist

        parts = np.stack(_kernel_parts(_calib_hist.extremes, x, x.view(np.int32)))
        lo, hi = parts[:, :, 0].min(axis=0), parts[:, :, 1].max(axis=0)
        if np.any(hi > _INF_KEY) or np.any(lo < -1 - _INF_KEY):  # a NaN's key
            return None
        mn = order_keys(lo.astype(np.int32)).view(np.float32)
        mx = order_keys(hi.astype(np.int32)).view(np.float32)
        mixed = parts[:, :, 3].any(axis=0) & parts[:, :, 4].any(axis=0)
        if np.any(mixed & ((mn == 0) | (mx == 0))):
            return None
        small = parts[:, :, 2].min(axis=0).astype(np.int32).view(np.float32)
        return mn, mx, small
    mn, mx = np.min(x, axis=1), np.max(x, axis=1)
    if np.isnan(mn).any() or np.isnan(mx).any():
        return None
    zero = (mn == 0) | (mx == 0)
    if zero.any():
        rows = x[zero]
        signs = np.signbit(rows[rows == 0])
        if signs.any() and not signs.all():
            return None
    return mn, mx, np.min(np.abs(x), axis=1) if magnitude else None


def _kernel_parts(kernel: Any, x: np.ndarray, *args: Any) -> list[Any]:
    from arrayobs._backends import _kernels

    return _kernels._parts(kernel, x.size, x.nbytes, *args)


def _parts(kernel: Any, x: np.ndarray, *args: Any) -> Any:
    """The parts' counts added in part order (integers: exact in any order)."""
    parts = _kernel_parts(kernel, x, x, *args)
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def _kernels_on() -> bool:
    from arrayobs._backends import _kernels

    return _kernels.enabled()


def _uniform_counts(
    x: np.ndarray, absolute: bool, lo: np.ndarray, hi: np.ndarray, n: np.ndarray, cap: int
) -> np.ndarray | None:
    """(C, cap) counts of ``x`` ((C, M) float32), row ``r`` binned by NumPy's
    uniform rule on ``[lo[r], hi[r]]`` with ``n[r]`` bins; None where a span
    ``hi - lo`` overflows float32 (then the generic step)."""
    with np.errstate(over="ignore"):
        if not np.all(np.isfinite(hi - lo)):
            return None
    c = x.shape[0]
    if _kernels_on() and cap < 2**24:  # the kernel's bins are float32 integers
        from arrayobs._backends._kernels import _calib_hist

        counts = _parts(_calib_hist.uniform, x, absolute, lo, hi, n, cap + 1)
        return counts[:, :cap]  # type: ignore[no-any-return]
    # without the kernels: NumPy's own histogram, row by row (the rule reproduced)
    counts = np.zeros((c, cap), np.int64)
    for r in range(c):
        a = np.abs(x[r]) if absolute else x[r]
        nr = int(n[r])
        counts[r, :nr] = np.histogram(a, nr, range=(lo[r], hi[r]))[0]
    return counts


def _edges_counts(
    x: np.ndarray, absolute: bool, edges: np.ndarray, n: np.ndarray, last: np.ndarray, cap: int
) -> np.ndarray:
    """(C, cap) counts of ``x`` in row ``r``'s ``n[r]`` float64 ``edges`` (the
    last bin closed at ``last[r]``)."""
    c = x.shape[0]
    if _kernels_on():
        from arrayobs._backends._kernels import _calib_hist

        e = np.ascontiguousarray(edges, dtype=np.float64)
        counts = _parts(_calib_hist.edges, x, absolute, e, n, last, cap + 1)
        return counts[:, :cap]  # type: ignore[no-any-return]
    counts = np.zeros((c, cap), np.int64)
    for r in range(c):
        a = np.abs(x[r]) if absolute else x[r]
        nr = int(n[r])
        counts[r, :nr] = np.histogram(a, bins=edges[r, : nr + 1])[0]
    return counts


def _prepare(state: Any, rows: Any) -> tuple[Any, bool, np.ndarray] | None:
    """The host state, whether it came as torch tensors, and C-contiguous host
    float32 ``rows`` (C, M > 0); None where the fast path does not take them."""
    found = _to_host_state(state)
    x = _host(rows)
    if found is None or x is None or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] == 0:
        return None
    return found[0], found[1], np.ascontiguousarray(x)


def value_update(state: nphist.ValueState, rows: Any) -> Any:
    """:func:`~arrayobs._core._calib_nphist.value_update` (a ValueState) of host ``rows``
    ((C, M) float32), or None (then run the generic step)."""
    found = _prepare(state, rows)
    ext = None if found is None else _extremes(found[2], magnitude=False)
    if found is None or ext is None:
        return None
    state, torch_out, x = found
    mn, mx, _ = ext
    xp = _np()
    new = nphist.value_update(state, np.stack([mn, mx, mn], axis=1), xp=xp)
    cap = state.counts.shape[1]
    if bool(new.error != 0) or bool(new.overflow):
        return _back(new, torch_out)  # the counts are the old ones
    k = (new.bins - state.bins) // 2
    half = np.where(new.threshold == 0, np.float32(0.5), new.threshold).astype(np.float32)
    batch = _uniform_counts(x, False, -half, half, np.asarray(new.bins, np.int64), cap)
    if batch is None:
        return None
    counts = nphist._shifted(state.counts, k, xp) + batch
    return _back(new._replace(counts=np.asarray(counts, np.int64)), torch_out)


def ort_abs_update(state: nphist.AbsState, rows: Any) -> Any:
    """:func:`~arrayobs._core._calib_nphist.ort_abs_update` (an AbsState) of host ``rows``
    ((C, M) float32), or None (then run the generic step)."""
    return _abs_update(state, rows, modelopt=False)


def modelopt_update(state: nphist.AbsState, rows: Any, *, skip_zeros: bool = False) -> Any:
    """:func:`~arrayobs._core._calib_nphist.modelopt_update` (an AbsState) of host
    ``rows`` ((C, M) float32), or None (then run the generic step; also for
    ``skip_zeros``). ModelOpt takes the magnitude only in a row holding a
    negative value; the other rows' values are their own magnitudes (a -0.0
    bins as +0.0), so one magnitude rule bins every row."""
    if skip_zeros:
        return None
    return _abs_update(state, rows, modelopt=True)


def _abs_update(state: nphist.AbsState, rows: Any, *, modelopt: bool) -> Any:
    found = _prepare(state, rows)
    started = found is not None and bool(found[0].started)
    ext = None if found is None else _extremes(found[2], magnitude=not started)
    if found is None or ext is None:
        return None
    state, torch_out, x = found
    mn, mx, magnitude = ext
    xp = _np()
    cap = state.counts.shape[1]
    if started:
        stand_in = np.stack([mn, mx, mn], axis=1)
    else:
        # a value of the row with its smallest magnitude (the first call's low edge):
        # a row of one sign keeps its own (a -0.0 minimum stays -0.0)
        straddle = (mn < 0) & (mx > 0)
        small = np.where(straddle, magnitude, np.where(mn >= 0, mn, mx))
        stand_in = np.stack([mn, mx, small], axis=1)
    new = nphist.abs_update(
        state, stand_in, xp=xp, cast_back=not modelopt, modelopt=modelopt, started=started
    )
    if bool(new.error != 0) or bool(new.overflow):
        return _back(new, torch_out)
    if not started:
        amin = np.abs(stand_in).min(axis=1)
        amax = np.maximum(np.abs(mn), np.abs(mx))
        equal = amin == amax
        lo = np.where(equal, amin - np.float32(0.5), amin).astype(np.float32)
        hi = np.where(equal, amax + np.float32(0.5), amax).astype(np.float32)
        if np.any(lo >= hi):  # a range still empty (huge values): the generic step
            return None
        batch = _uniform_counts(x, True, lo, hi, np.asarray(new.bins, np.int64), cap)
        if batch is None:
            return None
        return _back(new._replace(counts=batch), torch_out)
    # the later bins: the arange's float64 edges, before ORT casts them back to float32
    wide = (
        new
        if modelopt
        else nphist.abs_update(state, stand_in, xp=xp, cast_back=False, started=True)
    )
    batch = _edges_counts(
        x, True, np.asarray(wide.edges), np.asarray(wide.bins, np.int64), np.asarray(wide.last), cap
    )
    return _back(new._replace(counts=np.asarray(state.counts + batch, np.int64)), torch_out)


def modelopt_torch_update(state: Any, rows: Any, *, skip_zeros: bool, lanes: int) -> Any:
    """:func:`arrayobs._core._calib_modelopt.histogram_update` (a HistState:
    ModelOpt's ``torch_hist=True``) of host ``rows`` ((C, M) float32), or None
    (then run the generic step; also for ``skip_zeros``). A row's new range
    depends on it only through its min and max (the ``torch.min(x) < 0`` abs,
    then the maximum), so the generic step on those gives every field but the
    counts; these are then counted by histc's rule, the row's magnitudes
    where its minimum is negative."""
    from arrayobs._core import _calib_modelopt as core

    found = None if skip_zeros else _prepare(state, rows)
    ext = None if found is None else _extremes(found[2], magnitude=False)
    if found is None or ext is None:
        return None
    state, torch_out, x = found
    mn, mx, _ = ext
    cap = state.counts.shape[1]
    new = core.histogram_update(state, np.stack([mn, mx], axis=1), False, lanes, xp=_np())
    if np.any(new.error != 0) or np.any(new.need > cap):
        return _back(new, torch_out)  # the counts are the old ones
    # histc's range: [0, hi], or [-1, 1] where hi is 0
    zero = new.last == 0
    lo = np.where(zero, np.float32(-1), np.float32(0)).astype(np.float32)
    hi = np.where(zero, np.float32(1), new.last).astype(np.float32)
    n = np.asarray(new.bins, np.int32)
    if _kernels_on():
        from arrayobs._backends._kernels import _calib_hist

        batch = _parts(_calib_hist.histc_rows, x, mn < 0, lo, hi, n, cap)
    else:
        from arrayobs._core import _histogram

        batch = np.zeros((x.shape[0], cap), np.float32)
        for r in range(x.shape[0]):
            a = np.abs(x[r]) if mn[r] < 0 else x[r]
            batch[r, : n[r]] = _histogram.histc(a, int(n[r]), float(lo[r]), float(hi[r]), xp=_np())
    counts = state.counts + batch.astype(np.float32)
    return _back(new._replace(counts=counts), torch_out)


def max_stand_in(x: Any, xp: Any) -> Any:
    """Two float32 values holding the min and max of host float32 ``x`` (NumPy, CPU
    torch), as ``xp`` arrays, from one compiled pass; None otherwise. ModelOpt's
    per-tensor amax, ``max(|max|, |min|)``, depends on nothing else (a NaN gives
    NaN to both, an infinity stays, mixed zeros lose their sign to the ``abs``)."""
    from arrayobs._backends import _kernels

    found = _kernels._host(x) if _kernels.enabled() else None
    if found is None or found[1] != "float32":
        return None
    pair = _kernels.aminmax(x)
    if pair is None:
        return None
    return xp.asarray(np.array(pair, np.float32))
