"""Order-preserving integer keys of IEEE floats: the one definition.

Flipping the magnitude bits of a negative float's bit pattern makes signed
integer order equal float order (-0.0 lands just below +0.0), and the map is
its own inverse. A NaN's key lies beyond the infinities' (above +inf's for a
positive NaN, below -inf's for a negative one). Integer min and max are exact
and associative, which makes keys the currency wherever floats would not do:

- NumPy reduces 16-bit floats as int16 keys (its float16 reduction has no SIMD,
  and it cannot reduce ml_dtypes' bfloat16 at all);
- collectives (torch.distributed, JAX's ``lax.pmin``) reduce a (min, max)
  pair as int32 keys in one all-reduce, NaN propagating
  (:func:`pack_minmax`, :func:`unpack_minmax`);
- CuPy's kernels, which are compiled with ``-ftz=true``, compare keys in CUDA
  (``f2key``/``key2f`` in ``arrayobs._backends._cupy``, the same formula).

The functions take any library's integer arrays (Python operators only), so
each backend supplies its own bit cast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def order_keys(bits: Any, *, out: np.ndarray | None = None) -> Any:
    """Keys of signed-integer float bits, or bits of keys (an involution).

    ``out``: a NumPy buffer of the same shape and dtype to compute into (no
    temporaries, for the NumPy backend's 1 MiB blocks).
    """
    shift = bits.dtype.itemsize * 8 - 1
    mask = (1 << shift) - 1
    if out is None:
        return bits ^ ((bits >> shift) & mask)
    np.right_shift(bits, shift, out=out)
    np.bitwise_and(out, mask, out=out)
    return np.bitwise_xor(out, bits, out=out)


def pack_minmax(lo_bits: Any, hi_bits: Any, nan: Any, *, xp: Any) -> tuple[Any, Any]:
    """Int32 keys whose elementwise MIN across participants gives the joint (min, max).

    ``lo_bits``/``hi_bits``: the int32 bits of float32 mins and maxes; ``nan``:
    where either is NaN, which takes the most extreme key on both sides so that
    it survives the reduction. The max travels as ``~key``, which reverses its
    order, so one MIN reduction serves both (one collective).
    """
    k_lo = xp.where(nan, xp.full_like(lo_bits, INT32_MIN), order_keys(lo_bits))
    k_hi = xp.where(nan, xp.full_like(hi_bits, INT32_MAX), order_keys(hi_bits))
    return k_lo, ~k_hi


def unpack_minmax(k_lo: Any, not_k_hi: Any) -> tuple[Any, Any, Any]:
    """The reduced :func:`pack_minmax` keys as (min bits, max bits, any NaN)."""
    k_hi = ~not_k_hi
    any_nan = (k_lo == INT32_MIN) | (k_hi == INT32_MAX)
    return order_keys(k_lo), order_keys(k_hi), any_nan
