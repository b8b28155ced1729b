"""torch: one ``aminmax`` pass in the input's own dtype, and torch.ao's own combine.

torch.ao casts the whole input to float32 before reducing; rounding is
monotonic, so reducing natively and casting the two results is identical and
skips a full-size copy for float16/bfloat16/float64/integer inputs.

The combine steps below are the reference's own tensor operations in its own
argument order (``torch.min(cur, state)``, ``m + c * (cur - m)`` with ``c`` a
Python float), so on eager torch they are bit-exact by construction, on any
device, and cost a third of the generic path's ``where`` chains. On the CPU a
0-d state is host memory: the moving average's six eager calls cost more than
the NumPy views and scalar operations of the host rules, so it takes those
(a running min-max's two eager calls cost less, so it does not), and so do qparams.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from arrayobs import _core as core
from arrayobs._backends import _host as host
from arrayobs._backends import _kernels, _torch_affine
from arrayobs._backends._generic import Backend
from arrayobs._compat import resolve_namespace
from arrayobs._config import QuantConfig
from arrayobs._core import _fakequant as fakequant

# torch.ao casts every input to float32 before reducing; torch 2.13.0 has no CPU
# min/max kernels for these dtypes ("aminmax_cpu" not implemented for 'UInt16'),
# so they are widened first (rounding to float32 is monotonic: the same numbers).
_WIDENED = frozenset(
    getattr(torch, name)
    for name in (
        "uint16",
        "uint32",
        "uint64",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
    )
    if hasattr(torch, name)
)


_HISTC_DTYPES = (torch.float32, torch.float64)


def prepare(x: Any) -> Any:
    """``x`` without its autograd graph, widened to float32 where torch cannot reduce it."""
    if x.requires_grad:
        x = x.detach()
    return x.to(torch.float32) if x.dtype in _WIDENED else x


def aminmax(x: Any) -> tuple[Any, Any]:
    lo, hi = torch.aminmax(prepare(x))
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
    ``aminmax`` with a ``dim`` is several times slower than ``amin`` + ``amax``
    (bench/results/tuning.md), so the CPU takes those; on other devices one
    ``aminmax`` pass where A or B is 1 (weights with ch_axis 0, channels-last
    activations).
    """
    x = prepare(x)
    if x.ndim == 1:
        # One element per channel: the values (as copies, never the input).
        return x.to(torch.float32, copy=True), x.to(torch.float32, copy=True)
    if not x.is_contiguous():
        axes = core.other_axes(x.ndim, ch_axis)
        return _float32(torch.amin(x, dim=axes), torch.amax(x, dim=axes))
    shape = x.shape
    v = x.view(math.prod(shape[:ch_axis]), shape[ch_axis], -1)
    # (C, B) reduced over dim 1, (A, C) over dim 0, else (A, C, B) over (0, 2).
    v, dim = (v[0], 1) if v.shape[0] == 1 else (v[:, :, 0], 0) if v.shape[2] == 1 else (v, (0, 2))
    if x.device.type != "cpu" and isinstance(dim, int):
        return _float32(*torch.aminmax(v, dim=dim))
    return _float32(torch.amin(v, dim=dim), torch.amax(v, dim=dim))


# Elements per block of the CPU histc: 1 MiB of float32, the fastest of the sizes tried
# (bench/results/tuning.md).
HISTC_BLOCK = 1 << 18


def _histc_part(x: Any, bins: int, left: Any, factor: Any, span: Any) -> Any:
    """Whole-number counts (int64, ``bins + 2``) of a 1-d part, block by block:
    the generic histc's ``trunc((x - lo) * bins / (hi - lo))``, op by op in
    ``x``'s dtype, then ``scatter_add_`` (which releases the GIL, unlike NumPy's
    bincount, so the parts run on every core)."""
    counts = torch.zeros(bins + 2, dtype=torch.int64)
    n = min(HISTC_BLOCK, x.numel())
    scaled = torch.empty(n, dtype=x.dtype)
    narrow = torch.empty(n, dtype=torch.int32)
    index = torch.empty(n, dtype=torch.int64)
    ones = torch.ones(n, dtype=torch.int64)
    for start in range(0, x.numel(), HISTC_BLOCK):
        block = x[start : start + HISTC_BLOCK]
        k = block.numel()
        torch.sub(block, left, out=scaled[:k])
        scaled[:k].mul_(factor).div_(span)
        # Truncation toward zero (every position is in [0, bins]), through int32:
        # the cheaper conversion (bench/results/tuning.md).
        narrow[:k].copy_(scaled[:k])
        index[:k].copy_(narrow[:k])
        counts.scatter_add_(0, index[:k], ones[:k])
    return counts


def histc_cpu(x: Any, bins: int, lo: float, hi: float) -> Any:
    """The generic histc of a float32/float64 CPU tensor whose values are all
    finite (so inside ``[lo, hi]``), bit for bit, or None where it does not
    apply (a range whose arithmetic could overflow): torch.histc's kernel
    itself ran 3x slower (bench/histogram.py)."""
    if bins >= 2**31 - 2:
        return None
    left, right, factor = (torch.tensor(v, dtype=x.dtype) for v in (lo, hi, float(bins)))
    span = right - left
    if not (bool(span > 0) and bool(torch.isfinite(span * factor))):
        return None
    flat = x.reshape(-1)
    workers = host.workers() if flat.numel() >= 2 * HISTC_BLOCK else 1
    parts = torch.chunk(flat, workers)
    if len(parts) > 1:
        pool = host.pool()
        counts = sum(pool.map(lambda p: _histc_part(p, bins, left, factor, span), parts))
    else:
        counts = _histc_part(flat, bins, left, factor, span)
    counts[bins - 1] += counts[bins:].sum()  # x == hi: the last bin, as the generic clip
    return counts[:bins].to(torch.float32)


def _host(*tensors: Any) -> list[Any]:
    """float32 scalars viewing CPU tensors' memory (no copy, no read through ATen:
    ``item()`` would count as a device read)."""
    return [t.numpy()[()] for t in tensors]


def _from_host(*arrays: Any) -> tuple[Any, ...]:
    """CPU tensors sharing the memory of fresh NumPy values."""
    return tuple(torch.from_numpy(np.asarray(a)) for a in arrays)


# -- the per-tensor rules on a CPU state, read as Python floats -------------------
# A 0-d float32 CPU tensor's item() is exact as a double. On 100 elements the update
# costs about as much as the batch's reduction, so these read the four values once
# and build at most two tensors (none where the running range did not move).


def _running_minmax(state: core.MinMaxState, batch: Any) -> core.MinMaxState:
    """torch.ao's ``torch.min(cur, state)``, ``torch.max(cur, state)`` on 0-d CPU
    tensors, keeping whichever tensor it would return (the same bits: NaN
    propagates from either side; on a tie, signed zeros included, the batch's)."""
    m, big_m = state
    lo, hi = batch
    m_f, lo_f = m.item(), lo.item()
    big_f, hi_f = big_m.item(), hi.item()
    new_m = m if (m_f != m_f or m_f < lo_f) else lo  # noqa: PLR0124 - m_f != m_f: NaN
    new_big = big_m if (big_f != big_f or big_f > hi_f) else hi  # noqa: PLR0124
    if new_m is m and new_big is big_m:
        return state
    return core.MinMaxState(new_m, new_big)


def _moving_average(
    state: core.MinMaxState, batch: Any, rule: core.MovingAverage
) -> core.MinMaxState:
    """:func:`arrayobs._backends._host.moving_average_combine` on 0-d CPU tensors."""
    f32 = np.float32
    (m, big_m), (lo, hi) = state, batch
    new = host.moving_average_combine(
        f32(m.item()), f32(big_m.item()), f32(lo.item()), f32(hi.item()), rule.c32
    )
    return core.MinMaxState(*_from_host(*new))


class TorchBackend(Backend):
    """``aminmax`` in the input's dtype; torch.ao's own ops for the rules."""

    name = "torch"

    def device_of(self, x: Any) -> Any:
        return x.device

    def size(self, x: Any) -> int:
        return int(x.numel())

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        if self.fast and ch_axis is None:
            if x.dtype is torch.float32 and not x.requires_grad:
                return torch.aminmax(x)  # aminmax's common case, a call less per batch
            return aminmax(x)
        return self.aminmax(x, ch_axis)

    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        if not self.fast:
            # The generic math, on the tensor torch.ao reduces (no graph, no dtype
            # without a kernel).
            return super().aminmax(prepare(x), ch_axis)
        found = None
        if not torch.compiler.is_compiling():  # a traced tensor has no memory to view
            found = _kernels.aminmax(x) if ch_axis is None else _kernels.aminmax_axis(x, ch_axis)
        if found is not None:  # compiled single pass on the CPU memory (numba installed)
            return _from_host(*found)
        return aminmax(x) if ch_axis is None else aminmax_axis(x, ch_axis)

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        m = state.min_val
        if fresh is not True and self.fast and m.ndim == 0 and m.is_cpu:
            if type(rule) is core.RunningMinMax:
                return _running_minmax(state, batch)
            if isinstance(rule, core.MovingAverage):
                return _moving_average(state, batch, rule)
        return super().fold(state, batch, rule, ch_axis, fresh)

    def combine(
        self, state: core.MinMaxState, lo: Any, hi: Any, rule: core.Rule, fresh: bool | None = None
    ) -> core.MinMaxState:
        if not self.fast:
            return super().combine(state, lo, hi, rule, fresh)
        if fresh:
            return core.MinMaxState(lo, hi)
        m, big_m = state
        if isinstance(rule, core.RunningMinMax):
            return core.MinMaxState(torch.min(lo, m), torch.max(hi, big_m))
        if fresh is False:
            c = float(rule.averaging_constant)
            return core.MinMaxState(m + c * (lo - m), big_m + c * (hi - big_m))
        return super().combine(state, lo, hi, rule, fresh)

    def _host_state(self, state: core.MinMaxState) -> bool:
        """Whether the fast path reads ``state`` in place: 0-d, in CPU memory."""
        m = state.min_val
        return self.fast and m.ndim == 0 and m.is_cpu

    def qparams(
        self, state: core.MinMaxState, config: QuantConfig, check: bool = False
    ) -> tuple[Any, Any] | None:
        if not self._host_state(state):
            return super().qparams(state, config, check)
        m, big_m = _host(*state)
        pair = host.host_qparams(m, big_m, config, check)
        return None if pair is None else _from_host(*pair)  # type: ignore[return-value]

    def fake_quantize(
        self,
        x: Any,
        scale: Any,
        zero_point: Any,
        quant_min: int,
        quant_max: int,
        axis: int | None = None,
    ) -> Any:
        # torch's own kernels: the reference itself, on the CPU and on CUDA; except
        # for a Python zero point beyond int32 (held as int64), which torch's
        # int overload takes but its tensor overload refuses.
        if self.fast and zero_point.dtype != torch.int64:
            if axis is None:
                return torch.fake_quantize_per_tensor_affine(
                    x, scale, zero_point, quant_min, quant_max
                )
            return torch.fake_quantize_per_channel_affine(
                x, scale, zero_point, axis, quant_min, quant_max
            )
        if x.requires_grad:
            return _StraightThrough.apply(x, scale, zero_point, quant_min, quant_max, axis)  # type: ignore[no-untyped-call]
        return super().fake_quantize(x, scale, zero_point, quant_min, quant_max, axis)

    def read_float32(self, *arrays: Any) -> list[Any]:
        if any(a.device.type != "cpu" for a in arrays):
            return super().read_float32(*arrays)  # one transfer from the device
        # In CPU memory, a copy of each: the generic concat through array-api-compat
        # costs several times that, and a NumPy view of the state itself would leave
        # its storage unresizable for good.
        return [a.detach().to(torch.float32, copy=True).numpy() for a in arrays]

    def value_range(self, x: Any) -> tuple[float, float]:
        if not self.fast:
            return super().value_range(x)
        found = None if torch.compiler.is_compiling() else _kernels.value_range(x)
        if found is not None:
            return found
        # One kernel, one read of both values (a float64 input keeps its values).
        return tuple(torch.stack(torch.aminmax(prepare(x))).tolist())  # type: ignore[return-value]

    def histc(self, x: Any, bins: int, lo: float, hi: float, *, finite: bool = False) -> Any:
        if self.fast and not torch.compiler.is_compiling() and x.device.type == "cpu":
            out = _kernels.histc(x, bins, lo, hi)
            if out is not None:
                return torch.from_numpy(out)
        if self.fast and finite and x.device.type == "cpu" and x.dtype in _HISTC_DTYPES:
            out = histc_cpu(prepare(x), bins, lo, hi)
            if out is not None:
                return out
        return super().histc(x, bins, lo, hi)

    def steady_histc(self, x: Any, bins: int, lo: float, hi: float) -> Any | None:
        if not self.fast or torch.compiler.is_compiling() or x.device.type != "cpu":
            return None
        out = _kernels.steady_histc(x, bins, lo, hi)
        return None if out is None else torch.from_numpy(out)

    def quantize_affine(
        self, x: Any, block_size: tuple[int, ...], scale: Any, zero_point: Any, tgt: Any
    ) -> Any:
        out = None
        if self.fast and _torch_affine.applies(x, scale, zero_point):
            # torchao's ops in place on cache-sized slabs (5x fewer passes over memory).
            out = _torch_affine.quantize(x, block_size, scale, zero_point, tgt)
        if out is None:
            return super().quantize_affine(x, block_size, scale, zero_point, tgt)
        return out

    supports_process_group = True

    def allreduce_minmax(self, lo: Any, hi: Any, group: Any) -> tuple[Any, Any]:
        # Imported here: torch.distributed only for observers given a process group.
        from arrayobs._backends import _torch_distributed

        return _torch_distributed.allreduce_minmax(lo, hi, group)

    def allreduce_max(self, values: list[float], device: Any, group: Any) -> list[float]:
        from arrayobs._backends import _torch_distributed

        return _torch_distributed.allreduce_max(values, device, group)

    def allreduce_counts(self, counts: Any, group: Any) -> Any:
        from arrayobs._backends import _torch_distributed

        return _torch_distributed.allreduce_counts(counts, group)


XP = resolve_namespace(torch)


class _StraightThrough(torch.autograd.Function):  # type: ignore[misc]  # torch is Any without it
    """The generic fake quantization with torch's gradient: ``dY * mask``."""

    @staticmethod
    def forward(
        ctx: Any, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: Any
    ) -> Any:
        out, mask = fakequant.fake_quantize(
            x, scale, zero_point, qmin, qmax, axis, xp=XP, device=x.device
        )
        ctx.save_for_backward(mask)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Any) -> Any:
        (mask,) = ctx.saved_tensors
        return grad * mask, None, None, None, None, None


BACKEND = TorchBackend
