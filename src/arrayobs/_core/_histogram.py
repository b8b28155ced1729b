"""torch 2.13.0's HistogramObserver arithmetic, op for op, on the Array API.

``torch.ao.quantization.HistogramObserver`` keeps a float32 histogram over
``[min_val, max_val]``; each batch is binned with ``histc`` over the union of
the old and new ranges, and the old histogram is re-binned into that range
(upsampled 16x, ``linspace``, ``bucketize``, ``bincount``). ``calculate_qparams``
runs an L2-error search over candidate ranges. Every rule here is ATen's CPU
kernel as measured against torch 2.13.0:

- ``linspace`` (``RangeFactoriesKernel.cpp``): ``step = (end - start) /
  (steps - 1)`` in float32, then ``start + step * i`` for the first half and
  ``end - step * (steps - 1 - i)`` for the second, each *fused* (the compiler
  contracts it to an FMA: one rounding, measured bit for bit);
- ``histc`` (``HistogramKernel.cpp``, LINEAR_INTERPOLATION): the bin of ``x`` is
  ``trunc((x - lo) * bins / (hi - lo))`` in the input's dtype, op by op; values
  outside ``[lo, hi]`` are skipped, and ``x == hi`` goes to the last bin;
- ``bincount`` with float32 weights adds them in input order, in float32;
- the search compares float32 tensors with Python floats, which torch casts to
  float32 first; its sums are ATen's float32 cascade (:func:`torch_sum`), its
  cumulative sum a float64 running sum (:func:`cumulative_float32`).

Where a value is a Python float in torch (``.item()``, scalars), it is a Python
float here; the helpers that need float64 arithmetic (:func:`linspace`,
:func:`bucket_runs`) take a namespace that has it (the caller passes NumPy on
the host where the device has none).
"""

from __future__ import annotations

import bisect
import functools
import math
import struct
from array import array
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

from arrayobs._compat import device_of, to_host

UPSAMPLE = 16  # torch's upsample_rate
# ATen's float32 sum on x86 runs its AVX2 kernel (sum_stub has no AVX512 one):
# 8 lanes; measured against torch.sum on this machine (AVX512).
SUM_LANES = 8
STEPSIZE = 1e-5  # the search's quantile granularity


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


def count_bins(index: Any, bins: int, *, xp: ModuleType) -> Any:
    """How many of ``index`` (int, each in ``[0, bins]``) fall in each of
    ``[0, bins)``, as float32 (exact below 2**24 per bin)."""
    bincount = getattr(xp, "bincount", None)
    if bincount is not None:
        # NumPy, torch and JAX count in one pass; the Array API has no bincount.
        counts = bincount(index, minlength=bins + 1)[:bins]
    else:
        ordered = xp.sort(index)
        edges = xp.arange(bins + 1, dtype=ordered.dtype, device=device_of(ordered))
        ends = xp.searchsorted(ordered, edges)
        counts = ends[1:] - ends[:-1]
    return xp.astype(counts, xp.float32)


def histc(x: Any, bins: int, lo: float, hi: float, *, xp: ModuleType) -> Any:
    """``torch.histc(x, bins, min=lo, max=hi)`` on the CPU, as float32 counts.

    ``lo``/``hi`` are Python floats (torch's Scalars) already through
    :func:`histc_range`; the edges and the bin arithmetic are in ``x``'s dtype.
    torch counts float16 (bfloat16) input in that dtype, per thread, and
    sums the threads' counts in that dtype: here the exact count rounded to
    it, which is torch's while no thread counts more than 2048 (256) values
    into one bin (a thread's count stops there).
    """
    x = xp.reshape(x, (-1,))
    left = xp.asarray(lo, dtype=x.dtype, device=device_of(x))
    right = xp.asarray(hi, dtype=x.dtype, device=device_of(x))
    inside = (x >= left) & (x <= right)
    scaled = (xp.where(inside, x, left) - left) * xp.asarray(
        float(bins), dtype=x.dtype, device=device_of(x)
    )
    position = _divide(scaled, right - left, xp)
    index = xp.astype(position, xp.int32)  # truncation; position >= 0
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


def linspace(start: float, end: float, steps: int, *, xp: ModuleType, device: Any) -> Any:
    """``torch.linspace(start, end, steps)`` (float32) on the CPU, bit for bit.

    ``xp`` must have float64 (the FMA is emulated exactly in it).
    """
    s, e = f32(start), f32(end)
    step = f32(f32(e - s) / f32(steps - 1)) if steps > 1 else 0.0
    i = xp.arange(steps, dtype=xp.float64, device=device)
    half = steps // 2
    first = _fused(xp.full_like(i, s), i * step, xp)
    second = _fused(xp.full_like(i, e), (float(steps - 1) - i) * -step, xp)
    return xp.where(i < half, first, second)


def bucket_runs(
    orig: tuple[float, float], new: tuple[float, float], bins: int, *, xp: ModuleType, device: Any
) -> tuple[Any, Any, int]:
    """Where ``_upscale_histogram`` sends the old histogram's upsampled bins.

    Returns each new bin's first upsampled bin, how many it gets (a run:
    the assignments never decrease) and the longest run. ``orig`` is the
    float32 state's range, ``new`` the union's (Python floats).
    """
    n = bins * UPSAMPLE
    lo = xp.asarray(orig[0], dtype=xp.float32, device=device)
    hi = xp.asarray(orig[1], dtype=xp.float32, device=device)
    bin_size = (hi - lo) / xp.asarray(float(n), dtype=xp.float32, device=device)
    mids = linspace(orig[0], orig[1], n + 1, xp=xp, device=device)[:-1] + 0.5 * bin_size
    bounds = linspace(new[0], new[1], bins + 1, xp=xp, device=device)
    assigned = xp.searchsorted(bounds, mids, side="right") - 1
    assigned = xp.clip(assigned, 0, bins - 1)
    ends = xp.searchsorted(
        assigned, xp.arange(bins, dtype=assigned.dtype, device=device), side="right"
    )
    starts = xp.concat([xp.zeros((1,), dtype=ends.dtype, device=device), ends[:-1]])
    counts = ends - starts
    return starts, counts, int(xp.max(counts))


def rebin(histogram: Any, starts: Any, counts: Any, longest: int, *, xp: ModuleType) -> Any:
    """``bincount(assignments, weights=repeat_interleave(h, 16) / 16)``: each new
    bin sums its run of upsampled weights in order, in float32 (one pass per
    position in the runs; a jump of the range by a factor r costs ~16r)."""
    bins = histogram.shape[0]
    weights = xp.reshape(
        xp.broadcast_to(xp.reshape(histogram / 16.0, (bins, 1)), (bins, UPSAMPLE)), (-1,)
    )
    last = bins * UPSAMPLE - 1
    total = xp.zeros((bins,), dtype=xp.float32, device=device_of(histogram))
    zero = xp.zeros_like(total)
    for j in range(longest):
        taken = xp.take(weights, xp.clip(starts + j, 0, last))
        total = total + xp.where(counts > j, taken, zero)
    return total


def update(
    state: HistogramState,
    x: Any,
    lo: float,
    hi: float,
    *,
    observed: bool,
    xp: ModuleType,
    wide: tuple[ModuleType, Any],
) -> HistogramState:
    """torch's forward after its inf filter: ``lo``/``hi`` the batch's finite
    (min, max) as Python floats; ``wide`` a (namespace, device) with float64
    for :func:`bucket_runs`. Reads the state's (min, max) back."""
    bins = state.histogram.shape[0]
    device = device_of(state.histogram)
    if not observed:
        counts = histc(x, bins, *histc_range(lo, hi), xp=xp)
        return HistogramState(counts, *_float32((lo, hi), xp, device))
    cur_lo, cur_hi = float(state.min_val), float(state.max_val)
    # torch.min/max of two equal values return the first, as Python's do.
    new_lo, new_hi = min(cur_lo, lo), max(cur_hi, hi)
    batch = histc(x, bins, *histc_range(new_lo, new_hi), xp=xp)
    if new_lo == cur_lo and new_hi == cur_hi:
        return HistogramState(state.histogram + batch, state.min_val, state.max_val)
    if cur_lo == cur_hi:
        # torch: histc of the one old value over the new range, times the old total.
        point = xp.asarray([cur_lo], dtype=xp.float32, device=device)
        old = histc(point, bins, *histc_range(new_lo, new_hi), xp=xp) * xp.sum(state.histogram)
    else:
        wxp, wdev = wide
        starts, runs, longest = bucket_runs(
            (cur_lo, cur_hi), (new_lo, new_hi), bins, xp=wxp, device=wdev
        )
        if wxp is not xp:
            starts, runs = (xp.asarray(to_host(v), device=device) for v in (starts, runs))
        old = rebin(state.histogram, starts, runs, longest, xp=xp)
    return HistogramState(batch + old, *_float32((new_lo, new_hi), xp, device))


def _float32(values: tuple[float, float], xp: ModuleType, device: Any) -> tuple[Any, Any]:
    return tuple(xp.asarray(f32(v), dtype=xp.float32, device=device) for v in values)  # type: ignore[return-value]


# -- the search ----------------------------------------------------------------
@functools.cache
def _quantiles() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The search's alpha (0, 1e-5, ...) and beta (1, 1 - 1e-5, ...) as it
    steps them in float64, far enough for any walk."""
    alphas, betas = [0.0], [1.0]
    while alphas[-1] < 1.0 + STEPSIZE:
        alphas.append(alphas[-1] + STEPSIZE)
        betas.append(betas[-1] - STEPSIZE)
    return tuple(alphas), tuple(betas)


def torch_sum(a: Any, *, xp: ModuleType) -> Any:
    """Row sums of a float32 (K, n) array in ATen's CPU order (``cascade_sum``):
    8-lane vectors, 4 interleaved rows of them, cascaded in blocks of 16; the
    tail and the lanes added last, in order. Bit for bit ``tensor.sum()`` for
    n up to 32768 (ATen splits longer rows across threads)."""
    k, n = a.shape
    if n < SUM_LANES:  # ATen's scalar_inner_sum: the same cascade, one lane
        return _row_sum(xp.reshape(a, (k, n, 1)), xp)[:, 0, ...]
    whole = n // SUM_LANES
    lanes = _row_sum(xp.reshape(a[:, : whole * SUM_LANES], (k, whole, SUM_LANES)), xp)
    total = xp.zeros((k,), dtype=a.dtype, device=device_of(a))
    for part in (*_parts(a[:, whole * SUM_LANES :], xp), *_parts(lanes, xp)):
        total = total + part
    return total


def _parts(v: Any, xp: ModuleType) -> tuple[Any, ...]:
    """``v``'s slices along axis 1, in order (one op: JAX compiles an index per index)."""
    return tuple(xp.unstack(v, axis=1)) if v.shape[1] else ()


def _row_sum(v: Any, xp: ModuleType) -> Any:
    """ATen's ``row_sum`` over axis 1 of (K, size, lanes): (K, lanes)."""
    k, size, lanes = v.shape
    ilp = size // 4
    if ilp:
        parts = _multi_row_sum(xp.reshape(v[:, : ilp * 4, ...], (k, ilp, 4, lanes)), xp)
    else:
        parts = xp.zeros((k, 4, lanes), dtype=v.dtype, device=device_of(v))
    first, *others = _parts(parts, xp)
    for part in (*_parts(v[:, ilp * 4 :, ...], xp), *others):
        first = first + part
    return first


def _multi_row_sum(rows: Any, xp: ModuleType) -> Any:
    """ATen's ``multi_row_sum`` (4 levels) over axis 1 of (K, size, 4, lanes).

    Each full block of ``2**power`` rows is a running sum from zero (level 0 is
    flushed after every block), so all blocks run at once; the flushes into
    the higher levels then follow ATen's loop, block by block.
    """
    k, size = rows.shape[0], rows.shape[1]
    power = max(4, (1 if size <= 2 else (size - 1).bit_length()) // 4)
    step, mask = 1 << power, (1 << power) - 1
    zero = xp.zeros((k, *rows.shape[2:]), dtype=rows.dtype, device=device_of(rows))
    full = size // step
    acc = [zero, zero, zero, zero]
    if full:
        blocks = xp.reshape(rows[:, : full * step, ...], (k, full, step, *rows.shape[2:]))
        chain = xp.zeros_like(blocks[:, :, 0, ...])
        for part in xp.unstack(blocks, axis=2):
            chain = chain + part
        for block, value in enumerate(_parts(chain, xp)):
            acc[0] = value
            i = (block + 1) * step
            for j in range(1, 4):
                acc[j] = acc[j] + acc[j - 1]
                acc[j - 1] = zero
                if i & (mask << (j * power)):
                    break
    for part in _parts(rows[:, full * step :, ...], xp):
        acc[0] = acc[0] + part
    for j in range(1, 4):
        acc[0] = acc[0] + acc[j]
    return acc[0]


def cumulative_float32(histogram: Sequence[float]) -> list[float]:
    """``torch.cumsum`` of float32 on the CPU: a float64 running sum, each
    output rounded to float32."""
    out, running = [], 0.0
    for v in histogram:
        running += v
        out.append(running)
    return array("f", out).tolist()


def search_path(histogram: Sequence[float], total: float) -> list[tuple[int, int]]:
    """Every (start_bin, end_bin) ``_non_linear_param_search`` evaluates, in
    order, if each is accepted (the walk does not depend on the errors; the
    first error above its predecessor stops it, see :func:`search`).

    ``histogram`` as host floats; ``total`` torch's ``sum().item()``. The walk
    is torch's, with its no-change steps skipped in one bisection each.
    """
    csum = cumulative_float32(histogram)
    alphas, betas = _quantiles()
    bins = len(csum)
    a = b = 0
    start, end = 0, bins - 1
    path: list[tuple[int, int]] = []
    while alphas[a] < betas[b]:
        lo_thr = f32(alphas[a + 1] * total)
        hi_thr = f32(betas[b + 1] * total)
        left = min(end, max(start, bisect.bisect_left(csum, lo_thr)))
        right = max(start, min(end, bisect.bisect_right(csum, hi_thr) - 1))
        if left - start > end - right:
            a += 1
            path.append((left, end))
            start = left
        elif right != end:
            b += 1
            path.append((start, right))
            end = right
        elif start == end:
            break  # nothing can move any more
        else:
            # Nothing moves until beta's threshold drops below csum[end]: skip there.
            b = _next_drop(betas, b + 1, total, csum[end], alphas[a])
    return path


def _next_drop(betas: Sequence[float], b: int, total: float, level: float, alpha: float) -> int:
    """The first beta index >= ``b`` whose next threshold is below ``level``,
    or the first at or below ``alpha`` (where the walk ends), if sooner."""
    lo, hi = b, len(betas) - 2
    while lo < hi:
        mid = (lo + hi) // 2
        if f32(betas[mid + 1] * total) < level or betas[mid] <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def quantization_errors(
    histogram: Any,
    bin_width: float,
    path: Sequence[tuple[int, int]],
    nbins: int,
    *,
    xp: ModuleType,
) -> Any:
    """``_compute_quantization_error`` of every candidate in ``path`` at once
    (float32, shape (len(path),)), op for op in float32.

    torch's final ``norm.sum()`` is ATen's float32 cascade, reproduced by
    :func:`torch_sum`.
    """
    if not path or bin_width == 0.0:
        # dst_bin_width == 0.0 (max_val == min_val): torch returns 0.0 without computing.
        return xp.zeros((len(path),), dtype=xp.float32, device=device_of(histogram))
    out = []
    for i in range(0, len(path), _ROWS):
        part = path[i : i + _ROWS]
        # Padded to a power of two: JAX compiles each op once per shape.
        size = max(_FIRST, 1 << (len(part) - 1).bit_length())
        padded = [*part, *[part[-1]] * (size - len(part))]
        out.append(_errors(histogram, bin_width, padded, nbins, xp)[: len(part)])
    return out[0] if len(out) == 1 else xp.concat(out)


_FIRST = 32  # candidates in the search's first block; each next block doubles
_ROWS = 256  # candidates per block at most: (256, bins) float32 temporaries


def search(
    histogram: Any, bin_width: float, path: Sequence[tuple[int, int]], nbins: int, *, xp: ModuleType
) -> tuple[int, int]:
    """The (start_bin, end_bin) torch's walk ends on: the last candidate before
    the first whose error exceeds its predecessor's.

    The errors are evaluated in blocks of 32, 64, ... candidates, one read
    back per block (torch reads one per candidate); the walk usually stops in
    the first.
    """
    bins = histogram.shape[0]
    chosen, best = (0, bins - 1), math.inf
    i, size = 0, _FIRST
    while i < len(path):
        part = path[i : i + size]
        errors = to_host(quantization_errors(histogram, bin_width, part, nbins, xp=xp)).tolist()
        for candidate, error in zip(part, errors, strict=True):
            if error > best:
                return chosen
            chosen, best = candidate, error
        i, size = i + size, min(2 * size, _ROWS)
    return chosen


def _errors(
    histogram: Any, bin_width: float, path: Sequence[tuple[int, int]], nbins: int, xp: ModuleType
) -> Any:
    device = device_of(histogram)
    bins = histogram.shape[0]
    widths = [bin_width * (e - s + 1) / nbins for s, e in path]

    def column(values: Sequence[float]) -> Any:
        return xp.reshape(
            xp.asarray([f32(v) for v in values], dtype=xp.float32, device=device), (-1, 1)
        )

    dst = column(widths)
    half = column([w / 2 for w in widths])
    neg_half = column([-w / 2 for w in widths])
    starts = xp.reshape(xp.asarray([s for s, _ in path], dtype=xp.float32, device=device), (-1, 1))
    width = xp.asarray(f32(bin_width), dtype=xp.float32, device=device)
    three = xp.asarray(3.0, dtype=xp.float32, device=device)
    src = xp.reshape(xp.arange(bins, dtype=xp.float32, device=device), (1, -1))
    begin = (src - starts) * width
    end = begin + width
    top = float(nbins - 1)
    of_begin = xp.clip(xp.floor_divide(begin, xp.where(xp.isnan(begin), begin, dst)), 0.0, top)
    of_end = xp.clip(xp.floor_divide(end, xp.where(xp.isnan(end), end, dst)), 0.0, top)
    density = _divide(xp.reshape(histogram, (1, -1)), width, xp)

    def cube(v: Any) -> Any:
        return v * v * v

    begin_center = (of_begin + 0.5) * dst
    norm = density * _divide(cube(half) - cube(begin - begin_center), three, xp)
    whole = density * _divide(cube(half) - cube(neg_half), three, xp)
    norm = norm + (of_end - of_begin - 1.0) * whole
    end_center = of_end * dst + half
    norm = norm + density * _divide(cube(end - end_center) - cube(neg_half), three, xp)
    return torch_sum(norm, xp=xp)


def chosen_range(
    min_val: float, max_val: float, bins: int, chosen: tuple[int, int]
) -> tuple[float, float]:
    """``new_min, new_max`` of the search: float32 tensor arithmetic on the state."""
    width = f32(f32(max_val - min_val) / f32(float(bins)))
    start, end = chosen
    return (
        f32(min_val + f32(width * f32(float(start)))),
        f32(min_val + f32(width * f32(float(end + 1)))),
    )
