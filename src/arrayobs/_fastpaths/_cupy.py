"""CuPy: min and max in one pass over the input, in one kernel.

``cupy.min`` + ``cupy.max`` read the input twice. This kernel reads each
element once (a grid-stride loop, four loads in flight per thread), keeps a
running min, max and NaN flag per thread, reduces them per block with warp
shuffles, and writes one (min, max) per block; ``cupy.min``/``cupy.max`` of
those few hundred partials finish it. Nothing is read back to the host.

``fminf``/``fmaxf`` ignore NaN, so NaN is tracked separately and propagates to
both results, as in the generic path. 16-bit floats are widened to float32
and float64 is reduced in double (both exact; the float32 cast of the result
is monotonic), other dtypes take the generic path.
"""

from __future__ import annotations

import functools
from typing import Any

import cupy

_THREADS = 256
# Below this many elements two library reductions cost about the same.
MIN_SIZE = 1 << 16

_SOURCE = r"""
${include}
#define POS_INF __int_as_float(0x7f800000)
#define QNAN __int_as_float(0x7fffffff)
typedef ${ctype} in_t;
typedef ${acc} acc_t;

__device__ __forceinline__ acc_t load(const in_t* x, long long i) { return (acc_t)(${load}); }

extern "C" __global__ void arrayobs_minmax(const in_t* __restrict__ x, long long n,
                                           float* lo_out, float* hi_out) {
    acc_t lo = (acc_t)POS_INF, hi = -(acc_t)POS_INF;
    int nan = 0;
    long long stride = (long long)blockDim.x * gridDim.x;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        acc_t a = load(x, i), b = load(x, i + stride);
        acc_t c = load(x, i + 2 * stride), d = load(x, i + 3 * stride);
        nan |= (a != a) | (b != b) | (c != c) | (d != d);
        lo = ${fmin}(lo, ${fmin}(${fmin}(a, b), ${fmin}(c, d)));
        hi = ${fmax}(hi, ${fmax}(${fmax}(a, b), ${fmax}(c, d)));
    }
    for (; i < n; i += stride) {
        acc_t a = load(x, i);
        nan |= (a != a);
        lo = ${fmin}(lo, a);
        hi = ${fmax}(hi, a);
    }
    for (int off = 16; off > 0; off >>= 1) {
        lo = ${fmin}(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = ${fmax}(hi, __shfl_down_sync(0xffffffffu, hi, off));
        nan |= __shfl_down_sync(0xffffffffu, nan, off);
    }
    __shared__ acc_t s_lo[32], s_hi[32];
    __shared__ int s_nan[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { s_lo[warp] = lo; s_hi[warp] = hi; s_nan[warp] = nan; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w) {
            lo = ${fmin}(lo, s_lo[w]); hi = ${fmax}(hi, s_hi[w]); nan |= s_nan[w];
        }
        lo_out[blockIdx.x] = nan ? QNAN : (float)lo;
        hi_out[blockIdx.x] = nan ? QNAN : (float)hi;
    }
}
"""

_TYPES = {
    # dtype name: (header, C type, accumulator, load expression, min, max)
    "float32": ("", "float", "float", "x[i]", "fminf", "fmaxf"),
    "float16": (
        "#include <cuda_fp16.h>",
        "__half",
        "float",
        "__half2float(x[i])",
        "fminf",
        "fmaxf",
    ),
    "float64": ("", "double", "double", "x[i]", "fmin", "fmax"),
}


@functools.cache
def _kernel(name: str) -> Any:
    include, ctype, acc, load, fmin, fmax = _TYPES[name]
    src = (
        _SOURCE.replace("${include}", include)
        .replace("${ctype}", ctype)
        .replace("${acc}", acc)
        .replace("${load}", load)
        .replace("${fmin}", fmin)
        .replace("${fmax}", fmax)
    )
    return cupy.RawKernel(src, "arrayobs_minmax")


@functools.cache
def _blocks(device_id: int) -> int:
    sms = cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]
    return int(sms) * 4


def supported(x: Any) -> bool:
    return x.dtype.name in _TYPES and x.size >= MIN_SIZE and x.flags.c_contiguous


def aminmax(x: Any) -> tuple[Any, Any]:
    """(min, max) as 0-d float32 arrays; ``supported(x)`` must hold."""
    blocks = min(_blocks(x.device.id), -(-x.size // (_THREADS * 4)))
    lo = cupy.empty(blocks, cupy.float32)
    hi = cupy.empty(blocks, cupy.float32)
    _kernel(x.dtype.name)((blocks,), (_THREADS,), (x, cupy.int64(x.size), lo, hi))
    return cupy.min(lo), cupy.max(hi)
