"""One torch.distributed collective per forward: the batch's (min, max) across a group.

Per tensor two values travel, per channel two per channel (one tensor of 2C keys).
HistogramObserver adds a second: the counts of the shared range, summed.

Min and max travel together as int32 keys (:mod:`arrayobs._core._keys`) in
one tensor, reduced with ``ReduceOp.MIN``; a NaN on any rank propagates, as in
one process. An empty shard contributes (+inf, -inf), the identity. Integer
min is exact and associative, so the result does not depend on the group's
reduction order, and nothing is read back to the host (NCCL queues it on the
stream; gloo runs it on the CPU).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from arrayobs import _core as core


def allreduce_minmax(lo: Any, hi: Any, group: Any) -> tuple[Any, Any]:
    """The group-wide (min, max) of every rank's float32 (lo, hi), 0-d or (C,)."""
    shape, n = lo.shape, lo.numel()
    nan = (torch.isnan(lo) | torch.isnan(hi)).reshape(-1)
    lo_bits, hi_bits = (v.reshape(-1).view(torch.int32) for v in (lo, hi))
    packed = torch.cat(core.pack_minmax(lo_bits, hi_bits, nan, xp=torch))
    dist.all_reduce(packed, op=dist.ReduceOp.MIN, group=group)
    lo_bits, hi_bits, any_nan = core.unpack_minmax(packed[:n], packed[n:])
    any_nan = any_nan.reshape(shape)
    nan_value = torch.full((), float("nan"), device=lo.device)
    return (
        torch.where(any_nan, nan_value, lo_bits.view(torch.float32).reshape(shape)),
        torch.where(any_nan, nan_value, hi_bits.view(torch.float32).reshape(shape)),
    )


def allreduce_max(values: list[float], device: Any, group: Any) -> list[float]:
    """The group-wide maximum of each of ``values`` (Python floats, no NaN), in
    float64: exact, and the same on every rank whatever the reduction order."""
    packed = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.MAX, group=group)
    return packed.tolist()  # type: ignore[no-any-return]


def allreduce_counts(counts: Any, group: Any) -> Any:
    """The group-wide sum of float32 ``counts`` (whole numbers), added in
    float64 (exact below 2**53), then rounded to float32 as one count is."""
    wide = counts.to(torch.float64)
    dist.all_reduce(wide, op=dist.ReduceOp.SUM, group=group)
    return wide.to(torch.float32)
