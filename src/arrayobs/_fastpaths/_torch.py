"""torch: one ``aminmax`` pass in the input's own dtype, and torch.ao's own combine.

torch.ao casts the whole input to float32 before reducing; rounding is
monotonic, so reducing natively and casting the two results is identical and
skips a full-size copy for float16/bfloat16/float64/integer inputs.

The combine steps below are the reference's own tensor operations in its own
argument order (``torch.min(cur, state)``, ``m + c * (cur - m)`` with ``c`` a
Python float), so on eager torch they are bit-exact by construction, on any
device, and cost a third of the generic path's ``where`` chains.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from arrayobs._reduce import other_axes


def aminmax(x: Any) -> tuple[Any, Any]:
    lo, hi = torch.aminmax(x.detach() if x.requires_grad else x)
    if lo.dtype is torch.float32:
        return lo, hi  # each skipped call is a microsecond on 100 elements
    # Tensor.to saturates float64 overflow to inf without a warning, as the reference's cast does.
    return lo.to(torch.float32), hi.to(torch.float32)


def _float32(lo: Any, hi: Any) -> tuple[Any, Any]:
    return lo.to(torch.float32), hi.to(torch.float32)


def aminmax_axis(x: Any, ch_axis: int) -> tuple[Any, Any]:
    """Per-channel (min, max), shape (C,), over every axis but ``ch_axis``.

    torch.ao permutes, flattens (a copy unless ``ch_axis`` is 0) and casts to
    float32 (a copy unless float32) before ``aminmax(dim=1)``. Here a
    contiguous input is viewed as (A, C, B), with no copy. On the CPU,
    ``aminmax`` with a ``dim`` ran 8x slower than ``amin`` + ``amax`` (4096 x
    4096 float32: 22 vs 2.7 ms), so the CPU takes those; on other devices one
    ``aminmax`` pass where A or B is 1 (weights with ch_axis 0, channels-last
    activations).
    """
    x = x.detach() if x.requires_grad else x
    if x.ndim == 1:
        # One element per channel: the values (as copies, never the input).
        return x.to(torch.float32, copy=True), x.to(torch.float32, copy=True)
    if not x.is_contiguous():
        axes = other_axes(x.ndim, ch_axis)
        return _float32(torch.amin(x, dim=axes), torch.amax(x, dim=axes))
    shape = x.shape
    v = x.view(math.prod(shape[:ch_axis]), shape[ch_axis], -1)
    # (C, B) reduced over dim 1, (A, C) over dim 0, else (A, C, B) over (0, 2).
    v, dim = (v[0], 1) if v.shape[0] == 1 else (v[:, :, 0], 0) if v.shape[2] == 1 else (v, (0, 2))
    if x.device.type != "cpu" and isinstance(dim, int):
        return _float32(*torch.aminmax(v, dim=dim))
    return _float32(torch.amin(v, dim=dim), torch.amax(v, dim=dim))


def minmax_combine(m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    return torch.min(lo, m), torch.max(hi, big_m)


def moving_average_combine(m: Any, big_m: Any, lo: Any, hi: Any, c: float) -> tuple[Any, Any]:
    """A state known not to be fresh moves by ``m + c * (cur - m)``, as torch.ao."""
    return m + c * (lo - m), big_m + c * (hi - big_m)


def from_host(arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    """CPU tensors sharing the memory of fresh NumPy arrays."""
    return tuple(torch.from_numpy(a) for a in arrays)
