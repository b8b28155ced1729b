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

import math
import numbers
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import has_dtype
from arrayobs._core._keys import INT32_MIN
from arrayobs._core._minmax import quiet

FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
}
_TWO63 = 2.0**63


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for any library's float32 dtype (``torch.float32``,
    ``array_api_strict.float32``, ``dtype('float32')``, ...)."""
    text = str(dtype)
    if "'" in text:
        text = text.split("'")[1]
    return text.rsplit(".", 1)[-1]


def require_fake_quantizable(xp: ModuleType, dtype: Any) -> None:
    """TypeError unless ``dtype`` is float16, bfloat16, float32 or float64."""
    if dtype_name(dtype) not in FLOAT_NAMES:
        msg = f"fake quantization takes float16, bfloat16, float32 or float64 arrays, got {dtype}"
        raise TypeError(msg)


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int, got {value!r}"
        raise TypeError(msg)
    return int(value)


def check_range(quant_min: Any, quant_max: Any) -> tuple[int, int]:
    """``(quant_min, quant_max)`` as ints; ValueError unless ``quant_min <= quant_max``
    (torch raises RuntimeError)."""
    qmin, qmax = integer(quant_min, "quant_min"), integer(quant_max, "quant_max")
    if qmin > qmax:
        msg = f"quant_min ({qmin}) should be less than or equal to quant_max ({qmax})"
        raise ValueError(msg)
    return qmin, qmax


def check_zero_point(zero_point: int, quant_min: int, quant_max: int) -> None:
    """ValueError for a Python-number zero point outside the range (torch's
    RuntimeError; torch does not check a tensor zero point, nor does arrayobs
    check an array one: that would read it back from the device)."""
    if not quant_min <= zero_point <= quant_max:
        msg = (
            f"zero_point ({zero_point}) must be between quant_min ({quant_min}) "
            f"and quant_max ({quant_max})"
        )
        raise ValueError(msg)


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
    return xp.astype(xp.astype(q, kind) * xp.astype(scale, kind), out_dtype)


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


# -- arguments, checked as torch checks them (nothing read back from a device) --
def _same_namespace(value: Any, xp: ModuleType, what: str) -> None:
    from arrayobs._compat import backend_name, namespace_of

    try:
        other = namespace_of(value)
    except TypeError:
        msg = f"{what} must be a number or an array, got {type(value).__name__}"
        raise TypeError(msg) from None
    if other is not xp:
        msg = f"{what} is an array of {backend_name(other)}; the input is {backend_name(xp)}"
        raise TypeError(msg)


def _one_element(value: Any, what: str) -> None:
    n = math.prod(value.shape)
    if n != 1:
        msg = f"{what} must have one element, got shape {tuple(value.shape)}"
        raise ValueError(msg)


@quiet  # beyond float32's range: inf, as ATen's float conversion, silently
def float32_value(value: float) -> float:
    """A Python float rounded to float32 (``quiet`` leaves out ``np.errstate``
    while torch.compile traces, which Dynamo cannot trace)."""
    return float(np.float32(value))


def tensor_scale(scale: Any, xp: ModuleType, device: Any) -> Any:
    """A per-tensor scale as a 0-d float32 array: a Python number rounded to
    float32 (ATen's kernels take a float), or a one-element float array."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        return xp.asarray(float32_value(float(scale)), dtype=xp.float32, device=device)
    _same_namespace(scale, xp, "scale")
    _one_element(scale, "scale")
    if not xp.isdtype(scale.dtype, "real floating"):
        msg = f"scale must be a float array, got {scale.dtype}"
        raise TypeError(msg)
    return xp.reshape(xp.astype(scale, xp.float32), ())


def tensor_zero_point(
    zero_point: Any, quant_min: int, quant_max: int, xp: ModuleType, device: Any
) -> Any:
    """A per-tensor zero point as a 0-d int32 array. A Python int must lie in
    ``[quant_min, quant_max]``; an array (one element) is not checked, as torch
    does not check a tensor, and a float one is truncated (torch's ``toInt``)."""
    if isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        zp = int(zero_point)
        check_zero_point(zp, quant_min, quant_max)
        if -(2**31) <= zp < 2**31:
            return xp.asarray(zp, dtype=xp.int32, device=device)
        # torch's kernels take an int64 zero point (converted to float in their arithmetic).
        if not -(2**63) <= zp < 2**63:
            msg = f"zero_point ({zp}) does not fit int64 (torch cannot convert it either)"
            raise ValueError(msg)
        if not has_dtype(xp, device, "int64"):
            msg = (
                f"zero_point ({zp}) needs int64, which this backend lacks here "
                "(JAX: enable jax_enable_x64)"
            )
            raise ValueError(msg)
        return xp.asarray(zp, dtype=xp.int64, device=device)
    if isinstance(zero_point, numbers.Number):
        msg = f"zero_point must be an int or an array, got {zero_point!r}"
        raise TypeError(msg)
    _same_namespace(zero_point, xp, "zero_point")
    _one_element(zero_point, "zero_point")
    if not xp.isdtype(zero_point.dtype, ("integral", "real floating")):
        msg = f"zero_point must be an integer or float array, got {zero_point.dtype}"
        raise TypeError(msg)
    return xp.reshape(xp.astype(zero_point, xp.int32), ())


def channel_axis_checked(axis: Any, ndim: int) -> int:
    """``axis`` as torch's fake-quantize per channel takes it: 0 <= axis < ndim."""
    value = integer(axis, "axis")
    if not 0 <= value < ndim:
        msg = f"axis ({value}) must be in [0, {ndim}): torch takes no negative axis here"
        raise ValueError(msg)
    return value


def channel_qparams(
    x: Any, scale: Any, zero_point: Any, axis: int, xp: ModuleType
) -> tuple[Any, Any]:
    """Per-channel qparams checked as ``torch.fake_quantize_per_channel_affine``
    checks them: a 1-d float32 scale, a 1-d int32, float32 or float16 zero point
    of the same length, as long as the input's ``axis``."""
    _same_namespace(scale, xp, "scale")
    _same_namespace(zero_point, xp, "zero_point")
    if scale.dtype != xp.float32:
        msg = f"scale must be float32, found {scale.dtype} (torch refuses it too)"
        raise TypeError(msg)
    if dtype_name(zero_point.dtype) not in ("int32", "float32", "float16"):
        msg = f"zero_point must be int32, float32 or float16, found {zero_point.dtype} (as torch)"
        raise TypeError(msg)
    if scale.ndim != 1 or zero_point.ndim != 1:
        msg = "scale and zero_point must be 1-d arrays"
        raise ValueError(msg)
    if scale.shape != zero_point.shape or scale.shape[0] != x.shape[axis]:
        msg = (
            f"scale {tuple(scale.shape)} and zero_point {tuple(zero_point.shape)} must both have "
            f"the input's length along axis {axis} ({x.shape[axis]})"
        )
        raise ValueError(msg)
    if x.shape[axis] == 0:
        # torch's range check of the zero points reduces them: an empty one raises.
        msg = f"the input has no channels along axis {axis} (torch raises for zero channels)"
        raise ValueError(msg)
    return scale, zero_point


def check_channel_zero_points(
    zero_point: Any, quant_min: int, quant_max: int, xp: ModuleType
) -> None:
    """ValueError if an integer per-channel zero point lies outside ``[quant_min,
    quant_max]``, as torch checks it (for host arrays only: elsewhere the check
    would read the zero points back from the device)."""
    if xp.isdtype(zero_point.dtype, "real floating"):
        return  # torch checks only integer zero points
    lo, hi = int(xp.min(zero_point)), int(xp.max(zero_point))
    if lo < quant_min or hi > quant_max:
        msg = (
            f"zero_point must be between quant_min ({quant_min}) and quant_max ({quant_max}), "
            f"got values in [{lo}, {hi}]"
        )
        raise ValueError(msg)


def int_dtype(dtype: Any, xp: ModuleType) -> tuple[str, Any]:
    """The ``(name, backend dtype)`` of uint8, int8, int16 or int32, from a name
    or any library's dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in INT_DTYPES:
        msg = f"dtype must be one of {tuple(INT_DTYPES)}, got {dtype!r}"
        raise ValueError(msg)
    return name, getattr(xp, name)


def check_bounds(quant_min: int, quant_max: int, name: str) -> None:
    """torch's ``_quant_min_max_bounds_check``: the range within the dtype's."""
    lo, hi = INT_DTYPES[name]
    if quant_min < lo:
        msg = (
            f"quant_min out of bounds for dtype, quant_min_lower_bound: {lo} quant_min: {quant_min}"
        )
        raise ValueError(msg)
    if quant_max > hi:
        msg = (
            f"quant_max out of bounds for dtype, quant_max_upper_bound: {hi} quant_max: {quant_max}"
        )
        raise ValueError(msg)


def float_dtype(dtype: Any, xp: ModuleType) -> Any:
    """An output float dtype from a name or a backend dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in FLOAT_NAMES or not hasattr(xp, name):
        msg = f"out_dtype must be a float dtype this backend has, got {dtype!r}"
        raise TypeError(msg)
    return getattr(xp, name)
