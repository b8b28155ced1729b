"""torch: torchao's ``quantize_affine`` as torchao's own ops, a cache-sized slab at a time.

torchao computes ``clamp(round(x * (1.0 / scale)) + zero_point, qmin, qmax).to(dtype)``
as five full-size temporaries: each a pass over memory and a fresh allocation
(page faults for 64 MB at 4096 x 4096 float32). The same ops with the same
operands here run in place on a scratch slab of about :data:`SLAB_BYTES` that
stays in L2, and the cast writes straight into the output, so the input is read
once and the output written once. Each step is the kernel torchao calls on the
dtype torchao's promotion gives, so the numbers are torchao's by construction
(and the tests check them against the generic arithmetic bit for bit).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from arrayobs._core import _affine as core

# Bytes of the float scratch slab: at 4096 x 4096 float32 with group 128 on 2 cores,
# slabs of 8, 32 and 128 rows (128 KiB, 512 KiB, 2 MiB) took 24, 11 and 10 ms.
SLAB_BYTES = 1 << 20


def applies(x: Any, scale: Any, zero_point: Any) -> bool:
    """Whether :func:`quantize` takes these operands: CPU tensors without autograd
    (an ``out=`` op refuses a graph), a non-empty input."""
    tensors = (x, scale, zero_point)
    return (
        all(isinstance(t, torch.Tensor) and not t.requires_grad for t in tensors)
        and all(t.device.type == "cpu" for t in tensors)
        and x.numel() > 0
    )


def quantize(
    x: Any, block_size: tuple[int, ...], scale: Any, zero_point: Any, tgt: core.Target
) -> Any | None:
    """torchao's ``quantize_affine`` of CPU tensors (see :func:`applies`), slab by slab;
    None where torch cannot run torchao's ops (a bound beyond a float16 product)."""
    view, axes = core.reduction_params(block_size, x.shape)
    per_block = core.reduced_shape(view, axes)
    core.float_name(scale.dtype, "scale")
    inv = 1.0 / core.blocks(scale, per_block, "scale", torch)
    zp = core.blocks(zero_point, per_block, "zero_point", torch)
    v = x.reshape(view)
    product = torch.result_type(v, inv)
    total = torch.promote_types(product, zp.dtype) if zp.dtype.is_floating_point else product
    top = torch.finfo(total).max
    if max(abs(tgt.quant_min), abs(tgt.quant_max)) > top:
        return None  # torch's clamp refuses the bound (torchao fails); the generic numbers
    storage = getattr(torch, tgt.storage)
    out = torch.empty(view, dtype=storage)
    rows = max(1, SLAB_BYTES // max(1, math.prod(view[1:]) * product.itemsize))
    rows = min(rows, view[0])
    first = torch.empty((rows, *view[1:]), dtype=product)
    second = first if total == product else torch.empty(first.shape, dtype=total)
    for start in range(0, view[0], rows):
        stop = min(start + rows, view[0])
        a, b = first[: stop - start], second[: stop - start]
        torch.mul(v[start:stop], _rows(inv, start, stop), out=a)
        a.round_()
        torch.add(a, _rows(zp, start, stop), out=b)
        b.clamp_(tgt.quant_min, tgt.quant_max)
        out[start:stop].copy_(b)
    return out.reshape(x.shape)


def _rows(per_block: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a per-block operand, or all of it where it broadcasts."""
    return per_block if per_block.shape[0] == 1 else per_block[start:stop]
