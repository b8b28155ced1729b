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

# error_model="numpy": a float division by zero gives inf or NaN, as in NumPy and torch.
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def _span(bits, start, stop):  # type: ignore[no-untyped-def]
    """(min, max) key of ``bits[start:stop]`` (signed integer float bits)."""
    t = bits.dtype.type
    shift = t(bits.itemsize * 8 - 1)
    mask = t((1 << (bits.itemsize * 8 - 1)) - 1)
    lo, hi = mask, t(~mask)
    part = bits[start:stop]  # indices from 0: no negative-index wrap to test, so it vectorizes
    for i in range(part.size):
        b = part[i]
        k = t(b ^ ((b >> shift) & mask))
        lo = min(lo, k)
        hi = max(hi, k)
    return lo, hi


@numba.njit(**_JIT)
def keys(bits, start, stop):  # type: ignore[no-untyped-def]
    """(min, max) key of ``bits[start:stop]`` as a (2,) array (one thread's part)."""
    out = np.empty(2, bits.dtype)
    out[0], out[1] = _span(bits, start, stop)
    return out


@numba.njit(**_JIT)
def keys_axis(bits, first, last):  # type: ignore[no-untyped-def]
    """Per-channel (min, max) keys, (2, C), of rows ``first`` to ``last`` of the
    (A, C, B) C-contiguous ``bits`` (row r: channel r % C, B contiguous values)."""
    c, b = bits.shape[1], bits.shape[2]
    t = bits.dtype.type
    mask = t((1 << (bits.itemsize * 8 - 1)) - 1)
    out = np.empty((2, c), bits.dtype)
    out[0] = mask
    out[1] = t(~mask)
    flat = bits.reshape(bits.size)
    for r in range(first, last):
        ch = r % c
        lo, hi = _span(flat, r * b, (r + 1) * b)
        out[0, ch] = min(out[0, ch], lo)
        out[1, ch] = max(out[1, ch], hi)
    return out
