"""ATen's float32 ``sum()`` on the CPU, bit for bit, in any Array API namespace.

Used by the histogram's search (each candidate's error), its re-binning (a
one-value state's total) and ModelOpt's MseCalibrator (its losses, under
``jax.jit`` and on Dask too). Only elementwise adds, slices and reshapes, in
a fixed order: no library reduction, whose order is the library's own.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import device_of

# ATen's float32 sum on x86 runs its AVX2 kernel (sum_stub has no AVX512 one):
# 8 lanes, also on an AVX512 machine (the tests compare with torch.sum).
SUM_LANES = 8
_LEVELS = 4  # multi_row_sum's accumulator levels
_ILP = 4  # row_sum's interleaved rows


def torch_sum(a: np.ndarray) -> np.ndarray:
    """:func:`cascade_sum` of a float32 NumPy (K, n) array."""
    return cascade_sum(a, xp=np)  # type: ignore[no-any-return]


def cascade_sum(a: Any, *, xp: ModuleType) -> Any:
    """Row sums of a (K, n) array in ATen's CPU order (``cascade_sum``):
    8-lane vectors, 4 interleaved rows of them, cascaded in blocks of
    ``2**power`` (16 up to 2**20 vectors); the tail and the lanes added last,
    in order. Bit for bit ``tensor.sum()`` in the array's dtype for n up to
    32768 (ATen splits longer single sums across threads), and for each
    output of a reduction whose reduced values are contiguous."""
    k, n = a.shape
    if n < SUM_LANES:  # ATen's scalar_inner_sum: the same cascade, one lane
        return _row_sum(xp.reshape(a, (k, n, 1)), xp)[:, 0]
    whole = n // SUM_LANES
    lanes = _row_sum(xp.reshape(a[:, : whole * SUM_LANES], (k, whole, SUM_LANES)), xp)
    total = xp.zeros((k,), dtype=a.dtype, device=device_of(a))
    for i in range(whole * SUM_LANES, n):
        total = total + a[:, i]
    for i in range(SUM_LANES):
        total = total + lanes[:, i]
    return total


def _row_sum(v: Any, xp: ModuleType) -> Any:
    """ATen's ``row_sum`` over axis 1 of (K, size, lanes): (K, lanes)."""
    k, size, lanes = v.shape
    ilp = size // _ILP
    if ilp:
        parts = _multi_row_sum(xp.reshape(v[:, : ilp * _ILP, ...], (k, ilp, _ILP, lanes)), xp)
    else:
        parts = xp.zeros((k, _ILP, lanes), dtype=v.dtype, device=device_of(v))
    first = parts[:, 0, ...]
    for i in range(ilp * _ILP, size):
        first = first + v[:, i, ...]
    for i in range(1, _ILP):
        first = first + parts[:, i, ...]
    return first


def _in_order(v: Any, start: int, stop: int, zero: Any) -> Any:
    """``0 + v[:, start] + ... + v[:, stop - 1]`` (axis 1), left to right."""
    acc = zero
    for i in range(start, stop):
        acc = acc + v[:, i, ...]
    return acc


def _groups(v: Any, full: int, step: int, zero: Any, xp: ModuleType) -> Any:
    """Each of the ``full`` whole groups of ``step`` along axis 1 summed in
    order from zero."""
    blocks = xp.reshape(v[:, : full * step, ...], (v.shape[0], full, step, *v.shape[2:]))
    acc = zero[:, None, ...]
    for i in range(step):
        acc = acc + blocks[:, :, i, ...]
    return acc


def _multi_row_sum(rows: Any, xp: ModuleType) -> Any:
    """ATen's ``multi_row_sum`` over axis 1 of (K, size, 4, lanes).

    ATen adds rows into level 0 and, after every ``step = 2**power`` rows,
    flushes each level into the next (and zeroes it) up to the first level
    whose count is not a multiple of ``step``; the last level is never
    flushed. So each flushed value is an in-order sum from zero of ``step``
    values of the level below, which run here all at once per level; what is
    left in each level at the end is the in-order sum of the unflushed tail.
    """
    size = rows.shape[1]
    power = max(4, (1 if size <= 2 else (size - 1).bit_length()) // _LEVELS)
    step = 1 << power
    zero = xp.zeros((rows.shape[0], *rows.shape[2:]), dtype=rows.dtype, device=device_of(rows))
    level, count = rows, size
    acc = None
    for _ in range(_LEVELS - 1):
        full = count // step
        # what stays in this level: its values after the last flush
        left = _in_order(level, full * step, count, zero)
        acc = left if acc is None else acc + left
        # empty levels are skipped: Dask cannot reshape or build empty chunks
        level = _groups(level, full, step, zero, xp) if full else level
        count = full
    # the last level holds everything flushed into it
    return acc + _in_order(level, 0, count, zero)
