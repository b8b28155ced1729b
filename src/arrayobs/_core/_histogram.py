"""torch 2.13.0's HistogramObserver arithmetic, op for op, on the Array API.

``torch.ao.quantization.HistogramObserver`` keeps a float32 histogram over
``[min_val, max_val]``; each batch is binned with ``histc`` over the union of
the old and new ranges, and the old histogram is re-binned into that range
(upsampled 16x, ``linspace``, ``bucketize``, ``bincount``). ``calculate_qparams``
runs an L2-error search over candidate ranges (:mod:`arrayobs._core._search`,
on the host). Every rule here is ATen's CPU kernel as measured against torch 2.13.0:

- ``linspace`` (``RangeFactoriesKernel.cpp``): ``step = (end - start) /
  (steps - 1)`` in float32, then ``start + step * i`` for the first half and
  ``end - step * (steps - 1 - i)`` for the second, each *fused* (the compiler
  contracts it to an FMA: one rounding, measured bit for bit);
- ``histc`` (``HistogramKernel.cpp``, LINEAR_INTERPOLATION): the bin of ``x`` is
  ``trunc((x - lo) * bins / (hi - lo))`` in the input's dtype, op by op; values
  outside ``[lo, hi]`` are skipped, and ``x == hi`` goes to the last bin;
- ``bincount`` with float32 weights adds them in input order, in float32.

Where a value is a Python float in torch (``.item()``, scalars), it is a Python
float here; the helpers that need float64 arithmetic (:func:`linspace`,
:func:`bucket_assignments`) take a namespace that has it (NumPy on the host,
or JAX with float64 enabled locally).
"""

from __future__ import annotations

import functools
import inspect
import math
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from arrayobs._compat import device_of, to_host
from arrayobs._core._minmax import quiet
from arrayobs._core._sum import torch_sum

UPSAMPLE = 16  # torch's upsample_rate
_RUN = 1 << 20  # upsampled points re-binned at a time


class HistogramState(NamedTuple):
    """``histogram`` (float32, ``bins``) and 0-d float32 ``min_val``/``max_val``."""

    histogram: Any
    min_val: Any
    max_val: Any


def f32(value: float) -> float:
    """``value`` rounded to float32 (to nearest even), as a Python float."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def init_histogram(bins: int, *, xp: ModuleType, device: Any) -> HistogramState:
    """The never-observed state: zero counts, (+inf, -inf)."""
    return HistogramState(
        xp.zeros((bins,), dtype=xp.float32, device=device),
        xp.asarray(math.inf, dtype=xp.float32, device=device),
        xp.asarray(-math.inf, dtype=xp.float32, device=device),
    )


def dst_nbins(dtype: str) -> int:
    """torch's ``2 ** torch.iinfo(dtype).bits``: the search's destination bins
    (256 for quint4x2, as in torch); float8 dtypes raise TypeError as torch's
    ``iinfo`` does."""
    if dtype.startswith("float8"):
        msg = f"HistogramObserver needs an integer dtype (torch.iinfo refuses {dtype})"
        raise TypeError(msg)
    bits = {"qint32": 32, "int32": 32, "int16": 16, "uint16": 16}
    return 1 << bits.get(dtype, 8)


def _divide(a: Any, b: Any, xp: ModuleType) -> Any:
    """``a / b`` with ``b`` (broadcast) made data-dependent: XLA rewrites a
    division by a broadcast value as a multiplication by its reciprocal, which
    differs in the last bit (see ``_qparams._divisor``); NaN in ``a`` stays NaN."""
    return a / xp.where(xp.isnan(a), a, b)


# -- histc ---------------------------------------------------------------------
def histc_range(lo: float, hi: float) -> tuple[float, float]:
    """histc's outer edges for ``min=lo, max=hi`` (Python floats, as ATen's
    Scalars): equal edges widen by one each way; a NaN or infinite edge raises
    as torch raises (RuntimeError there)."""
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    if not (math.isfinite(lo) and math.isfinite(hi)):
        msg = f"torch.histc: range of [{lo}, {hi}] is not finite (a NaN in the input?)"
        raise ValueError(msg)
    return lo, hi


@functools.cache
def _takes_length(bincount: Callable[..., Any]) -> bool:
    """Whether ``bincount`` takes ``length=`` (JAX's: its output shape must be
    static under ``jax.jit``); builtins without a signature do not."""
    try:
        return "length" in inspect.signature(bincount).parameters
    except (TypeError, ValueError):
        return False


def count_bins(index: Any, bins: int, *, xp: ModuleType) -> Any:
    """How many of ``index`` (int, each in ``[0, bins]``) fall in each of
    ``[0, bins)``, as float32 (exact below 2**24 per bin)."""
    bincount = getattr(xp, "bincount", None)
    if bincount is not None and _takes_length(bincount):  # a static length (jax.jit's)
        counts = bincount(index, length=bins + 1)[:bins]
    elif bincount is not None:
        # NumPy, torch and JAX count in one pass; the Array API has no bincount.
        counts = bincount(index, minlength=bins + 1)[:bins]
    else:
        ordered = xp.sort(index)
        edges = xp.arange(bins + 1, dtype=ordered.dtype, device=device_of(ordered))
        ends = xp.searchsorted(ordered, edges)
        counts = ends[1:] - ends[:-1]
    return xp.astype(counts, xp.float32)


def _as_dtype(value: Any, dtype: Any, xp: ModuleType, device: Any) -> Any:
    """A Python float, or a 0-d array, as a 0-d array of ``dtype`` (rounded to nearest)."""
    if isinstance(value, (int, float)):
        return xp.asarray(value, dtype=dtype, device=device)
    return xp.astype(value, dtype)


@quiet  # float16 (x - lo) * bins can overflow to inf, in torch too
def histc(x: Any, bins: int, lo: Any, hi: Any, *, xp: ModuleType, device: Any = None) -> Any:
    """``torch.histc(x, bins, min=lo, max=hi)`` on the CPU, as float32 counts.

    ``lo``/``hi`` are Python floats (torch's Scalars) already through
    :func:`histc_range`, or 0-d float64 arrays (:func:`array_steps`); the
    edges and the bin arithmetic are in ``x``'s dtype.
    ``device``: where the scalars go (default ``x``'s; a JAX array sharded
    over several devices needs the replicated placement, see
    ``Backend.state_device``). torch counts float16 (bfloat16) input in that
    dtype, per thread, and sums the threads' counts in that dtype: here the
    exact count rounded to it, which is torch's while no thread counts more
    than 2048 (256) values into one bin (a thread's count stops there).
    """
    x = xp.reshape(x, (-1,))
    device = device_of(x) if device is None else device
    left = _as_dtype(lo, x.dtype, xp, device)
    right = _as_dtype(hi, x.dtype, xp, device)
    span = right - left
    # ATen's outer edges come from linspace in x's dtype: where hi - lo overflows
    # there, its step is inf and both edges NaN (start + 0 * inf), so histc counts
    # nothing (a float16 batch spanning more than 65504, float32 spanning 2e38).
    inside = (x >= left) & (x <= right) & xp.isfinite(span)
    scaled = (xp.where(inside, x, left) - left) * xp.asarray(
        float(bins), dtype=x.dtype, device=device
    )
    position = _divide(scaled, span, xp)
    index = xp.astype(position, xp.int32)  # truncation; position >= 0
    # An overflowed (inf) position: x86's conversion gives INT32_MIN, so bin 0
    # after the clip, in torch and NumPy; XLA saturates instead, hence the where.
    index = xp.where(xp.isfinite(position), index, xp.zeros_like(index))
    index = xp.clip(index, 0, bins - 1)  # x == hi: the last bin
    index = xp.where(inside, index, xp.full_like(index, bins))
    counts = count_bins(index, bins, xp=xp)
    if x.dtype in (xp.float32, xp.float64):
        return counts
    # torch sums its threads' float16/bfloat16 counts in that dtype: the total
    # rounds there (exact while no thread counts past 2048 / 256 in one bin).
    top = float(xp.finfo(x.dtype).max)
    return xp.astype(xp.astype(xp.clip(counts, None, top), x.dtype), xp.float32)


# -- linspace and the re-binning -----------------------------------------------
def _fused(base: Any, product: Any, xp: ModuleType) -> Any:
    """float32 rounding of the exact ``base + product`` (float64 arrays, the
    product exact): TwoSum's error decides float32 ties that the float64 sum
    hid."""
    total = base + product
    virtual = total - base
    error = (base - (total - virtual)) + (product - virtual)
    rounded = xp.astype(total, xp.float32)
    back = xp.astype(rounded, xp.float64)
    away = total - back  # exact; its sign points to the other neighbour
    toward = xp.where(away > 0, xp.full_like(rounded, math.inf), xp.full_like(rounded, -math.inf))
    other = xp.nextafter(rounded, toward)
    tie = (away != 0) & (xp.astype(other, xp.float64) - total == -away)
    return xp.where(tie & (error * away > 0), other, rounded)


@quiet  # a range wider than float32's largest: torch's inf step and NaN edges, silently
def linspace(start: Any, end: Any, steps: int, *, xp: ModuleType, device: Any) -> Any:
    """``torch.linspace(start, end, steps)`` (float32) on the CPU, bit for bit.

    ``start``/``end``: Python floats or 0-d arrays (rounded to float32 first,
    as torch's Scalars are). ``xp`` must have float64 (the FMA is emulated
    exactly in it: every product ``i * step`` is exact there, so a compiler
    contracting it into a fused multiply-add changes nothing).
    """
    if steps <= 1:  # ATen: empty, or filled with start
        return xp.reshape(_as_dtype(start, xp.float32, xp, device), (1,))[:steps]
    return linspace_part(start, end, steps, 0, steps, xp=xp, device=device)


@quiet  # as linspace
def linspace_part(
    start: Any, end: Any, steps: int, first: int, stop: int, *, xp: ModuleType, device: Any
) -> Any:
    """``linspace(start, end, steps)[first:stop]`` (``steps >= 2``), computing only
    those points: each point depends on its index alone."""
    s = _as_dtype(start, xp.float32, xp, device)
    e = _as_dtype(end, xp.float32, xp, device)
    count = xp.asarray(float(steps - 1), dtype=xp.float32, device=device)
    step = xp.astype(_divide(e - s, count, xp), xp.float64)
    half = steps // 2  # the first half counts up from start, the rest down from end
    parts = []
    if first < half:
        up = xp.arange(first, min(stop, half), dtype=xp.float64, device=device)
        parts.append(_fused(xp.astype(s, xp.float64), up * step, xp))
    if stop > half:
        idx = xp.arange(max(first, half), stop, dtype=xp.float64, device=device)
        parts.append(_fused(xp.astype(e, xp.float64), (float(steps - 1) - idx) * -step, xp))
    return xp.concat(parts) if len(parts) > 1 else parts[0]


@quiet  # as linspace
def bucket_assignments(
    orig: tuple[Any, Any], new: tuple[Any, Any], bins: int, *, xp: ModuleType, device: Any
) -> Any:
    """Where ``_upscale_histogram`` sends the old histogram's ``bins * 16``
    upsampled bins: torch's ``bucketize`` of their midpoints into the new
    edges, clipped to ``[0, bins)`` (never decreasing). ``orig`` is the
    float32 state's range, ``new`` the union's (Python floats or 0-d arrays).
    """
    n = bins * UPSAMPLE
    lo = _as_dtype(orig[0], xp.float32, xp, device)
    hi = _as_dtype(orig[1], xp.float32, xp, device)
    bin_size = _divide(hi - lo, xp.asarray(float(n), dtype=xp.float32, device=device), xp)
    bounds = linspace(new[0], new[1], bins + 1, xp=xp, device=device)
    # In runs of _RUN points: the exact linspace holds several float64 temporaries
    # per point, which at a million bins (16 million points) would all be live at once.
    parts = []
    for first in range(0, n, _RUN):
        stop = min(first + _RUN, n)
        edges = linspace_part(orig[0], orig[1], n + 1, first, stop, xp=xp, device=device)
        parts.append(xp.searchsorted(bounds, edges + 0.5 * bin_size, side="right") - 1)
    assigned = xp.concat(parts) if len(parts) > 1 else parts[0]
    return xp.clip(assigned, 0, bins - 1)


def bincount_upsampled(histogram: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """torch's ``bincount(assigned, weights=repeat_interleave(h, 16) / 16,
    minlength=bins)`` on the host: ``np.add.at`` adds the weights in input
    order, in float32, as ATen's CPU ``bincount`` does (NumPy's own
    ``bincount`` would add in float64). One pass over ``bins * 16`` values,
    however far the range moved."""
    h = np.asarray(histogram, dtype=np.float32)
    weights = np.repeat(h / np.float32(UPSAMPLE), UPSAMPLE)
    total = np.zeros(h.shape, dtype=np.float32)
    np.add.at(total, np.asarray(assigned, dtype=np.intp), weights)
    return total


def python_loop(count: Any, body: Callable[[Any, Any], Any], init: Any) -> Any:
    """``body(j, value)`` for ``j`` in ``range(count)`` (read back), in Python."""
    for j in range(int(count)):
        init = body(j, init)
    return init


def rebin_runs(
    histogram: Any,
    assigned: Any,
    *,
    xp: ModuleType,
    loop: Callable[[Any, Callable[[Any, Any], Any], Any], Any] = python_loop,
) -> Any:
    """:func:`bincount_upsampled` as array operations, for ``jax.jit``: each new
    bin sums its run of upsampled weights (the assignments never decrease) in
    order, in float32, one pass per position in the runs, so a jump of the
    range by a factor r costs about 16r passes (at most ``bins * 16``).
    ``loop(count, body, init)``: ``lax.fori_loop`` under ``jax.jit``."""
    bins = histogram.shape[0]
    device = device_of(histogram)
    ends = xp.searchsorted(
        assigned, xp.arange(bins, dtype=assigned.dtype, device=device), side="right"
    )
    starts = xp.concat([xp.zeros((1,), dtype=ends.dtype, device=device), ends[:-1]])
    counts = ends - starts
    weights = xp.reshape(
        xp.broadcast_to(xp.reshape(histogram / 16.0, (bins, 1)), (bins, UPSAMPLE)), (-1,)
    )
    last = bins * UPSAMPLE - 1
    total = xp.zeros((bins,), dtype=xp.float32, device=device)
    zero = xp.zeros_like(total)

    def add(j: Any, total: Any) -> Any:
        taken = xp.take(weights, xp.clip(starts + j, 0, last))
        return total + xp.where(counts > j, taken, zero)

    return loop(xp.max(counts), add, total)


# -- torch's forward: one definition, run on host floats or on arrays ----------------
Cond = Callable[[Any, Callable[[], Any], Callable[[], Any]], Any]
Rebin = Callable[[Any, Any], Any]


def python_cond(pred: Any, then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:
    """``then()`` if ``pred`` (read back) else ``otherwise()``."""
    return then() if bool(pred) else otherwise()


def _python_where(pred: Any, a: Any, b: Any) -> Any:
    return a if pred else b


class Steps(NamedTuple):
    """How :func:`forward` runs: its scalars (ranges and predicates) as Python
    floats and bools (the class, eagerly: :func:`eager_steps`) or as 0-d
    float64 and boolean arrays (the functional core: :func:`array_steps`).

    ``where(pred, a, b)`` and ``cond(pred, then, otherwise)`` choose;
    ``scalar(v)`` makes a constant; ``histc(x, bins, left, right)`` is the
    batch's histc over outer edges already widened; ``point(histogram,
    value, new_lo, new_hi)`` and ``rebin(histogram, orig, new)`` re-bin an
    old histogram into the new range (one value, or torch's upsampling).
    """

    where: Callable[[Any, Any, Any], Any]
    cond: Cond
    scalar: Callable[[float], Any]
    histc: Callable[[Any, int, Any, Any], Any]
    point: Callable[[Any, Any, Any, Any], Any]
    rebin: Callable[[Any, tuple[Any, Any], tuple[Any, Any]], Any]


def forward(
    histogram: Any, x: Any, lo: Any, hi: Any, cur: tuple[Any, Any], *, steps: Steps
) -> tuple[Any, Any, Any]:
    """torch's forward after its inf filter: the new ``(histogram, min, max)``.

    ``lo``/``hi`` are the batch's finite (min, max) and ``cur`` the state's
    (min, max), as the scalars of ``steps``; the new min and max come back as
    such scalars too. Every branch is a ``where`` or a ``cond``, so the same
    definition runs eagerly on Python floats and traced on arrays.
    """
    cur_lo, cur_hi = cur
    fresh = (cur_lo == math.inf) | (cur_hi == -math.inf)  # torch's is_uninitialized
    # The union; each side keeps its first argument on a tie, as torch.min/max.
    new_lo = steps.where(fresh | (lo < cur_lo), lo, cur_lo)
    new_hi = steps.where(fresh | (hi > cur_hi), hi, cur_hi)
    same = new_lo == new_hi  # histc widens an empty range by one each way
    left = steps.where(same, new_lo - 1.0, new_lo)
    right = steps.where(same, new_hi + 1.0, new_hi)
    batch = steps.histc(x, histogram.shape[0], left, right)
    unchanged = (new_lo == cur_lo) & (new_hi == cur_hi)

    def combined() -> Any:
        # The re-binning's inputs where it is not taken: a harmless range (Dask
        # builds every branch of a cond, so they run there). `^ True` negates a
        # Python bool and a boolean array alike (~True is -2).
        moved = (fresh | unchanged) ^ True

        def kept(value: Any, default: float) -> Any:
            return steps.where(moved, value, steps.scalar(default))

        orig = (kept(cur_lo, 0.0), kept(cur_hi, 1.0))
        new = (kept(new_lo, 0.0), kept(new_hi, 1.0))
        old = steps.cond(
            orig[0] == orig[1],
            lambda: steps.point(histogram, orig[0], *new),
            lambda: steps.rebin(histogram, orig, new),
        )
        return batch + old

    counts = steps.cond(
        fresh,
        lambda: batch,
        lambda: steps.cond(unchanged, lambda: histogram + batch, combined),
    )
    return counts, new_lo, new_hi


def eager_steps(count: Callable[[Any, int, float, float], Any], *, xp: ModuleType) -> Steps:
    """:class:`Steps` on Python floats, for the class: ``count(x, bins, lo, hi)``
    is the batch's histc (``Backend.histc``: :func:`histc` or a faster one);
    the re-binning runs on the host in NumPy (:func:`rescale`), on ``xp``'s
    arrays."""

    def counted(x: Any, bins: int, left: float, right: float) -> Any:
        return count(x, bins, *histc_range(left, right))  # raises where torch's histc does

    return Steps(
        where=_python_where,
        cond=python_cond,
        scalar=float,
        histc=counted,
        point=lambda h, value, new_lo, new_hi: _host(_point_host(h, value, new_lo, new_hi), h, xp),
        rebin=lambda h, orig, new: _host(_rebin_host(h, orig, new), h, xp),
    )


def update(
    state: HistogramState,
    x: Any,
    lo: float,
    hi: float,
    *,
    xp: ModuleType,
    count: Callable[[Any, int, float, float], Any],
    cur: tuple[float, float] | None = None,
) -> HistogramState:
    """torch's forward (:func:`forward`, eagerly): ``lo``/``hi`` the batch's
    finite (min, max) as Python floats, ``count`` as :func:`eager_steps`'s.
    ``cur``: the state's (min, max) as Python floats, if the caller has read
    them back already (else read here)."""
    if cur is None:
        cur = (float(state.min_val), float(state.max_val))
    counts, new_lo, new_hi = forward(
        state.histogram, x, lo, hi, cur, steps=eager_steps(count, xp=xp)
    )
    if (new_lo, new_hi) == cur:  # the state's own arrays: these bits (a tie keeps the state's)
        return HistogramState(counts, state.min_val, state.max_val)
    return HistogramState(counts, *_float32((new_lo, new_hi), xp, device_of(state.histogram)))


def _host(counts: np.ndarray, like: Any, xp: ModuleType) -> Any:
    return xp.asarray(counts, device=device_of(like))


def _point_host(histogram: Any, value: float, new_lo: float, new_hi: float) -> np.ndarray:
    """torch's re-binning of a one-value histogram: histc of the value over the
    new range, times the old total (ATen's sum), on the host."""
    counts = np.asarray(to_host(histogram), dtype=np.float32)
    point = np.asarray([value], dtype=np.float32)
    total = torch_sum(counts.reshape(1, -1))
    return histc(point, counts.shape[0], *histc_range(new_lo, new_hi), xp=np) * total  # type: ignore[no-any-return]


def _rebin_host(histogram: Any, orig: tuple[float, float], new: tuple[float, float]) -> np.ndarray:
    """torch's upsampling re-binning on the host (one pass over ``bins * 16``)."""
    counts = np.asarray(to_host(histogram), dtype=np.float32)
    assigned = bucket_assignments(orig, new, counts.shape[0], xp=np, device=None)
    return bincount_upsampled(counts, assigned)


def rescale(
    state: HistogramState,
    current: tuple[float, float],
    new_lo: float,
    new_hi: float,
    *,
    xp: ModuleType,
) -> Any:
    """An observed state's histogram re-binned into ``[new_lo, new_hi]`` (which
    holds its range ``current``, already read back), as torch's forward
    re-bins it: on the host in NumPy (the state is small: one read, one write
    on a device)."""
    cur_lo, cur_hi = current
    if new_lo == cur_lo and new_hi == cur_hi:
        return state.histogram
    if cur_lo == cur_hi:
        out = _point_host(state.histogram, cur_lo, new_lo, new_hi)
    else:
        out = _rebin_host(state.histogram, current, (new_lo, new_hi))
    return _host(out, state.histogram, xp)


def merge(a: HistogramState, b: HistogramState, *, xp: ModuleType) -> HistogramState:
    """Two observed histograms over the union of their ranges: each re-binned
    there as torch's forward re-bins (unchanged where its range is the
    union), then added in float32."""
    ranges = [(float(s.min_val), float(s.max_val)) for s in (a, b)]
    lo = min(ranges[0][0], ranges[1][0])
    hi = max(ranges[0][1], ranges[1][1])
    device = device_of(a.histogram)
    total = rescale(a, ranges[0], lo, hi, xp=xp) + rescale(b, ranges[1], lo, hi, xp=xp)
    return HistogramState(total, *_float32((lo, hi), xp, device))


def array_steps(*, xp: ModuleType, device: Any, cond: Cond, rebin: Rebin) -> Steps:
    """:class:`Steps` on 0-d float64 arrays of ``xp`` on ``device``, for the
    functional core: ``cond`` and ``rebin(histogram, assigned)`` are
    ``Backend.cond`` and ``Backend.rebin_upsampled``."""

    def point(histogram: Any, value: Any, new_lo: Any, new_hi: Any) -> Any:
        # The library's sum, not ATen's cascade: they agree on the one nonzero bin
        # every such state observed through forward has (a loaded state may have more).
        one = xp.reshape(xp.astype(value, xp.float32), (1,))
        return histc(one, histogram.shape[0], new_lo, new_hi, xp=xp, device=device) * xp.sum(
            histogram
        )

    return Steps(
        where=xp.where,
        cond=cond,
        scalar=lambda v: xp.asarray(v, dtype=xp.float64, device=device),
        histc=lambda x, bins, left, right: histc(x, bins, left, right, xp=xp, device=device),
        point=point,
        rebin=lambda h, orig, new: rebin(
            h, bucket_assignments(orig, new, h.shape[0], xp=xp, device=device)
        ),
    )


def update_arrays(
    state: HistogramState,
    x: Any,
    *,
    xp: ModuleType,
    cond: Cond,
    rebin: Rebin,
) -> HistogramState:
    """torch's forward as array operations, for the functional core.

    :func:`forward`, the class's definition, on 0-d arrays, with every branch
    a ``where`` or ``cond(pred, then, otherwise)`` and the re-binning
    ``rebin(histogram, assigned)``: ``Backend.cond`` and
    ``Backend.rebin_upsampled``, which under ``jax.jit`` are ``lax.cond`` and
    :func:`rebin_runs` (a ``lax.fori_loop``), so nothing is read back there,
    and elsewhere a host read and :func:`bincount_upsampled` on the host.
    ``xp`` must have float64 on the state's device (the range is kept in it,
    as torch keeps Python floats; JAX's backend enables it locally).

    Unlike torch, a batch with NaN raises nothing here: it makes ``min_val``
    and ``max_val`` NaN, and the state stays so (the histogram as it was),
    which ``histogram_qparams`` refuses. Infinite values are dropped without
    torch's warning, and a batch with no finite value changes nothing.
    """
    device = device_of(state.histogram)
    f64 = xp.float64
    flat = xp.reshape(x, (-1,))
    finite = xp.isfinite(flat)
    inf = xp.asarray(math.inf, dtype=flat.dtype, device=device)
    lo = xp.astype(xp.min(xp.where(finite, flat, inf)), f64)
    hi = xp.astype(xp.max(xp.where(finite, flat, -inf)), f64)
    nan = xp.any(xp.isnan(flat))
    cur_lo, cur_hi = xp.astype(state.min_val, f64), xp.astype(state.max_val, f64)
    # What changes the state: finite values, no NaN in the batch, none in the state
    # (a NaN batch marked it: it stays as it is).
    usable = (lo <= hi) & ~nan & (cur_lo == cur_lo) & (cur_hi == cur_hi)  # noqa: PLR0124
    # Where nothing changes, a harmless batch (0, 1) on a fresh state: no inf - inf.
    zero = xp.zeros_like(lo)
    counts, new_lo, new_hi = forward(
        state.histogram,
        flat,
        xp.where(usable, lo, zero),
        xp.where(usable, hi, zero + 1.0),
        (xp.where(usable, cur_lo, zero + math.inf), xp.where(usable, cur_hi, zero - math.inf)),
        steps=array_steps(xp=xp, device=device, cond=cond, rebin=rebin),
    )
    histogram = xp.where(usable, counts, state.histogram)
    nan32 = xp.asarray(math.nan, dtype=xp.float32, device=device)
    min_val = xp.where(usable, xp.astype(new_lo, xp.float32), state.min_val)
    max_val = xp.where(usable, xp.astype(new_hi, xp.float32), state.max_val)
    return HistogramState(histogram, xp.where(nan, nan32, min_val), xp.where(nan, nan32, max_val))


def _float32(values: tuple[float, float], xp: ModuleType, device: Any) -> tuple[Any, Any]:
    return tuple(xp.asarray(f32(v), dtype=xp.float32, device=device) for v in values)  # type: ignore[return-value]
