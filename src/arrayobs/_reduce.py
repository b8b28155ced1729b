"""The (min, max) of one batch as two 0-d float32 arrays: the one place that
picks a fast path, over one generic implementation that names no backend."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from arrayobs._compat import is_torch

# float64 values at or above this (the midpoint between the float32 maximum and
# 2**128) round to inf in float32. NumPy warns on such a cast; the reference does not.
_F32_OVERFLOW = 2.0**128 - 2.0**103


def _to_float32(v: Any, xp: ModuleType) -> Any:
    """Round a 0-d real array to float32 as a C cast does, without overflow warnings."""
    if v.dtype == xp.float32:
        return v
    if v.dtype != xp.float64:
        return xp.astype(v, xp.float32)
    big = v >= _F32_OVERFLOW
    small = v <= -_F32_OVERFLOW
    safe = xp.astype(xp.where(big | small, xp.zeros_like(v), v), xp.float32)
    inf = xp.full_like(safe, float("inf"))
    return xp.where(big, inf, xp.where(small, -inf, safe))


def aminmax_generic(x: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    """``xp.min`` and ``xp.max`` in the input's dtype, then a cast of the two results."""
    if x.dtype == xp.bool:
        # min/max of bool is outside the standard; 0/1 is what a float32 cast gives.
        x = xp.astype(x, xp.uint8)
    return _to_float32(xp.min(x), xp), _to_float32(xp.max(x), xp)


def aminmax(x: Any, *, xp: ModuleType, fast: bool = True) -> tuple[Any, Any]:
    """(min, max) of a non-empty real array as 0-d float32 arrays of ``xp``.

    Equal to reducing ``astype(x, float32)``, because rounding to float32 is
    monotonic; NaN propagates.
    """
    if fast and is_torch(xp):
        from arrayobs._fastpaths import _torch  # noqa: PLC0415

        return _torch.aminmax(x)
    return aminmax_generic(x, xp=xp)
