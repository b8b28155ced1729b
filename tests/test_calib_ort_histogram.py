"""``arrayobs.calib.ort.HistogramCollector`` against ONNX Runtime 1.31.1's, driven directly:
the histogram after every collect, bit for bit; refusals with ORT's exception types and the
state left as it was; the exact re-pad past the capacity; per channel; copies, pickles,
state_dict, threads."""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import threading
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs.calib.ort import HistogramCollector
from tests.test_calib_nphist import assert_same, bits, ort_collect, ort_collector

f32 = np.float32
SETTINGS = {
    "entropy": ("entropy", False),
    "distribution": ("distribution", False),
    "percentile": ("percentile", False),
    "percentile_symmetric": ("percentile", True),
}


def _stream(seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    calls = []
    for scale in (0.5, 0.2, 2.0, 1.5, 6.0):
        n = int(rng.integers(50, 400))
        k = int(rng.integers(1, 3))
        calls.append([(rng.standard_normal(n) * scale).astype(f32) for _ in range(k)])
    calls[1][0][:5] = np.nan  # NaN values: dropped on both paths
    return calls


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_histogram_after_every_collect(setting: str, backend: Any) -> None:
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the state holds float64 edges and int64 counts")
    method, symmetric = SETTINGS[setting]
    ref = ort_collector(method, symmetric, 64)
    mine = HistogramCollector(method, symmetric, 64, 128, 99.9, capacity=64)
    for i, arrays in enumerate(_stream(21)):
        assert ort_collect(ref, arrays) is None
        mine.collect([backend.from_numpy(a) for a in arrays])
        assert_same(mine.histogram, ref.histogram_dict["t"], f"{setting}, collect {i}")
    assert mine.xp is backend.xp


@pytest.mark.parametrize("setting", ["entropy", "percentile_symmetric"])
def test_forward_returns_input(setting: str) -> None:
    method, symmetric = SETTINGS[setting]
    ref = ort_collector(method, symmetric, 32)
    mine = HistogramCollector(method, symmetric, 32, 128, 99.9)
    x = np.linspace(-3, 2, 41, dtype=f32)
    assert mine(x) is x
    ort_collect(ref, [x])
    assert_same(mine.histogram, ref.histogram_dict["t"], setting)


REFUSALS = {
    "nan_only": ("entropy", False, np.full(3, np.nan, f32)),
    "inf": ("entropy", False, np.array([1.0, np.inf], f32)),
    "nan_symmetric": ("percentile", True, np.array([np.nan, 2.0], f32)),
    "inf_symmetric": ("percentile", True, np.array([-np.inf, 2.0], f32)),
    "empty_symmetric": ("percentile", True, np.zeros(0, f32)),
}


@pytest.mark.parametrize("name", list(REFUSALS))
@pytest.mark.parametrize("first", [True, False], ids=["first", "later"])
def test_refusals_keep_the_state(name: str, first: bool) -> None:
    """ORT's exception type; a refused collect changes nothing, and the stream goes on
    as ORT's (whose state a refusal leaves as it was too)."""
    method, symmetric, bad = REFUSALS[name]
    ref = ort_collector(method, symmetric, 16)
    mine = HistogramCollector(method, symmetric, 16, 128, 99.9)
    good = np.array([0.5, -1.0, 0.25], f32)
    if not first:
        ort_collect(ref, [good])
        mine.collect(good)
    before = mine.state_dict()
    expected = ort_collect(ref, [bad])
    if expected is None:  # a NaN later on the abs path, an empty first call there: taken
        assert name in ("nan_symmetric", "empty_symmetric") and first == (name != "nan_symmetric")
        mine.collect(bad)
        assert_same(mine.histogram, ref.histogram_dict["t"], name)
        return
    with pytest.raises(type(expected)):
        mine.collect(bad)
    after = mine.state_dict()
    assert list(after) == list(before)
    assert all(bits(after[k]) == bits(before[k]) for k in before)
    assert ort_collect(ref, [good * 3]) is None
    mine.collect(good * 3)
    assert_same(mine.histogram, ref.histogram_dict["t"], name)


def test_boundary_refusals() -> None:
    with pytest.raises(ValueError, match="methods are supported"):
        HistogramCollector("minmax", False, 16, 16, 99.9)
    with pytest.raises(ValueError, match="num_bins"):
        HistogramCollector("entropy", False, 0, 16, 99.9)
    with pytest.raises(TypeError, match="channel_axis"):
        HistogramCollector("entropy", False, 16, 16, 99.9, channel_axis=1.5)  # type: ignore[arg-type]
    mine = HistogramCollector("percentile", True, 16, 16, 99.9)
    with pytest.raises(AssertionError, match="only float32"):  # ORT asserts so
        mine.collect(np.ones(3))
    with pytest.raises(ValueError, match="sequence"):  # np.asarray of ragged arrays
        mine.collect([np.ones(3, f32), np.ones(4, f32)])
    with pytest.raises(TypeError, match="arrays"):
        mine.collect([[1.0, 2.0]])
    with pytest.raises(ValueError, match="not been collected"):
        _ = mine.histogram
    mine.collect(np.ones(3, f32))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="bound to"):
        mine.collect(torch.ones(3))


def test_capacity_repads_exactly() -> None:
    """The class never refuses: past its capacity it re-pads, then bins, exactly."""
    ref = ort_collector("entropy", False, 8)
    mine = HistogramCollector("entropy", False, 8, 128, 99.9, capacity=8)
    for scale in (0.01, 1.0, 30.0):
        x = (np.random.default_rng(3).standard_normal(100) * scale).astype(f32)
        ort_collect(ref, [x])
        mine.collect(x)
    assert len(ref.histogram_dict["t"][0]) > 1000
    assert_same(mine.histogram, ref.histogram_dict["t"], "re-padded")


@pytest.mark.parametrize("setting", ["entropy", "percentile_symmetric"])
def test_per_channel_is_each_slice(setting: str, backend: Any) -> None:
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the state holds float64 edges and int64 counts")
    method, symmetric = SETTINGS[setting]
    rng = np.random.default_rng(23)
    calls = [
        [(rng.standard_normal((2, 5, 4)) * s).astype(f32) for _ in range(2)] for s in (1, 0.1, 3)
    ]
    mine = HistogramCollector(method, symmetric, 16, 128, 99.9, channel_axis=-1, capacity=16)
    refs = [ort_collector(method, symmetric, 16) for _ in range(4)]
    for i, arrays in enumerate(calls):
        mine.collect([backend.from_numpy(a) for a in arrays])
        rows = mine.histogram
        assert len(rows) == 4
        for ch, ref in enumerate(refs):
            ort_collect(ref, [np.take(a, ch, axis=-1) for a in arrays])
            assert_same(rows[ch], ref.histogram_dict["t"], f"channel {ch}, collect {i}")


def test_copies_pickles_state_dict_go_on_alike() -> None:
    calls = _stream(25)
    for method, symmetric in (("entropy", False), ("percentile", True)):
        ref = ort_collector(method, symmetric, 32)
        mine = HistogramCollector(method, symmetric, 32, 128, 99.9, capacity=32)
        for arrays in calls[:2]:
            ort_collect(ref, arrays)
            mine.collect(arrays)
        loaded = HistogramCollector(method, symmetric, 32, 128, 99.9)
        loaded.load_state_dict(mine.state_dict())
        twins = [copy.deepcopy(mine), pickle.loads(pickle.dumps(mine)), loaded]
        for arrays in calls[2:]:
            ort_collect(ref, arrays)
            for c in (mine, *twins):
                c.collect(arrays)
        for c in (mine, *twins):
            assert_same(c.histogram, ref.histogram_dict["t"], f"{method} copy")
        assert "num_bins=32" in repr(mine)
        with pytest.raises(KeyError, match="unexpected"):
            loaded.load_state_dict({**mine.state_dict(), "extra": 1})


def test_threads_collect_atomically() -> None:
    """Concurrent collects of equal batches (the first to run grows the range) end
    where the same collects in a row do: each collect is atomic."""
    x = (np.random.default_rng(27).standard_normal(2000) * 2).astype(f32)
    batches = [x * 3 for _ in range(4)]
    mine = HistogramCollector("entropy", False, 64, 128, 99.9)
    mine.collect(x)
    threads = [threading.Thread(target=mine.collect, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = ort_collector("entropy", False, 64)
    for b in [x, *batches]:
        ort_collect(ref, [b])
    assert_same(mine.histogram, ref.histogram_dict["t"], "threads")


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_collection_result_when_the_searches_are_there(setting: str) -> None:
    """compute_collection_result through the ORT searches (``_calib_ort_search``)."""
    method, symmetric = SETTINGS[setting]
    num_bins = 512 if method == "distribution" else 128
    ref = ort_collector(method, symmetric, num_bins)
    mine = HistogramCollector(method, symmetric, num_bins, 128, 99.9)
    for arrays in _stream(29):
        ort_collect(ref, arrays)
        mine.collect(arrays)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = ref.compute_collection_result()["t"]
    got = mine.compute_collection_result()
    if isinstance(expected, tuple):
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert bits(a) == bits(b)
    else:
        assert got.range_value is not None
        for name in ("avg", "std", "hist", "hist_edges", "lowest", "highest"):
            assert bits(getattr(got, name)) == bits(getattr(expected, name)), name


def test_a_device_without_float64_is_refused(backend: Any) -> None:
    if backend.has("float64") or backend.library == "jax":
        pytest.skip("this device has float64 (JAX enables it locally)")
    mine = HistogramCollector("entropy", False, 16, 16, 99.9)
    with pytest.raises(TypeError, match="float64"):
        mine.collect(backend.from_numpy(np.ones(3, f32)))
    with pytest.raises(ValueError, match="not been collected"):
        _ = mine.histogram
