"""CuPy: a whole observer update in two kernel launches, nothing read back.

``cupy.min`` + ``cupy.max`` read the input twice, and the generic combine is a
dozen more launches (each a few microseconds of Python and driver time, and
some upload Python scalars). Here:

1. ``arrayobs_pass`` reads each element once (a grid-stride loop, four loads
   in flight per thread) and writes one (min, max) pair per block;
2. ``arrayobs_finish`` (one block) reduces those pairs and, in its first
   thread, applies the update: torch's ``torch.min(cur, state)`` /
   ``torch.max`` for a running min-max, ``m + c * (cur - m)`` (three separately
   rounded operations, ``__fadd_rn``-style intrinsics so nothing is contracted
   into a fused multiply-add) for a moving average, or nothing (the batch's
   pair alone, for :func:`aminmax`).

CuPy compiles every kernel with ``-ftz=true`` (https://github.com/cupy/cupy/issues/9576),
so float32 arithmetic and comparisons treat subnormals as zero. The min and max
are therefore taken on order-preserving int32 keys of the float32 bits (a NaN
lands beyond the infinities' keys; ``f2key``/``key2f`` below are the formula
of :mod:`arrayobs._core._keys` in CUDA), which is exact; the moving average's
arithmetic flushes subnormals (a documented deviation, as on JAX's CPU).
Float16 is widened to float32 and float64 reduced in double (both exact;
``(float)`` of a double result is the reference's cast), other dtypes and
non-contiguous arrays take the generic path.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy
import numpy as np

from arrayobs import _core as core
from arrayobs._backends._generic import Backend

_THREADS = 256

_COMMON = r"""
#define KEY_POS_INF 0x7f800000
#define KEY_NEG_INF (-0x7f800000 - 1)
__device__ __forceinline__ int f2key(float v) {
    int b = __float_as_int(v);
    return b ^ ((b >> 31) & 0x7fffffff);
}
__device__ __forceinline__ float key2f(int k) {
    return __int_as_float(k ^ ((k >> 31) & 0x7fffffff));
}
"""

_PASS = r"""
${include}
typedef ${ctype} in_t;
__device__ __forceinline__ ${acc} load(const in_t* x, long long i) { return (${acc})(${load}); }

extern "C" __global__ void arrayobs_pass(const in_t* __restrict__ x, long long n,
                                         int* lo_out, int* hi_out) {
    ${init}
    long long stride = (long long)blockDim.x * gridDim.x;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        ${acc} a = load(x, i), b = load(x, i + stride);
        ${acc} c = load(x, i + 2 * stride), d = load(x, i + 3 * stride);
        ${step_a} ${step_b} ${step_c} ${step_d}
    }
    for (; i < n; i += stride) {
        ${acc} a = load(x, i);
        ${step_a}
    }
    ${to_keys}
    for (int off = 16; off > 0; off >>= 1) {
        lo = min(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = max(hi, __shfl_down_sync(0xffffffffu, hi, off));
    }
    __shared__ int s_lo[32], s_hi[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { s_lo[warp] = lo; s_hi[warp] = hi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w) {
            lo = min(lo, s_lo[w]); hi = max(hi, s_hi[w]);
        }
        lo_out[blockIdx.x] = lo;
        hi_out[blockIdx.x] = hi;
    }
}
"""

# float32 and float16: keys all along. A NaN's key lies beyond an infinity's.
_KEY_STEP = "{k} = f2key({v}); lo = min(lo, {k}); hi = max(hi, {k});"
_KEY_VARIANT = {
    "init": "int lo = 0x7fffffff, hi = (int)0x80000000, ka, kb, kc, kd;",
    "step_a": _KEY_STEP.format(k="ka", v="a"),
    "step_b": _KEY_STEP.format(k="kb", v="b"),
    "step_c": _KEY_STEP.format(k="kc", v="c"),
    "step_d": _KEY_STEP.format(k="kd", v="d"),
    "to_keys": "",
}
# float64: double min/max and a NaN flag (double arithmetic is not flushed),
# then the float32 cast of each thread's pair, as keys; a NaN becomes the most
# extreme key on both sides, so both the min and the max carry it.
_DOUBLE_STEP = "nan |= ({v} != {v}); dlo = fmin(dlo, {v}); dhi = fmax(dhi, {v});"
_DOUBLE_VARIANT = {
    "init": "double dlo = __longlong_as_double(0x7ff0000000000000LL), dhi = -dlo; int nan = 0;",
    "step_a": _DOUBLE_STEP.format(v="a"),
    "step_b": _DOUBLE_STEP.format(v="b"),
    "step_c": _DOUBLE_STEP.format(v="c"),
    "step_d": _DOUBLE_STEP.format(v="d"),
    "to_keys": (
        "int lo = nan ? (int)0x80000000 : f2key((float)dlo);"
        " int hi = nan ? 0x7fffffff : f2key((float)dhi);"
        " if (!nan && dlo > dhi) { lo = 0x7fffffff; hi = (int)0x80000000; }"
    ),
}
_TYPES = {
    # dtype name: (header, C type, accumulator, load expression, variant)
    "float32": ("", "float", "float", "x[i]", _KEY_VARIANT),
    "float16": ("#include <cuda_fp16.h>", "__half", "float", "__half2float(x[i])", _KEY_VARIANT),
    "float64": ("", "double", "double", "x[i]", _DOUBLE_VARIANT),
}

_FINISH = r"""
__device__ __forceinline__ bool is_nan_key(int k) { return k > KEY_POS_INF || k < KEY_NEG_INF; }
__device__ __forceinline__ bool both_zero(float a, float b) {
    return ((__float_as_int(a) | __float_as_int(b)) & 0x7fffffff) == 0;
}
// torch.min(a, b) / torch.max(a, b) on keys: NaN wins, else b if strictly beyond a
// (+0 and -0 are equal, so a tie keeps a).
__device__ __forceinline__ float first_min(float a, float b) {
    int ka = f2key(a), kb = f2key(b);
    return (is_nan_key(kb) || (!is_nan_key(ka) && kb < ka && !both_zero(a, b))) ? b : a;
}
__device__ __forceinline__ float first_max(float a, float b) {
    int ka = f2key(a), kb = f2key(b);
    return (is_nan_key(kb) || (!is_nan_key(ka) && kb > ka && !both_zero(a, b))) ? b : a;
}
__device__ __forceinline__ float average(float m, float cur, float c) {
    return __fadd_rn(m, __fmul_rn(c, __fsub_rn(cur, m)));
}

extern "C" __global__ void arrayobs_finish(const int* lo_in, const int* hi_in, int parts,
                                           const float* state_min, const float* state_max,
                                           float* out_min, float* out_max, int mode, float c) {
    int lo = 0x7fffffff, hi = (int)0x80000000;
    for (int i = threadIdx.x; i < parts; i += blockDim.x) {
        lo = min(lo, lo_in[i]); hi = max(hi, hi_in[i]);
    }
    for (int off = 16; off > 0; off >>= 1) {
        lo = min(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = max(hi, __shfl_down_sync(0xffffffffu, hi, off));
    }
    __shared__ int s_lo[32], s_hi[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { s_lo[warp] = lo; s_hi[warp] = hi; }
    __syncthreads();
    if (threadIdx.x != 0) return;
    for (int w = 1; w < (int)(blockDim.x >> 5); ++w) {
        lo = min(lo, s_lo[w]); hi = max(hi, s_hi[w]);
    }
    bool nan = is_nan_key(lo) || is_nan_key(hi);
    float cur_lo = nan ? __int_as_float(0x7fc00000) : key2f(lo);
    float cur_hi = nan ? __int_as_float(0x7fc00000) : key2f(hi);
    if (mode == 0) {  // the batch's pair
        *out_min = cur_lo; *out_max = cur_hi;
    } else if (mode == 1) {  // running min and max
        *out_min = first_min(cur_lo, *state_min);
        *out_max = first_max(cur_hi, *state_max);
    } else {  // moving average; a fresh (+inf, -inf) state takes the batch's pair
        float m = *state_min, big_m = *state_max;
        bool fresh = __float_as_int(m) == KEY_POS_INF && __float_as_int(big_m) == (int)0xff800000;
        *out_min = fresh ? cur_lo : average(m, cur_lo, c);
        *out_max = fresh ? cur_hi : average(big_m, cur_hi, c);
    }
}
"""

PAIR, MINMAX, MOVING_AVERAGE = 0, 1, 2


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace("${" + key + "}", value)
    return template


@functools.cache
def _pass_kernel(name: str) -> Any:
    include, ctype, acc, load, variant = _TYPES[name]
    src = _COMMON + _fill(
        _PASS, {"include": include, "ctype": ctype, "acc": acc, "load": load, **variant}
    )
    return cupy.RawKernel(src, "arrayobs_pass")


@functools.cache
def _finish_kernel() -> Any:
    return cupy.RawKernel(_COMMON + _FINISH, "arrayobs_finish")


@functools.cache
def _blocks(device_id: int) -> int:
    sms = cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]
    return int(sms) * 4


def supported(x: Any) -> bool:
    """Whether ``x`` takes these kernels (a non-empty contiguous float16/32/64 array)."""
    return x.dtype.name in _TYPES and x.size > 0 and x.flags.c_contiguous


def update(x: Any, state_min: Any, state_max: Any, mode: int, c: float = 0.0) -> tuple[Any, Any]:
    """New (min, max) as 0-d float32 arrays; ``supported(x)`` must hold.

    ``mode``: PAIR (the batch's own pair; the state is ignored), MINMAX or
    MOVING_AVERAGE (with averaging constant ``c``, rounded to float32).
    """
    blocks = min(_blocks(x.device.id), -(-x.size // (_THREADS * 4)))
    lo = cupy.empty(blocks, cupy.int32)
    hi = cupy.empty(blocks, cupy.int32)
    _pass_kernel(x.dtype.name)((blocks,), (_THREADS,), (x, np.int64(x.size), lo, hi))
    out_min = cupy.empty((), cupy.float32)
    out_max = cupy.empty((), cupy.float32)
    args = (lo, hi, np.int32(blocks), state_min, state_max, out_min, out_max)
    _finish_kernel()((1,), (_THREADS,), (*args, np.int32(mode), np.float32(c)))
    return out_min, out_max


def aminmax(x: Any) -> tuple[Any, Any]:
    """(min, max) as 0-d float32 arrays; ``supported(x)`` must hold."""
    dummy = cupy.empty((), cupy.float32)
    return update(x, dummy, dummy, PAIR)


class CupyBackend(Backend):
    """Per tensor, the whole update in the two kernels above; the rest generic."""

    name = "cupy"

    def device_of(self, x: Any) -> Any:
        return x.device

    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        if self.fast and ch_axis is None and supported(x):
            return aminmax(x)
        return super().aminmax(x, ch_axis)

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        if self.fast and ch_axis is None and supported(x):
            return x  # reduced and folded by the two kernels
        return super().reduce(x, ch_axis)

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        if isinstance(batch, tuple):
            return super().fold(state, batch, rule, ch_axis, fresh)
        if isinstance(rule, core.MovingAverage):
            return core.MinMaxState(*update(batch, *state, MOVING_AVERAGE, float(rule.c32)))
        return core.MinMaxState(*update(batch, *state, MINMAX))


BACKEND = CupyBackend
