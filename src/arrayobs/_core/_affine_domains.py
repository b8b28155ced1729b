"""torchao 0.18.0's zero point domains other than INT, generically.

``ZeroPointDomain.FLOAT`` is tinygemm's layout: the zero point is the float
value of the middle of the integer range, ``min + scale * mid`` with ``mid =
(quant_max + quant_min + 1) / 2``, and zero need not be representable
(``_choose_qparams_affine_tinygemm``, ``_quantize_affine_tinygemm``,
``_dequantize_affine_tinygemm``). ``ZeroPointDomain.NONE`` has no zero point
(``_quantize_affine_no_zero_point``; its dequantize is
:func:`~arrayobs._core._affine.dequantize` without one). ``fake_quantize``
chains a domain's quantize (kept in float) and dequantize, as torchao's
``_do_fake_quantize_affine``.

Every operation is rounded to the dtype torch gives it, float16/bfloat16 in
float32 op math, as in :mod:`arrayobs._core._affine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._core._affine import Target, ZeroPointDomain, dequantize, quantize
from arrayobs._core._arith import Arith, cast, promote
from arrayobs._core._blocks import block_minmax, blocks, reduced_shape, reduction_params
from arrayobs._core._dtypes import FLOAT_NAMES, SMALLEST_NORMAL, dtype_name, float_name
from arrayobs._core._minmax import first_max, quiet
from arrayobs._core._qparams import _divisor

__all__ = ["choose_tinygemm", "dequantize_tinygemm", "fake_quantize", "quantize_tinygemm"]


def _mid(tgt: Target) -> float:
    return float((tgt.quant_max + tgt.quant_min + 1) / 2)


def _scaled(a: Arith, v: Any, c: float) -> Any:
    """``tensor * python_float``: ATen takes the scalar in op math (float32 for
    float16, bfloat16 and float32; double for float64)."""
    return a.round(v * (c if a.name == "float64" else float(np.float32(c))))


def _over(num: Any, den: Any, xp: ModuleType) -> Any:
    """``num / den`` with ``den`` broadcast from its blocks, a division on every
    backend: XLA rewrites a division by a broadcast operand as a multiplication by
    its reciprocal, a select on the data keeps it a division."""
    return num / xp.where(xp.isnan(num), num, den)


@quiet
def choose_tinygemm(
    x: Any,
    block_size: Sequence[int],
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    *,
    xp: ModuleType,
    nan_safe: bool = False,
) -> tuple[Any, Any]:
    """torchao's ``_choose_qparams_affine_tinygemm`` (ASYMMETRIC only, checked by
    the caller): ``scale = max((max - min) / (qmax - qmin), eps)`` and ``zero_point
    = min + scale * mid`` per block, both in ``x``'s dtype, then cast to
    ``scale_dtype`` and ``zero_point_dtype`` (each default ``x``'s dtype)."""
    mn, mx = block_minmax(x, block_size, False, xp=xp, nan_safe=nan_safe)
    a = Arith(float_name(mn.dtype, "input"), xp)
    eps = SMALLEST_NORMAL[a.name] if eps is None else float(eps)
    lo, hi = a.load(mn), a.load(mx)
    span = a.round(hi - lo)
    scale = a.round(span / _divisor(float(tgt.quant_max - tgt.quant_min), lo, xp))
    scale = first_max(scale, a.full(scale, eps), xp)
    zp = a.round(lo + _scaled(a, scale, _mid(tgt)))
    return (
        cast(a.store(scale), scale_dtype or a.name, xp),
        cast(a.store(zp), zero_point_dtype or a.name, xp),
    )


@quiet
def quantize_tinygemm(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    tgt: Target,
    *,
    xp: ModuleType,
    storage: bool = True,
) -> Any:
    """torchao's ``_quantize_affine_tinygemm``: ``clamp(round((x - (zero_point -
    scale * mid)) / scale))``, each step in the dtype torch promotes its operands
    to, cast to the target's storage dtype (``storage=False``: kept in float)."""
    view, axes = reduction_params(block_size, x.shape)
    per_block = reduced_shape(view, axes)
    s = Arith(float_name(scale.dtype, "scale"), xp)
    sv = s.load(blocks(scale, per_block, "scale", xp))
    step = _scaled(s, sv, _mid(tgt))
    zname = dtype_name(zero_point.dtype)
    zp = blocks(zero_point, per_block, "zero_point", xp)
    if zname in FLOAT_NAMES:
        m = Arith(promote(zname, s.name), xp)
        zp = m.load(zp)
    else:
        # An integer operand is converted to the float dtype first (TensorIterator).
        m = s
        zp = m.round(m.load(zp))
    low = m.round(zp - step)
    p = Arith(promote(dtype_name(x.dtype), m.name), xp)
    d = p.round(p.load(xp.reshape(x, view)) - p.load(low))
    q = xp.round(p.round(_over(d, p.load(sv), xp)))
    lo, hi = p.full(q, tgt.quant_min), p.full(q, tgt.quant_max)
    q = xp.where(xp.isnan(q), q, xp.clip(q, lo, hi))
    q = xp.reshape(p.store(q), tuple(x.shape))
    return cast(q, tgt.storage, xp) if storage else q


def _in_place(o: Arith, d: Any, other: Any, add: bool, xp: ModuleType) -> Any:
    """``d *= other`` or ``d += other`` on an ``o``-dtype tensor: computed in the
    promoted dtype, stored back in ``o``'s."""
    name = dtype_name(other.dtype)
    if name in FLOAT_NAMES:
        p = Arith(promote(o.name, name), xp)
        v = p.load(other)
    else:
        p = o
        v = o.round(o.load(other))
    out = p.round(p.load(d) + v if add else p.load(d) * v)
    return o.load(o.store(p.store(out)))


@quiet
def dequantize_tinygemm(
    q: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    tgt: Target,
    output_dtype: str,
    *,
    xp: ModuleType,
) -> Any:
    """torchao's ``_dequantize_affine_tinygemm``: ``(q - mid)`` (float32 for an
    integer ``q``), cast to ``output_dtype``, then ``*= scale`` and ``+=
    zero_point`` in place (each computed in the promoted dtype, stored back)."""
    view, axes = reduction_params(block_size, q.shape)
    per_block = reduced_shape(view, axes)
    qname = dtype_name(q.dtype)
    w = Arith(qname if qname in FLOAT_NAMES else "float32", xp)
    mid = _mid(tgt) if w.name == "float64" else float(np.float32(_mid(tgt)))
    d = w.round(w.load(xp.reshape(q, view)) - mid)
    o = Arith(output_dtype, xp)
    d = o.load(o.store(w.store(d)))
    d = _in_place(o, d, blocks(scale, per_block, "scale", xp), False, xp)
    if zero_point is not None:
        d = _in_place(o, d, blocks(zero_point, per_block, "zero_point", xp), True, xp)
    return xp.reshape(o.store(d), tuple(q.shape))


def fake_quantize(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    tgt: Target,
    domain: ZeroPointDomain,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """torchao's ``_do_fake_quantize_affine``: the domain's quantize kept in
    float, then its dequantize to ``x``'s dtype; ``(q, dq)``."""
    out = dtype_name(x.dtype)
    if domain is ZeroPointDomain.FLOAT:
        q = quantize_tinygemm(x, block_size, scale, zero_point, tgt, xp=xp, storage=False)
        return q, dequantize_tinygemm(q, block_size, scale, zero_point, tgt, out, xp=xp)
    q = quantize(x, block_size, scale, zero_point, tgt, xp=xp, storage=False)
    return q, dequantize(q, block_size, scale, zero_point, out, xp=xp)
