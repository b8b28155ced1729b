"""Quantize, dequantize and fake-quantize: torch 2.13.0's arithmetic, generically.

Two dialects, each reproduced where torch uses it:

* **ATen's fake-quantize kernels** (``torch.fake_quantize_per_tensor_affine``,
  ``..._per_channel_affine``, FakeQuantize): ``inv = 1.0f / scale`` in float32,
  ``rint(x * inv) + zero_point``, clamp, ``(q - zero_point) * scale``.
  float16 and bfloat16 inputs are computed in float32 and rounded back; a
  float64 input is multiplied by the float32 reciprocal in float64, and the
  dequantized value is a float32 product. Per tensor the clamp is in floating
  point (NaN becomes ``quant_min``, an infinity a bound); per channel the
  rounded value is first converted to int64 as on x86 (NaN, infinities and
  magnitudes beyond 2**63 become ``-2**63``, hence ``quant_min``).
* **The pt2e ``quantized_decomposed`` ops** (``quantize_per_tensor`` & co.):
  the reciprocal is a Python double (``1.0 / scale``) rounded to float32 by the
  multiplication, then ``round``, ``+ zero_point``, ``clamp`` and a cast to the
  integer dtype that follows x86's float-to-int32 conversion (NaN and
  out-of-range values become ``-2**31``; narrower types keep its low bits).

Nothing here reads a value back to the host, so the functions run under
``jax.jit``, ``torch.compile`` and lazily on Dask.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import has_dtype
from arrayobs._core._dtypes import dtype_name as dtype_name  # noqa: PLC0414 (re-exported)
from arrayobs._core._keys import INT32_MIN
from arrayobs._core._minmax import quiet

_TWO63 = 2.0**63


def wide_float(xp: ModuleType, device: Any) -> Any:
    """float64, or float32 where the backend has none (JAX without x64)."""
    return xp.float64 if has_dtype(xp, device, "float64") else xp.float32


def along(v: Any, axis: int, ndim: int, xp: ModuleType) -> Any:
    """A per-channel vector shaped to broadcast along ``axis`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[axis] = v.shape[0]
    return xp.reshape(v, tuple(shape))


def _compute_input(x: Any, xp: ModuleType) -> Any:
    """float32 for float16/bfloat16 inputs, as ATen's kernels upcast them."""
    return x if x.dtype in (xp.float32, xp.float64) else xp.astype(x, xp.float32)


@quiet
def fake_quantize(
    x: Any,
    scale: Any,
    zero_point: Any,
    quant_min: int,
    quant_max: int,
    axis: int | None,
    *,
    xp: ModuleType,
    device: Any = None,
) -> tuple[Any, Any]:
    """ATen's CPU fake quantization of float ``x``: ``(output, mask)``.

    ``scale`` is a float32 array and ``zero_point`` an integer array (per
    channel also float32 or float16): 0-d per tensor (``axis`` None), else of
    shape (C,) for ``axis``. ``mask`` is torch's straight-through gradient
    mask: True where the rounded value lies within ``[quant_min, quant_max]``.
    The clamp and the integer arithmetic after it are exact where the backend
    has float64 (else float32: exact below 2**24).
    """
    xc = _compute_input(x, xp)
    c = xc.dtype
    w = wide_float(xp, device)
    if axis is not None:
        scale = along(scale, axis, x.ndim, xp)
        zero_point = along(zero_point, axis, x.ndim, xp)
    scale = xp.astype(scale, xp.float32)
    inv = 1.0 / scale
    lo_w = xp.asarray(quant_min, dtype=w, device=device)
    hi_w = xp.asarray(quant_max, dtype=w, device=device)
    if axis is not None and xp.isdtype(zero_point.dtype, "real floating"):
        # lrintf(zp + x * inv): rounded after the add, the sum taken as float32;
        # AVX2/AVX-512 builds fuse a float32 zero point's add into an FMA.
        if dtype_name(zero_point.dtype) == "float32" and w == xp.float64:
            total = xp.astype(
                xp.astype(xc, w) * xp.astype(inv, w) + xp.astype(zero_point, w), xp.float32
            )
        else:
            total = xp.astype(xp.astype(zero_point, c) + xc * xp.astype(inv, c), xp.float32)
        qv = xp.astype(xp.round(total), w)
        # lrintf returns an integer: no negative zero.
        qv = xp.where(qv == 0, xp.zeros_like(qv), qv)
        ok = (qv >= -_TWO63) & (qv < _TWO63)
        mask = ok & (qv >= lo_w) & (qv <= hi_w)
        q = xp.where(ok, xp.clip(qv, lo_w, hi_w), lo_w)
        out = (q - xp.astype(zero_point, w)) * xp.astype(scale, w)
        return _from_double(out, x.dtype, xp), mask
    # zero_point + nearbyint(x * inv), the add in the input's compute type.
    r = xp.round(xc * xp.astype(inv, c)) + xp.astype(zero_point, c)
    zw = xp.astype(zero_point, w)
    if axis is None:
        # Clamped in double before the cast (NaN -> quant_min, +-inf -> a
        # bound); the mask compares in the compute type.
        lo_c = xp.asarray(quant_min, dtype=c, device=device)
        hi_c = xp.asarray(quant_max, dtype=c, device=device)
        mask = (r >= lo_c) & (r <= hi_c)
        rw = xp.astype(r, w)
        q = xp.where(xp.isnan(rw), lo_w, xp.clip(rw, lo_w, hi_w))
        out = xp.astype(q - zw, xp.float32) * scale
        return xp.astype(out, x.dtype), mask
    # Cast to int64 first (x86: NaN, +-inf and beyond 2**63 -> -2**63), then
    # clamped; the product is taken in double.
    rw = xp.astype(r, w)
    ok = (rw >= -_TWO63) & (rw < _TWO63)
    mask = ok & (rw >= lo_w) & (rw <= hi_w)
    q = xp.where(ok, xp.clip(rw, lo_w, hi_w), lo_w)
    out = (q - zw) * xp.astype(scale, w)
    return _from_double(out, x.dtype, xp), mask


def _from_double(out: Any, dtype: Any, xp: ModuleType) -> Any:
    """A double result in the input's dtype as ATen converts it: float64 kept,
    anything narrower through float32."""
    if dtype == xp.float64:
        return out
    return xp.astype(xp.astype(out, xp.float32), dtype)


def _to_int(v: Any, name: str, xp: ModuleType) -> Any:
    """x86's float-to-integer cast of integral float values: through int32,
    NaN and out-of-range values becoming ``-2**31``, narrower types keeping the
    low bits (torch's ``.to(torch.int8)`` on the CPU)."""
    ok = (v >= -(2.0**31)) & (v < 2.0**31)
    as32 = xp.astype(xp.where(ok, v, xp.zeros_like(v)), xp.int32)
    as32 = xp.where(ok, as32, xp.full_like(as32, INT32_MIN))
    if name == "int32":
        return as32
    bits = {"int8": 8, "uint8": 8, "int16": 16}[name]
    low = as32 & ((1 << bits) - 1)
    if name == "uint8":
        return xp.astype(low, xp.uint8)
    signed = xp.where(low >= (1 << (bits - 1)), low - (1 << bits), low)
    return xp.astype(signed, getattr(xp, name))


def decomposed_inverse(scale: Any, xp: ModuleType, device: Any) -> Any:
    """``1.0 / scale`` as a Python double rounded to float32 (torch's
    ``input * inv_scale`` with a Python-float ``inv_scale``), for a float
    array ``scale`` (float32 reciprocal where the backend has no float64)."""
    w = wide_float(xp, device)
    return xp.astype(1.0 / xp.astype(scale, w), xp.float32)


@quiet
def quantize(
    x: Any,
    inv: Any,
    zero_point: Any,
    quant_min: int,
    quant_max: int,
    dtype: str,
    axis: int | None,
    *,
    xp: ModuleType,
    device: Any = None,
) -> Any:
    """The ``quantized_decomposed`` quantize: ``x`` float32 (float16 and bfloat16
    upcast), ``inv`` the reciprocal of the scale (float32 per tensor; per channel
    ``1.0 / scales`` in the scales' dtype), ``zero_point`` an integer array."""
    x = _compute_input(x, xp)
    if axis is not None:
        inv = along(inv, axis, x.ndim, xp)
        zero_point = along(zero_point, axis, x.ndim, xp)
    prod = x * inv
    r = xp.round(prod) + xp.astype(zero_point, prod.dtype)
    lo = xp.asarray(quant_min, dtype=r.dtype, device=device)
    hi = xp.asarray(quant_max, dtype=r.dtype, device=device)
    # torch.clamp propagates NaN; the cast then makes it -2**31.
    q = xp.where(xp.isnan(r), r, xp.clip(r, lo, hi))
    return _to_int(q, dtype, xp)


@quiet
def dequantize(
    q: Any,
    scale: Any,
    zero_point: Any,
    out_dtype: Any,
    axis: int | None,
    *,
    xp: ModuleType,
) -> Any:
    """The ``quantized_decomposed`` dequantize. Per tensor ``(q.to(out_dtype) -
    zero_point) * scale`` with ``scale`` in ``out_dtype``; per channel ``(q -
    zero_point) * scales`` with torch's promotion at each step (an integer
    difference takes the scales' dtype, a float one promotes against them),
    then ``out_dtype``. ``zero_point`` may be None per channel."""
    if axis is None:
        # torch's op math: float32 (float64 for a float64 output), each step
        # rounded to the output dtype.
        compute = xp.float64 if out_dtype == getattr(xp, "float64", None) else xp.float32
        d = xp.astype(xp.astype(q, out_dtype), compute)
        if zero_point is not None:
            # The integer zero point is a scalar of the output's dtype (rounded to
            # float16/bfloat16 there); the scale stays float32 (op math).
            d = d - xp.astype(xp.astype(zero_point, out_dtype), compute)
        if out_dtype != compute:
            d = xp.astype(xp.astype(d, out_dtype), compute)
        return xp.astype(d * xp.astype(scale, compute), out_dtype)
    scale = along(scale, axis, q.ndim, xp)
    if zero_point is not None:
        zero_point = along(zero_point, axis, q.ndim, xp)
        q = _int_difference(q, zero_point, xp)
    # torch's promotion: an integer difference takes the scales' dtype; a float one
    # (a float zero point) the wider of the two, float16 with bfloat16 float32. The
    # operands are cast to it first, then one correctly rounded product.
    kind = scale.dtype if xp.isdtype(q.dtype, "integral") else _promoted(q.dtype, scale.dtype, xp)
    d = xp.astype(q, kind) * xp.astype(scale, kind)
    if kind == getattr(xp, "float64", None) and dtype_name(out_dtype) in ("float16", "bfloat16"):
        # ATen converts a double to Half/BFloat16 through float (two roundings), where
        # NumPy and XLA round once.
        d = xp.astype(d, xp.float32)
    return xp.astype(d, out_dtype)


def _promoted(a: Any, b: Any, xp: ModuleType) -> Any:
    names = {dtype_name(a), dtype_name(b)}
    if len(names) == 1:
        return a
    return xp.float64 if "float64" in names else xp.float32


def _int_difference(q: Any, zero_point: Any, xp: ModuleType) -> Any:
    """``q - zero_point`` with torch's promotion (a float zero point makes it float)."""
    if xp.isdtype(zero_point.dtype, "real floating"):
        return xp.astype(q, zero_point.dtype) - zero_point
    kind = xp.result_type(q.dtype, zero_point.dtype)
    return xp.astype(q, kind) - xp.astype(zero_point, kind)


@quiet  # beyond float32's range: inf, as ATen's float conversion, silently
def float32_value(value: float) -> float:
    """A Python float rounded to float32 (``quiet`` leaves out ``np.errstate``
    while torch.compile traces, which Dynamo cannot trace)."""
    return float(np.float32(value))
