"""ORT 1.31.1's entropy, percentile and distribution searches (spec cases 7-9), bit for bit.

Every expected number comes from live ``onnxruntime.quantization.calibrate``:
a ``HistogramCollector`` collects the data, then its own search and ours run
on the same histogram tuple. Host NumPy only, so the backend does not matter.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from typing import Any

import numpy as np
import pytest

calibrate = pytest.importorskip(
    "onnxruntime.quantization.calibrate", reason="reference not installed: onnxruntime 1.31.1"
)

from arrayobs._core import _calib_ort_search as search  # noqa: E402

FULL = os.environ.get("ARRAYOBS_CALIB_FULL") == "1"


def _quiet(fn: Any, *args: Any) -> Any:
    # ORT prints progress and, on an empty histogram or a zero bin centre, warns.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args)


def collector(method: str, batches: list[np.ndarray], *, symmetric: bool = False, **kw: Any) -> Any:
    c = calibrate.HistogramCollector(
        method,
        symmetric,
        kw.get("num_bins", 128),
        kw.get("num_quantized_bins", 128),
        kw.get("percentile", 99.999),
        kw.get("scenario", "same"),
    )
    for b in batches:
        _quiet(c.collect, {"t": [b]})
    return c


def same(a: Any, b: Any) -> bool:
    """Bit for bit: the same Python type, dtype, shape and bytes (recursively)."""
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return (
        type(a) is type(b)
        and np.asarray(a).dtype == np.asarray(b).dtype
        and np.shape(a) == np.shape(b)
        and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    )


def data(seed: int, size: int = 20000, scale: float = 1.0, power: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(size) * scale * rng.random(size) ** power
    return x.astype(np.float32)


# -- entropy (case 7) ----------------------------------------------------------------

ENTROPY_CASES = {
    "default-128-128": ([data(0)], 128, 128),
    "2048-128": ([data(1, 50000)], 2048, 128),
    "odd-129": ([data(2)], 129, 128),
    "odd-255-nq-127": ([data(3, power=2)], 255, 127),
    "grown-two-calls": ([data(4, 3000), data(5, 3000, scale=2.5)], 128, 128),
    "heavy-tail": ([data(6, power=3)], 512, 128),
    "nq-3": ([data(7, 500)], 64, 3),
    "single-value": ([np.full(100, 1.5, np.float32)], 128, 128),
    "zeros": ([np.zeros(10, np.float32)], 128, 128),
    "float64": ([data(8).astype(np.float64)], 256, 128),
    "nq-odd-bins-clip": ([data(9, 800)], 128, 129),
}
if FULL:
    ENTROPY_CASES.update(
        {f"random-{s}": ([data(100 + s, 5000, power=s % 4)], 2048, 128) for s in range(8)}
    )


@pytest.mark.parametrize("case", list(ENTROPY_CASES))
def test_entropy_matches_ort(case: str) -> None:
    batches, num_bins, nq = ENTROPY_CASES[case]
    c = collector("entropy", batches, num_bins=num_bins, num_quantized_bins=nq)
    histogram = c.histogram_dict["t"]
    expected = _quiet(c.get_entropy_threshold, histogram, nq)
    assert same(search.entropy_threshold(histogram, nq), expected)


@pytest.mark.parametrize("bin_index", [5, 100, 200])
def test_entropy_near_ties(bin_index: int) -> None:
    """One more count in one bin moves ORT's threshold or not; ours follows."""
    c = collector("entropy", [data(11, 5000)], num_bins=256)
    hist, *rest = c.histogram_dict["t"]
    for delta in (0, 1, 2):
        bumped = hist.copy()
        bumped[bin_index] += delta
        histogram = (bumped, *rest)
        expected = _quiet(c.get_entropy_threshold, histogram, 128)
        assert same(search.entropy_threshold(histogram, 128), expected)


def _ort_error(fn: Any, *args: Any) -> type[BaseException]:
    with pytest.raises(Exception) as info:
        _quiet(fn, *args)
    return info.type


@pytest.mark.parametrize(
    ("num_bins", "nq"),
    [(64, 128), (126, 128), (128, 0), (128, -2)],
    ids=["bins-below-nq", "bins-just-below", "nq-zero", "nq-negative"],
)
def test_entropy_refusals_match_ort(num_bins: int, nq: int) -> None:
    c = collector("entropy", [data(12, 1000)], num_bins=num_bins, num_quantized_bins=nq)
    histogram = c.histogram_dict["t"]
    kind = _ort_error(c.get_entropy_threshold, histogram, nq)
    before = copy.deepcopy(histogram)
    with pytest.raises(kind, match="num_quantized_bins"):
        search.entropy_threshold(histogram, nq)
    assert all(same(a, b) for a, b in zip(before, histogram, strict=True))


def test_entropy_smoothing_assertion_matches_ort() -> None:
    """A window with 10 000 empty bins per occupied one: ORT's smoothing asserts."""
    n = 20002
    hist = np.zeros(n, np.int64)
    hist[n // 2] = 5
    edges = np.linspace(-1, 1, n + 1, dtype=np.float32)
    histogram = (hist, edges, np.float32(0.0), np.float32(1e-4), np.float32(1.0))
    c = calibrate.HistogramCollector("entropy", False, n, 20000, 99.9, "same")
    with pytest.raises(AssertionError) as ort_info:
        _quiet(c.get_entropy_threshold, histogram, 20000)
    with pytest.raises(AssertionError) as info:
        search.entropy_threshold(histogram, 20000)
    assert str(info.value).startswith(str(ort_info.value))  # ORT: "n_zeros=..., eps1=..."


# -- percentile (case 8) -------------------------------------------------------------

PERCENTILES = [0.0, 50.0, 99.9, 99.999, 100.0]


@pytest.mark.parametrize("symmetric", [True, False], ids=["abs-path", "value-path"])
@pytest.mark.parametrize(
    "batches",
    [
        [data(20)],
        [data(21, 3000), data(22, 3000, scale=3.0)],
        [np.abs(data(23)) + np.float32(0.5)],
        [np.zeros(0, np.float32)],
    ],
    ids=["normal", "grown", "all-positive", "empty"],
)
def test_percentile_matches_ort(symmetric: bool, batches: list[np.ndarray]) -> None:
    c = collector("percentile", batches, symmetric=symmetric, num_bins=2048)
    histogram = c.histogram_dict["t"]
    for p in PERCENTILES:
        c.percentile = p
        expected = _quiet(c.compute_percentile)["t"]
        assert same(search.percentile_thresholds(histogram, p, symmetric), expected), p


@pytest.mark.parametrize("p", [101.0, -1.0])
def test_percentile_refusal_matches_ort(p: float) -> None:
    c = collector("percentile", [data(24)], symmetric=True, percentile=p)
    assert _ort_error(c.compute_percentile) is ValueError
    with pytest.raises(ValueError, match="percentile"):
        search.percentile_thresholds(c.histogram_dict["t"], p, True)


# -- distribution (case 9) -----------------------------------------------------------


@pytest.mark.parametrize("scenario", ["same", "p3"])
@pytest.mark.parametrize("num_bins", [512, 513, 2048])
def test_distribution_matches_ort(scenario: str, num_bins: int) -> None:
    c = collector(
        "distribution",
        [data(30, 5000), data(31, 5000, scale=1.7)],
        num_bins=num_bins,
        scenario=scenario,
    )
    histogram = c.histogram_dict["t"]
    expected = _quiet(c.compute_distribution)["t"]
    mine = search.distribution(histogram, num_bins, scenario)
    assert list(mine) == expected._attrs
    assert same(mine, {k: getattr(expected, k) for k in expected._attrs})


@pytest.mark.parametrize(
    ("num_bins", "scenario", "batch"),
    [
        (128, "same", data(32)),
        (512, "x", data(32)),
        (512, "x", data(32).astype(np.float64)),
    ],
    ids=["bins-128", "scenario-x", "float64-before-scenario"],
)
def test_distribution_refusals_match_ort(num_bins: int, scenario: str, batch: np.ndarray) -> None:
    c = collector("distribution", [batch], num_bins=num_bins, scenario=scenario)
    kind = _ort_error(c.compute_distribution)
    with pytest.raises(kind):
        search.distribution(c.histogram_dict["t"], num_bins, scenario)
