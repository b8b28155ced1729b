"""torch's CPU ``histc`` as one compiled pass: bin arithmetic and count fused.

The bin of ``v`` is :func:`arrayobs._core._histogram.histc`'s, op by op in
``v``'s dtype: ``((v - lo) * bins) / (hi - lo)``, a value outside ``[lo, hi]``
(NaN among them) skipped, a non-finite position in bin 0 (x86's float ->
int32 conversion gives INT32_MIN, which the clip sends to 0; a finite one
from 2**31 up does too), truncation toward zero, then the clip to
``[0, bins - 1]`` (``v == hi`` lands in the last bin).

Each thread counts its contiguous part into private integer histograms
(COPIES of them, element i into copy i % COPIES, so that runs of equal bins
do not wait on one counter); the partial histograms are then added in a fixed
order. The counts are integers far below 2**63, so their sum is exact in any
order: the result does not depend on the number of threads.

:func:`steady` is the same pass for an observer's steady state (the batch
binned over the state's own range): the skipped column doubles as the test
that the batch's (min, max) lie inside that range, and the pass stops at the
first block holding a value outside it (the caller then takes the library
path: the range moves, or the batch holds NaN or an infinity).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

# error_model="numpy": a float division by zero gives inf or NaN, as in NumPy and torch.
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
COPIES = 4
BLOCK = 2048  # values per block: 8 KiB of positions, in L1
_INT32_LIMIT = 2147483648.0


@numba.njit(**_JIT)
def _positions(block, left, right, factor, span, bins, out):  # type: ignore[no-untyped-def]
    """Each value's bin into ``out`` (``bins`` where it is skipped): no branches, so
    the compiler vectorizes it; the conversion only sees values in ``[0, bins)``."""
    t = block.dtype.type
    zero, top, last = t(0.0), t(bins), t(bins - 1)
    for i in range(block.size):
        v = block[i]
        pos = ((v - left) * factor) / span
        q = pos if (pos >= 1.0 and pos < top) else zero
        q = last if (pos >= top and pos < _INT32_LIMIT) else q  # NaN, inf: 0 (above)
        k = np.int32(q)
        out[i] = k if (v >= left and v <= right) else np.int32(bins)


@numba.njit(**_JIT)
def tally(index, size, counts):  # type: ignore[no-untyped-def]
    """Count ``index[:size]`` (bins) into ``counts`` (COPIES, width): element i
    into copy i % COPIES, so that runs of one bin do not wait on one counter."""
    i = 0
    while i + COPIES <= size:
        for j in range(COPIES):
            counts[j, index[i + j]] += 1
        i += COPIES
    for tail in range(i, size):
        counts[0, index[tail]] += 1


@numba.njit(**_JIT)
def _count(x, left, right, factor, span, bins, counts):  # type: ignore[no-untyped-def]
    """Count ``x`` into ``counts`` (COPIES, bins + 1; the last column: skipped),
    block by block: the positions of a block (vectorized), then its tally."""
    index = np.empty(BLOCK, np.int32)
    for start in range(0, x.size, BLOCK):
        block = x[start : start + BLOCK]
        _positions(block, left, right, factor, span, bins, index)
        tally(index, block.size, counts)


@numba.njit(**_JIT)
def total(counts):  # type: ignore[no-untyped-def]
    """(COPIES, width) partial counts summed in order (exact: integers)."""
    out = counts[0].copy()
    for j in range(1, counts.shape[0]):
        out += counts[j]
    return out


@numba.njit(**_JIT)
def histc(x, left, right, factor, span, bins, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (``bins``) of ``x[start:stop]`` (one thread's part)."""
    counts = np.zeros((COPIES, bins + 1), np.int64)
    _count(x[start:stop], left, right, factor, span, bins, counts)
    return total(counts)[:bins]


@numba.njit(**_JIT)
def steady(x, left, right, factor, span, bins, start, stop):  # type: ignore[no-untyped-def]
    """int64 counts (``bins + 1``; the last: values outside ``[left, right]``,
    NaN among them) of ``x[start:stop]`` (one thread's part), as :func:`histc`
    counts them; stops after the first block with a value outside (then the
    last count is positive and the others partial)."""
    counts = np.zeros((COPIES, bins + 1), np.int64)
    index = np.empty(BLOCK, np.int32)
    part = x[start:stop]
    for first in range(0, part.size, BLOCK):
        block = part[first : first + BLOCK]
        _positions(block, left, right, factor, span, bins, index)
        tally(index, block.size, counts)
        outside = 0
        for j in range(COPIES):
            outside += counts[j, bins]
        if outside:
            break
    return total(counts)
