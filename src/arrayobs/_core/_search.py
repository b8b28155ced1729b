"""torch 2.13.0's ``_non_linear_param_search``, on the host, bit for bit.

``HistogramObserver.calculate_qparams`` walks candidate ranges ``(start_bin,
end_bin)`` of the histogram, computes each one's L2 quantization error and
stops at the first error above its predecessor's. torch reads every step back
(``.item()``, a device sync each on a GPU). Here the state is read back once
and the whole search runs on the host, in NumPy: a few thousand bins are small,
and the walk's branches are host work in any case. The numbers are torch's:

- the walk (:func:`search_walk`) is torch's loop with its no-change steps
  skipped, lazily, so a search that stops early pays for what it saw;
- thresholds compare float32 tensors with Python floats, which torch casts
  to float32 first; the cumulative sum is a float64 running sum rounded to
  float32 (:func:`cumulative_float32`), the totals ATen's float32 cascade
  (:func:`arrayobs._core._sum.torch_sum`);
- each candidate's error is torch's float32 arithmetic op for op, evaluated
  for a block of candidates at once (:func:`quantization_errors`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from arrayobs._core._histogram import f32
from arrayobs._core._minmax import quiet
from arrayobs._core._sum import torch_sum

STEPSIZE = 1e-5  # the search's quantile granularity
_FIRST = 10  # candidates in the first block (torch evaluates 2 to 9 on typical data)
_ROWS = 256  # candidates per block at most: (256, bins) float32 temporaries
# Below this, a non-integer float32 quotient's floor is floor_divide's (see _floor_quotient).
_SMALL_QUOTIENT = float(2**21)


@functools.cache
def _quantiles() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The search's alpha (0, 1e-5, ...) and beta (1, 1 - 1e-5, ...) as it
    steps them in float64, far enough for any walk."""
    alphas, betas = [0.0], [1.0]
    while alphas[-1] < 1.0 + STEPSIZE:
        alphas.append(alphas[-1] + STEPSIZE)
        betas.append(betas[-1] - STEPSIZE)
    return tuple(alphas), tuple(betas)


# -- the walk ------------------------------------------------------------------------------
def cumulative_float32(histogram: np.ndarray) -> list[float]:
    """``torch.cumsum`` of float32 on the CPU: a float64 running sum, each
    output rounded to float32 (NumPy's cumsum adds in order)."""
    running = np.cumsum(histogram, dtype=np.float64)
    return running.astype(np.float32).tolist()  # type: ignore[no-any-return]


def search_walk(csum: Sequence[float], total: float) -> Iterator[tuple[int, int]]:
    """The (start_bin, end_bin) ``_non_linear_param_search`` evaluates, in
    order, as long as each is accepted (the walk does not depend on the
    errors; the first error above its predecessor stops it, see :func:`search`).

    ``csum`` is torch's cumulative sum (:func:`cumulative_float32`), ``total``
    its ``sum().item()``. Lazy: a search that stops early pays for the
    candidates it saw; torch's no-change steps are skipped in one bisection each.
    """
    if any(later < earlier for earlier, later in itertools.pairwise(csum)):
        yield from _literal_walk(csum, total)
        return
    alphas, betas = _quantiles()
    bins = len(csum)
    a = b = 0
    start, end = 0, bins - 1
    while alphas[a] < betas[b]:
        lo_thr = f32(alphas[a + 1] * total)
        hi_thr = f32(betas[b + 1] * total)
        left = min(end, max(start, bisect.bisect_left(csum, lo_thr)))
        right = max(start, min(end, bisect.bisect_right(csum, hi_thr) - 1))
        if left - start > end - right:
            a += 1
            start = left
            yield start, end
        elif right != end:
            b += 1
            end = right
            yield start, end
        elif start == end:
            return  # nothing can move any more
        else:
            # Nothing moves until beta's threshold drops below csum[end]: skip there.
            b = _next_drop(betas, b + 1, total, csum[end], alphas[a])


def _literal_walk(csum: Sequence[float], total: float) -> Iterator[tuple[int, int]]:
    """:func:`search_walk` for a cumulative sum that decreases somewhere (a loaded
    histogram with negative counts): torch's scans from the current bins, step
    by step, which bisection and the skipped no-change steps would not follow."""
    alphas, betas = _quantiles()
    c = np.asarray(csum, dtype=np.float32)
    a = b = 0
    start, end = 0, len(c) - 1
    while alphas[a] < betas[b]:
        lo_thr = f32(alphas[a + 1] * total)
        hi_thr = f32(betas[b + 1] * total)
        # torch: l from start while csum[l] < lo_thr (up to end); r from end while
        # csum[r] > hi_thr (down to start).
        below = c[start:end] < lo_thr
        left = end if below.all() else start + int(np.argmin(below))
        above = c[start + 1 : end + 1] > hi_thr
        right = start if above.all() else end - int(np.argmin(above[::-1]))
        if left - start > end - right:
            a += 1
            moved = left != start
            start = left
        else:
            b += 1
            moved = right != end
            end = right
        if moved:
            yield start, end


def _next_drop(betas: Sequence[float], b: int, total: float, level: float, alpha: float) -> int:
    """The first beta index >= ``b`` whose next threshold is below ``level``,
    or the first at or below ``alpha`` (where the walk ends), if sooner."""
    lo, hi = b, len(betas) - 2
    while lo < hi:
        mid = (lo + hi) // 2
        if f32(betas[mid + 1] * total) < level or betas[mid] <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


# -- the errors ----------------------------------------------------------------------------
def _floor_quotient(a: np.ndarray, b: np.ndarray, top: float, *, small: bool = False) -> np.ndarray:
    """``clip(floor_divide(a, b), 0, top)`` in float32, as torch's
    ``div(rounding_mode="floor")`` then ``clamp``, at a tenth of the cost.

    floor_divide (NumPy's and ATen's: fmod, then a rounded quotient) is the
    floor of the exact quotient. Where the rounded quotient ``a / b`` is not
    an integer and below 2**21, its floor is that floor too (rounding to
    nearest cannot cross an integer, which float32 holds there, and
    floor_divide's own rounding stays under half a unit); elsewhere (integer,
    large, inf or NaN quotients: about one value in eight) floor_divide runs.
    ``small``: the caller knows every quotient is finite and below 2**21;
    then the quotient is taken in float64, whose floor is the exact
    quotient's (a non-integer quotient of two float32 values below 2**29 is
    farther from an integer than float64's rounding moves it), without the
    second pass.
    """
    if small:
        wide = np.floor(a.astype(np.float64) / b.astype(np.float64))
        return np.clip(wide, 0.0, top, out=wide).astype(np.float32)  # type: ignore[no-any-return]
    q = a / b
    out = np.floor(q)
    again = out == q
    if not small:
        again |= ~(np.abs(q) < _SMALL_QUOTIENT)
    if again.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[again] = np.floor_divide(a[again], np.broadcast_to(b, a.shape)[again])
    return np.clip(out, 0.0, top, out=out)  # type: ignore[no-any-return]


def quantization_errors(
    histogram: np.ndarray, bin_width: float, path: Sequence[tuple[int, int]], nbins: int
) -> np.ndarray:
    """``_compute_quantization_error`` of every candidate in ``path`` at once
    (float32, shape (len(path),)), op for op in float32; the final
    ``norm.sum()`` is ATen's float32 cascade (:func:`torch_sum`)."""
    if not path or bin_width == 0.0:
        # dst_bin_width == 0.0 (max_val == min_val): torch returns 0.0 without computing.
        return np.zeros((len(path),), dtype=np.float32)
    f = np.float32
    bins = histogram.shape[0]
    ends = np.array(path, dtype=np.float64)
    # torch's Python floats, each rounded to float32 (as astype rounds) where a tensor meets it.
    widths = bin_width * (ends[:, 1] - ends[:, 0] + 1.0) / nbins
    with np.errstate(over="ignore"):
        dst, half = (np.reshape(v.astype(f), (-1, 1)) for v in (widths, widths / 2))
    neg_half = -half
    width = f(f32(bin_width))
    begin = np.arange(bins, dtype=f) - np.array([s for s, _ in path], dtype=f).reshape(-1, 1)
    begin *= width
    end = begin + width
    top = float(nbins - 1)
    # |begin|, |end| <= bins * width: all quotients small unless a candidate is tiny.
    small = bins * float(width) / float(dst.min()) < _SMALL_QUOTIENT / 2
    with np.errstate(over="ignore", invalid="ignore"):
        of_begin = _floor_quotient(begin, dst, top, small=small)
        of_end = _floor_quotient(end, dst, top, small=small)
        density = histogram.reshape(1, -1) / width
        three, half_cubed = f(3.0), half * half * half
        # torch: density * ((delta_end**3 - delta_begin**3) / 3), per part.
        delta = begin - (of_begin + f(0.5)) * dst
        norm = half_cubed - delta * delta * delta
        norm /= three
        norm *= density
        whole = (half_cubed - neg_half * neg_half * neg_half) / three
        steps = of_end - of_begin
        steps -= f(1.0)
        steps *= density * whole
        norm += steps
        delta = end - (of_end * dst + half)
        tail = delta * delta * delta
        tail -= neg_half * neg_half * neg_half
        tail /= three
        tail *= density
        norm += tail
    return torch_sum(norm)


def search(
    histogram: np.ndarray, bin_width: float, walk: Iterable[tuple[int, int]], nbins: int
) -> tuple[int, int]:
    """The (start_bin, end_bin) torch's walk ends on: the last candidate before
    the first whose error exceeds its predecessor's.

    The errors are evaluated in blocks of 10, 10, 20, 40, ... 256 candidates taken
    from the lazy ``walk`` (:func:`search_walk`).
    """
    bins = histogram.shape[0]
    chosen, best = (0, bins - 1), math.inf
    walk, size, seen = iter(walk), _FIRST, 0
    while part := list(itertools.islice(walk, size)):
        errors = quantization_errors(histogram, bin_width, part, nbins).tolist()
        for candidate, error in zip(part, errors, strict=True):
            if error > best:
                return chosen
            chosen, best = candidate, error
        seen += len(part)
        size = min(seen, _ROWS)
    return chosen


@quiet  # an infinite bin width (a range past float32's largest) searches as torch: inf, NaN
def search_range(
    histogram: np.ndarray, min_val: float, max_val: float, nbins: int
) -> tuple[float, float]:
    """``_non_linear_param_search``'s new (min, max), as float32 values, from
    the state read back to the host (``histogram`` float32)."""
    bins = histogram.shape[0]
    total = float(torch_sum(histogram.reshape(1, -1))[0])
    walk = search_walk(cumulative_float32(histogram), total)
    chosen = search(histogram, (max_val - min_val) / bins, walk, nbins)
    return chosen_range(min_val, max_val, bins, chosen)


def chosen_range(
    min_val: float, max_val: float, bins: int, chosen: tuple[int, int]
) -> tuple[float, float]:
    """``new_min, new_max`` of the search: float32 tensor arithmetic on the state."""
    width = f32(f32(max_val - min_val) / f32(float(bins)))
    start, end = chosen
    return (
        f32(min_val + f32(width * f32(float(start)))),
        f32(min_val + f32(width * f32(float(end + 1)))),
    )
