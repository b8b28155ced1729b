"""One torch.distributed collective per forward: the batch's (min, max) across a group.

Per tensor two values travel, per channel two per channel (one tensor of 2C keys).

Min and max travel together as two int32 keys in one tensor, reduced with
``ReduceOp.MIN``: a float's key is its bits with the magnitude bits of negative
values flipped, so integer order is float order (-0.0 just below +0.0); the max
travels as ``~key``, which reverses the order. A NaN is given the most extreme
key on both sides, so NaN on any rank propagates, as in one process. An empty
shard contributes (+inf, -inf), the identity. Integer min is exact and
associative, so the result does not depend on the group's reduction order, and
nothing is read back to the host (NCCL queues it on the stream; gloo runs it
on the CPU).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _key(v: Any) -> Any:
    bits = v.reshape(-1).view(torch.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def _unkey(k: Any, shape: Any) -> Any:
    return (k ^ ((k >> 31) & 0x7FFFFFFF)).view(torch.float32).reshape(shape)


def identity(device: Any, shape: tuple[int, ...] = ()) -> tuple[Any, Any]:
    """(+inf, -inf), 0-d or per channel: what an empty shard contributes."""
    return (
        torch.full(shape, float("inf"), device=device),
        torch.full(shape, float("-inf"), device=device),
    )


def allreduce_minmax(lo: Any, hi: Any, group: Any) -> tuple[Any, Any]:
    """The group-wide (min, max) of every rank's float32 (lo, hi), 0-d or (C,)."""
    shape, n = lo.shape, lo.numel()
    nan = (torch.isnan(lo) | torch.isnan(hi)).reshape(-1)
    k_lo = torch.where(nan, torch.full_like(_key(lo), _INT32_MIN), _key(lo))
    k_hi = torch.where(nan, torch.full_like(_key(hi), _INT32_MAX), _key(hi))
    packed = torch.cat((k_lo, ~k_hi))
    dist.all_reduce(packed, op=dist.ReduceOp.MIN, group=group)
    k_lo, k_hi = packed[:n], ~packed[n:]
    any_nan = ((k_lo == _INT32_MIN) | (k_hi == _INT32_MAX)).reshape(shape)
    nan_value = torch.full((), float("nan"), device=lo.device)
    return (
        torch.where(any_nan, nan_value, _unkey(k_lo, shape)),
        torch.where(any_nan, nan_value, _unkey(k_hi, shape)),
    )
