"""The (min, max) of one batch as two 0-d float32 arrays: the one place that
picks a fast path, over one generic implementation that names no backend."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from arrayobs._compat import is_cupy, is_jax, is_numpy, is_torch


def _to_float32(v: Any, xp: ModuleType) -> Any:
    return v if v.dtype == xp.float32 else xp.astype(v, xp.float32)


def aminmax_generic(x: Any, *, xp: ModuleType) -> tuple[Any, Any]:
    """``xp.min`` and ``xp.max`` in the input's dtype, then a cast of the two results."""
    if x.dtype == xp.bool:
        # min/max of bool is outside the standard; 0/1 is what a float32 cast gives.
        x = xp.astype(x, xp.uint8)
    return _to_float32(xp.min(x), xp), _to_float32(xp.max(x), xp)


def aminmax(x: Any, *, xp: ModuleType, fast: bool = True) -> tuple[Any, Any]:
    """(min, max) of a non-empty real array as 0-d float32 arrays of ``xp``.

    Equal to reducing ``astype(x, float32)``, because rounding to float32 is
    monotonic; NaN propagates. ``fast=False`` takes the generic path (on JAX,
    the generic path with its NaN correction), for comparison.
    """
    if is_jax(xp):
        from arrayobs._fastpaths import _jax

        return _jax.aminmax(x) if fast else _jax.aminmax_checked(x)
    if not fast:
        return aminmax_generic(x, xp=xp)
    if is_numpy(xp):
        from arrayobs._fastpaths import _numpy

        return _numpy.aminmax(x)
    if is_torch(xp):
        from arrayobs._fastpaths import _torch

        return _torch.aminmax(x)
    if is_cupy(xp):
        from arrayobs._fastpaths import _cupy

        if _cupy.supported(x):
            return _cupy.aminmax(x)  # type: ignore[no-any-return]
    return aminmax_generic(x, xp=xp)
