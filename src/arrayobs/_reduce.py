"""The (min, max) of one batch as float32 arrays: the one place that picks a
fast path, over one generic implementation that names no backend.

Per tensor the pair is 0-d; per channel (``ch_axis``) it has shape (C,), each
channel reduced over every other axis.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from arrayobs._compat import is_cupy, is_dask, is_jax, is_numpy, is_torch


def _to_float32(v: Any, xp: ModuleType) -> Any:
    return v if v.dtype == xp.float32 else xp.astype(v, xp.float32)


def channel_axis(ch_axis: int, ndim: int) -> int:
    """``ch_axis`` as a non-negative axis of an array of rank ``ndim`` (negative as torch)."""
    if not -ndim <= ch_axis < ndim:
        msg = f"ch_axis {ch_axis} is out of range for an input of rank {ndim}"
        raise ValueError(msg)
    return ch_axis % ndim


def other_axes(ndim: int, ch_axis: int | None) -> tuple[int, ...]:
    """The axes a reduction runs over: all but ``ch_axis`` (all of them for None)."""
    return tuple(i for i in range(ndim) if i != ch_axis)


def aminmax_generic(x: Any, *, xp: ModuleType, ch_axis: int | None = None) -> tuple[Any, Any]:
    """``xp.min`` and ``xp.max`` in the input's dtype, then a cast of the two results."""
    if x.dtype == xp.bool:
        # min/max of bool is outside the standard; 0/1 is what a float32 cast gives.
        x = xp.astype(x, xp.uint8)
    if ch_axis is None:
        return _to_float32(xp.min(x), xp), _to_float32(xp.max(x), xp)
    if x.ndim == 1:
        # One element per channel: the values themselves (copies, never the input).
        return xp.astype(x, xp.float32, copy=True), xp.astype(x, xp.float32, copy=True)
    axes = other_axes(x.ndim, ch_axis)
    return _to_float32(xp.min(x, axis=axes), xp), _to_float32(xp.max(x, axis=axes), xp)


def aminmax(
    x: Any, *, xp: ModuleType, fast: bool = True, ch_axis: int | None = None
) -> tuple[Any, Any]:
    """(min, max) of a non-empty real array as float32 arrays of ``xp``.

    0-d, or of shape (C,) with ``ch_axis`` (a non-negative axis of ``x``).
    Equal to reducing ``astype(x, float32)``, because rounding to float32 is
    monotonic; NaN propagates. ``fast=False`` takes the generic path (on JAX,
    the generic path with its NaN correction), for comparison.
    """
    if is_jax(xp):
        from arrayobs._fastpaths import _jax

        return _jax.aminmax(x, ch_axis) if fast else _jax.aminmax_checked(x, ch_axis)
    if not fast:
        return aminmax_generic(x, xp=xp, ch_axis=ch_axis)
    if is_numpy(xp):
        from arrayobs._fastpaths import _numpy

        return _numpy.aminmax(x) if ch_axis is None else _numpy.aminmax_axis(x, ch_axis)
    if is_torch(xp):
        from arrayobs._fastpaths import _torch

        return _torch.aminmax(x) if ch_axis is None else _torch.aminmax_axis(x, ch_axis)
    if is_cupy(xp):
        from arrayobs._fastpaths import _cupy

        if ch_axis is None and _cupy.supported(x):
            return _cupy.aminmax(x)  # type: ignore[no-any-return]
    if is_dask(xp) and ch_axis is not None:
        from arrayobs._fastpaths import _dask

        if _dask.numpy_chunks(x):
            return _dask.aminmax_axis(x, ch_axis)
    return aminmax_generic(x, xp=xp, ch_axis=ch_axis)
