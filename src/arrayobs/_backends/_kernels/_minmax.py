"""Single-pass (min, max) of floats as order-preserving integer keys, per tensor and per channel.

A float's bits, read as a signed integer of its width, become a key whose
integer order is the float order (:func:`arrayobs._core._keys.order_keys`:
the magnitude bits of a negative value flipped). Integer min and max
vectorize without fast-math flags, where floating ones may not be reordered
(NaN, signed zeros), and a NaN needs no test of its own: its key lies beyond
an infinity's (below for a negative NaN, above for a positive one). -0.0's
key is below +0.0's, so a batch of mixed zeros gives min -0.0 and max +0.0:
a result the library path may give too (its reductions pick a zero's sign by
position; the fast-path tests accept either sign there).

The loop itself computes no key: it reduces the raw bits to their signed
minimum and maximum and their unsigned maximum (three vector min/max
instructions an element, no arithmetic, where numba would widen the key's
shift and mask of a 16- or 32-bit integer to 64 bits), and the keys of the
extremes follow from those three:

- the largest float is the signed maximum where that has a clear sign bit
  (then it is the largest non-negative value), else the signed minimum (all
  are negative, and the smallest magnitude is the smallest signed integer);
- the smallest float is the unsigned maximum where some sign bit is set (the
  negative value of largest magnitude; negatives are the unsigned integers
  from 2**(w-1) up), else the signed minimum.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

# error_model="numpy": a float division by zero gives inf or NaN, as in NumPy and torch.
_JIT: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def _span(bits, unsigned, start, stop):  # type: ignore[no-untyped-def]
    """(min, max) key of ``bits[start:stop]`` (signed integer float bits, non-empty;
    ``unsigned`` the same memory as unsigned integers)."""
    t = bits.dtype.type
    width = bits.itemsize * 8 - 1
    mask = t((1 << width) - 1)
    part = bits[start:stop]  # indices from 0: no negative-index wrap to test, so it vectorizes
    upart = unsigned[start:stop]
    lo, hi, top = mask, t(~mask), unsigned.dtype.type(0)
    for i in range(part.size):
        lo = min(lo, part[i])
        hi = max(hi, part[i])
        top = max(top, upart[i])
    high = hi if hi >= 0 else lo
    low = t(top) if lo < 0 else lo
    return t(low ^ ((low >> width) & mask)), t(high ^ ((high >> width) & mask))


@numba.njit(**_JIT)
def keys(bits, unsigned, start, stop):  # type: ignore[no-untyped-def]
    """(min, max) key of ``bits[start:stop]`` as a (2,) array (one thread's non-empty part)."""
    out = np.empty(2, bits.dtype)
    out[0], out[1] = _span(bits, unsigned, start, stop)
    return out


@numba.njit(**_JIT)
def keys_axis(bits, unsigned, first, last):  # type: ignore[no-untyped-def]
    """Per-channel (min, max) keys, (2, C), of rows ``first`` to ``last`` of the
    (A, C, B) C-contiguous ``bits`` (row r: channel r % C, B > 0 contiguous
    values; ``unsigned`` the same memory as unsigned integers)."""
    c, b = bits.shape[1], bits.shape[2]
    t = bits.dtype.type
    mask = t((1 << (bits.itemsize * 8 - 1)) - 1)
    out = np.empty((2, c), bits.dtype)
    out[0] = mask
    out[1] = t(~mask)
    flat = bits.reshape(bits.size)
    uflat = unsigned.reshape(unsigned.size)
    for r in range(first, last):
        ch = r % c
        lo, hi = _span(flat, uflat, r * b, (r + 1) * b)
        out[0, ch] = min(out[0, ch], lo)
        out[1, ch] = max(out[1, ch], hi)
    return out
