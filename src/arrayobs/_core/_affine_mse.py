"""torchao's ``AffineQuantizedMSEObserver`` line search, bit for bit.

For ``i = 1 .. steps`` every block tries the symmetric range ``±(r / steps *
i)`` (``r = max(|min|, max)`` of the block), fake-quantizes the input with the
qparams of that range and keeps the range whose mean squared error is the
smallest so far (the first on a tie). Every step runs in the input's dtype as
ATen runs it (float16 and bfloat16 in float32, rounded after each operation);
the mean is ATen's CPU ``torch.mean``: a float32 :func:`cascade_sum` divided
by the block's size (float16 and bfloat16 cast to float32 first, the mean
rounded back).

ATen's summation order is reproduced only where each block's values are one
contiguous run (the reduced axes of torchao's block view come last), and a
single block only below ATen's ``GRAIN_SIZE`` (32768 values), past which ATen
splits the sum across its threads; anything else is refused
(NotImplementedError) rather than answered with a possibly different number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._core._affine import (
    Target,
    ZeroPointDomain,
    dtype_name,
    finish,
    qparams_from_minmax,
)
from arrayobs._core._affine_domains import fake_quantize
from arrayobs._core._arith import Arith
from arrayobs._core._blocks import block_minmax, reduction_params
from arrayobs._core._minmax import quiet
from arrayobs._core._sum import cascade_sum

# ATen's internal::GRAIN_SIZE: a reduction to one value over this many inputs or
# more is split across threads (two-pass), an order that depends on the thread count.
SERIAL_LIMIT = 32768


def loss_rows(shape: Sequence[int], block_size: Sequence[int]) -> tuple[int, int]:
    """``(K, n)``: the per-block losses as K contiguous rows of n values, in
    ATen's order. NotImplementedError where that order is not reproduced."""
    shape = tuple(int(s) for s in shape)
    view, axes = reduction_params(block_size, shape)
    if not axes:
        msg = (
            f"block_size {tuple(block_size)} puts every element of shape {shape} in a block "
            "of its own: torchao's MSE search reduces over no axis there (its qparams do not "
            "fit the input), so it is refused"
        )
        raise ValueError(msg)
    if 0 in shape:
        msg = f"cannot search an empty input (shape {shape})"
        raise ValueError(msg)
    reduced = [i in axes for i, size in enumerate(view) if size != 1]
    if reduced != sorted(reduced):
        msg = (
            f"the MSE loss over blocks {tuple(block_size)} of shape {shape} reduces axes "
            f"{axes} of the view {view}, not a trailing contiguous run: ATen's summation "
            "order there is not reproduced (exact: PerTensor, PerRow(-1), PerToken, "
            "PerGroup, PerAxis(0) on 2-D and blocks that span whole trailing axes)"
        )
        raise NotImplementedError(msg)
    n = math.prod(view[i] for i in axes)
    k = math.prod(shape) // n
    if k == 1 and n >= SERIAL_LIMIT:
        msg = (
            f"a single MSE block of {n} values (shape {shape}): ATen splits a sum of "
            f"{SERIAL_LIMIT} or more values across its threads, an order not reproduced"
        )
        raise NotImplementedError(msg)
    return k, n


def _over(num: Any, c: float, xp: ModuleType) -> Any:
    """``num / c`` kept a division on every backend (XLA turns a division by a
    broadcast constant into a multiplication by its reciprocal)."""
    return num / xp.where(xp.isnan(num), num, xp.full_like(num, c))


def _mean(loss: Any, k: int, n: int, per_block: tuple[int, ...], xp: ModuleType) -> Any:
    """ATen's CPU ``torch.mean`` of each block's losses (the rows of (k, n))."""
    a = Arith(dtype_name(loss.dtype), xp)
    rows = xp.reshape(a.load(loss), (k, n))
    mean = _over(cascade_sum(rows, xp=xp), float(n), xp)
    return xp.reshape(a.store(mean), per_block)


def _squared_error(pred: Any, expect: Any, a: Arith, xp: ModuleType) -> Any:
    """``(pred - expect).abs().pow(2)`` in their dtype, rounded as ATen rounds."""
    err = xp.abs(a.round(a.load(pred) - a.load(expect)))
    return a.store(err * err)  # stored: rounded once to the dtype, as ATen


def _layout(x: Any, block_size: Sequence[int], xp: ModuleType) -> tuple[Arith, Any]:
    """``x``'s arithmetic and its loss rows ``(k, n, per-block shape)``."""
    k, n = loss_rows(x.shape, block_size)
    view, axes = reduction_params(block_size, x.shape)
    per_block = tuple(size for i, size in enumerate(view) if i not in axes)
    return Arith(dtype_name(x.dtype), xp), (k, n, per_block)


@quiet
def mse(pred: Any, expect: Any, block_size: Sequence[int], *, xp: ModuleType) -> Any:
    """torchao's ``AffineQuantizedMSEObserver.mse``: each block's mean squared
    error, one value per block (the reduced axes dropped)."""
    a, (k, n, per_block) = _layout(expect, block_size, xp)
    return _mean(_squared_error(pred, expect, a, xp), k, n, per_block, xp)


def _loss(
    x: Any,
    block_size: Sequence[int],
    new_min: Any,
    new_max: Any,
    mapping: Any,
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    domain: ZeroPointDomain,
    a: Arith,
    rows: tuple[int, int, tuple[int, ...]],
    xp: ModuleType,
) -> Any:
    scale, zp, name = qparams_from_minmax(new_min, new_max, mapping, tgt, eps, xp=xp)
    scale, zp = finish(scale, zp, name, mapping, scale_dtype, zero_point_dtype, xp=xp)
    if domain is ZeroPointDomain.NONE:
        zp = None
    dq = fake_quantize(x, block_size, scale, zp, tgt, domain, xp=xp)[1]
    k, n, per_block = rows
    return _mean(_squared_error(dq, x, a, xp), k, n, per_block, xp)


@quiet
def loss_fn(
    x: Any,
    block_size: Sequence[int],
    new_min: Any,
    new_max: Any,
    mapping: Any,
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    domain: ZeroPointDomain,
    *,
    xp: ModuleType,
) -> Any:
    """torchao's ``AffineQuantizedMSEObserver.loss_fn``: each block's mean
    squared error of ``x`` fake-quantized with the qparams of
    ``(new_min, new_max)``, one value per block."""
    a, rows = _layout(x, block_size, xp)
    args = (mapping, tgt, eps, scale_dtype, zero_point_dtype, domain)
    return _loss(x, block_size, new_min, new_max, *args, a, rows, xp)


@quiet
def line_search(
    x: Any,
    block_size: Sequence[int],
    mapping: Any,
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    domain: ZeroPointDomain,
    steps: int,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """torchao's ``line_search``: the per-block ``(min_val, max_val)`` of the
    smallest mean squared fake-quantization error, in ``x``'s dtype."""
    a, rows = _layout(x, block_size, xp)
    lo, hi = block_minmax(x, block_size, False, xp=xp)
    span = xp.maximum(xp.abs(lo), hi)
    best = a.store(a.full(a.load(lo), 1e9))  # zeros_like(min_val) + 1e9: inf in float16
    divisor = float(np.float32(steps))
    args = (mapping, tgt, eps, scale_dtype, zero_point_dtype, domain)
    for i in range(1, steps + 1):
        thres = a.store(a.round(a.round(_over(a.load(span), divisor, xp)) * float(i)))
        neg = -thres
        loss = _loss(x, block_size, neg, thres, *args, a, rows, xp)
        better = loss < best
        lo, hi = xp.where(better, neg, lo), xp.where(better, thres, hi)
        best = xp.minimum(loss, best)
    return lo, hi
