"""torch's ``_non_linear_param_search`` as one compiled loop.

The walk of :func:`arrayobs._core._search.search_walk` (its no-change steps
skipped by the same bisection) and each candidate's L2 error as
:func:`arrayobs._core._search.quantization_errors` computes it, op for op in
float32, summed in ATen's cascade order (:mod:`._sum`); the first error above
its predecessor's stops the walk, as in torch. ``floor_divide`` is NumPy's
(and ATen's) ``divmod``: fmod, the rounded quotient of ``a - mod``, a
correction where the signs differ, then the snap to the nearest integer.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from arrayobs._backends._kernels._sum import cascade_sum

# error_model="numpy": a float division by zero gives inf or NaN, as in NumPy and torch.
_SMALL_QUOTIENT = 2097152.0  # 2**21
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(inline="always", **_JIT)
def _floor_divide(a, b):  # type: ignore[no-untyped-def]
    """NumPy's float32 ``floor_divide(a, b)`` (``npy_divmodf``).

    First the shortcut of :func:`arrayobs._core._search._floor_quotient`: a
    rounded quotient that is not an integer and below 2**21 has the exact
    quotient's floor (float32 holds every integer there, and rounding to
    nearest cannot cross one); the full divmod only for the rest."""
    q = a / b
    if abs(q) < _SMALL_QUOTIENT:
        floor = np.float32(math.floor(q))
        if floor != q:
            return floor
    if b == 0:
        return q
    mod = np.float32(np.fmod(np.float64(a), np.float64(b)))  # exact, so float32 holds it
    div = (a - mod) / b
    if mod != 0 and (b < 0) != (mod < 0):
        div -= np.float32(1.0)
    if div != 0:
        floor = np.float32(np.floor(np.float64(div)))
        if div - floor > np.float32(0.5):
            floor += np.float32(1.0)
        return floor
    return np.float32(np.copysign(np.float32(0.0), a / b))


@numba.njit(inline="always", **_JIT)
def _floor_small(a, b):  # type: ignore[no-untyped-def]
    """``floor_divide(a, b)`` for ``b > 0`` where ``|a / b| < 2**21`` (the caller checks), no
    branch: the rounded quotient's floor where it is not an integer (see
    :func:`_floor_divide`); an integer one is the floor unless the exact quotient
    lies below it, which the sign of ``a - q * b`` tells (exact in float64: the
    product of two float32 values is, and so is its difference with ``a``)."""
    q = a / b
    floor = np.floor(q)
    below = np.float64(a) - np.float64(q) * np.float64(b) < 0.0
    return floor - np.float32(1.0) if (floor == q and below) else floor


@numba.njit(inline="always", **_JIT)
def _clip(q, top):  # type: ignore[no-untyped-def]
    """NumPy's ``clip(q, 0, top)``: max then min, NaN kept."""
    if not np.isnan(q):
        q = q if q > 0 else np.float32(0.0)
        q = q if q < top else top
    return q


@numba.njit(**_JIT)
def error(histogram, bin_width, start, end, nbins, scratch):  # type: ignore[no-untyped-def]
    """One candidate's ``_compute_quantization_error`` (float32); ``scratch`` (3, bins).

    The floor quotients first, for every bin, by the shortcut (no branch: the
    loop vectorizes), then the full ``floor_divide`` where the shortcut does not
    hold, then the error terms, each loop in the order torch's tensor ops take."""
    if bin_width == 0.0:
        return np.float32(0.0)
    f = np.float32
    widths = bin_width * (float(end) - float(start) + 1.0) / nbins
    dst = f(widths)
    half = f(widths / 2)
    neg_half = -half
    width = f(bin_width)
    top = f(nbins - 1)
    three = f(3.0)
    first = f(start)
    small = f(_SMALL_QUOTIENT)
    half_cubed = half * half * half
    whole = (half_cubed - neg_half * neg_half * neg_half) / three
    neg_cubed = neg_half * neg_half * neg_half
    of_begin, of_end, norm = scratch[0], scratch[1], scratch[2]
    bins = histogram.size
    large = 0
    for i in range(bins):
        begin = (f(i) - first) * width
        of_begin[i] = _floor_small(begin, dst)
        of_end[i] = _floor_small(begin + width, dst)
        large += (abs(begin / dst) >= small) | (abs((begin + width) / dst) >= small)  # type: ignore[assignment]
    if large:
        for i in range(bins):
            begin = (f(i) - first) * width
            of_begin[i] = _floor_divide(begin, dst)
            of_end[i] = _floor_divide(begin + width, dst)
    for i in range(bins):
        begin = (f(i) - first) * width
        stop = begin + width
        low = _clip(of_begin[i], top)
        high = _clip(of_end[i], top)
        density = histogram[i] / width
        delta = begin - (low + f(0.5)) * dst
        value = half_cubed - delta * delta * delta
        value = value / three
        value = value * density
        steps = high - low
        steps = steps - f(1.0)
        steps = steps * (density * whole)
        value = value + steps
        delta = stop - (high * dst + half)
        tail = delta * delta * delta
        tail = tail - neg_cubed
        tail = tail / three
        tail = tail * density
        norm[i] = value + tail
    return cascade_sum(norm)


@numba.njit(inline="always", **_JIT)
def _bisect(values, x, right):  # type: ignore[no-untyped-def]
    """Python's ``bisect_left`` (``bisect_right`` where ``right``) of sorted ``values``."""
    lo, hi = 0, values.size
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x or (right and values[mid] == x):
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_JIT)
def _next_drop(betas, b, total, level, alpha):  # type: ignore[no-untyped-def]
    lo, hi = b, betas.size - 2
    while lo < hi:
        mid = (lo + hi) // 2
        if float(np.float32(betas[mid + 1] * total)) < level or betas[mid] <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(**_JIT)
def search(histogram, csum, total, bin_width, nbins, alphas, betas):  # type: ignore[no-untyped-def]
    """(start_bin, end_bin) the search ends on; ``csum`` torch's cumulative sum
    (float32 values as float64), ``total`` its ``sum().item()``."""
    bins = histogram.size
    chosen_start, chosen_end = 0, bins - 1
    best = np.inf
    scratch = np.empty((3, bins), np.float32)
    a = b = 0
    start, end = 0, bins - 1
    while alphas[a] < betas[b]:
        lo_thr = float(np.float32(alphas[a + 1] * total))
        hi_thr = float(np.float32(betas[b + 1] * total))
        left = min(end, max(start, _bisect(csum, lo_thr, False)))
        right = max(start, min(end, _bisect(csum, hi_thr, True) - 1))
        if left - start > end - right:
            a += 1
            start = left
        elif right != end:
            b += 1
            end = right
        elif start == end:
            break
        else:
            b = _next_drop(betas, b + 1, total, csum[end], alphas[a])
            continue
        err = error(histogram, bin_width, start, end, nbins, scratch)
        if err > best:
            break
        chosen_start, chosen_end, best = start, end, err
    return chosen_start, chosen_end


@numba.njit(**_JIT)
def searched(histogram, bin_width, nbins, alphas, betas):  # type: ignore[no-untyped-def]
    """:func:`search` of a float32 histogram with its total and cumulative sum
    computed here (one call: the fixed cost per search is the point); (-1, -1)
    where the cumulative sum decreases somewhere (negative counts)."""
    total = np.float64(cascade_sum(histogram))
    # torch's cumsum: a float64 running sum, each value rounded to float32, as
    # arrayobs._core._search.cumulative_float32.
    csum = np.empty(histogram.size, np.float64)
    running = 0.0
    for i in range(histogram.size):
        running += np.float64(histogram[i])
        csum[i] = np.float64(np.float32(running))
        if i and csum[i] < csum[i - 1]:
            return -1, -1
    return search(histogram, csum, total, bin_width, nbins, alphas, betas)
