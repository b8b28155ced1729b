"""Single-pass (min, max) on order-preserving integer keys, per tensor and per channel.

A float's bits, read as a signed integer of its width, become a key whose
integer order is the float order (:func:`arrayobs._core._keys.order_keys`:
the magnitude bits of a negative value flipped). Integer min and max
vectorize without fast-math flags, where floating ones may not be reordered
(NaN, signed zeros), and a NaN needs no test of its own: its key lies beyond
an infinity's (below for a negative NaN, above for a positive one). -0.0's
key is below +0.0's, so a batch of mixed zeros gives min -0.0 and max +0.0:
a result the library path may give too (its reductions pick a zero's sign by
position; the fast-path tests accept either sign there).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

_JIT: dict[str, Any] = {"cache": True, "nogil": True}


@numba.njit(**_JIT)
def _span(bits, start, stop):  # type: ignore[no-untyped-def]
    """(min, max) key of ``bits[start:stop]`` (signed integer float bits)."""
    t = bits.dtype.type
    shift = t(bits.itemsize * 8 - 1)
    mask = t((1 << (bits.itemsize * 8 - 1)) - 1)
    lo, hi = mask, t(~mask)
    for i in range(start, stop):
        b = bits[i]
        k = t(b ^ ((b >> shift) & mask))
        lo = min(lo, k)
        hi = max(hi, k)
    return lo, hi


@numba.njit(parallel=True, **_JIT)
def keys_parallel(bits, parts):  # type: ignore[no-untyped-def]
    """(min, max) key of the 1-d ``bits``, in ``parts`` contiguous pieces, one per thread."""
    n = bits.size
    los = np.empty(parts, bits.dtype)
    his = np.empty(parts, bits.dtype)
    for p in numba.prange(parts):
        los[p], his[p] = _span(bits, n * p // parts, n * (p + 1) // parts)
    return los.min(), his.max()


@numba.njit(**_JIT)
def keys_serial(bits):  # type: ignore[no-untyped-def]
    return _span(bits, 0, bits.size)


@numba.njit(parallel=True, **_JIT)
def keys_axis(bits, parts):  # type: ignore[no-untyped-def]
    """Per-channel (min, max) keys of an (A, C, B) C-contiguous ``bits``, shape (C,).

    The A * C rows of B contiguous values are split into ``parts`` runs, one
    per thread, each into its own (C,) accumulators; then the threads' results
    are combined in thread order (min and max of integers: any order gives
    the same keys).
    """
    a, c, b = bits.shape
    t = bits.dtype.type
    mask = t((1 << (bits.itemsize * 8 - 1)) - 1)
    los = np.full((parts, c), mask, bits.dtype)
    his = np.full((parts, c), t(~mask), bits.dtype)
    rows = a * c
    flat = bits.reshape(rows * b)
    for p in numba.prange(parts):
        for r in range(rows * p // parts, rows * (p + 1) // parts):
            ch = r % c
            lo, hi = _span(flat, r * b, (r + 1) * b)
            los[p, ch] = min(los[p, ch], lo)
            his[p, ch] = max(his[p, ch], hi)
    lo_out = los[0].copy()
    hi_out = his[0].copy()
    for p in range(1, parts):
        for ch in range(c):
            lo_out[ch] = min(lo_out[ch], los[p, ch])
            hi_out[ch] = max(hi_out[ch], his[p, ch])
    return lo_out, hi_out
