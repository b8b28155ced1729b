"""torchao 0.18.0's affine quantization primitives, generically.

``choose_qparams_affine``, ``quantize_affine``, ``dequantize_affine`` and the
float8 scale choices of ``torchao.quantization.quant_primitives``, with
torch's arithmetic: every float16/bfloat16 operation computed in float32 and
rounded back (ATen's op math), a Python scalar rounded to float32 where ATen
takes it as op math, and to the tensor's dtype where ATen converts it
(``clamp``'s bounds, ``full_like``), torch's type promotion between the input's
and the scale's dtypes, and x86's float-to-integer cast.

Nothing reads a value back: the functions run under ``jax.jit`` and lazily on
Dask. Block sizes, dtypes and ranges are Python values, checked at the boundary
(:mod:`arrayobs._arguments`); the granularities and blocks are in
:mod:`~arrayobs._core._blocks`, the float8 casts in :mod:`~arrayobs._core._float8`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._core._arith import Arith, cast, promote
from arrayobs._core._blocks import (
    Granularity,
    PerAxis,
    PerBlock,
    PerGroup,
    PerRow,
    PerTensor,
    PerToken,
    block_minmax,
    blocks,
    get_block_size,
    granularity,
    reduced_shape,
    reduction_params,
)
from arrayobs._core._dtypes import (
    FLOAT8_MAX,
    FLOAT_NAMES,
    INT_BOUNDS,
    SMALLEST_NORMAL,
    backend_dtype,
    dtype_name,
    float_name,
    name_of,
)
from arrayobs._core._float8 import (
    choose_scale_float8,
    dequantize_float8,
    exp2_integer,
    quantize_float8,
)
from arrayobs._core._minmax import first_max, first_min, quiet
from arrayobs._core._qparams import _divisor

__all__ = [
    "FLOAT8_MAX",
    "FLOAT_NAMES",
    "INT_BOUNDS",
    "Arith",
    "Granularity",
    "MappingType",
    "PerAxis",
    "PerBlock",
    "PerGroup",
    "PerRow",
    "PerTensor",
    "PerToken",
    "Target",
    "ZeroPointDomain",
    "backend_dtype",
    "block_minmax",
    "blocks",
    "cast",
    "choose_from_minmax",
    "choose_qparams",
    "choose_scale_float8",
    "dequantize",
    "dequantize_float8",
    "dtype_name",
    "exp2_integer",
    "finish",
    "float_name",
    "get_block_size",
    "granularity",
    "name_of",
    "promote",
    "qparams_from_minmax",
    "quantize",
    "quantize_float8",
    "reduced_shape",
    "reduction_params",
]


class MappingType(enum.Enum):
    """How the float range maps to the integer range (torchao's enum)."""

    SYMMETRIC = enum.auto()
    SYMMETRIC_NO_CLIPPING_ERR = enum.auto()
    ASYMMETRIC = enum.auto()


class ZeroPointDomain(enum.Enum):
    """Where the zero point lives (torchao's enum): INT (added to the rounded values),
    FLOAT (tinygemm: the float value of the middle of the range), NONE (no zero point)."""

    INT = enum.auto()
    FLOAT = enum.auto()
    NONE = enum.auto()


@dataclasses.dataclass(frozen=True)
class Target:
    """A quantized dtype: its name, the dtype that holds it, its range."""

    name: str
    storage: str
    quant_min: Any
    quant_max: Any


# -- choose, quantize, dequantize ----------------------------------------------------
@quiet
def qparams_from_minmax(
    mn: Any,
    mx: Any,
    mapping: MappingType,
    tgt: Target,
    eps: float | None,
    *,
    xp: ModuleType,
) -> tuple[Any, Any, str]:
    """Scale and zero point of (min, max) arrays of one float dtype, before the
    casts to scale_dtype and zero_point_dtype: both in that dtype (its name is
    returned third), computed as torchao's ``_choose_qparams_affine``."""
    a = Arith(float_name(mn.dtype, "min_val"), xp)
    eps = SMALLEST_NORMAL[a.name] if eps is None else float(eps)
    mn, mx = a.load(mn), a.load(mx)
    zero = xp.zeros_like(mn)
    min_neg = first_min(mn, zero, xp)
    max_pos = first_max(mx, zero, xp)
    qmin, qmax = tgt.quant_min, tgt.quant_max
    if mapping is MappingType.ASYMMETRIC and a.name == "float16" and max(-qmin, qmax) > 65504:
        # torchao's ``quant_min - round(...)`` and clamp take the bounds as float16
        # scalars and refuse them ("value cannot be converted to type c10::Half").
        msg = (
            f"an ASYMMETRIC range ({qmin}, {qmax}) does not fit float16, the dtype of the "
            "min and max (torchao refuses it too)"
        )
        raise ValueError(msg)
    if mapping is MappingType.ASYMMETRIC:
        span = a.round(max_pos - min_neg)
        scale = a.round(span / _divisor(float(qmax - qmin), mn, xp))
        scale = first_max(scale, a.full(scale, eps), xp)
        r = xp.round(a.round(min_neg / scale))
        zp = a.round(a.full(r, qmin) - r)
        lo, hi = a.full(zp, qmin), a.full(zp, qmax)
        zp = xp.where(xp.isnan(zp), zp, xp.clip(zp, lo, hi))
    else:
        if mapping is MappingType.SYMMETRIC:
            max_pos = first_max(-min_neg, max_pos, xp)
            scale = a.round(max_pos / _divisor(float(qmax - qmin) / 2, mn, xp))
        else:
            smin = a.round(min_neg / _divisor(float(qmin), mn, xp))
            # The divisor's NaN follows its own operand: a NaN min must not make smax
            # NaN (torchao's where(smin > smax, smin, smax) then picks smax).
            smax = a.round(max_pos / _divisor(float(qmax), mx, xp))
            scale = xp.where(smin > smax, smin, smax)
        zp = a.full(scale, int((qmax + qmin + 1) / 2))
        scale = first_max(scale, a.full(scale, eps), xp)
    return a.store(scale), a.store(zp), a.name


def choose_qparams(
    x: Any,
    mapping: MappingType,
    block_size: Sequence[int],
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    keepdim: bool,
    *,
    xp: ModuleType,
    nan_safe: bool = False,
) -> tuple[Any, Any]:
    """torchao's ``choose_qparams_affine`` (arguments checked by the caller)."""
    float_name(x.dtype, "input")
    mn, mx = block_minmax(x, block_size, keepdim, xp=xp, nan_safe=nan_safe)
    return choose_from_minmax(
        mn,
        mx,
        tuple(x.shape),
        mapping,
        block_size,
        tgt,
        eps,
        scale_dtype,
        zero_point_dtype,
        keepdim,
        xp=xp,
    )


def choose_from_minmax(
    mn: Any,
    mx: Any,
    shape: tuple[int, ...],
    mapping: MappingType,
    block_size: Sequence[int],
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    keepdim: bool,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """:func:`choose_qparams` after :func:`block_minmax` (``mn``, ``mx`` in the
    input's dtype, of the shape it returns; ``shape`` the input's)."""
    name = float_name(mn.dtype, "input")
    scale, zp, _ = qparams_from_minmax(mn, mx, mapping, tgt, eps, xp=xp)
    if keepdim:
        out = tuple(n // b for n, b in zip(shape, block_size, strict=True))
        scale, zp = xp.reshape(scale, out), xp.reshape(zp, out)
    return finish(scale, zp, name, mapping, scale_dtype, zero_point_dtype, xp=xp)


@quiet
def finish(
    scale: Any,
    zp: Any,
    name: str,
    mapping: MappingType,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """The casts that end torchao's choose: scale to ``scale_dtype`` (default the
    min's dtype), zero point to ``zero_point_dtype`` (None: int32 for ASYMMETRIC,
    the min's float dtype for the symmetric mappings)."""
    scale = cast(scale, scale_dtype or name, xp)
    if zero_point_dtype is None and mapping is MappingType.ASYMMETRIC:
        zero_point_dtype = "int32"
    if zero_point_dtype is not None:
        zp = cast(zp, zero_point_dtype, xp)
    return scale, zp


@quiet
def moving_average(state: Any, batch: Any, c: float, *, xp: ModuleType) -> tuple[Any, Any]:
    """torchao pt2e's ``AffineQuantizedMovingAverageMinMaxObserver`` step: ``m + c *
    (cur - m)`` per block in the dtype of ``m`` promoted with ``cur``'s (float16 and
    bfloat16 computed in float32 and rounded after every operation, ``c`` taken in
    float32 op math, float64 in double), copied back into the state's dtype."""
    (m_lo, m_hi), (b_lo, b_hi) = state, batch
    keep = m_lo.dtype
    a = Arith(promote(dtype_name(keep), dtype_name(b_lo.dtype)), xp)
    cw = float(c) if a.name == "float64" else float(np.float32(c))

    def move(m: Any, cur: Any) -> Any:
        m, cur = a.load(m), a.load(cur)
        step = a.round(xp.full_like(m, cw) * a.round(cur - m))
        return xp.astype(a.round(m + step), keep)

    return move(m_lo, b_lo), move(m_hi, b_hi)


def quantize_dtype(x_dtype: Any, scale_dtype: Any, zero_point_dtype: Any) -> str:
    """The float dtype :func:`quantize` clamps in: ``x`` promoted with ``scale``,
    then with a float zero point."""
    name = promote(dtype_name(x_dtype), float_name(scale_dtype, "scale"))
    zname = dtype_name(zero_point_dtype)
    return promote(name, zname) if zname in FLOAT_NAMES else name


@quiet
def quantize(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    tgt: Target,
    *,
    xp: ModuleType,
    storage: bool = True,
) -> Any:
    """torchao's ``quantize_affine``: ``round(x * (1.0 / scale)) + zero_point``,
    clamped, cast to the target's storage dtype. A None ``zero_point`` adds
    nothing (torchao's ``_quantize_affine_no_zero_point``); ``storage=False``
    keeps the clamped values in their float dtype (the ``_no_dtype_cast``
    variants that fake quantization uses)."""
    view, axes = reduction_params(block_size, x.shape)
    per_block = reduced_shape(view, axes)
    sname = float_name(scale.dtype, "scale")
    s = Arith(sname, xp)
    scale = s.load(blocks(scale, per_block, "scale", xp))
    inv = s.round(1.0 / scale)
    p = Arith(promote(dtype_name(x.dtype), sname), xp)
    q = xp.round(p.round(p.load(xp.reshape(x, view)) * inv))
    if zero_point is not None:
        zname = dtype_name(zero_point.dtype)
        zp = blocks(zero_point, per_block, "zero_point", xp)
        if zname in FLOAT_NAMES:
            p = Arith(promote(p.name, zname), xp)
            zp = p.load(zp)
        else:
            # An integer zero point is converted to the float dtype first (TensorIterator).
            zp = p.round(p.load(zp))
        q = p.round(q + zp)
    lo, hi = p.full(q, tgt.quant_min), p.full(q, tgt.quant_max)
    q = xp.where(xp.isnan(q), q, xp.clip(q, lo, hi))
    q = xp.reshape(p.store(q), tuple(x.shape))
    return cast(q, tgt.storage, xp) if storage else q


@quiet
def dequantize(
    q: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: str,
    *,
    xp: ModuleType,
) -> Any:
    """torchao's ``dequantize_affine``: ``(q.to(out) - zero_point.to(out)) * scale``."""
    view, axes = reduction_params(block_size, q.shape)
    per_block = reduced_shape(view, axes)
    o = Arith(output_dtype, xp)
    d = o.load(o.store(xp.reshape(q, view)))
    if zero_point is not None:
        zp = o.load(o.store(blocks(zero_point, per_block, "zero_point", xp)))
        d = o.round(d - zp)
    sname = float_name(scale.dtype, "scale")
    p = Arith(promote(output_dtype, sname), xp)
    out = p.round(d * p.load(blocks(scale, per_block, "scale", xp)))
    return o.store(xp.reshape(out, tuple(q.shape)))
