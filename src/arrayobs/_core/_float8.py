"""torchao 0.18.0's float8 scales and casts: ``_choose_scale_float8``,
``_quantize_affine_float8`` and ``_dequantize_affine_float8``, with an exact
``exp2`` of integers for the power-of-two scales."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from arrayobs._core._arith import Arith, promote
from arrayobs._core._blocks import _with_nan, reduction_params
from arrayobs._core._dtypes import FLOAT8_MAX, backend_dtype, float_name
from arrayobs._core._minmax import quiet
from arrayobs._core._qparams import _divisor


@quiet
def choose_scale_float8(
    x: Any,
    block_size: Sequence[int],
    float8: str,
    power_of_two: bool,
    lower: float | None,
    upper: float | None,
    *,
    xp: ModuleType,
    nan_safe: bool = False,
) -> Any:
    """torchao's ``_choose_scale_float8``: ``amax(|x|) / fp8 max`` per block, in
    the input's dtype, optionally rounded to a power of two; float32, of shape
    ``input shape // block_size``."""
    a = Arith(float_name(x.dtype, "input"), xp)
    view, axes = reduction_params(block_size, x.shape)
    magnitude = xp.abs(xp.reshape(x, view))
    amax = xp.max(magnitude, axis=axes or None, keepdims=True)
    if nan_safe:
        amax = _with_nan(amax, magnitude, axes or None, True, xp)
    amax = a.load(amax)
    if lower is not None or upper is not None:
        clipped = xp.clip(
            amax,
            None if lower is None else a.full(amax, lower),
            None if upper is None else a.full(amax, upper),
        )
        amax = xp.where(xp.isnan(amax), amax, clipped)
    scale = a.round(amax / _divisor(FLOAT8_MAX[float8], amax, xp))
    out = tuple(n // b for n, b in zip(x.shape, block_size, strict=True))
    scale = xp.reshape(scale, out)
    if power_of_two:
        scale = a.round(exp2_integer(xp.round(a.round(xp.log2(scale))), xp))
    return xp.astype(a.store(scale), xp.float32)


def _power(e: Any, like: Any, xp: ModuleType) -> Any:
    """``2.0**e`` for integers ``0 <= e <= 127``, as a product of exact powers of two."""
    p = xp.ones_like(like)
    for bit in range(7):
        p = xp.where((e >> bit) & 1 == 1, p * (2.0 ** (2**bit)), p)
    return p


def exp2_integer(k: Any, xp: ModuleType) -> Any:
    """``exp2(k)`` of integral float32 values, exactly (XLA computes exp2 as
    ``exp(k * ln 2)``, off in the last bits even for integers). The product of
    two exact halves keeps results down to the subnormals exact; +-inf and NaN
    give what exp2 gives."""
    if k.dtype == getattr(xp, "float64", None):
        return xp.exp2(k)  # float64 exists only where exp2 is exact (NumPy, torch, Dask)
    finite = xp.isfinite(k)
    zero = xp.zeros_like(k)
    e = xp.astype(xp.clip(xp.where(finite, k, zero), -300.0, 300.0), xp.int32)
    mag = xp.abs(e)
    half = mag // 2
    p1, p2 = _power(half, k, xp), _power(mag - half, k, xp)
    out = xp.where(e >= 0, p1 * p2, (1.0 / p1) * (1.0 / p2))
    # Beyond 254 the halves overflow: exp2 is inf or 0 there anyway.
    out = xp.where((mag > 254) & (e > 0), xp.full_like(k, math.inf), out)
    out = xp.where((mag > 254) & (e < 0), zero, out)
    return xp.where(finite, out, xp.where(k < 0, zero, k))


def _expand(scale: Any, shape: tuple[int, ...], xp: ModuleType) -> tuple[Any, Any]:
    """torchao's ``_maybe_expand_scale_to_tensor_shape`` as a (view of x, scale)
    pair that broadcast: blockwise scales are viewed per block, not repeated."""
    sshape = tuple(scale.shape)
    if sshape == shape or math.prod(sshape) == 1:
        return None, scale
    if len(sshape) == len(shape) and all(a in (b, 1) for a, b in zip(sshape, shape, strict=True)):
        return None, scale
    if len(sshape) != len(shape):
        msg = f"Scale tensor has {len(sshape)} dimensions but target has {len(shape)}"
        raise ValueError(msg)
    view: list[int] = []
    sview: list[int] = []
    for n, s in zip(shape, sshape, strict=True):
        if s == 0 or n % s:
            msg = f"target size {n} is not evenly divisible by scale size {s}"
            raise ValueError(msg)
        view += [s, n // s]
        sview += [s, 1]
    return tuple(view), xp.reshape(scale, tuple(sview))


@quiet
def quantize_float8(x: Any, scale: Any, float8: str, *, xp: ModuleType) -> Any:
    """torchao's ``_quantize_affine_float8``: ``x.to(float32) / scale``, clamped to
    the float8 range, cast."""
    view, s = _expand(scale, tuple(x.shape), xp)
    xf = xp.astype(x, xp.float32)
    if view is not None:
        xf = xp.reshape(xf, view)
    sname = float_name(s.dtype, "scale")
    p = Arith(promote("float32", sname), xp)
    num = p.load(xf)
    # The divisor as a full array chosen by the data: XLA turns a division by a
    # broadcast into a multiplication by its reciprocal (last-bit differences).
    den = xp.where(xp.isnan(num), num, xp.broadcast_to(p.load(s), num.shape))
    y = p.round(num / den)
    top = FLOAT8_MAX[float8]
    y = xp.where(xp.isnan(y), y, xp.clip(y, p.full(y, -top), p.full(y, top)))
    y = p.store(y)
    if view is not None:
        y = xp.reshape(y, tuple(x.shape))
    return xp.astype(y, backend_dtype(float8, xp))


@quiet
def dequantize_float8(q: Any, scale: Any, output_dtype: str, *, xp: ModuleType) -> Any:
    """torchao's ``_dequantize_affine_float8``: ``q.to(float32) * scale``, cast."""
    view, s = _expand(scale, tuple(q.shape), xp)
    qf = xp.astype(q, xp.float32)
    if view is not None:
        qf = xp.reshape(qf, view)
    sname = float_name(s.dtype, "scale")
    p = Arith(promote("float32", sname), xp)
    y = p.store(p.round(p.load(qf) * p.load(s)))
    if view is not None:
        y = xp.reshape(y, tuple(q.shape))
    return xp.astype(y, backend_dtype(output_dtype, xp))
