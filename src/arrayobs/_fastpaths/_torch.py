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

from typing import Any

import torch


def aminmax(x: Any) -> tuple[Any, Any]:
    lo, hi = torch.aminmax(x.detach() if x.requires_grad else x)
    if lo.dtype is torch.float32:
        return lo, hi  # each skipped call is a microsecond on 100 elements
    # Tensor.to saturates float64 overflow to inf without a warning, as the reference's cast does.
    return lo.to(torch.float32), hi.to(torch.float32)


def minmax_combine(m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    return torch.min(lo, m), torch.max(hi, big_m)


def moving_average_combine(m: Any, big_m: Any, lo: Any, hi: Any, c: float) -> tuple[Any, Any]:
    """A state known not to be fresh moves by ``m + c * (cur - m)``, as torch.ao."""
    return m + c * (lo - m), big_m + c * (hi - big_m)


def from_host(arrays: tuple[Any, ...]) -> tuple[Any, ...]:
    """CPU tensors sharing the memory of fresh NumPy arrays."""
    return tuple(torch.from_numpy(a) for a in arrays)
