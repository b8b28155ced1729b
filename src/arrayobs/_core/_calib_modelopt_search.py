"""ModelOpt 0.47.0's histogram searches (``calib/histogram.py``), on the host, bit for bit.

``HistogramCalibrator.compute_amax`` hands its histogram to one of three
functions; these are the same functions, in NumPy, with the same numbers:

- entropy (:func:`amax_entropy`): TensorRT's KL search. ModelOpt builds each
  candidate's quantized distribution with Python loops over the source bins
  (quadratic in the bin count). Here the groups come from prefix sums: a
  group's total is a sum of integer counts, exact in float64 in any order,
  and each group's mean is one float64 division of two exact integers, so
  they are the reference's values. The two sums whose order matters (the
  quantized distribution's total and the divergence) stay ``np.sum`` over the
  candidate's own row, as SciPy calls it; the divergence's ``rel_entr`` is
  SciPy 1.17.1's (xsf) three-branch formula, elementwise.
- mse (:func:`amax_mse`): the reference calls ``fake_tensor_quant(centers,
  amax, num_bits, unsigned)``, whose third and fourth parameters are ``bias``
  and ``num_bits``: the centres are shifted by ``num_bits`` and quantized with
  ``int(unsigned)`` bits. Under that call every centre quantizes to the same
  value, a constant per candidate, so every candidate's error is one float32
  row and all rows are summed at once in ATen's order
  (:func:`arrayobs._core._sum.torch_sum`). This reproduces the reference as it
  runs on the CPU, bug included (the result is almost always
  ``centers[start_bin]``).
- percentile (:func:`amax_percentile`): NumPy's cumulative sum and
  ``searchsorted``, as the reference.

Every function takes ModelOpt's NumPy view of the histogram: int32 counts from
``torch.histc`` (``hist.int()``) or int64 counts from ``np.histogram``, and the
edges as stored (float32, or float64 after a NumPy-mode growth). Each returns
a 0-d float32 array (the reference's ``torch.tensor(float)`` with the default
dtype, or its float32 ``centers[i]``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from arrayobs._compat import numpy_avx512
from arrayobs._core._sum import torch_sum

__all__ = [
    "amax_entropy",
    "amax_mse",
    "amax_percentile",
    "entropy_divergences",
    "numpy_logs_are_libm",
    "rel_entr",
]

_EPSILON = np.float32(1.0 / (1 << 24))  # _tensor_quant's "amax is zero" threshold
_MSE_ROWS = 256  # mse candidates per block: (256, bins) float32 temporaries


def rel_entr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SciPy 1.17.1 ``special.rel_entr`` (xsf) in float64, elementwise.

    xsf picks ``x * log1p((x - y) / y)`` near ``x == y``, ``x * log(x / y)`` for a
    normal ratio and ``x * (log(x) - log(y))`` otherwise. Its logs are libm's.
    NumPy's float64 ``log``/``log1p`` are libm's too unless its AVX512 loops run
    (its own SIMD ``log``, SVML's ``log1p``: 1 ulp off libm's on some values);
    then the logs are taken with :mod:`math` (libm), one value at a time
    (:func:`numpy_logs_are_libm`).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        ratio = x / y
        near = (ratio > 0.5) & (ratio < 2.0)
        normal = (np.finfo(np.float64).tiny < ratio) & (ratio < np.inf)
        both = (x > 0) & (y > 0)
        if numpy_logs_are_libm():
            value = np.where(near, x * np.log1p((x - y) / y), x * np.log(ratio))
            other = ~near & ~normal
            if other.any():
                value = np.where(other, x * (np.log(x) - np.log(y)), value)
        else:
            value = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=np.float64)
            xb, yb, rb = (np.broadcast_to(v, value.shape) for v in (x, y, ratio))
            pick = both & near
            value[pick] = xb[pick] * _libm(math.log1p, (xb[pick] - yb[pick]) / yb[pick])
            pick = both & ~near & normal
            value[pick] = xb[pick] * _libm(math.log, rb[pick])
            pick = both & ~near & ~normal
            if pick.any():
                logs = _libm(math.log, xb[pick]) - _libm(math.log, yb[pick])
                value[pick] = xb[pick] * logs
        value = np.where(both, value, np.where((x == 0) & (y >= 0), 0.0, np.inf))
        return np.where(np.isnan(x) | np.isnan(y), np.nan, value)  # type: ignore[no-any-return]


def _libm(function: Any, values: np.ndarray) -> np.ndarray:
    """``function`` (a :mod:`math` one: the C library's) of every value, float64."""
    return np.fromiter(map(function, values.tolist()), dtype=np.float64, count=values.size)


# Values on which NumPy's AVX512 log/log1p and libm's differed on the machine measured
# (docs/exactness.md, "CPU dispatch"): a spread of magnitudes and ratios near 1.
_PROBE = np.concatenate(
    [np.geomspace(1e-300, 1e300, 2003), np.linspace(0.5, 2.0, 4001), np.linspace(-0.49, 1.0, 4001)]
)


@functools.lru_cache(maxsize=1)
def numpy_logs_are_libm() -> bool:
    """Whether NumPy's float64 ``log`` and ``log1p`` are the C library's here:
    False when one of NumPy's AVX512 dispatch targets (``X86_V4``, ``AVX512_*``)
    is on, or when either differs from :mod:`math`'s on a probe of values."""
    if numpy_avx512():
        return False
    positive = _PROBE[_PROBE > 0]
    near = _PROBE[_PROBE > -0.5]
    return bool(
        np.array_equal(np.log(positive), _libm(math.log, positive))
        and np.array_equal(np.log1p(near), _libm(math.log1p, near))
    )


def _quantized_bins(num_bits: int, unsigned: bool) -> int:
    """``1 << (num_bits - 1 + int(unsigned))``, the reference's target bin count;
    a negative shift is Python's ValueError, as in the reference."""
    return 1 << (num_bits - 1 + int(unsigned))


def entropy_divergences(
    hist: np.ndarray, num_bits: int, unsigned: bool, stride: int, start_bin: int
) -> np.ndarray:
    """The reference's ``divergences`` array (float64, one per candidate
    ``i in range(start_bin, len(hist) + 1, stride)``), on a copy of ``hist``
    whose first bin is set to its second, as the reference does."""
    bins = np.array(hist, copy=True)
    bins[0] = bins[1]  # a 1-bin histogram: IndexError, as the reference
    total = np.sum(bins)
    nq = _quantized_bins(num_bits, unsigned)
    size = len(bins)
    nonzero = bins != 0
    prefix = np.concatenate([[0], np.cumsum(bins, dtype=np.int64)])
    prefix_nz = np.concatenate([[0], np.cumsum(nonzero, dtype=np.int64)])
    ks = np.arange(nq + 1, dtype=np.int64)
    out = []
    for i in range(start_bin, size + 1, stride):
        # digitize(j, linspace(0, i, nq + 1)) - 1 == j * nq // i exactly: nq is a
        # power of two, so every linspace point k * (i / nq) is exact.
        bounds = np.minimum((ks * i + nq - 1) // nq, i)
        sums = (prefix[bounds[1:]] - prefix[bounds[:-1]]).astype(np.float64)
        counts = prefix_nz[bounds[1:]] - prefix_nz[bounds[:-1]]
        with np.errstate(all="ignore"):
            means = sums / counts
        group = np.arange(i, dtype=np.int64) * nq // i if i else np.zeros(0, np.int64)
        new = np.where(nonzero[:i], means[group], 0.0)
        tail = prefix[size] - prefix[i]
        new_total = np.sum(new) + tail
        reference = np.array(bins[:i])
        reference[-1] += tail  # i == 0: IndexError, as the reference
        old_total = np.sum(reference)
        if round(new_total) != total or round(old_total) != total:
            msg = (
                f"Count mismatch! total_counts_new={new_total}, "
                f"total_counts_old={old_total}, total_data={total}"
            )
            raise RuntimeError(msg)
        with np.errstate(all="ignore"):
            pk = reference.astype(np.float64) / np.sum(reference.astype(np.float64))
            qk = new / np.sum(new)
        out.append(np.sum(rel_entr(pk, qk)))
    return np.array(out, dtype=np.float64)


def amax_entropy(
    hist: np.ndarray,
    edges: np.ndarray,
    num_bits: int,
    unsigned: bool,
    stride: int = 1,
    start_bin: int = 128,
) -> np.ndarray:
    """``_compute_amax_entropy``: the edge after the candidate with the last
    smallest divergence (ties go to the widest range; a NaN wins). No candidate
    (``start_bin > len(hist)``) is NumPy's ValueError, as in the reference."""
    divergences = entropy_divergences(hist, num_bits, unsigned, stride, start_bin)
    last = len(divergences) - 1 - int(np.argmin(divergences[::-1]))
    return np.asarray(np.float32(edges[last * stride + start_bin].item()))


def _mse_quantized(centers: np.ndarray, num_bits: int, unsigned: bool) -> np.ndarray:
    """What ``fake_tensor_quant(centers, centers[i], num_bits, unsigned)`` gives
    on the CPU for every candidate ``i``, one float32 value each: the call sets
    ``bias = num_bits`` and quantizes with ``int(unsigned)`` bits, so the bounds
    are ``±(2**(int(unsigned) - 1) - 1)``; for 0 bits ``min > max`` and clamp
    returns ``max`` for every input, for 1 bit the bounds are ±0 and the
    rescale divides 0 by a zero scale (NaN) unless amax is below 2**-24."""
    bits = int(unsigned)
    max_bound = np.float32(2.0 ** (bits - 1) - 1.0)
    bias = np.float32(num_bits)
    with np.errstate(all="ignore"):
        scale = np.float32(max_bound) / centers
        tiny = centers <= _EPSILON
        divisor = np.where(tiny, np.float32(1.0), scale)
        clamped = np.float32(max_bound)  # clamp(round(x * scale), -max, max) with -max >= max
        if bits:
            # bounds ±0: the clamped value is a zero; 0 / scale is NaN unless tiny
            return np.where(tiny, bias, np.float32(np.nan)).astype(np.float32)
        return (clamped / divisor + bias).astype(np.float32)  # type: ignore[no-any-return]


def amax_mse(
    hist: np.ndarray,
    edges: np.ndarray,
    num_bits: Any,
    unsigned: bool,
    stride: int = 1,
    start_bin: int = 128,
) -> np.ndarray:
    """``_compute_amax_mse`` as it runs on the CPU (see the module docstring):
    the first candidate centre with the smallest mean squared error (a NaN
    wins); no candidate is NumPy's ValueError, as in the reference."""
    if not (isinstance(num_bits, int) and num_bits >= 0):
        if num_bits == (4, 3):
            msg = "the mse search with num_bits=(4, 3) (scaled_e4m3) is not implemented"
            raise NotImplementedError(msg)
        msg = "Invalid num_bits. num_bits must be a positive integer or tuple (4,3)."
        raise TypeError(msg)
    counts = np.asarray(hist).astype(np.float32)
    e32 = np.asarray(edges).astype(np.float32)
    centers = ((e32[1:] + e32[:-1]) / np.float32(2)).astype(np.float32)
    n = len(centers)
    if len(counts) != n and 1 not in (len(counts), n):
        # torch's broadcasting error, raised by the reference when its torch-mode
        # histogram has one bin more or less than its edges (after a growth)
        msg = (
            f"The size of tensor a ({n}) must match the size of tensor b "
            f"({len(counts)}) at non-singleton dimension 0"
        )
        raise RuntimeError(msg)
    width = max(n, len(counts))
    candidates = np.arange(start_bin, n, stride) if start_bin < n else np.zeros(0, np.int64)
    if candidates.size == 0:
        np.argmin([])  # NumPy's ValueError, as the reference's argmin of an empty list
    if np.any(centers[candidates] < 0):
        # _tensor_quant refuses a negative amax: NumPy-mode edges start at the
        # data's min, which is below zero when a first batch was one value
        msg = "Negative values in amax"
        raise ValueError(msg)
    quantized = _mse_quantized(centers[candidates], num_bits, unsigned)
    errors = np.empty(len(candidates), dtype=np.float32)
    with np.errstate(all="ignore"):
        for lo in range(0, len(candidates), _MSE_ROWS):
            q = quantized[lo : lo + _MSE_ROWS, None]
            diff = (q - centers[None, :]).astype(np.float32)
            rows = np.broadcast_to(diff * diff * counts[None, :], (len(q), width))
            errors[lo : lo + _MSE_ROWS] = torch_sum(rows) / np.float32(width)
    best = int(np.argmin(errors))
    return np.asarray(centers[candidates[best]])


def amax_percentile(hist: np.ndarray, edges: np.ndarray, percentile: float) -> np.ndarray:
    """``_compute_amax_percentile``: the left edge of the bin where the
    cumulative share reaches ``percentile / 100``."""
    if percentile < 0 or percentile > 100:
        msg = "Invalid percentile. Must be in range 0 <= percentile <= 100."
        raise ValueError(msg)
    total = hist.sum()
    with np.errstate(all="ignore"):
        cdf = np.cumsum(hist / total)
    index = np.searchsorted(cdf, percentile / 100)
    return np.asarray(np.float32(edges[index].item()))
