"""The NumPy-rule histograms of the calibrators (:mod:`arrayobs._core._calib_nphist`)
as compiled passes over a (C, M) float32 array, each call one thread's part of the
flattened rows (start, stop): row statistics in one pass, then each value's bin and
its count fused in a second.

``extremes``: per row, the min and max as order keys
(:mod:`arrayobs._core._keys`), the smallest magnitude's bits, and whether the
row holds a +0.0 and a -0.0: integer reductions, which vectorize and need no
NaN test (a NaN's key lies beyond an infinity's).

``uniform``: ``np.histogram(a, n, range=(lo, hi))``'s uniform rule in float32,
op by op: ``f32(f32(v - lo) / f32(hi - lo)) * f32(n)``, truncated, ``n`` sent to
``n - 1``, then one correction each way against NumPy's linspace edges
``f32(f32(i * step) + lo)``, ``step = f32(f32(hi - lo) / f32(n))``. The edges
are computed, not looked up, and the bin is held as a float32 integer: no
gather and no int64 lane, so the whole rule runs 8 values to an AVX2 vector.
It needs bins below 2**24 (float32 integers exact; the caller checks).

``edges``: ``np.histogram(a, bins=edges)`` on float64 edges, ``e[i] <= v <
e[i+1]`` with the last bin closed, found from a guess on the mean width and
walked to the exact bin (the walk, not the guess, decides).

Values outside a row's range are skipped. Counts are integers, exact in any
order: each thread counts its part into its own histograms
(:func:`~arrayobs._backends._kernels._histogram.tally`) and the caller adds
the parts in a fixed order, so no result depends on the number of threads.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from arrayobs._backends._kernels._histogram import BLOCK, COPIES, _positions, tally, total

_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
_MAGNITUDE = 0x7FFFFFFF
_NEGATIVE_ZERO = -(2**31)


@numba.njit(**_JIT)
def _row_extremes(bits):  # type: ignore[no-untyped-def]
    """(min key, max key, smallest magnitude bits, has +0.0, has -0.0) of int32 float bits."""
    lo, hi = np.int32(_MAGNITUDE), np.int32(~_MAGNITUDE)
    small = np.int32(_MAGNITUDE)
    positive_zero = negative_zero = False
    for t in range(bits.size):
        b = bits[t]
        k = np.int32(b ^ ((b >> 31) & _MAGNITUDE))
        lo = min(lo, k)
        hi = max(hi, k)
        small = min(small, np.int32(b & _MAGNITUDE))
        positive_zero |= b == 0
        negative_zero |= b == _NEGATIVE_ZERO
    return lo, hi, small, positive_zero, negative_zero


@numba.njit(**_JIT)
def extremes(bits, start, stop):  # type: ignore[no-untyped-def]
    """Per row of ``bits[start:stop]`` (flat indices into the (C, M) int32 view of
    float32 rows), int64 (C, 5): min key, max key, smallest magnitude bits
    (rows this part does not touch keep the identities), has +0.0, has -0.0."""
    c, m = bits.shape
    out = np.zeros((c, 5), np.int64)
    out[:, 0] = _MAGNITUDE
    out[:, 1] = ~_MAGNITUDE
    out[:, 2] = _MAGNITUDE
    if m == 0:
        return out
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        end = min(m, j + (stop - k))
        lo, hi, small, pz, nz = _row_extremes(bits[r, j:end])
        out[r, 0], out[r, 1], out[r, 2], out[r, 3], out[r, 4] = lo, hi, small, pz, nz
        k += end - j
        r += 1
        j = 0
    return out


@numba.njit(**_JIT)
def _uniform_bins(block, absolute, left, right, span, step, factor, bins, skip, out):  # type: ignore[no-untyped-def]
    """Each value's bin into ``out`` (``skip`` where it lies outside ``[left, right]``,
    NaN too); the bin index as a float32 integer throughout (see the module)."""
    zero, one = np.float32(0.0), np.float32(1.0)
    last = np.float32(bins - 1)
    for t in range(block.size):
        v = abs(block[t]) if absolute else block[t]
        inside = (v >= left) & (v <= right)
        f = ((v - left) / span) * factor
        g = np.float32(np.int32(f if inside else zero))
        g = min(max(g, zero), last)
        g = g - one if v < g * step + left else g
        g = max(g, zero)
        up = (g != last) & (v >= (g + one) * step + left)
        g = g + one if up else g
        out[t] = np.int32(g) if inside else skip


@numba.njit(**_JIT)
def uniform(x, absolute, lo, hi, n, width, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (C, width) of ``x[start:stop]`` (flat indices into (C, M));
    row ``r``: ``n[r]`` bins on ``[lo[r], hi[r]]`` (float32); the last column
    counts the values skipped."""
    c, m = x.shape
    out = np.zeros((c, width), np.int64)
    if m == 0:
        return out
    counts = np.zeros((COPIES, width), np.int64)
    index = np.empty(BLOCK, np.int32)
    skip = np.int32(width - 1)
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        left, right = lo[r], hi[r]
        span = right - left
        factor = np.float32(n[r])
        step = span / factor
        end = min(m, j + (stop - k))
        counts[:] = 0
        for b in range(j, end, BLOCK):
            block = x[r, b : min(end, b + BLOCK)]
            _uniform_bins(block, absolute, left, right, span, step, factor, n[r], skip, index)
            tally(index, block.size, counts)
        out[r] = total(counts)
        k += end - j
        r += 1
        j = 0
    return out


@numba.njit(**_JIT)
def _edges_guess(block, absolute, first, top, scale, bins, out):  # type: ignore[no-untyped-def]
    """Each value's first guess on the mean width into ``out`` (-1 where it lies
    outside ``[first, top]``, NaN too): float64, no branches, vectorized."""
    last = np.float64(bins - 1)
    for t in range(block.size):
        v = np.float64(abs(block[t]) if absolute else block[t])
        g = (v - first) * scale
        g = g if g < last else last  # NaN (a zero-width grid) too: the walk decides
        g = g if (v >= first) & (v <= top) else np.float64(-1.0)
        out[t] = np.int32(g)


@numba.njit(**_JIT)
def _edges_walk(block, absolute, er, bins, skip, index):  # type: ignore[no-untyped-def]
    """Each guess walked to its exact bin in ``er`` (``skip`` where skipped)."""
    for t in range(block.size):
        i = index[t]
        if i < 0:
            index[t] = skip
            continue
        v = np.float64(abs(block[t]) if absolute else block[t])
        while i > 0 and v < er[i]:
            i -= 1
        while i < bins - 1 and v >= er[i + 1]:
            i += 1
        index[t] = i


@numba.njit(**_JIT)
def edges(x, absolute, e, n, last, width, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (C, width) of ``x[start:stop]`` (flat indices into (C, M)) in
    row ``r``'s ``n[r]`` bins of float64 edges ``e[r, :n[r] + 1]``, those in
    ``[e[r, 0], last[r]]`` (float32 values compared exactly); the last column
    counts the values skipped."""
    c, m = x.shape
    out = np.zeros((c, width), np.int64)
    if m == 0:
        return out
    counts = np.zeros((COPIES, width), np.int64)
    index = np.empty(BLOCK, np.int32)
    skip = np.int32(width - 1)
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        er = e[r]
        bins = n[r]
        first = er[0]
        scale = bins / (er[bins] - first)
        end = min(m, j + (stop - k))
        counts[:] = 0
        for b in range(j, end, BLOCK):
            block = x[r, b : min(end, b + BLOCK)]
            _edges_guess(block, absolute, first, last[r], scale, bins, index)
            _edges_walk(block, absolute, er, bins, skip, index)
            tally(index, block.size, counts)
        out[r] = total(counts)
        k += end - j
        r += 1
        j = 0
    return out


@numba.njit(**_JIT)
def histc_rows(x, absolute, lo, hi, n, width, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (C, width) of ``x[start:stop]`` (flat indices into (C, M)
    float32), row ``r`` (its magnitudes where ``absolute[r]``) binned by
    torch's ``histc`` rule (:func:`arrayobs._backends._kernels._histogram.histc`)
    with ``n[r]`` bins on ``[lo[r], hi[r]]``; columns from ``n[r]`` on stay 0."""
    c, m = x.shape
    out = np.zeros((c, width), np.int64)
    if m == 0:
        return out
    counts = np.zeros((COPIES, width + 1), np.int64)
    index = np.empty(BLOCK, np.int32)
    magnitudes = np.empty(BLOCK, np.float32)
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        left, right, bins = lo[r], hi[r], n[r]
        end = min(m, j + (stop - k))
        counts[:] = 0
        for b in range(j, end, BLOCK):
            block = x[r, b : min(end, b + BLOCK)]
            if absolute[r]:
                block = np.abs(block, magnitudes[: block.size])
            _positions(block, left, right, np.float32(bins), right - left, bins, index)
            tally(index, block.size, counts)
        out[r, :bins] = total(counts)[:bins]
        k += end - j
        r += 1
        j = 0
    return out
