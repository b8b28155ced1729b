"""ATen's float32 ``sum()`` on the CPU, in NumPy, bit for bit.

Used by the histogram's search (each candidate's error) and its re-binning
(a one-value state's total).
"""

from __future__ import annotations

import numpy as np

# ATen's float32 sum on x86 runs its AVX2 kernel (sum_stub has no AVX512 one):
# 8 lanes, also on an AVX512 machine (the tests compare with torch.sum).
SUM_LANES = 8


def torch_sum(a: np.ndarray) -> np.ndarray:
    """Row sums of a float32 (K, n) array in ATen's CPU order (``cascade_sum``):
    8-lane vectors, 4 interleaved rows of them, cascaded in blocks of 16; the
    tail and the lanes added last, in order. Bit for bit ``tensor.sum()`` for
    n up to 32768 (ATen splits longer rows across threads)."""
    k, n = a.shape
    if n < SUM_LANES:  # ATen's scalar_inner_sum: the same cascade, one lane
        return _row_sum(a.reshape(k, n, 1))[:, 0]
    whole = n // SUM_LANES
    lanes = _row_sum(a[:, : whole * SUM_LANES].reshape(k, whole, SUM_LANES))
    total = np.zeros((k,), dtype=a.dtype)
    for i in range(whole * SUM_LANES, n):
        total += a[:, i]
    for i in range(SUM_LANES):
        total += lanes[:, i]
    return total


def _row_sum(v: np.ndarray) -> np.ndarray:
    """ATen's ``row_sum`` over axis 1 of (K, size, lanes): (K, lanes)."""
    k, size, lanes = v.shape
    ilp = size // 4
    if ilp:
        parts = _multi_row_sum(v[:, : ilp * 4].reshape(k, ilp, 4, lanes))
    else:
        parts = np.zeros((k, 4, lanes), dtype=v.dtype)
    first = parts[:, 0].copy()
    for i in range(ilp * 4, size):
        first += v[:, i]
    for i in range(1, 4):
        first += parts[:, i]
    return first


def _multi_row_sum(rows: np.ndarray) -> np.ndarray:
    """ATen's ``multi_row_sum`` (4 levels) over axis 1 of (K, size, 4, lanes).

    Each full block of ``2**power`` rows is a running sum from zero (level 0 is
    flushed after every block), so all blocks run at once (NumPy reduces a
    non-innermost axis in order); the flushes into the higher levels then
    follow ATen's loop, block by block.
    """
    k, size = rows.shape[0], rows.shape[1]
    power = max(4, (1 if size <= 2 else (size - 1).bit_length()) // 4)
    step, mask = 1 << power, (1 << power) - 1
    zero = np.zeros((k, *rows.shape[2:]), dtype=rows.dtype)
    full = size // step
    acc = [zero, zero, zero, zero]
    if full:
        blocks = rows[:, : full * step].reshape(k, full, step, *rows.shape[2:])
        chain = np.add.reduce(blocks, axis=2, initial=0.0)
        for block in range(full):
            acc[0] = chain[:, block]
            i = (block + 1) * step
            for j in range(1, 4):
                acc[j] = acc[j] + acc[j - 1]
                acc[j - 1] = zero
                if i & (mask << (j * power)):
                    break
    acc[0] = acc[0].copy()
    for i in range(full * step, size):
        acc[0] += rows[:, i]
    for j in range(1, 4):
        acc[0] += acc[j]
    return acc[0]
