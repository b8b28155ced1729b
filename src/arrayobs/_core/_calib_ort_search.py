"""ONNX Runtime 1.31.1's threshold searches on one tensor's histogram, on the host, bit for bit.

The input of every function here is exactly the per-tensor tuple that ORT's
``HistogramCollector`` keeps, ``(hist, hist_edges, min, max, threshold)``
(``threshold`` is absent on the absolute-value path and never read), and the
output is exactly what ``onnxruntime.quantization.calibrate`` computes from
it: the same values, dtypes and Python types.

- :func:`entropy_threshold` is ``HistogramCollector.get_entropy_threshold``.
  ORT walks its candidate windows one at a time and merges bins with Python
  loops. Here the candidates are rows of a 2-D array, built block by block:
  the integer steps (outlier counts, merged bins, truncated expansion, the
  smoothing masks) are exact whatever the order; every float32 step is the
  same NumPy operation on the same values (elementwise, so position in a row
  does not matter), and each of the three float32 sums runs on a contiguous
  row of exactly the candidate's length, so NumPy's pairwise grouping is the
  one ORT gets.
- :func:`percentile_thresholds` is one tensor of ``compute_percentile``.
- :func:`distribution` is one tensor of ``compute_distribution``.

ORT's NumPy warnings (a 0/0 in an empty histogram's cdf, an |v|/v at a zero
bin centre) are not repeated: they never change a result.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

_EPS = 1e-4  # quant_utils.smooth_distribution's eps
_BLOCK_ELEMENTS = 1 << 21  # candidates x window length per block: a few MB per temporary


def _window_bounds(n: int, half: int, z: int) -> tuple[Any, Any, Any]:
    i = np.arange(half, z + 1, dtype=np.int64)
    start = z - i
    end = np.minimum(z + i + 1, n)
    return start, end, end - start


def _smooth(v: Any, valid: Any, length: Any) -> tuple[Any, Any, Any, Any]:
    """quant_utils.smooth_distribution on each row: (smoothed, none, eps1 >= 1, any <= 0)."""
    zeros = (v == 0) & valid
    nonzeros = (v != 0) & valid
    n_zeros = np.count_nonzero(zeros, axis=1)
    n_nonzeros = length - n_zeros
    none = n_nonzeros == 0
    eps1 = _EPS * n_zeros.astype(np.float64) / np.where(none, 1, n_nonzeros).astype(np.float64)
    # ORT adds f32(eps) * is_zeros + f32(-eps1) * is_nonzeros; the masks are 0/1.
    add = np.where(
        zeros, np.float32(_EPS), np.where(nonzeros, (-eps1).astype(np.float32)[:, None], 0)
    )
    out = v.astype(np.float32) + add.astype(np.float32)
    big = ~none & (eps1 >= 1.0)
    nonpositive = ~none & ~big & np.any((out <= 0) & valid, axis=1)
    return out, none, big, nonpositive


def _row_sums(a: Any, length: Any) -> Any:
    # NumPy's pairwise grouping depends on the length: sum each row's own prefix.
    return np.array([np.sum(a[r, :k]) for r, k in enumerate(length.tolist())], dtype=np.float32)


def _smoothing_error(
    rows: Any, which: str, big: Any, nonpositive: Any, v: Any, length: Any
) -> AssertionError:
    r = int(rows[0])
    n_zeros = np.float32(np.count_nonzero(v[r, : length[r]] == 0))
    n_nonzeros = np.float32(int(length[r]) - n_zeros)
    eps1 = _EPS * float(n_zeros) / float(n_nonzeros)
    if big[r]:
        msg = (
            f"n_zeros={n_zeros}, n_nonzeros={n_nonzeros}, eps1={eps1} (ORT's "
            f"smooth_distribution of {which} asserts eps1 < 1: fewer than 10000 empty "
            "bins per occupied bin in a candidate window)"
        )
    else:
        msg = f"ORT's smooth_distribution of {which} asserts every smoothed bin > 0 (eps1={eps1})"
    return AssertionError(msg)


def _kl_block(hist: Any, cum: Any, start: Any, end: Any, length: Any, nq: int, dtype: Any) -> Any:
    """KL divergence of each candidate window (one row each), as ORT's loop body computes it."""
    n = hist.size
    rows = np.arange(start.size)
    width = int(length.max())
    j = np.arange(width, dtype=np.int64)
    valid = j < length[:, None]
    sliced = np.where(valid, hist[np.minimum(start[:, None] + j, n - 1)], 0)
    p = sliced.copy()
    p[rows, 0] += cum[start]
    p[rows, length - 1] += cum[n] - cum[end]
    nonzeros = (p != 0) & valid

    # q: each window cut into nq runs of m = len // nq bins (the remainder joins
    # the last run's total but is not expanded); each run's total over its
    # occupied-bin count, truncated to int64, fills the whole run.
    merged = length // nq
    run = j // np.maximum(merged, 1)[:, None]
    in_runs = j < (nq * merged)[:, None]
    zero_col = np.zeros((start.size, 1), dtype=np.int64)
    sliced_cum = np.concatenate([zero_col, np.cumsum(sliced, axis=1)], axis=1)
    nz_cum = np.concatenate([zero_col, np.cumsum(nonzeros, axis=1, dtype=np.int64)], axis=1)
    lo = np.minimum(run * merged[:, None], width)
    hi = np.minimum((run + 1) * merged[:, None], width)
    total_hi = np.where(run == nq - 1, length[:, None], hi)
    totals = np.take_along_axis(sliced_cum, total_hi, 1) - np.take_along_axis(sliced_cum, lo, 1)
    norm = np.take_along_axis(nz_cum, hi, 1) - np.take_along_axis(nz_cum, lo, 1)
    expanded = (totals / np.where(norm == 0, 1, norm)).astype(np.int64)
    q = np.where(in_runs & (norm != 0), expanded, 0)

    ps, p_none, p_big, p_nonpos = _smooth(p, valid, length)
    qs, q_none, q_big, q_nonpos = _smooth(q, valid, length)
    failed = np.flatnonzero(p_big | p_nonpos | q_big | q_nonpos)
    if failed.size:
        r = failed[:1]
        if p_big[r[0]] or p_nonpos[r[0]]:
            raise _smoothing_error(r, "p", p_big, p_nonpos, p, length)
        raise _smoothing_error(r, "q", q_big, q_nonpos, q, length)
    skip = p_none | q_none

    with np.errstate(all="ignore"):
        pk = np.where(valid, ps, np.float32(1))
        qk = np.where(valid, qs, np.float32(1))
        pk = pk / _row_sums(pk, length)[:, None]
        qk = qk / _row_sums(qk, length)[:, None]
        vec = pk * np.log(pk / qk)
        # ORT's rel_entr: 0 where pk == 0 and qk >= 0, then inf wherever not (pk > 0 and qk > 0).
        vec = np.where((pk == 0) & (qk >= 0), np.float32(0), vec)
        vec = np.where((pk > 0) & (qk > 0), vec, np.float32(np.inf))
        kl = _row_sums(vec, length)
    out = np.array(kl, dtype=dtype).astype(np.float64)
    out[skip] = np.array(np.inf, dtype=dtype)
    return out


def entropy_threshold(histogram: tuple[Any, ...], num_quantized_bins: int) -> tuple[Any, Any]:
    """ORT's ``HistogramCollector.get_entropy_threshold``, bit for bit.

    Parameters
    ----------
    histogram : tuple
        ORT's per-tensor histogram ``(hist, hist_edges, min, max, threshold)``.
    num_quantized_bins : int
        ORT's ``num_quantized_bins``.

    Returns
    -------
    tuple
        ``(low, high)``: the edges of the candidate window with the smallest
        KL divergence (the first on a tie), clamped to the data's ``(min,
        max)``; the same NumPy objects ORT returns.

    Raises
    ------
    ValueError
        ``num_quantized_bins // 2 > len(hist) // 2`` (no candidate; ORT raises
        ValueError from ``np.zeros`` or ``np.argmin``).
    ZeroDivisionError
        ``num_quantized_bins == 0`` (as ORT).
    IndexError
        ``num_quantized_bins < 0`` (as ORT, which indexes an empty window).
    AssertionError
        ORT's smoothing asserts on a candidate window with 10 000 or more
        empty bins per occupied one.

    Examples
    --------
    >>> import numpy as np
    >>> hist = np.array([0, 1, 8, 30, 8, 1, 0], dtype=np.int64)
    >>> edges = np.linspace(-3.5, 3.5, 8, dtype=np.float32)
    >>> entropy_threshold((hist, edges, np.float32(-2.7), np.float32(2.6), np.float32(3.5)), 3)
    (np.float32(-1.5), np.float32(1.5))
    """
    nq = operator.index(num_quantized_bins)
    hist = np.asarray(histogram[0])
    edges = histogram[1]
    n = hist.size
    z = n // 2
    half = nq // 2
    count = z - half + 1
    if count <= 0:
        msg = (
            f"num_quantized_bins={nq} needs a histogram of at least {2 * half} bins for "
            f"ORT's entropy search (num_bins // 2 >= num_quantized_bins // 2); this one has {n}"
        )
        raise ValueError(msg)
    if nq == 0:
        msg = (
            "num_quantized_bins=0: ORT's entropy search divides each window into "
            "num_quantized_bins runs"
        )
        raise ZeroDivisionError(msg)
    if nq < 0:
        msg = f"num_quantized_bins={nq}: ORT's entropy search needs a positive number of them"
        raise IndexError(msg)
    dtype = edges.dtype
    start, end, length = _window_bounds(n, half, z)
    cum = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(hist, dtype=np.int64)])
    kl = np.empty(count, dtype=np.float64)
    a = 0
    while a < count:
        # Windows grow by 2 bins per candidate: a block of rows wastes little padding.
        b = a + 1
        while b < count and (b + 1 - a) * int(length[b]) <= _BLOCK_ELEMENTS:
            b += 1
        kl[a:b] = _kl_block(hist, cum, start[a:b], end[a:b], length[a:b], nq, dtype)
        a = b
    best = int(np.argmin(kl))
    low, high = edges[int(start[best])], edges[int(end[best])]
    # Python's max/min: the first argument unless the second is beyond it (ORT's clamp).
    low = max(low, histogram[2])
    high = min(high, histogram[3])
    return low, high


def percentile_thresholds(
    histogram: tuple[Any, ...], percentile: float, symmetric: bool
) -> tuple[Any, ...]:
    """One tensor of ORT's ``HistogramCollector.compute_percentile``, bit for bit.

    Returns ORT's tuple ``(low, high, hist[0], hist[1])`` (ORT appends the
    first two counts where a histogram would be expected). ``low``/``high``
    are the left edges of the first bins whose cumulative share reaches the
    level(s), clamped to the data's ``(min, max)``.

    Raises
    ------
    ValueError
        ``percentile`` outside ``[0, 100]`` (as ORT).

    Examples
    --------
    >>> import numpy as np
    >>> hist = np.array([1, 2, 4, 2, 1], dtype=np.int64)
    >>> edges = np.linspace(-2.5, 2.5, 6, dtype=np.float32)
    >>> data = (hist, edges, np.float32(-2.2), np.float32(2.1), np.float32(2.5))
    >>> lo, hi, *_ = percentile_thresholds(data, 50.0, False)
    >>> float(lo), float(hi)
    (-1.5, 0.5)
    """
    if percentile < 0 or percentile > 100:
        msg = f"Invalid percentile. Must be in range 0 <= percentile <= 100 (got {percentile!r})."
        raise ValueError(msg)
    hist, edges = histogram[0], histogram[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.cumsum(hist / hist.sum())
    if symmetric:
        right = np.array(edges[np.searchsorted(cdf, percentile / 100.0)], dtype=edges.dtype)
        low, high = -right, right
    else:
        cut = (100.0 - percentile) / 200.0
        high = np.array(edges[np.searchsorted(cdf, 1.0 - cut)], dtype=edges.dtype)
        low = np.array(edges[np.searchsorted(cdf, cut)], dtype=edges.dtype)
    # Python's max/min: the first argument unless the second is beyond it (ORT's clamp).
    low = max(low, histogram[2])
    high = min(high, histogram[3])
    return (low, high, *hist[:2])


def _avg_std(hist: Any, edges: Any, power: float) -> tuple[Any, Any]:
    centres = (edges[:-1] + edges[1:]) * 0.5
    if power != 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            sign = np.abs(centres) / centres
        sign[np.isnan(sign) | np.isinf(sign)] = 1
        centres = np.abs(centres) ** power * sign
    total = hist.sum()
    avg = (hist * centres).sum() / total
    std = ((hist * centres**2).sum() / total - avg**2) ** 0.5
    return np.array(avg, dtype=edges.dtype), np.array(std, dtype=edges.dtype)


def distribution(histogram: tuple[Any, ...], num_bins: int, scenario: str) -> dict[str, Any]:
    """One tensor of ORT's ``HistogramCollector.compute_distribution``, bit for bit.

    ``num_bins`` is the collector's configured bin count (ORT checks it, not
    the histogram's). Returns the fields of ORT's ``TensorData`` in its order:
    ``avg``, ``std`` (0-d arrays of the edges' dtype), ``hist``,
    ``hist_edges`` (the inputs), ``lowest``, ``highest`` (the edges' min and
    max: the histogram's whole range).

    Raises
    ------
    ValueError
        ``num_bins < 512`` or ``scenario`` not ``"same"``/``"p3"`` (as ORT).
    AssertionError
        float64 edges (as ORT, which checks them before the scenario).

    Examples
    --------
    >>> import numpy as np
    >>> hist = np.array([1, 2, 1], dtype=np.int64)
    >>> edges = np.array([-1.5, -0.5, 0.5, 1.5], dtype=np.float32)
    >>> d = distribution((hist, edges, np.float32(-1), np.float32(1), np.float32(1.5)), 512, "same")
    >>> float(d["avg"]), float(d["std"]), float(d["highest"])
    (0.0, 0.7071067690849304, 1.5)
    """
    if num_bins < 512:
        msg = f"Invalid num_bins. Must be in range 512 <= num_bins (got {num_bins!r})."
        raise ValueError(msg)
    hist, edges = histogram[0], histogram[1]
    if edges.dtype == np.float64:
        msg = "ORT's distribution method asserts that the edges are not float64 (float64 data)"
        raise AssertionError(msg)
    if scenario not in ("same", "p3"):
        msg = f"Invalid scenario. Must be in {{'same', 'p3'}} (got {scenario!r})."
        raise ValueError(msg)
    avg, std = _avg_std(hist, edges, 1 if scenario == "same" else 1.0 / 3.0)
    return {
        "avg": avg,
        "std": std,
        "hist": hist,
        "hist_edges": edges,
        "lowest": edges.min(),
        "highest": edges.max(),
    }
