"""torch: torchao's ``quantize_affine`` with fewer passes over memory, on the CPU.

torchao computes ``clamp(round(x * (1.0 / scale)) + zero_point, qmin, qmax).to(dtype)``
as five full-size temporaries. A float32 input with a float32 scale takes the NumPy
backend's kernel on the same memory (no copy): slabs of rows that stay in L2, one
run of slabs per core, each step the generic arithmetic's (which torchao's ops
compute: correctly rounded float32 products and sums, round half to even). Slabs
of torch ops would do the same, but each op is an OpenMP region ending in a
barrier: with a core taken by another process, 256 barriers per call made a
12 ms call take 2.7 s (4096 x 4096 on 2 cores), while Python threads that each
walk their own slabs join once. Other dtypes run torchao's own ops, in place
after the first, so the numbers are torchao's by construction.
"""

from __future__ import annotations

from typing import Any

import torch

from arrayobs._backends import _numpy
from arrayobs._core import _affine as core

# Zero point dtypes the NumPy kernel reads (it converts them to float32 as torch does).
_HOST_ZERO_POINTS = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32})


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
    """torchao's ``quantize_affine`` of CPU tensors (see :func:`applies`); None where
    torch cannot run torchao's ops (a bound beyond a float16 product: torchao fails)."""
    if (
        x.dtype is torch.float32
        and scale.dtype is torch.float32
        and zero_point.dtype in _HOST_ZERO_POINTS
    ):
        out = _numpy.quantize_affine(x.numpy(), block_size, scale.numpy(), zero_point.numpy(), tgt)
        if out is not None:
            return torch.from_numpy(out)
    view, axes = core.reduction_params(block_size, x.shape)
    per_block = core.reduced_shape(view, axes)
    core.float_name(scale.dtype, "scale")
    inv = 1.0 / core.blocks(scale, per_block, "scale", torch)
    zp = core.blocks(zero_point, per_block, "zero_point", torch)
    v = x.reshape(view)
    product = torch.result_type(v, inv)
    total = torch.promote_types(product, zp.dtype) if zp.dtype.is_floating_point else product
    if max(abs(tgt.quant_min), abs(tgt.quant_max)) > torch.finfo(total).max:
        return None
    q = torch.mul(v, inv).round_()
    q = q.add_(zp) if total == product else torch.add(q, zp)
    return q.clamp_(tgt.quant_min, tgt.quant_max).to(getattr(torch, tgt.storage)).reshape(x.shape)
