"""NumPy-rule histograms of the calibrators, as pure steps on fixed shapes.

ONNX Runtime 1.31.1's ``HistogramCollector`` and ModelOpt 0.47.0's
``HistogramCalibrator(torch_hist=False)`` keep their histograms with
``np.histogram`` and grow them with ``np.arange``; every bit of their state
depends on NumPy's rules, which this module reproduces with Array API
operations (docs/design/calibrators.md, sections 1.1-1.3, 2.2, 2.3, 4.2):

- the *uniform* path of ``np.histogram(a, n, range)``: edges
  ``f32(f32(i * step) + lo)`` (NumPy's unfused linspace), the bin
  ``trunc(f32(f32(x - lo) / (hi - lo)) * n)`` (divide, then multiply), one
  correction each way against those edges;
- the *edges* path of ``np.histogram(a, bins=edges)``: ``e[i] <= x < e[i+1]``,
  the last bin closed, compared exactly (float32 data against float64 edges);
- ``np.arange`` on NumPy float32 scalars: float64 values, a length from
  float32 scalar arithmetic; and NumPy's float32 floor division (``npy_divmod``).

Two families of state, each with a leading channel axis (``C`` is 1 per
tensor; per channel each row is, bit for bit, the per-tensor reference run on
that channel's slice):

- :class:`ValueState`, ORT's ``collect_value`` (``entropy``, ``distribution``,
  ``percentile`` when not symmetric): a histogram on ``[-T, T]``;
- :class:`AbsState`, ORT's ``collect_absolute_value`` (``percentile``,
  symmetric; edges stored back as float32 after each call) and ModelOpt's
  NumPy collection (edges never cast back: float64 once grown).

Fixed shapes: ``capacity`` is the static length of the counts (``edges``:
``capacity + 1``). An update whose bin count would pass it sets the sticky
``overflow`` flag and leaves counts and edges as they were, while the scalars
the growth needs (``bins``, ``T``, the last edge, min and max) go on exactly,
so ``need`` (the largest bin count reached) is exact: a result refuses,
naming it. A reference refusal (a NaN or infinite range, an empty later
batch) sets the sticky ``error`` code (first one wins, with the step) and
leaves the state as it was from then on. Nothing here reads an array back,
and no Python ``if`` looks at a value: the updates run under ``jax.jit`` and
lazily on Dask. They need float64 and int64 on the device (JAX: inside
``jax.enable_x64``, which the public functions enter).

The ModelOpt entry points (for ``arrayobs.calib.modelopt``)::

    modelopt_init(num_bins, *, channels=None, capacity=None, xp, device) -> AbsState
    modelopt_update(state, x, *, skip_zeros=False, xp, started=None) -> AbsState
        # x: one collect's input, any float dtype, shape (C, M) per channel
        # (``rows``), or any shape per tensor (flattened); the ``torch.min(x) < 0``
        # abs and the ``x.float()`` cast are done here, as ModelOpt's collect does;
        # started=True/False (an eager class that knows) bins one branch, not both.
    modelopt_result(state) -> list of (hist int64[n], edges float32|float64[n+1])
        # host NumPy, one pair per channel: ``_calib_hist``, ``_calib_bin_edges``;
        # raises what the reference raised (see ``raise_error``) or OverflowError
        # naming ``need``.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from arrayobs._compat import device_of, to_host
from arrayobs._core._histogram import _divide
from arrayobs._core._minmax import quiet

#: The error codes of the sticky ``error`` flag: (exception, what the reference said).
ERRORS: dict[int, tuple[type[Exception], str]] = {
    1: (ValueError, "supplied range of [-t, t] is not finite (a NaN-only or infinite batch)"),
    2: (
        ValueError,
        "autodetected range of [min, max] is not finite (a NaN or inf in a first batch)",
    ),
    3: (ValueError, "Maximum allowed size exceeded (np.arange up to an infinite maximum)"),
    4: (ValueError, "zero-size array to reduction operation maximum which has no identity"),
    5: (RuntimeError, "min(): Expected reduction dim to be specified for input.numel() == 0"),
    6: (
        ValueError,
        "Too many bins for data range (np.histogram: the first batch's range is too narrow "
        "for num_bins distinct float edges)",
    ),
}


class ValueState(NamedTuple):
    """ORT ``collect_value`` per channel row: ``counts`` int64 (C, capacity),
    ``bins`` int64 (C,), ``threshold`` (ORT's ``T``), ``min``, ``max`` float32
    (C,); ``started``, ``overflow`` bool, ``need``, ``steps`` int64, ``error``
    int64 (code * 2**32 + step; 0: none), all 0-d."""

    counts: Any
    bins: Any
    threshold: Any
    min: Any
    max: Any
    started: Any
    overflow: Any
    need: Any
    error: Any
    steps: Any


class AbsState(NamedTuple):
    """The edges-grown histogram per channel row: ``counts`` int64 (C, capacity),
    ``edges`` float64 (C, capacity + 1) padded with +inf, ``bins`` int64 (C,),
    ``last`` float64 (C,) (the last edge, kept exactly past an overflow),
    ``wide`` bool (C,) (ModelOpt: the edges became float64), ``min``/``max``
    float32 (C,) (ORT: the raw data's); flags as :class:`ValueState`."""

    counts: Any
    edges: Any
    bins: Any
    last: Any
    wide: Any
    min: Any
    max: Any
    started: Any
    overflow: Any
    need: Any
    error: Any
    steps: Any


def default_capacity(num_bins: int) -> int:
    """16 times the first bin count: room for the range to grow 16-fold."""
    return 16 * num_bins


def _flags(xp: ModuleType, device: Any) -> tuple[Any, ...]:
    false = xp.asarray(False, device=device)
    zero = xp.asarray(0, dtype=xp.int64, device=device)
    return false, false, zero, zero, zero


def value_init(
    num_bins: int,
    *,
    channels: int | None = None,
    capacity: int | None = None,
    xp: ModuleType,
    device: Any = None,
) -> ValueState:
    """A never-collected ORT value histogram (``num_bins`` at the first collect)."""
    c = 1 if channels is None else channels
    cap = default_capacity(num_bins) if capacity is None else capacity
    f32 = xp.zeros((c,), dtype=xp.float32, device=device)
    return ValueState(
        xp.zeros((c, cap), dtype=xp.int64, device=device),
        xp.full((c,), num_bins, dtype=xp.int64, device=device),
        f32,
        f32,
        f32,
        *_flags(xp, device),
    )


def abs_init(
    num_bins: int,
    *,
    channels: int | None = None,
    capacity: int | None = None,
    xp: ModuleType,
    device: Any = None,
) -> AbsState:
    """A never-collected edges-grown histogram (``num_bins`` at the first collect)."""
    c = 1 if channels is None else channels
    cap = default_capacity(num_bins) if capacity is None else capacity
    f32 = xp.zeros((c,), dtype=xp.float32, device=device)
    return AbsState(
        xp.zeros((c, cap), dtype=xp.int64, device=device),
        xp.full((c, cap + 1), math.inf, dtype=xp.float64, device=device),
        xp.full((c,), num_bins, dtype=xp.int64, device=device),
        xp.zeros((c,), dtype=xp.float64, device=device),
        xp.zeros((c,), dtype=xp.bool, device=device),
        f32,
        f32,
        *_flags(xp, device),
    )


modelopt_init = abs_init


def rows(x: Any, channel_axis: int | None, *, xp: ModuleType) -> Any:
    """``x`` as (C, M): per tensor one row (C order), per channel row ``i`` is
    ``np.take(x, i, axis=channel_axis)`` flattened in C order."""
    if channel_axis is None:
        return xp.reshape(x, (1, -1))
    moved = xp.moveaxis(x, channel_axis, 0)
    return xp.reshape(moved, (moved.shape[0], -1))


# -- NumPy's arithmetic ------------------------------------------------------------
def _f32(value: Any, xp: ModuleType) -> Any:
    return xp.astype(value, xp.float32)


def _rounded(product: Any, xp: ModuleType) -> Any:
    """``product`` as it is, rounded: NumPy multiplies and adds in separate
    ufuncs, but XLA on the CPU contracts ``a * b + c`` into one fused
    multiply-add; a division by a data-dependent one (no-op, exact) keeps the
    product's rounding."""
    return _divide(product, xp.ones_like(product), xp)


def _product32(a: Any, b: Any, xp: ModuleType) -> Any:
    """``f32(a * b)`` of float32 values, rounded before any later addition."""
    return _rounded(a * b, xp)


def _floor_divide32(a: Any, b: Any, xp: ModuleType) -> Any:
    """NumPy's float32 ``a // b`` for positive ``a``, ``b`` (``npy_divmod``):
    ``div = f32((a - fmod(a, b)) / b)``, then ``floor``, rounded up when the
    fraction passes 0.5 (not ``floor(a / b)``, which differs near integers).
    ``fmod`` is exact in float64 while the quotient is below 2**29."""
    a64, b64 = xp.astype(a, xp.float64), xp.astype(b, xp.float64)
    q = xp.floor(_divide(a64, b64, xp))
    r = a64 - q * b64
    r = xp.where(r < 0, r + b64, r)
    r = xp.where(r >= b64, r - b64, r)
    div = _divide(a - _f32(r, xp), b, xp)
    low = xp.floor(div)
    return xp.where(div - low > 0.5, low + 1, low)


def _uniform_edge(j: Any, lo: Any, hi: Any, n: Any, xp: ModuleType) -> Any:
    """``np.linspace(lo, hi, n + 1)[j]`` in float32 (``lo``/``hi`` float32):
    ``f32(f32(j * step) + lo)`` with ``step = f32((hi - lo) / n)``, and ``hi``
    at ``j == n``."""
    step = _divide(hi - lo, xp.astype(n, xp.float32), xp)
    edge = _product32(xp.astype(j, xp.float32), step, xp) + lo
    return xp.where(j == n, hi, edge)


def _uniform_index(x: Any, lo: Any, hi: Any, n: Any, xp: ModuleType) -> Any:
    """``np.histogram``'s bin of float32 ``x`` in ``[lo, hi]`` with ``n`` bins
    (arrays broadcasting against ``x``): index, then one correction each way."""
    scaled = _divide(x - lo, hi - lo, xp) * xp.astype(n, xp.float32)
    i = xp.astype(scaled, xp.int64)
    i = xp.where(i >= n, n - 1, i)
    i = xp.where(x < _uniform_edge(i, lo, hi, n, xp), i - 1, i)
    up = (x >= _uniform_edge(i + 1, lo, hi, n, xp)) & (i != n - 1)
    return xp.where(up, i + 1, i)


def _count(index: Any, length: int, xp: ModuleType) -> Any:
    """int64 counts of ``index`` (each in ``[0, length]``; ``length``: discard)
    over ``[0, length)``."""
    bincount = getattr(xp, "bincount", None)
    if bincount is not None:
        try:
            counts = bincount(index, length=length + 1)
        except TypeError:
            counts = bincount(index, minlength=length + 1)
        return xp.astype(counts[:length], xp.int64)
    ordered = xp.sort(index)
    marks = xp.arange(length + 1, dtype=ordered.dtype, device=device_of(ordered))
    ends = xp.searchsorted(ordered, marks)
    return xp.astype(ends[1:] - ends[:-1], xp.int64)


def _count_rows(index: Any, keep: Any, cap: int, xp: ModuleType) -> Any:
    """Per-row int64 counts (C, cap) of ``index`` (C, M) where ``keep``."""
    c = index.shape[0]
    device = device_of(index)
    offset = xp.reshape(xp.arange(c, dtype=xp.int64, device=device) * (cap + 1), (c, 1))
    flat = xp.where(keep, index, _full(cap, index, xp)) + offset
    counts = _count(xp.reshape(flat, (-1,)), c * (cap + 1), xp)
    return xp.reshape(counts, (c, cap + 1))[:, :cap]


def _shifted(counts: Any, k: Any, xp: ModuleType) -> Any:
    """Each row of ``counts`` moved right by its ``k`` (zeros come in; ``k``
    never pushes a nonzero count past the end: the new bin count fits)."""
    c, cap = counts.shape
    device = device_of(counts)
    j = xp.reshape(xp.arange(cap, dtype=xp.int64, device=device), (1, cap)) - xp.reshape(k, (c, 1))
    base = xp.reshape(xp.arange(c, dtype=xp.int64, device=device) * cap, (c, 1))
    taken = xp.take(xp.reshape(counts, (-1,)), xp.reshape(base + xp.clip(j, 0, cap - 1), (-1,)))
    return xp.where(j >= 0, xp.reshape(taken, (c, cap)), xp.zeros_like(counts))


def _row_min_max(x: Any, keep: Any, xp: ModuleType) -> tuple[Any, Any]:
    """Row-wise NumPy ``nanmin``/``nanmax`` over ``keep``: NaN where a row keeps
    nothing but NaN, 0 where it keeps nothing at all (ORT's empty case)."""
    if x.shape[1] == 0:
        zero = xp.zeros((x.shape[0],), dtype=x.dtype, device=device_of(x))
        return zero, zero
    inf = xp.asarray(math.inf, dtype=x.dtype, device=device_of(x))
    good = keep & ~xp.isnan(x)
    mn = xp.min(xp.where(good, x, inf), axis=1)
    mx = xp.max(xp.where(good, x, -inf), axis=1)
    none = ~xp.any(good, axis=1)
    nan = xp.asarray(math.nan, dtype=x.dtype, device=device_of(x))
    return xp.where(none, nan, mn), xp.where(none, nan, mx)


def _sticky(state: Any, code: Any, xp: ModuleType) -> tuple[Any, Any]:
    """(whether this step is refused, the new ``error``): an earlier error, or
    ``code`` (0: none) now, recorded with the step."""
    fresh = (state.error == 0) & (code != 0)
    error = xp.where(fresh, code * (2**32) + state.steps, state.error)
    return error != 0, error


def _full(value: float, like: Any, xp: ModuleType) -> Any:
    return xp.full(like.shape, value, dtype=like.dtype, device=device_of(like))


def _keep(old: Any, new: Any, refused: Any, xp: ModuleType) -> Any:
    return type(old)(*(xp.where(refused, o, n) for o, n in zip(old, new, strict=True)))


# -- ORT collect_value ---------------------------------------------------------------
@quiet
def value_update(state: ValueState, x: Any, *, xp: ModuleType) -> ValueState:
    """One ORT ``collect`` of ``x`` (float32, (C, M): :func:`rows`) into
    ``collect_value``'s histogram (docs/design/calibrators.md 2.2)."""
    c, cap = state.counts.shape
    x = xp.reshape(x, (c, -1))
    mn, mx = _row_min_max(x, xp.ones(x.shape, dtype=xp.bool, device=device_of(x)), xp)
    t = xp.where(xp.abs(mx) > xp.abs(mn), xp.abs(mx), xp.abs(mn))
    bad = xp.any(~xp.isfinite(t))
    t = xp.where(xp.isfinite(t), t, xp.zeros_like(t))
    t0, n0, started = state.threshold, state.bins, state.started
    grow = started & (t > t0)
    relabel = grow & (t0 == 0)
    widen = grow & (t0 != 0)
    stride = _divide(t0 * 2, xp.astype(n0, xp.float32), xp)
    safe = xp.where(widen, stride, xp.ones_like(stride))
    q = _floor_divide32(xp.where(widen, t - t0, safe), safe, xp) + 1
    k = xp.where(widen, xp.astype(q, xp.int64), xp.zeros_like(n0))
    grown_t = _product32(xp.astype(k, xp.float32), stride, xp) + t0
    threshold = xp.where(~started | relabel, t, xp.where(widen, grown_t, t0))
    bins = n0 + 2 * k
    fits = xp.all(bins <= cap)
    need = xp.maximum(state.need, xp.max(bins))
    half = xp.where(threshold == 0, xp.full_like(threshold, 0.5), threshold)
    lo, hi = xp.reshape(-half, (c, 1)), xp.reshape(half, (c, 1))
    n = xp.reshape(xp.where(bins <= cap, bins, xp.ones_like(bins)), (c, 1))
    # ORT's np.histogram refuses a range whose linspace repeats an edge (a subnormal one)
    j = xp.reshape(xp.arange(cap + 1, dtype=xp.int64, device=device_of(x)), (1, cap + 1))
    edges = _uniform_edge(j, lo, hi, n, xp)
    narrow = xp.any((edges[:, 1:] <= edges[:, :-1]) & (j[:, 1:] <= n))
    inside = (x >= lo) & (x <= hi)
    index = _uniform_index(xp.where(inside, x, lo), lo, hi, n, xp)
    batch = _count_rows(index, inside, cap, xp)
    counts = xp.where(fits & ~state.overflow, batch + _shifted(state.counts, k, xp), state.counts)
    new = ValueState(
        counts,
        bins,
        threshold,
        xp.where(started & ~(mn < state.min), state.min, mn),
        xp.where(started & ~(mx > state.max), state.max, mx),
        xp.asarray(True, device=device_of(x)),
        state.overflow | ~fits,
        need,
        state.error,
        state.steps + 1,
    )
    code = xp.astype(bad, xp.int64) + xp.astype(~bad & narrow, xp.int64) * 6
    refused, error = _sticky(state, code, xp)
    kept = _keep(state, new, refused, xp)
    return kept._replace(error=error, steps=state.steps + 1)  # type: ignore[no-any-return]


# -- the edges-grown histograms (ORT abs, ModelOpt NumPy) ------------------------------
def _row_searchsorted(edges: Any, a: Any, xp: ModuleType) -> Any:
    """Per row, how many of ``edges`` (C, E), sorted, are ``<= a`` (C, M):
    ``searchsorted(side="right")`` one row at a time, as a branchless bisection
    over all rows at once (a fixed number of gathers)."""
    c, e = edges.shape
    device = device_of(a)
    if c == 1:
        found = xp.searchsorted(edges[0, :], a[0, :], side="right")
        return xp.reshape(xp.astype(found, xp.int64), (1, -1))
    flat = xp.reshape(edges, (-1,))
    base = xp.reshape(xp.arange(c, dtype=xp.int64, device=device) * e, (c, 1))
    low = xp.zeros(a.shape, dtype=xp.int64, device=device)
    high = xp.full(a.shape, e, dtype=xp.int64, device=device)
    for _ in range(max(1, e.bit_length())):
        mid = (low + high) // 2
        probe = xp.reshape(xp.take(flat, xp.reshape(base + xp.clip(mid, 0, e - 1), (-1,))), a.shape)
        right = (mid < high) & (probe <= a)
        low = xp.where(right, mid + 1, low)
        high = xp.where(right | (mid >= high), high, mid)
    return low


def _arange_growth(
    first: Any, second: Any, last: Any, top: Any, wide: Any, xp: ModuleType
) -> tuple[Any, Any, Any]:
    """``np.arange(last + w, top + w, w)`` with ``w = second - first``: NumPy
    float32 scalars (the length from float32 scalar arithmetic) or, where
    ``wide``, float64 ones. Returns (length, start, delta), float64 start and
    delta: value ``k`` is ``start + k * delta``."""
    w32 = _f32(second, xp) - _f32(first, xp)
    start32 = _f32(last, xp) + w32
    stop32 = _f32(top, xp) + w32
    span32 = _divide(stop32 - start32, w32, xp)
    delta32 = xp.astype(start32 + w32, xp.float64) - xp.astype(start32, xp.float64)
    w64 = second - first
    start64 = last + w64
    stop64 = xp.astype(top, xp.float64) + w64
    span64 = _divide(stop64 - start64, w64, xp)
    delta64 = (start64 + w64) - start64
    span = xp.where(wide, span64, xp.astype(span32, xp.float64))
    start = xp.where(wide, start64, xp.astype(start32, xp.float64))
    delta = xp.where(wide, delta64, delta32)
    return xp.ceil(span), start, delta


@quiet
def abs_update(
    state: AbsState,
    x: Any,
    *,
    xp: ModuleType,
    cast_back: bool,
    modelopt: bool = False,
    skip_zeros: bool = False,
    started: bool | None = None,
) -> AbsState:
    """One collect of ``x`` ((C, M)) into the edges-grown histogram.

    ``cast_back`` (ORT): the edges return to float32 after each call;
    ``modelopt``: ModelOpt's ``abs`` only where ``min(x) < 0`` (so not with a
    NaN), ``np.max`` (NaN propagates) instead of ``nanmax``, an empty input
    refused; ``skip_zeros``: zeros left out first (ModelOpt's option).
    ``started``: a caller that knows statically whether the state has seen a
    collect (an eager class) skips the other branch's binning; None bins both
    and picks by the state's flag (the functional core).
    """
    c, cap = state.counts.shape
    device = device_of(x)
    x = xp.reshape(x, (c, -1))
    m = x.shape[1]
    everything = xp.ones(x.shape, dtype=xp.bool, device=device)
    mn, mx = _row_min_max(x, everything, xp)
    if modelopt:
        # ModelOpt tests ``torch.min(x) < 0`` before ``x.float()``: a float64 value that
        # rounds to -0.0 still takes the abs (the first edge is then +0.0)
        nan = (
            xp.any(xp.isnan(x), axis=1, keepdims=True)
            if m
            else xp.zeros((c, 1), dtype=xp.bool, device=device)
        )
        negative = xp.any(x < 0, axis=1, keepdims=True) if m else nan
        a = _f32(xp.where(negative & ~nan, xp.abs(x), x), xp)
        keep = (a != 0) if skip_zeros else everything
    else:
        a = xp.abs(x)
        keep = everything
    started = state.started
    # the first call: np.histogram(a, bins=n) on [min a, max a]
    amin, amax = _row_min_max(a, keep, xp)
    has_nan = (
        xp.any(xp.isnan(a) & keep, axis=1) if m else xp.zeros((c,), dtype=xp.bool, device=device)
    )
    some = xp.any(keep, axis=1) if m else xp.zeros((c,), dtype=xp.bool, device=device)
    first_bad = xp.any(some & (has_nan | ~xp.isfinite(amax) | ~xp.isfinite(amin)))
    zero32 = xp.zeros_like(amin)
    lo = xp.where(some & ~has_nan, amin, zero32)
    hi = xp.where(some & ~has_nan, amax, zero32 + 1)
    lo = xp.where(xp.isfinite(lo), lo, zero32)
    hi = xp.where(xp.isfinite(hi), hi, zero32 + 1)
    equal = lo == hi
    lo, hi = xp.where(equal, lo - 0.5, lo), xp.where(equal, hi + 0.5, hi)
    n0 = state.bins
    j = xp.reshape(xp.arange(cap + 1, dtype=xp.int64, device=device), (1, cap + 1))
    lo2, hi2, n2 = (xp.reshape(v, (c, 1)) for v in (lo, hi, n0))
    # an empty first batch: NumPy's linspace(0, 1) runs in float64, then float32
    step = _divide(xp.ones_like(lo2, dtype=xp.float64), xp.astype(n2, xp.float64), xp)
    unit = _f32(xp.astype(j, xp.float64) * step, xp)
    unit = xp.where(j == n2, xp.ones_like(unit), unit)
    first_edges = xp.where(xp.reshape(some, (c, 1)), _uniform_edge(j, lo2, hi2, n2, xp), unit)
    first_edges = xp.astype(first_edges, xp.float64)
    first_edges = xp.where(j <= n2, first_edges, _full(math.inf, first_edges, xp))
    # np.histogram refuses a range whose linspace repeats an edge (a subnormal range, say)
    repeats = (first_edges[:, 1:] <= first_edges[:, :-1]) & (j[:, 1:] <= n2)
    narrow = xp.any(xp.any(repeats, axis=1) & some)
    first_counts = state.counts
    if started is not True:
        first_inside = keep & (a >= lo2) & (a <= hi2)
        first_index = _uniform_index(xp.where(first_inside, a, lo2), lo2, hi2, n2, xp)
        first_counts = _count_rows(first_index, first_inside, cap, xp)
    # later calls: grow by np.arange while the maximum passes the last edge
    if modelopt:
        top = xp.max(xp.where(keep, a, _full(-math.inf, a, xp)), axis=1) if m else zero32
        top = xp.where(has_nan, _full(math.nan, top, xp), top)
        later_bad = xp.astype(xp.any(~some), xp.int64) * 4
    else:
        top = amax
        later_bad = xp.asarray(4 if m == 0 else 0, dtype=xp.int64, device=device)
    grow = started & (top > state.last)
    # before the first call the padding is all +inf: a harmless grid instead (unused)
    first_edge = xp.where(started, state.edges[:, 0], xp.zeros_like(state.last))
    second_edge = xp.where(started, state.edges[:, 1], xp.ones_like(state.last))
    length, start, delta = _arange_growth(
        first_edge,
        second_edge,
        state.last,
        xp.where(grow, top, zero32),
        state.wide,
        xp,
    )
    later_bad = xp.where(xp.any(grow & ~xp.isfinite(top)), _full(3, later_bad, xp), later_bad)
    length = xp.where(grow & xp.isfinite(length), xp.clip(length, 0, None), xp.zeros_like(length))
    add = xp.astype(xp.clip(length, 0, 2.0**62), xp.int64)
    n = state.bins
    bins_later = n + add
    k = j - xp.reshape(n, (c, 1)) - 1
    offsets = _rounded(xp.astype(k, xp.float64) * xp.reshape(delta, (c, 1)), xp)
    appended = xp.reshape(start, (c, 1)) + offsets
    grown_edges = xp.where((k >= 0) & (k < xp.reshape(add, (c, 1))), appended, state.edges)
    # the arange's last value, kept exactly even where it lies past the capacity
    top_offset = _rounded(xp.astype(add - 1, xp.float64) * delta, xp)
    last_later = xp.where(add > 0, start + top_offset, state.last)
    nl = xp.reshape(bins_later, (c, 1))
    later_counts = state.counts
    if started is not False:
        later_inside = keep & (a >= grown_edges[:, :1]) & (a <= xp.reshape(last_later, (c, 1)))
        a64 = xp.astype(a, xp.float64)
        a64 = xp.where(later_inside, a64, xp.zeros_like(a64))
        found = _row_searchsorted(grown_edges, a64, xp) - 1
        later_index = xp.where(found >= nl, nl - 1, found)
        later_counts = _count_rows(later_index, later_inside, cap, xp) + state.counts
    # ORT keeps float32 edges; ModelOpt's become float64 once grown
    if cast_back:
        grown_edges = xp.where(
            xp.isfinite(grown_edges), xp.astype(_f32(grown_edges, xp), xp.float64), grown_edges
        )
        last_later = xp.astype(_f32(last_later, xp), xp.float64)
    bins = xp.where(started, bins_later, n0)
    fits = xp.all(bins <= cap)
    write = fits & ~state.overflow
    s2 = xp.reshape(xp.astype(started, xp.bool), (1, 1))
    counts = xp.where(s2, later_counts, first_counts)
    edges = xp.where(s2, grown_edges, first_edges)
    first_last = xp.where(some, xp.astype(hi, xp.float64), xp.ones_like(state.last))
    new = AbsState(
        xp.where(write, counts, state.counts),
        xp.where(write, edges, state.edges),
        bins,
        xp.where(started, last_later, first_last),
        state.wide if cast_back else state.wide | grow,
        xp.where(started & ~(mn < state.min), state.min, mn),
        xp.where(started & ~(mx > state.max), state.max, mx),
        xp.asarray(True, device=device),
        state.overflow | ~fits,
        xp.maximum(state.need, xp.max(bins)),
        state.error,
        state.steps + 1,
    )
    first_code = xp.astype(first_bad, xp.int64) * 2 + xp.astype(~first_bad & narrow, xp.int64) * 6
    code = xp.where(started, later_bad, first_code)
    if modelopt and m == 0:
        code = xp.asarray(5, dtype=xp.int64, device=device)
    refused, error = _sticky(state, code, xp)
    kept = _keep(state, new, refused, xp)
    return kept._replace(error=error, steps=state.steps + 1)  # type: ignore[no-any-return]


def ort_abs_update(
    state: AbsState, x: Any, *, xp: ModuleType, started: bool | None = None
) -> AbsState:
    """One ORT ``collect`` of float32 ``x`` ((C, M)) into ``collect_absolute_value``'s
    histogram (``started``: see :func:`abs_update`)."""
    return abs_update(state, x, xp=xp, cast_back=True, started=started)


def modelopt_update(
    state: AbsState,
    x: Any,
    *,
    skip_zeros: bool = False,
    xp: ModuleType,
    started: bool | None = None,
) -> AbsState:
    """One ModelOpt ``HistogramCalibrator(torch_hist=False).collect(x)`` (see the module;
    ``started``: see :func:`abs_update`)."""
    return abs_update(
        state, x, xp=xp, cast_back=False, modelopt=True, skip_zeros=skip_zeros, started=started
    )


# -- results (host) ----------------------------------------------------------------
def raise_error(state: Any, capacity_hint: str = "capacity") -> None:
    """Raise what the reference raised (the sticky ``error``), or OverflowError
    when the histogram passed its capacity, naming ``need``."""
    error = int(to_host(state.error))
    if error:
        kind, text = ERRORS[error >> 32]
        msg = f"{text} (at collect call {error & (2**32 - 1)}; the state is as it was before it)"
        raise kind(msg)
    if bool(to_host(state.overflow)):
        need = int(to_host(state.need))
        cap = state.counts.shape[1]
        msg = (
            f"the histogram needs {need} bins, more than its {capacity_hint} of {cap}: "
            f"re-run with {capacity_hint} >= {need}"
        )
        raise OverflowError(msg)


def value_result(state: ValueState) -> list[tuple[Any, ...]]:
    """ORT's ``(hist, hist_edges, min, max, threshold)`` per row, host NumPy."""
    raise_error(state)
    counts = np.asarray(to_host(state.counts))
    bins = np.asarray(to_host(state.bins))
    threshold = np.asarray(to_host(state.threshold), dtype=np.float32)
    lo = np.asarray(to_host(state.min), dtype=np.float32)
    hi = np.asarray(to_host(state.max), dtype=np.float32)
    out = []
    for i in range(counts.shape[0]):
        t = threshold[i]
        # the reference's own edges: np.histogram's linspace on (-T, T)
        edges = np.histogram(np.zeros(0, np.float32), int(bins[i]), range=(-t, t))[1]
        out.append((counts[i, : bins[i]].copy(), edges, lo[i], hi[i], t))
    return out


def abs_result(state: AbsState, *, cast_back: bool) -> list[tuple[Any, ...]]:
    """Per row ``(hist int64[n], edges[n+1], min, max)``: edges float32 for ORT
    (``cast_back``), float32 or float64 (once grown) for ModelOpt."""
    raise_error(state)
    counts = np.asarray(to_host(state.counts))
    edges = np.asarray(to_host(state.edges))
    bins = np.asarray(to_host(state.bins))
    wide = np.asarray(to_host(state.wide))
    lo = np.asarray(to_host(state.min), dtype=np.float32)
    hi = np.asarray(to_host(state.max), dtype=np.float32)
    out = []
    for i in range(counts.shape[0]):
        n = int(bins[i])
        e = edges[i, : n + 1]
        e = e if (wide[i] and not cast_back) else e.astype(np.float32)
        out.append((counts[i, :n].copy(), e, lo[i], hi[i]))
    return out


def modelopt_result(state: AbsState) -> list[tuple[Any, Any]]:
    """ModelOpt's ``(_calib_hist, _calib_bin_edges)`` per row (see the module)."""
    return [r[:2] for r in abs_result(state, cast_back=False)]


def repad(state: Any, capacity: int, *, xp: ModuleType) -> Any:
    """``state`` (not overflowed) with room for ``capacity`` bins: zero counts
    and +inf edges appended, an exact copy otherwise (growth only appends)."""
    c, cap = state.counts.shape
    device = device_of(state.counts)
    more = capacity - cap
    counts = xp.concat([state.counts, xp.zeros((c, more), dtype=xp.int64, device=device)], axis=1)
    if isinstance(state, ValueState):
        return state._replace(counts=counts)
    edges = xp.concat(
        [state.edges, xp.full((c, more), math.inf, dtype=xp.float64, device=device)], axis=1
    )
    return state._replace(counts=counts, edges=edges)
