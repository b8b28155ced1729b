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
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}
COPIES = 4
_INT32_LIMIT = 2147483648.0


@numba.njit(inline="always", **_JIT)
def _bin(v, left, right, factor, span, bins, top):  # type: ignore[no-untyped-def]
    """The bin of ``v``, or -1 where it is outside ``[left, right]`` or NaN."""
    if not (v >= left and v <= right):
        return -1
    pos = ((v - left) * factor) / span
    if not np.isfinite(pos) or pos < 1.0 or pos >= _INT32_LIMIT:
        return 0
    if pos >= top:
        return bins - 1
    return int(pos)


@numba.njit(**_JIT)
def _count(x, start, stop, left, right, factor, span, bins, counts):  # type: ignore[no-untyped-def]
    """Count ``x[start:stop]`` into ``counts`` (COPIES, bins); the number skipped."""
    top = float(bins)
    skipped = 0
    i = start
    while i + COPIES <= stop:
        for j in range(COPIES):
            k = _bin(x[i + j], left, right, factor, span, bins, top)
            if k >= 0:
                counts[j, k] += 1
            else:
                skipped += 1
        i += COPIES
    for tail in range(i, stop):
        k = _bin(x[tail], left, right, factor, span, bins, top)
        if k >= 0:
            counts[0, k] += 1
        else:
            skipped += 1
    return skipped


@numba.njit(**_JIT)
def _total(counts):  # type: ignore[no-untyped-def]
    """(parts, COPIES, bins) partial counts summed in order (exact: integers)."""
    out = np.zeros(counts.shape[2], np.int64)
    for p in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            out += counts[p, j]
    return out


@numba.njit(parallel=True, **_JIT)
def histc_parallel(x, left, right, factor, span, bins, parts):  # type: ignore[no-untyped-def]
    """(int64 counts, number skipped) of the 1-d ``x``, one contiguous part per thread."""
    n = x.size
    counts = np.zeros((parts, COPIES, bins), np.int64)
    skipped = np.zeros(parts, np.int64)
    for p in numba.prange(parts):
        skipped[p] = _count(
            x, n * p // parts, n * (p + 1) // parts, left, right, factor, span, bins, counts[p]
        )
    return _total(counts), skipped.sum()


@numba.njit(**_JIT)
def histc_serial(x, left, right, factor, span, bins):  # type: ignore[no-untyped-def]
    counts = np.zeros((1, COPIES, bins), np.int64)
    skipped = _count(x, 0, x.size, left, right, factor, span, bins, counts[0])
    return _total(counts), skipped
