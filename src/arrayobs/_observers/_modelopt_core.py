"""The functional core of :mod:`arrayobs.calib.modelopt` (ModelOpt 0.47.0's
calibrators): ``max_*``, ``histogram_*`` and ``mse_*``, pure updates on fixed-shape states
(run under ``jax.jit`` and lazily on Dask) and host results, re-exported there.
The classes (:mod:`arrayobs._observers._modelopt`) call these.
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _backends
from arrayobs._arguments import array_namespace
from arrayobs._backends import _calib_fast
from arrayobs._compat import (
    backend_name,
    default_device,
    device_of,
    has_dtype,
    resolve_namespace,
    to_host,
)
from arrayobs._core import _calib_modelopt as core
from arrayobs._core import _calib_modelopt_search as search
from arrayobs._core import _calib_nphist as nphist
from arrayobs._core._calib_modelopt import HistState, MaxState, MseState
from arrayobs._core._calib_nphist import AbsState


def default_lanes() -> int:
    """The ``lanes`` that ``torch.arange``'s float32 values follow here: 8
    (ATen's AVX2 kernel, which torch 2.13 also runs on AVX512 CPUs: arange has
    no AVX512 kernel) unless the imported torch's arange matches 16. torch is
    asked only when already imported; without it, 8."""
    if sys.modules.get("torch") is None:
        return 8
    return _torch_lanes()


@functools.lru_cache(maxsize=1)
def _torch_lanes() -> int:
    """Which vector width reproduces a 64-value ``torch.arange`` (width 0.1,
    where 8 and 16 lanes give different values); 8 when neither does."""
    import torch

    width, length = np.float32(0.1), 64
    end = (length - 0.5) * float(width)
    got = torch.arange(0.0, end, float(width), dtype=torch.float32, device="cpu")
    k = np.arange(length, dtype=np.int64)
    for lanes in (8, 16):
        model = core.arange_values(k, width, np.asarray(length), lanes, xp=np)
        if np.array_equal(np.asarray(model, dtype=np.float32), got.numpy()):
            return lanes
    return 8


def _namespace(xp: Any, like: Any) -> ModuleType:
    return resolve_namespace(xp) if xp is not None else array_namespace(like, "state")


# -- MaxCalibrator ------------------------------------------------------------------
def max_init(
    shape: tuple[int, ...] = (), dtype: Any = None, *, xp: Any = None, device: Any = None
) -> MaxState:
    """The never-collected state of an amax of ``shape`` (the reference's
    shape for the inputs to come, see ``core.max_shape``) and ``dtype``
    (default float32). ``xp`` defaults to NumPy."""
    import numpy

    ns = resolve_namespace(numpy if xp is None else xp)
    device = default_device(ns) if device is None else device
    return core.max_init(tuple(shape), ns.float32 if dtype is None else dtype, xp=ns, device=device)


def max_update(state: MaxState, x: Any, axis: Any = None, *, xp: Any = None) -> MaxState:
    """One ``MaxCalibrator(axis=axis).collect(x)``. A NaN or infinite amax
    (the reference's AssertionError) is recorded in ``state.error`` and the
    state stops changing; :func:`max_result` raises it."""
    ns = _namespace(xp, state.amax)
    # per tensor on host float32: the same update on the batch's (min, max), read in one pass
    stand_in = _calib_fast.max_stand_in(x, ns) if axis is None else None
    return core.max_update(state, x if stand_in is None else stand_in, axis, xp=ns)


def raise_max_error(code: int) -> None:
    """Raise ModelOpt's AssertionError for a MaxState error ``code`` (nothing for none)."""
    if code == core.MAX_NAN:
        msg = "detected nan values in amax"
        raise AssertionError(msg)
    if code == core.MAX_INF:
        msg = "detected inf values in amax"
        raise AssertionError(msg)


def max_result(state: MaxState) -> np.ndarray | None:
    """``compute_amax()`` on the host: the amax, or None before any collect."""
    raise_max_error(int(to_host(state.error)))
    if not bool(to_host(state.seen)):
        return None
    return np.asarray(to_host(state.amax))


# -- HistogramCalibrator(torch_hist=True) ------------------------------------------------
def histogram_init(
    num_bins: int = 2048,
    *,
    xp: Any = None,
    device: Any = None,
    channels: int | None = None,
    capacity: int | None = None,
    torch_hist: bool = True,
) -> HistState | AbsState:
    """The never-collected state: ``channels`` rows (one when None: per
    tensor) of ``capacity`` bins (default ``16 * num_bins``); ``torch_hist``
    picks the reference's collection mode (:class:`HistState`, or the NumPy
    mode's :class:`AbsState` from :mod:`arrayobs._core._calib_nphist`).

    A growth past the capacity stops the state and records ``need``;
    :func:`histogram_result` then refuses, naming it (the class re-pads
    instead)."""
    import numpy

    ns = resolve_namespace(numpy if xp is None else xp)
    device = default_device(ns) if device is None else device
    cap = 16 * num_bins if capacity is None else capacity
    if cap < num_bins:
        msg = f"capacity must be at least num_bins ({num_bins}), got {cap}"
        raise ValueError(msg)
    with _backends.shared(ns).float64_scope():
        # Both modes compute edges in float64; NumPy mode also counts in int64.
        wide = ("float64",) if torch_hist else ("float64", "int64")
        if not all(has_dtype(ns, device, name) for name in wide):
            msg = (
                f"HistogramCalibrator(torch_hist={torch_hist}) computes with "
                f"{' and '.join(wide)}; {backend_name(ns)} has no "
                f"{' or '.join(wide)} on device {device!r}"
            )
            raise TypeError(msg)
    if not torch_hist:  # int64 counts and float64 edges (JAX: inside enable_x64)
        with _backends.shared(ns).float64_scope():
            return nphist.modelopt_init(
                num_bins, channels=channels, capacity=cap, xp=ns, device=device
            )
    return core.histogram_init(
        num_bins, 1 if channels is None else channels, cap, xp=ns, device=device
    )


def rows(x: Any, channel_axis: int | None, *, xp: ModuleType) -> Any:
    """``x`` as (C, K): one row per tensor, or each channel's slice along
    ``channel_axis`` flattened in C order."""
    if channel_axis is None:
        return xp.reshape(x, (1, -1))
    moved = xp.moveaxis(x, channel_axis, 0)
    return xp.reshape(moved, (moved.shape[0], -1))


def histogram_update(
    state: HistState | AbsState,
    x: Any,
    *,
    skip_zeros: bool = False,
    channel_axis: int | None = None,
    lanes: int | None = None,
    xp: Any = None,
) -> HistState | AbsState:
    """One ``HistogramCalibrator(torch_hist=True).collect(x)`` (per channel:
    one per channel slice along ``channel_axis``; ``torch_hist=False`` for an
    :class:`AbsState`). Pure; no host read."""
    ns = _namespace(xp, state.counts)
    lanes = default_lanes() if lanes is None else lanes
    with _backends.shared(ns).float64_scope():
        x2 = rows(x, channel_axis, xp=ns)
        # Host float32 rows: the fast path (equal to the generic step bit for bit).
        if isinstance(state, AbsState):
            fast = _calib_fast.modelopt_update(state, x2, skip_zeros=skip_zeros)
            if fast is not None:
                return fast  # type: ignore[no-any-return]
            return nphist.modelopt_update(state, x2, skip_zeros=skip_zeros, xp=ns)  # type: ignore[no-any-return]
        fast = _calib_fast.modelopt_torch_update(state, x2, skip_zeros=skip_zeros, lanes=lanes)
        if fast is not None:
            return fast  # type: ignore[no-any-return]
        return core.histogram_update(state, x2, skip_zeros, lanes, xp=ns)


_MESSAGES = {
    core.NONFINITE_FIRST: (RuntimeError, "torch.histc: range of [0, nan] is not finite"),
    core.INFINITE_BINS: (OverflowError, "cannot convert float infinity to integer"),
    core.EMPTY_AFTER_SKIP: (
        RuntimeError,
        "max(): Expected reduction dim to be specified for input.numel() == 0",
    ),
    core.SHRINK: (RuntimeError, "the histogram's bin count shrank (the reference's size mismatch)"),
}


def raise_error(code: int, channel: int | None) -> None:
    """The reference's exception for a sticky error code."""
    if code == 0:
        return
    kind, text = _MESSAGES[code]
    where = "" if channel is None else f" (channel {channel})"
    raise kind(text + where)


def histogram_host(
    state: HistState | AbsState, lanes: int | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each row's ``(_calib_hist, _calib_bin_edges)`` as the reference holds
    them (torch mode: float32 counts and edges; NumPy mode: int64 counts,
    float32 or, once grown, float64 edges), on the host; refuses a state with
    a recorded error or past its capacity."""
    # a lazy (Dask) state computes here: NumPy's warnings of the core's
    # inf - inf and 0 / 0 (silent in the references) stay off
    with np.errstate(all="ignore"):
        if isinstance(state, AbsState):
            return [(h, e) for h, e in nphist.modelopt_result(state)]
        host = {k: np.asarray(to_host(v)) for k, v in state._asdict().items()}
    lanes = default_lanes() if lanes is None else lanes
    channels, capacity = host["counts"].shape
    per_channel = channels > 1
    for c in range(channels):
        raise_error(int(host["error"][c]), c if per_channel else None)
    need = int(host["need"].max())
    if need > capacity:
        msg = (
            f"the histogram needs {need} bins, more than its capacity {capacity}: "
            f"re-run with capacity >= {need}"
        )
        raise ValueError(msg)
    out = []
    for c in range(channels):
        row = {k: host[k][c] for k in ("first_max", "width", "length", "grown")}
        edges = core.histogram_edges(row, lanes)
        out.append((host["counts"][c, : int(host["bins"][c])].copy(), edges))
    return out


def searched_state(state: HistState | AbsState, method: str) -> HistState | AbsState:
    """The state the reference holds after ``compute_amax(method)``. NumPy
    mode's entropy search sets each started row's first bin to its second
    (``bins = calib_hist[:]`` is a view of the stored histogram), before its
    search can still refuse; later collects and searches see that change.
    Anything else leaves the state as it is. Pure: no host read."""
    if method != "entropy" or not isinstance(state, AbsState) or state.counts.shape[1] < 2:
        return state
    counts = state.counts
    ns = array_namespace(counts, "state")
    with _backends.shared(ns).float64_scope():  # int64 counts (JAX: enable_x64)
        # one bin: the reference's bins[1] raises IndexError before any change
        ok = ns.reshape(state.started & (state.bins >= 2), (-1, 1))
        first = ns.where(ok, counts[:, 1:2], counts[:, 0:1])
        return state._replace(counts=ns.concat([first, counts[:, 1:]], axis=1))


def histogram_result(
    state: HistState | AbsState,
    method: str,
    *,
    num_bits: int = 8,
    unsigned: bool = False,
    stride: int = 1,
    start_bin: int = 128,
    percentile: float = 99.99,
    lanes: int | None = None,
    per_channel: bool = False,
) -> tuple[np.ndarray | None, HistState | AbsState]:
    """``compute_amax(method, ...)``: the amax on the host (float32, 0-d per
    tensor, or (C,) with ``per_channel``; None before any collect) and the
    state the reference holds afterwards, to collect and search on with:
    ``amax, state = histogram_result(state, "entropy")``.

    The state changes only in NumPy mode's entropy search, which sets the
    stored first bin to the second (:func:`searched_state`). A search that
    refuses returns nothing; the reference has changed its first bin by then,
    and the class keeps that change."""
    if method == "percentile" and (percentile < 0 or percentile > 100):
        msg = "Invalid percentile. Must be in range 0 <= percentile <= 100."
        raise ValueError(msg)
    if method not in ("entropy", "mse", "percentile"):
        msg = f"Unknown calibration method {method}"
        raise TypeError(msg)
    with np.errstate(all="ignore"):  # a lazy (Dask) state computes here
        started = np.asarray(to_host(state.started))
    if not started.all():
        return None, state
    state = searched_state(state, method)
    amax = []
    numpy_mode = isinstance(state, AbsState)
    for counts, edges in histogram_host(state, lanes):
        h = counts if numpy_mode else counts.astype(np.int32)  # torch mode: hist.int()
        if method == "entropy":
            amax.append(search.amax_entropy(h, edges, num_bits, unsigned, stride, start_bin))
        elif method == "mse":
            amax.append(search.amax_mse(h, edges, num_bits, unsigned, stride, start_bin))
        else:
            amax.append(search.amax_percentile(h, edges, percentile))
    out = np.stack(amax).astype(np.float32)
    return (out if per_channel else out.reshape(())), state


# -- MseCalibrator ------------------------------------------------------------------
def mse_init(
    amax: Any,
    shape: tuple[int, ...] = (),
    axis: Any = None,
    step_size: float = 0.1,
    start_multiplier: float = 0.25,
    stop_multiplier: float = 4.0,
    *,
    xp: Any = None,
    device: Any = None,
) -> MseState:
    """The never-collected state of ``MseCalibrator(amax, axis, step_size,
    start_multiplier, stop_multiplier)`` for inputs of ``shape`` (only the
    dims ``axis`` keeps matter; per tensor any shape fits). ``xp`` and
    ``device`` default to ``amax``'s (an ``amax`` of another library is
    converted). ``axis`` must name leading dims
    (NotImplementedError otherwise)."""
    ns = _namespace(xp, amax)
    if device is None:
        own = xp is None or array_namespace(amax, "amax") is ns
        device = device_of(amax) if own else default_device(ns)
    amax = ns.asarray(amax, device=device)  # the state's arrays share a namespace
    kept = core.mse_kept(tuple(shape), axis)
    steps = core.mse_steps(start_multiplier, stop_multiplier, step_size)
    candidates = core.mse_candidates(start_multiplier, stop_multiplier, steps)
    return core.mse_init(amax, kept, candidates, xp=ns, device=device)


def mse_update(
    state: MseState, x: Any, quant_func: Any, error_func: Any = None, *, xp: Any = None
) -> MseState:
    """One ``MseCalibrator.collect(x)`` with ``quant_func(x, amax)`` and
    ``error_func(x, xq)`` (default: the squared error), both taking and
    returning arrays of ``x``'s namespace. Pure; no host read: under
    ``jax.jit``, pass the functions as static (``functools.partial``). No
    ``quant_func``: RuntimeError, as the reference."""
    if quant_func is None:
        msg = "Quantization function not set."
        raise RuntimeError(msg)
    ns = _namespace(xp, state.losses)
    rows = _backends.shared(ns).whole_rows
    return core.mse_update(state, x, quant_func, error_func, xp=ns, whole_rows=rows)


def mse_result(state: MseState) -> np.ndarray | None:
    """``compute_amax()`` on the host: ``amax * candidate`` with the first
    smallest summed loss per channel (the initial amax's shape), or None
    before any collect."""
    if not bool(to_host(state.seen)):
        return None
    host = [np.asarray(to_host(v)) for v in (state.amax, state.candidates, state.losses)]
    return core.mse_best(*host)
