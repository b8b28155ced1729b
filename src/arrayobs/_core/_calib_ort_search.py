"""ONNX Runtime 1.31.1's threshold searches on one tensor's histogram, on the host, bit for bit.

The input of every function here is exactly the per-tensor tuple that ORT's
``HistogramCollector`` keeps, ``(hist, hist_edges, min, max, threshold)``
(``threshold`` is absent on the absolute-value path and never read), and the
output is exactly what ``onnxruntime.quantization.calibrate`` computes from
it: the same values, dtypes and Python types.

- :func:`entropy_threshold` is ``HistogramCollector.get_entropy_threshold``.
  ORT walks its candidate windows one at a time and merges bins with Python
  loops. Here the candidates are rows of a 2-D array, built block by block:
  the integer steps (outlier counts, run totals, the truncated expansion, the
  smoothing's zero counts) are exact whatever the order, so they come from
  running sums of the histogram; only the smoothed float32 rows are built.
  Every float32 step is the same NumPy operation on the same values
  (elementwise, so position in a row does not matter), and each of the three
  float32 sums runs on a contiguous row of exactly the candidate's length, so
  NumPy's pairwise grouping is the one ORT gets.
- :func:`percentile_thresholds` is one tensor of ``compute_percentile``.
- :func:`distribution` is one tensor of ``compute_distribution``.

ORT's NumPy warnings (a 0/0 in an empty histogram's cdf, an |v|/v at a zero
bin centre) are not repeated: they never change a result.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np

_EPS = 1e-4  # quant_utils.smooth_distribution's eps
_BLOCK_ELEMENTS = 1 << 21  # candidates x window length per block: a few MB per temporary


def _window_bounds(n: int, half: int, z: int) -> tuple[Any, Any, Any]:
    i = np.arange(half, z + 1, dtype=np.int64)
    start = z - i
    end = np.minimum(z + i + 1, n)
    return start, end, end - start


class _Smoothed(NamedTuple):
    """quant_utils.smooth_distribution's scalars per row (candidate window)."""

    add: Any  # float32: what a non-zero bin gets, f32(-eps1)
    none: Any  # no non-zero bin: ORT's smoothing returns None (KL = inf)
    big: Any  # eps1 >= 1: ORT asserts
    n_zeros: Any


def _smoothing(n_zeros: Any, length: Any) -> _Smoothed:
    n_nonzeros = length - n_zeros
    none = n_nonzeros == 0
    eps1 = _EPS * n_zeros.astype(np.float64) / np.where(none, 1, n_nonzeros).astype(np.float64)
    # ORT adds f32(eps) * is_zeros + f32(-eps1) * is_nonzeros (0/1 masks) to f32(counts).
    return _Smoothed((-eps1).astype(np.float32), none, ~none & (eps1 >= 1.0), n_zeros)


def _row_sums(a: Any, length: Any) -> Any:
    # NumPy's pairwise grouping depends on the length: sum each row's own prefix.
    add = np.add.reduce
    return np.array([add(a[r, :k]) for r, k in enumerate(length.tolist())], dtype=np.float32)


def _smoothing_error(which: str, n_zeros: int, length: int, big: bool) -> AssertionError:
    zeros = np.float32(n_zeros)
    nonzeros = np.float32(length - zeros)
    eps1 = _EPS * float(zeros) / float(nonzeros)
    if big:
        msg = (
            f"n_zeros={zeros}, n_nonzeros={nonzeros}, eps1={eps1} (ORT's "
            f"smooth_distribution of {which} asserts eps1 < 1: fewer than 10000 empty "
            "bins per occupied bin in a candidate window)"
        )
    else:
        msg = f"ORT's smooth_distribution of {which} asserts every smoothed bin > 0 (eps1={eps1})"
    return AssertionError(msg)


class _Hist(NamedTuple):
    """The histogram and its running sums, shared by every block of candidates."""

    counts: Any  # int64 (n,)
    padded: Any  # float32 counts, then zeros: a window read past n stays in bounds
    cum: Any  # int64 (n+1,): sum of counts[:k]
    nonzero_cum: Any  # int64 (n+1,): number of non-zero counts in counts[:k]


def _prepare(hist: Any, pad: int) -> _Hist:
    zero = np.zeros(1, dtype=np.int64)
    return _Hist(
        hist,
        np.concatenate([hist.astype(np.float32), np.zeros(pad, dtype=np.float32)]),
        np.concatenate([zero, np.cumsum(hist, dtype=np.int64)]),
        np.concatenate([zero, np.cumsum(hist != 0, dtype=np.int64)]),
    )


def _windows(h: _Hist, start: Any, width: int) -> Any:
    """Row r: the float32 counts from start[r] on (start falls by one per row: a strided view)."""
    step = h.padded.strides[0]
    base = h.padded[int(start[0]) :]
    return np.lib.stride_tricks.as_strided(
        base, (start.size, width), (-step, step), writeable=False
    )


def _kl_block(h: _Hist, start: Any, end: Any, length: Any, nq: int, dtype: Any) -> Any:
    """KL divergence of each candidate window (one row each), as ORT's loop body computes it.

    p is the window with the outliers added to its end bins; q cuts the window
    into nq runs of m = len // nq bins, each run's total (without outliers;
    the remainder joins the last run's total but is not expanded) over its
    count of non-zero p bins, truncated to int64, filling the run. Counts,
    totals and zero counts come from the running sums, exactly; only the
    smoothed float32 rows are built.
    """
    n = h.counts.size
    rows = np.arange(start.size)
    width = int(length.max())
    last = end - 1
    one = length == 1
    first_p = h.counts[start] + h.cum[start] + np.where(one, h.cum[n] - h.cum[end], 0)
    last_p = np.where(one, first_p, h.counts[last] + h.cum[n] - h.cum[end])
    inner = (h.nonzero_cum[end] - h.nonzero_cum[start]).astype(np.int64)
    # non-zero bins of p: the window's, with its two end bins replaced by p's
    nz_first = (first_p != 0).astype(np.int64) - (h.counts[start] != 0)
    nz_last = np.where(one, 0, (last_p != 0).astype(np.int64) - (h.counts[last] != 0))
    p_zeros = length - (inner + nz_first + nz_last)
    ps_fix = _smoothing(p_zeros, length)

    merged = length // nq
    k = np.arange(nq, dtype=np.int64)
    lo = start[:, None] + k * merged[:, None]
    hi = lo + merged[:, None]
    totals = h.cum[np.where(k == nq - 1, end[:, None], hi)] - h.cum[lo]
    norm = h.nonzero_cum[hi] - h.nonzero_cum[lo]
    has_runs = merged > 0
    norm[:, 0] += np.where(has_runs, nz_first, 0)
    last_run = np.where(has_runs, (length - 1) // np.maximum(merged, 1), nq)
    in_run = ~one & (last_run < nq)
    norm[rows[in_run], last_run[in_run]] += nz_last[in_run]
    qv = np.where(norm != 0, (totals / np.where(norm == 0, 1, norm)), 0).astype(np.int64)
    qv[~has_runs] = 0
    q_zeros = merged * np.count_nonzero(qv == 0, axis=1) + (length - nq * merged)
    qs_fix = _smoothing(q_zeros, length)

    # ORT asserts every smoothed bin > 0: a non-zero count c fails only if
    # f32(c) + f32(-eps1) <= 0, i.e. c == 1 and f32(-eps1) == -1.
    ps = _windows(h, start, width)
    ps = ps + np.where(ps == 0, np.float32(_EPS), ps_fix.add[:, None])
    for col, value in ((0, first_p), (length - 1, last_p)):
        ps[rows, col] = value.astype(np.float32) + np.where(
            value == 0, np.float32(_EPS), ps_fix.add
        )
    p_nonpos = ~ps_fix.none & ~ps_fix.big & (ps_fix.add <= -1)
    p_nonpos[p_nonpos] = [bool(np.any(ps[r, : length[r]] <= 0)) for r in np.flatnonzero(p_nonpos)]
    q_runs = qv.astype(np.float32) + np.where(qv == 0, np.float32(_EPS), qs_fix.add[:, None])
    q_nonpos = ~qs_fix.none & ~qs_fix.big & np.any(has_runs[:, None] & (q_runs <= 0), axis=1)
    failed = np.flatnonzero(ps_fix.big | p_nonpos | qs_fix.big | q_nonpos)
    if failed.size:
        r = int(failed[0])
        if ps_fix.big[r] or p_nonpos[r]:
            raise _smoothing_error("p", int(p_zeros[r]), int(length[r]), bool(ps_fix.big[r]))
        raise _smoothing_error("q", int(q_zeros[r]), int(length[r]), bool(qs_fix.big[r]))

    # q's rows: each run's value m times, the unexpanded remainder (count 0,
    # smoothed to eps), then padding.
    values = np.concatenate(
        [q_runs, np.full((start.size, 1), _EPS, np.float32), np.ones((start.size, 1), np.float32)],
        axis=1,
    )
    counts = np.concatenate(
        [
            np.repeat(merged[:, None], nq, axis=1),
            (length - nq * merged)[:, None],
            (width - length)[:, None],
        ],
        axis=1,
    )
    qs = np.repeat(values.ravel(), counts.ravel()).reshape(start.size, width)

    with np.errstate(all="ignore"):
        # Past each row's length the values are other bins or padding: never summed.
        pk = ps / _row_sums(ps, length)[:, None]
        qk = qs / _row_sums(qs, length)[:, None]
        # Both smoothed rows are > 0 and their sums finite, so every pk, qk > 0:
        # ORT's rel_entr fix-ups (0 where pk == 0, inf where not both > 0) never fire.
        kl = _row_sums(pk * np.log(pk / qk), length)
    out = np.array(kl, dtype=dtype).astype(np.float64)
    out[ps_fix.none | qs_fix.none] = np.array(np.inf, dtype=dtype)
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
    h = _prepare(hist.astype(np.int64, copy=False), int(length.max()))
    kl = np.empty(count, dtype=np.float64)
    a = 0
    while a < count:
        # Windows grow by 2 bins per candidate: a block of rows wastes little padding.
        b = a + 1
        while b < count and (b + 1 - a) * int(length[b]) <= _BLOCK_ELEMENTS:
            b += 1
        kl[a:b] = _kl_block(h, start[a:b], end[a:b], length[a:b], nq, dtype)
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
