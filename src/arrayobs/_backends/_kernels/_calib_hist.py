"""The NumPy-rule histograms of the calibrators (:mod:`arrayobs._core._calib_nphist`)
as compiled passes: each value's bin and its count fused, per row of a (C, M) array.

``uniform``: ``np.histogram(a, n, range=(lo, hi))``'s uniform rule in float32,
op by op: ``f32(f32(v - lo) / f32(hi - lo)) * f32(n)``, truncated, ``n`` sent to
``n - 1``, then one correction each way against the float32 edges. ``edges``:
``np.histogram(a, bins=edges)`` on float64 edges, ``e[i] <= v < e[i+1]`` with the
last bin closed, found from a guess on the mean width and walked to the exact
bin (the walk, not the guess, decides). Values outside a row's range are
skipped. Each thread counts a contiguous part of the flattened rows into its
own histogram; integer counts add exactly in any order.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
COPIES = 4
BLOCK = 2048  # values per block: their bins stay in L1


@numba.njit(**_JIT)
def _positions(block, absolute, left, right, span, factor, out):  # type: ignore[no-untyped-def]
    """Each value's first guess ``trunc(f32(f32(v - left) / span) * factor)`` into
    ``out``, -1 where it lies outside ``[left, right]`` (NaN too): no branches,
    so the compiler vectorizes the division."""
    skip = np.float32(-1.0)
    for t in range(block.size):
        v = abs(block[t]) if absolute else block[t]
        f = ((v - left) / span) * factor
        out[t] = np.int32(f if (v >= left) & (v <= right) else skip)


@numba.njit(**_JIT)
def _correct(block, absolute, bins, e, skip, index):  # type: ignore[no-untyped-def]
    """Each guess sent from ``bins`` to ``bins - 1`` and corrected once each way
    against the float32 edges ``e`` (NumPy's order); ``skip`` for a value outside."""
    last = np.int32(bins - 1)
    for t in range(block.size):
        v = abs(block[t]) if absolute else block[t]
        g = index[t]
        i = min(max(g, np.int32(0)), last)
        i -= np.int32(v < e[i])
        i = max(i, np.int32(0))
        i += np.int32((i != last) & (v >= e[i + 1]))
        index[t] = i if g >= 0 else skip


@numba.njit(**_JIT)
def uniform(x, absolute, lo, hi, n, edges, width, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (C, width) of ``x[start:stop]`` (flat indices into (C, M));
    row ``r``: ``n[r]`` bins on ``[lo[r], hi[r]]`` (float32) with float32 ``edges``;
    the last column counts the values skipped."""
    c, m = x.shape
    out = np.zeros((c, width), np.int64)
    if m == 0:
        return out
    counts = np.zeros((COPIES, width), np.int64)
    index = np.empty(BLOCK, np.int32)
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        left, right = lo[r], hi[r]
        span = right - left
        bins = n[r]
        factor = np.float32(bins)
        e = edges[r]
        row = x[r]
        end = min(m, j + (stop - k))
        counts[:] = 0
        for b in range(j, end, BLOCK):
            block = row[b : min(end, b + BLOCK)]
            size = block.size
            _positions(block, absolute, left, right, span, factor, index)
            _correct(block, absolute, bins, e, np.int32(width - 1), index)
            i = 0
            while i + COPIES <= size:
                for u in range(COPIES):
                    counts[u, index[i + u]] += 1
                i += COPIES
            for tail in range(i, size):
                counts[0, index[tail]] += 1
        for u in range(COPIES):
            out[r] += counts[u]
        k += end - j
        r += 1
        j = 0
    return out


@numba.njit(**_JIT)
def edges(x, absolute, e, n, last, width, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (C, width) of ``x[start:stop]`` (flat indices into (C, M)) in
    row ``r``'s ``n[r]`` bins of float64 edges ``e[r, :n[r] + 1]``, those in
    ``[e[r, 0], last[r]]`` (float32 values compared exactly)."""
    c, m = x.shape
    counts = np.zeros((c, width), np.int64)
    if m == 0:
        return counts
    r = start // m
    j = start - r * m
    k = start
    while k < stop:
        er = e[r]
        bins = n[r]
        first, top = er[0], last[r]
        scale = bins / (er[bins] - first)
        row = x[r]
        end = min(m, j + (stop - k))
        for col in range(j, end):
            v = np.float64(abs(row[col]) if absolute else row[col])
            if v >= first and v <= top:
                g = (v - first) * scale
                i = np.int64(g) if g < bins else bins - 1
                while i > 0 and v < er[i]:
                    i -= 1
                while i < bins - 1 and v >= er[i + 1]:
                    i += 1
                counts[r, i] += 1
        k += end - j
        r += 1
        j = 0
    return counts
