"""ATen's float32 CPU ``sum()`` (``cascade_sum``) as a compiled loop.

The same order as :func:`arrayobs._core._sum.torch_sum`, one row at a time:
8 lanes, 4 interleaved rows of them, cascaded in blocks of ``2**power`` rows
(four levels, each flushed into the next when its block count rolls over),
the tail and the lanes added last, in order; every addition in float32.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

# error_model="numpy": a float division by zero gives inf or NaN, as in NumPy and torch.
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}
LANES = 8


@numba.njit(**_JIT)
def _multi_row_sum(a, size, lanes):  # type: ignore[no-untyped-def]
    """ATen's ``multi_row_sum`` of rows (size, 4, lanes) of ``a``: (4, lanes)."""
    bits = 1
    if size > 2:
        bits = 0
        v = size - 1
        while v:
            bits += 1
            v >>= 1
    power = max(4, bits // 4)
    step = 1 << power
    mask = step - 1
    full = size // step
    acc = np.zeros((4, 4, lanes), np.float32)
    chain = np.empty((4, lanes), np.float32)
    for block in range(full):
        chain[:] = np.float32(0.0)
        for r in range(block * step, (block + 1) * step):
            for q in range(4):
                for lane in range(lanes):
                    chain[q, lane] += a[(r * 4 + q) * lanes + lane]
        acc[0] = chain
        i = (block + 1) * step
        for j in range(1, 4):
            acc[j] += acc[j - 1]
            acc[j - 1] = np.float32(0.0)
            if i & (mask << (j * power)):
                break
    out = acc[0].copy()
    for r in range(full * step, size):
        for q in range(4):
            for lane in range(lanes):
                out[q, lane] += a[(r * 4 + q) * lanes + lane]
    for j in range(1, 4):
        out += acc[j]
    return out


@numba.njit(**_JIT)
def _row_sum(a, size, lanes):  # type: ignore[no-untyped-def]
    """ATen's ``row_sum`` of rows (size, lanes) of ``a``: (lanes,)."""
    ilp = size // 4
    parts = _multi_row_sum(a, ilp, lanes) if ilp else np.zeros((4, lanes), np.float32)
    first = parts[0].copy()
    for i in range(ilp * 4, size):
        for lane in range(lanes):
            first[lane] += a[i * lanes + lane]
    for q in range(1, 4):
        first += parts[q]
    return first


@numba.njit(**_JIT)
def cascade_sum(a):  # type: ignore[no-untyped-def]
    """``a.sum()`` of a 1-d float32 array as ATen sums it (up to 32768 values)."""
    n = a.size
    if n < LANES:
        return _row_sum(a, n, 1)[0]
    whole = n // LANES
    lanes = _row_sum(a, whole, LANES)
    total = np.float32(0.0)
    for i in range(whole * LANES, n):
        total += a[i]
    for lane in range(LANES):
        total += lanes[lane]
    return total
