"""ModelOpt 0.47.0's ``MaxCalibrator`` and ``HistogramCalibrator(torch_hist=True)``
collection, as pure steps on fixed-shape states (docs/design/calibrators.md, 3, 4.3, 7.2).

Nothing here reads an array back or branches on a value: each update runs
under ``jax.jit`` and lazily on Dask. The reference's mid-stream refusals become
sticky error codes (the first one is kept and the state stops changing), and the
histogram's growth goes into a static capacity with a sticky ``need``.

Histogram (torch mode), per channel ``c`` of a leading channel axis (one channel
per tensor): ModelOpt's first call bins ``|x|`` with ``torch.histc(x, n0, 0, m)``
and keeps ``torch.linspace(0, m, n0 + 1)`` as edges; a later call whose max ``m``
passes the last edge sets ``n = ceil(f32(m / w))`` bins and recomputes the edges
as ``torch.arange(0, f32(m + w), w)`` (``w`` the first bin's width), then bins
the call over ``[0, last edge]`` with ``n`` bins and adds the old counts into the
first bins. The edges are a function of a few scalars (``first_max``, or
``width`` and ``length`` after a growth), so the state keeps those and
:func:`histogram_edges` rebuilds the array on the host. ``torch.arange``'s float32
values depend on ATen's vector width ``lanes`` (8 in its AVX2 kernel, which torch 2.13
also runs on AVX512 CPUs; 16 in a 16-lane one): its vectorized loop starts each vector
from a float32 base (section 1.6).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from arrayobs._compat import device_of
from arrayobs._core import _histogram as hist
from arrayobs._core._minmax import quiet
from arrayobs._core._sum import cascade_sum

# Error codes of the sticky ``error`` field (0: none), each the reference's refusal.
NONFINITE_FIRST = 1  # histc's "range of [0, nan] is not finite" (RuntimeError)
INFINITE_BINS = 2  # int(inf) of the new bin count (OverflowError)
EMPTY_AFTER_SKIP = 3  # max() of an empty tensor after skip_zeros (RuntimeError)
SHRINK = 4  # "hist[:old] += old" with fewer new bins (RuntimeError)
MAX_NAN = 1  # MaxCalibrator's assertion on a NaN amax
MAX_INF = 2  # MaxCalibrator's assertion on an infinite amax
_BIG = float(2**30)  # bin counts above this are only ever refused (capacity)


class MaxState(NamedTuple):
    """``amax`` (the reference's shape and dtype), ``seen`` and ``error`` (0-d)."""

    amax: Any
    seen: Any
    error: Any


class HistState(NamedTuple):
    """Torch-mode histogram, one row per channel (``C`` rows, ``CAP`` bins)."""

    counts: Any  # float32 (C, CAP): the reference's _calib_hist in the first `bins`
    bins: Any  # int32 (C,): the reference's _num_bins
    width: Any  # float32 (C,): edges[1] - edges[0]
    last: Any  # float32 (C,): edges[-1]
    length: Any  # int32 (C,): len(edges)
    first_max: Any  # float32 (C,): the first call's max (edges = linspace(0, it))
    grown: Any  # bool (C,): edges are the arange form
    started: Any  # bool (C,)
    error: Any  # int32 (C,): first refusal's code, sticky
    need: Any  # int32 (C,): largest bin count asked for (> CAP: overflow, sticky)


# -- MaxCalibrator ---------------------------------------------------------------
def reduce_axes(ndim: int, axis: Any) -> tuple[int, ...] | None:
    """ModelOpt's ``convert_quantization_axis_to_reduce_axis``: the dims not
    named by ``axis`` (negatives allowed); ``None`` reduces everything."""
    if axis is None:
        return None
    named = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    return tuple(i for i in range(ndim) if i not in named and (i - ndim) not in named)


def max_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape of ModelOpt's amax for input ``shape``: the reduced dims kept as
    1, squeezed to ``()`` when it has one element; an empty reduce list reduces
    every dim (``torch.amax(dim=[])``), giving ``()``."""
    axes = reduce_axes(len(shape), axis)
    if not axes:
        return ()
    out = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return () if math.prod(out) == 1 else out


def max_init(shape: tuple[int, ...], dtype: Any, *, xp: ModuleType, device: Any) -> MaxState:
    """The never-collected state for amax of ``shape`` and ``dtype``."""
    return MaxState(
        xp.full(shape, -math.inf, dtype=dtype, device=device),
        xp.asarray(False, device=device),
        xp.asarray(0, dtype=xp.int32, device=device),
    )


def max_batch(x: Any, axis: Any, *, xp: ModuleType) -> Any:
    """ModelOpt's ``reduce_amax(x, reduce_axis)``: ``max(|max|, |min|)``."""
    axes = reduce_axes(x.ndim, axis)
    if not axes:
        out = xp.maximum(xp.abs(xp.max(x)), xp.abs(xp.min(x)))
        return _nan_where(xp.any(xp.isnan(x)), out, xp)
    out = xp.maximum(
        xp.abs(xp.max(x, axis=axes, keepdims=True)), xp.abs(xp.min(x, axis=axes, keepdims=True))
    )
    out = _nan_where(xp.any(xp.isnan(x), axis=axes, keepdims=True), out, xp)
    return xp.reshape(out, ()) if math.prod(out.shape) == 1 else out


def _nan_where(nan: Any, value: Any, xp: ModuleType) -> Any:
    """``value``, NaN where ``nan``: torch's max and min propagate a NaN, and XLA's
    do not across the shards of an array sharded over CPU devices (jax 0.10.2)."""
    return xp.where(nan, xp.asarray(math.nan, dtype=value.dtype, device=device_of(value)), value)


def max_update(state: MaxState, x: Any, axis: Any, *, xp: ModuleType) -> MaxState:
    """One ``MaxCalibrator.collect(x)``; a NaN or infinite amax records its
    code and leaves the state as it was (sticky)."""
    if math.prod(x.shape) == 0:
        msg = "MaxCalibrator cannot collect an empty array (torch.max raises RuntimeError)"
        raise RuntimeError(msg)
    new = max_batch(x, axis, xp=xp)
    if tuple(new.shape) != tuple(state.amax.shape):
        msg = f"amax shape changed! (was {tuple(state.amax.shape)}, got {tuple(new.shape)})"
        raise RuntimeError(msg)
    dev = device_of(x)
    code = xp.where(
        xp.any(xp.isnan(new)),
        xp.asarray(MAX_NAN, dtype=xp.int32, device=dev),
        xp.where(
            xp.any(xp.isinf(new)),
            xp.asarray(MAX_INF, dtype=xp.int32, device=dev),
            state.error * 0,
        ),
    )
    ok = (state.error == 0) & (code == 0)
    merged = xp.where(state.seen, xp.maximum(state.amax, new), new)
    return MaxState(
        xp.where(ok, merged, state.amax),
        state.seen | ok,
        xp.where(state.error != 0, state.error, code),
    )


# -- HistogramCalibrator(torch_hist=True) ----------------------------------------------
def histogram_init(
    num_bins: int, channels: int, capacity: int, *, xp: ModuleType, device: Any
) -> HistState:
    """The never-collected state: ``channels`` rows of ``capacity`` zero counts."""

    def full(value: Any, dtype: Any) -> Any:
        return xp.full((channels,), value, dtype=dtype, device=device)

    return HistState(
        xp.zeros((channels, capacity), dtype=xp.float32, device=device),
        full(num_bins, xp.int32),
        full(0.0, xp.float32),
        full(0.0, xp.float32),
        full(num_bins + 1, xp.int32),
        full(0.0, xp.float32),
        full(False, xp.bool),
        full(False, xp.bool),
        full(0, xp.int32),
        full(num_bins, xp.int32),
    )


def arange_values(k: Any, width: Any, length: Any, lanes: int, *, xp: ModuleType) -> Any:
    """``torch.arange(0, end, width)[k]`` (float32, CPU) for an arange of
    ``length`` values: ATen's vector loop (pairs of ``lanes``-wide vectors)
    builds ``f32(f64(base) + j * width)`` from a float32 base ``f32(k0 *
    width)``; the scalar tail is ``f32(k * width)``. Needs float64 in ``xp``."""
    k = xp.astype(k, xp.int32)
    pair = 2 * lanes
    vector = k < (xp.astype(length, xp.int32) // pair) * pair
    k0 = (k // lanes) * lanes
    j = xp.astype(k - k0, xp.float64)
    base = xp.astype(xp.astype(k0, xp.float32) * width, xp.float64)
    lane = xp.astype(base + j * xp.astype(width, xp.float64), xp.float32)
    tail = xp.astype(k, xp.float32) * width  # a float32 product is the rounded exact one
    return xp.where(vector, lane, tail)


def _bin_index(x: Any, keep: Any, bins: Any, hi: Any, capacity: int, *, xp: ModuleType) -> Any:
    """histc's bin of every value of ``x`` (C, K) for per-row ``bins`` over
    ``[0, hi]`` (``[-1, 1]`` when ``hi == 0``), as a flat index into
    ``C * (capacity + 1)`` slots (the last slot of each row: not counted)."""
    zero = hi == 0
    lo = xp.where(zero, xp.asarray(-1.0, dtype=xp.float32, device=device_of(hi)), xp.zeros_like(hi))
    top = xp.where(zero, xp.asarray(1.0, dtype=xp.float32, device=device_of(hi)), hi)
    lo2, top2 = lo[:, None], top[:, None]
    inside = keep & (x >= lo2) & (x <= top2)
    nf = xp.astype(bins, xp.float32)[:, None]
    scaled = (xp.where(inside, x, lo2) - lo2) * nf
    span = xp.broadcast_to(top2 - lo2, scaled.shape)
    position = hist._divide(scaled, span, xp)
    # a NaN or inf position (a refused call's) would warn in the cast
    position = xp.where(xp.isfinite(position), position, xp.zeros_like(position))
    index = xp.astype(position, xp.int32)
    index = xp.clip(index, 0, None)
    index = xp.minimum(index, xp.astype(bins, xp.int32)[:, None] - 1)
    index = xp.where(inside, index, xp.full_like(index, capacity))
    rows = xp.arange(x.shape[0], dtype=xp.int32, device=device_of(x))[:, None]
    return xp.reshape(index + rows * (capacity + 1), (-1,))


@quiet  # the width of a zero first batch divides by zero (the reference's OverflowError)
def histogram_update(
    state: HistState, x: Any, skip_zeros: bool, lanes: int, *, xp: ModuleType
) -> HistState:
    """One ``HistogramCalibrator.collect`` per row of ``x`` (C, K), torch mode.

    A row whose call the reference refuses records its code; then, as when a
    row needs more than the capacity (``need``), the whole state stays as it
    was, from this call on. Needs float64 in ``xp`` (the arange rule)."""
    channels, capacity = state.counts.shape
    if x.shape[1] == 0:
        msg = "HistogramCalibrator cannot collect an empty array (torch.min raises RuntimeError)"
        raise RuntimeError(msg)
    nan = xp.any(xp.isnan(x), axis=1, keepdims=True)
    negative = (xp.min(x, axis=1, keepdims=True) < 0) & ~nan  # a NaN: no abs, as the reference
    values = xp.astype(xp.where(negative, xp.abs(x), x), xp.float32)
    keep = (values != 0) if skip_zeros else xp.ones_like(values, dtype=xp.bool)
    kept_any = xp.any(keep, axis=1)
    low = xp.asarray(-math.inf, dtype=xp.float32, device=device_of(x))
    m = _nan_where(nan[:, 0], xp.max(xp.where(keep, values, low), axis=1), xp)
    f32 = xp.float32
    first = ~state.started
    # first call: linspace(0, m, n0 + 1), whose step is the first width
    n0 = state.bins
    first_width = hist._divide(m, xp.astype(n0, f32), xp)
    # later call: growth when m passes the last edge
    grow = state.started & (m > state.last)
    # a zero width (all-zero first batch) gives inf, without dividing by zero:
    # Dask evaluates later, outside any floating-point error state
    widths = state.width > 0
    safe_width = xp.where(widths, state.width, xp.ones_like(state.width))
    inf = xp.asarray(math.inf, dtype=xp.float32, device=device_of(x))
    ratio = xp.where(widths, xp.ceil(hist._divide(m, safe_width, xp)), inf)
    finite_bins = xp.isfinite(ratio)
    # a finite count past int32 is refused by the capacity (need), never cast wrongly
    grown_bins = xp.astype(
        xp.where(finite_bins, xp.minimum(ratio, _BIG), xp.zeros_like(ratio)), xp.int32
    )
    end = xp.astype(m + state.width, xp.float64)
    length_f = xp.ceil(end / xp.astype(safe_width, xp.float64))
    length_f = xp.where(grow & finite_bins, xp.minimum(length_f, _BIG), 1.0)
    length = xp.astype(length_f, xp.int32)
    last_grown = arange_values(length - 1, state.width, length, lanes, xp=xp)
    bins = xp.where(grow, grown_bins, state.bins)
    hi = xp.where(first, m, xp.where(grow, last_grown, state.last))
    code = xp.zeros_like(state.error)
    code = xp.where(grow & (bins < state.bins), SHRINK, code)
    code = xp.where(grow & ~finite_bins, INFINITE_BINS, code)
    code = xp.where(first & ~xp.isfinite(m), NONFINITE_FIRST, code)
    code = xp.where(~kept_any, EMPTY_AFTER_SKIP, code)
    need = xp.where(code == 0, xp.maximum(state.need, bins), state.need)
    ok = xp.all((state.error == 0) & (code == 0)) & xp.all(need <= capacity)
    binned_bins = xp.clip(bins, 1, capacity)
    index = _bin_index(values, keep, binned_bins, hi, capacity, xp=xp)
    new_counts = hist.count_bins(index, channels * (capacity + 1), xp=xp)
    new_counts = xp.reshape(new_counts, (channels, capacity + 1))[:, :capacity]
    counts = new_counts + state.counts

    def pick(new: Any, old: Any) -> Any:
        return xp.where(ok, new, old)

    return HistState(
        pick(counts, state.counts),
        pick(bins, state.bins),
        pick(xp.where(first, first_width, state.width), state.width),
        pick(hi, state.last),
        pick(xp.where(grow, length, state.length), state.length),
        pick(xp.where(first, m, state.first_max), state.first_max),
        pick(state.grown | grow, state.grown),
        pick(xp.ones_like(state.started), state.started),
        xp.where(state.error != 0, state.error, code),
        need,
    )


def histogram_edges(row: dict[str, Any], lanes: int) -> np.ndarray:
    """The reference's ``_calib_bin_edges`` (float32, host) of one row, from
    its host scalars (``first_max``, ``width``, ``length``, ``grown``)."""
    length = int(row["length"])
    if not row["grown"]:
        first = float(row["first_max"])
        return np.asarray(hist.linspace(0.0, first, length, xp=np, device=None))
    width = np.float32(row["width"])
    k = np.arange(length, dtype=np.int64)
    return np.asarray(arange_values(k, width, np.asarray(length), lanes, xp=np), dtype=np.float32)


# -- MseCalibrator ------------------------------------------------------------------
@quiet  # amax == 0 divides by zero before the reference's mask replaces the scale
def tensor_quant(
    x: Any, amax: Any, num_bits: int = 8, unsigned: bool = False, *, xp: ModuleType
) -> Any:
    """ModelOpt's ``_tensor_quant`` on the CPU (narrow range), float32:
    ``scale = max_bound / amax``, ``clamp(round(x * scale)) / scale``; an amax
    at or below 2**-24 quantizes to 0. A fixed quantizer for MseCalibrator."""
    x = xp.astype(x, xp.float32)
    amax = xp.astype(amax, xp.float32)
    max_bound = float(2.0 ** (num_bits - 1 + int(unsigned)) - 1.0)
    min_bound = 0.0 if unsigned else -max_bound
    # an array numerator: torch's float / tensor is reciprocal(tensor) * float
    scale = xp.asarray(max_bound, dtype=xp.float32, device=device_of(amax)) / amax
    tiny = amax <= 1.0 / (1 << 24)
    q = xp.clip(xp.round(x * xp.where(tiny, xp.zeros_like(scale), scale)), min_bound, max_bound)
    divisor = xp.broadcast_to(xp.where(tiny, xp.ones_like(scale), scale), q.shape)
    return hist._divide(q, divisor, xp)  # XLA would multiply by a broadcast reciprocal


def mse_steps(start: float, stop: float, step: float) -> int:
    """The reference's ``ceil((stop - start) / step) + 1`` candidates."""
    return math.ceil((stop - start) / step) + 1


def mse_candidates(start: float, stop: float, steps: int) -> np.ndarray:
    """``torch.linspace(start, stop, steps)`` (float32, CPU), on the host."""
    return np.asarray(hist.linspace(start, stop, steps, xp=np, device=None), dtype=np.float32)


class MseState(NamedTuple):
    """MseCalibrator's state: ``losses`` (float32, shape ``(steps, *kept)``) are the
    reference's ``_losses_sum`` stacked; ``seen`` (bool, 0-d) whether any
    batch was collected."""

    amax: Any  # the initial amax (the reference's ``_initial_amax``)
    candidates: Any  # float32 (steps,): the multipliers
    losses: Any
    seen: Any


def mse_kept(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The dims ModelOpt's losses keep for inputs of ``shape`` (``axis`` as
    :func:`reduce_axes`; an ``axis`` naming every dim reduces everything, as
    ``torch.sum(dim=[])``). They must lead: then each loss sums a contiguous
    run of the error, in the order reproduced here."""
    axes = reduce_axes(len(shape), axis)
    kept = () if not axes else tuple(d for d in range(len(shape)) if d not in axes)
    if kept != tuple(range(len(kept))):
        msg = (
            f"MseCalibrator here sums contiguous runs only: axis must name leading dims, "
            f"got axis={axis!r} for a {len(shape)}-d input"
        )
        raise NotImplementedError(msg)
    return tuple(shape[d] for d in kept)


def mse_init(
    amax: Any, kept: tuple[int, ...], candidates: np.ndarray, *, xp: ModuleType, device: Any
) -> MseState:
    """The never-collected state: zero losses of shape (steps, *kept)."""
    return MseState(
        amax,
        xp.asarray(candidates, dtype=xp.float32, device=device),
        xp.zeros((candidates.shape[0], *kept), dtype=xp.float32, device=device),
        xp.asarray(False, device=device),
    )


_MSE_VALUES = 1 << 24  # errors summed in one cascade (candidates grouped up to this)


def mse_update(
    state: MseState,
    x: Any,
    quant_func: Any,
    error_func: Any,
    *,
    xp: ModuleType,
    whole_rows: Any = None,
) -> MseState:
    """One ``MseCalibrator.collect(x)``: per candidate, ``quant_func(x,
    amax * m)``, the error (``(x - xq) ** 2``, or ``error_func(x, xq)``,
    which must be float32) summed in ATen's order over the trailing dims, then
    added to the losses in float32 (the first batch's losses are taken as
    they are, as the reference's clone). Candidates are summed in groups
    (one cascade each, up to 2**24 errors: fewer operations to trace);
    ``whole_rows`` (the backend's) prepares each group's (K, n) errors."""
    kept = tuple(state.losses.shape[1:])
    if tuple(x.shape[: len(kept)]) != kept:
        msg = f"the losses keep dims {kept}; got an input of shape {tuple(x.shape)}"
        raise ValueError(msg)
    rows = math.prod(kept)
    x32 = xp.astype(x, xp.float32)
    steps = state.candidates.shape[0]
    group = max(1, min(steps, _MSE_VALUES // max(1, math.prod(x.shape))))
    losses = []
    for lo in range(0, steps, group):
        errors = [
            _mse_error(x32, state, step, quant_func, error_func, xp)
            for step in range(lo, min(lo + group, steps))
        ]
        flat = xp.reshape(xp.stack(errors), (len(errors) * rows, -1))
        flat = flat if whole_rows is None else whole_rows(flat)
        losses.append(xp.reshape(cascade_sum(flat, xp=xp), (len(errors), *kept)))
    batch = losses[0] if len(losses) == 1 else xp.concat(losses, axis=0)
    return MseState(
        state.amax,
        state.candidates,
        xp.where(state.seen, state.losses + batch, batch),
        xp.ones_like(state.seen),
    )


def _mse_error(
    x32: Any, state: MseState, step: int, quant_func: Any, error_func: Any, xp: ModuleType
) -> Any:
    """One candidate's elementwise error, rounded before the sum adds it."""
    xq = quant_func(x32, state.amax * state.candidates[step])
    if error_func is None:
        diff = x32 - xq  # F.mse_loss(reduction="none"): diff * diff
        error = diff * diff
    else:
        error = error_func(x32, xq)
    if error.dtype != xp.float32:
        msg = f"error_func must return float32 errors, got {error.dtype}"
        raise TypeError(msg)
    # a no-op division by a data-dependent one: XLA on the CPU would contract
    # the error's last product and the sum's add into one fused multiply-add
    return hist._divide(error, xp.ones_like(error), xp)


def mse_best(amax: np.ndarray, candidates: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """``amax * candidates[argmin(losses, axis=0)]`` viewed as ``amax`` (host):
    the first smallest loss per channel, a NaN first, as ``torch.argmin``."""
    best = candidates[np.argmin(losses, axis=0)]
    return amax * (best if best.ndim == 0 else best.reshape(amax.shape))  # type: ignore[no-any-return]
