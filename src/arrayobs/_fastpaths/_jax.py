"""JAX: min and max in one variadic reduction, NaN propagating.

Two XLA CPU behaviours (jax 0.10.2) shape this module:

- ``jnp.min``/``jnp.max`` drop a NaN from arrays of 4096 or more elements:
  a float32 array holding one NaN gave a finite min and max for 64 of 64 NaN
  positions tried at 4096, 8192 and 100000 elements (eager and jitted), never
  at 1000 or fewer. The Array API standard, torch and NumPy propagate NaN.
  A variadic ``lax.reduce`` whose body is ``minimum``/``maximum`` keeps it.
- ``jit(lambda x: (x.min(), x.max()))`` takes about as long as two passes.
  On the CPU, one variadic reduction over a (2, n/2) view, then over its two
  rows, ran 1.9x faster at 1e8 float32 on a 2-core machine (bench/ has the
  figures); other platforms get one variadic reduction.

``aminmax_checked`` is the generic pair with the NaN put back from an
``isnan`` test: what ``fast=False`` gives, since its only difference from the
generic path is a correction.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

# Below this many elements the (2, n/2) split buys nothing.
SPLIT_MIN = 1 << 16


def _identities(dtype: Any) -> tuple[Any, Any]:
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(jnp.inf, dtype), jnp.array(-jnp.inf, dtype)
    info = jnp.iinfo(dtype)  # type: ignore[no-untyped-call]
    return jnp.array(info.max, dtype), jnp.array(info.min, dtype)


def _both(lhs: tuple[Any, Any], rhs: tuple[Any, Any]) -> tuple[Any, Any]:
    return lax.min(lhs[0], rhs[0]), lax.max(lhs[1], rhs[1])


def _reduce(lo: Any, hi: Any, axis: int) -> tuple[Any, Any]:
    """Min of ``lo`` and max of ``hi`` along ``axis``, in one reduction."""
    return lax.reduce((lo, hi), _identities(lo.dtype), _both, (axis,))  # type: ignore[no-any-return]


def aminmax(x: Any) -> tuple[Any, Any]:
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    elif x.dtype == jnp.bfloat16:
        # XLA's CPU variadic reduction of bfloat16 ran 18x slower than of the
        # same values widened (exactly) to float32, fused into the reduction.
        x = x.astype(jnp.float32)
    flat = x.reshape(-1)
    if flat.shape[0] < SPLIT_MIN:
        lo, hi = _reduce(flat, flat, 0)
    else:
        # The split is the CPU's win; on an H200 it made float16 1.6x slower.
        lo, hi = lax.platform_dependent(flat, cpu=_split_reduce, default=lambda v: _reduce(v, v, 0))
    return lo.astype(jnp.float32), hi.astype(jnp.float32)


def _split_reduce(flat: Any) -> tuple[Any, Any]:
    """One variadic reduction over a (2, n/2) view, then over its two rows."""
    n = flat.shape[0]
    half = n // 2
    rows = flat[: 2 * half].reshape(2, half)
    lo, hi = _reduce(*_reduce(rows, rows, 1), 0)
    if n % 2:
        lo, hi = _both((lo, hi), (flat[-1], flat[-1]))
    return lo, hi


def aminmax_checked(x: Any) -> tuple[Any, Any]:
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    lo, hi = jnp.min(x), jnp.max(x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        has_nan = jnp.any(jnp.isnan(x))
        lo = jnp.where(has_nan, jnp.nan, lo)
        hi = jnp.where(has_nan, jnp.nan, hi)
    return lo.astype(jnp.float32), hi.astype(jnp.float32)
