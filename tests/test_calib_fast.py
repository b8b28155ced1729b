"""The host fast path of ORT's histogram updates (arrayobs._backends._calib_fast) against
the generic step (arrayobs._core._calib_nphist), itself tested against live ONNX Runtime:
every state array equal, bit for bit, after every update, with the numba kernels and
with the NumPy passes (ARRAYOBS_NUMBA=0), per tensor and per channel; and the class on
its fast path against live ORT."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs._backends import _calib_fast as fast
from arrayobs._backends import _kernels
from arrayobs._core import _calib_nphist as nphist
from arrayobs.calib import ort
from tests.test_calib_nphist import CASES, assert_same, ort_histograms

f32 = np.float32
PATHS = {"value": ("entropy", False), "abs": ("percentile", True)}
ALL_PATHS = [*PATHS, "modelopt"]


def _more_cases() -> dict[str, tuple[int, list[np.ndarray]]]:
    rng = np.random.default_rng(11)
    big = [(rng.standard_normal(20000) * s).astype(f32) for s in (1.0, 2.5, 0.7, 9.0)]
    relu = [np.maximum(b, 0) for b in big[:2]]
    ints = [np.arange(-50, 51, dtype=f32), np.arange(-300, 301, 3, dtype=f32)]
    mixed_zeros = [np.array([0.0, -0.0, 1.0], f32), np.array([-0.0, 0.0, -2.0], f32)]
    negative_zero = [np.array([-0.0, 1.0, 2.0], f32), np.array([-0.0, 3.0], f32)]
    inf = [big[0][:100], np.array([1.0, np.inf], f32)]
    overflow = [big[0][:100] * f32(0.01), big[1][:100] * f32(50)]
    return {
        "big": (2048, big),
        "relu": (256, relu),
        "ints": (7, ints),
        "mixed_zeros": (8, mixed_zeros),
        "negative_zero": (8, negative_zero),
        "inf_later": (32, inf),
        "overflow": (16, overflow),
    }


ALL = {**CASES, **_more_cases()}


def _same_state(a: Any, b: Any, where: str) -> None:
    assert type(a) is type(b), where
    for name, p, q in zip(a._fields, a, b, strict=True):
        u, v = np.asarray(p), np.asarray(q)
        assert u.dtype == v.dtype and u.shape == v.shape, f"{where}: {name}"
        assert u.tobytes() == v.tobytes(), f"{where}: {name} differs"


def _generic(state: Any, x: Any, modelopt: bool = False) -> Any:
    xp = fast._np()
    if modelopt:
        return nphist.modelopt_update(state, x, xp=xp)
    if isinstance(state, nphist.AbsState):
        return nphist.ort_abs_update(state, x, xp=xp)
    return nphist.value_update(state, x, xp=xp)


def _fast(state: Any, x: Any, modelopt: bool = False) -> Any:
    if modelopt:
        got = fast.modelopt_update(state, x)
    elif isinstance(state, nphist.AbsState):
        got = fast.ort_abs_update(state, x)
    else:
        got = fast.value_update(state, x)
    return _generic(state, x, modelopt) if got is None else got


@pytest.fixture(autouse=True)
def _kernels_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The (min, max) kernels serve the small inputs here too (MIN_BYTES)."""
    monkeypatch.setattr(_kernels, "MIN_BYTES", {})


@pytest.mark.parametrize("numba", ["1", "0"], ids=["numba", "numpy"])
@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("name", list(ALL))
def test_fast_equals_generic(
    name: str, path: str, channels: int | None, numba: str, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ARRAYOBS_NUMBA", numba)
    # every input cut into three parts, a row across a cut (as a large input on three cores)
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_kernels.host_helpers, "workers", lambda: 3)
    bins, inputs = ALL[name]
    method, symmetric = PATHS.get(path, ("percentile", True))
    modelopt = path == "modelopt"
    cap = 4 * bins if name == "overflow" else None
    kw = {"channels": channels, "capacity": cap, "xp": np}
    mine = generic = ort.histogram_init(method, symmetric, bins, **kw)
    rng = np.random.default_rng(5)
    for step, x in enumerate(inputs):
        if channels is None:
            rows = x.reshape(1, -1)
        else:  # each channel a shuffled, scaled copy: rows that differ
            rows = np.stack([rng.permutation(x) * f32(1 + i) for i in range(channels)])
        generic = _generic(generic, rows, modelopt)
        mine = _fast(mine, rows, modelopt)
        _same_state(mine, generic, f"{name} {path} step {step}")


def test_fast_path_taken_and_refused_where_it_must() -> None:
    state = ort.histogram_init("entropy", False, 16, xp=np)
    assert fast.value_update(state, np.ones((1, 4), f32)) is not None
    assert fast.value_update(state, np.array([[1.0, np.nan]], f32)) is None
    assert fast.value_update(state, np.array([[1.0, -np.nan]], f32)) is None
    assert fast.value_update(state, np.array([[0.0, -0.0, 1.0]], f32)) is None
    assert fast.value_update(state, np.zeros((1, 0), f32)) is None
    assert fast.value_update(state, np.zeros((1, 3), np.float64)) is None
    absolute = ort.histogram_init("percentile", True, 16, xp=np)
    assert fast.modelopt_update(absolute, np.ones((1, 4), f32)) is not None
    assert fast.modelopt_update(absolute, np.ones((1, 4), f32), skip_zeros=True) is None
    from arrayobs.calib import modelopt

    torch_mode = modelopt.histogram_init(16, xp=np)
    kw = {"skip_zeros": False, "lanes": 8}
    assert fast.modelopt_torch_update(torch_mode, -np.ones((1, 4), f32), **kw) is not None
    for refused in (np.array([[np.nan, 1]], f32), np.ones((1, 4)), np.zeros((1, 0), f32)):
        assert fast.modelopt_torch_update(torch_mode, refused, **kw) is None
    kw["skip_zeros"] = True
    assert fast.modelopt_torch_update(torch_mode, np.ones((1, 4), f32), **kw) is None


@pytest.mark.parametrize("path", list(PATHS))
def test_class_on_host_arrays_equals_ort(path: str) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    calls = [[(rng.standard_normal(50000) * s).astype(f32)] for s in (1.0, 4.0, 0.5, 11.0)]
    method, symmetric = PATHS[path]
    want = ort_histograms(method, symmetric, 512, calls)
    for wrap in (np.asarray, torch.from_numpy):
        c = ort.HistogramCollector(method, symmetric, 512, 128, 99.9)
        for i, arrays in enumerate(calls):
            c.collect([wrap(a) for a in arrays])
            assert_same(c.histogram, want[i], f"{path} call {i}")


@pytest.mark.parametrize("numba", ["1", "0"], ids=["numba", "numpy"])
@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize("name", list(ALL))
def test_torch_mode_fast_equals_generic(
    name: str, channels: int | None, numba: str, monkeypatch: Any
) -> None:
    """ModelOpt's torch_hist=True collection: the fast path's state is the generic
    step's, bit for bit, after every update (the generic one is tested against
    live ModelOpt in tests/test_calib_modelopt.py)."""
    from arrayobs._core import _calib_modelopt as core
    from arrayobs.calib import modelopt

    monkeypatch.setenv("ARRAYOBS_NUMBA", numba)
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(_kernels.host_helpers, "workers", lambda: 3)
    bins, inputs = ALL[name]
    cap = 4 * bins if name == "overflow" else None
    mine = generic = modelopt.histogram_init(bins, channels=channels, capacity=cap, xp=np)
    rng = np.random.default_rng(5)
    for step, x in enumerate(inputs):
        if channels is None:
            rows = x.reshape(1, -1)
        else:
            rows = np.stack([rng.permutation(x) * f32(1 + i) for i in range(channels)])
        got = fast.modelopt_torch_update(mine, rows, skip_zeros=False, lanes=8)
        if x.size == 0:  # the reference raises (the class test's business): refused here
            assert got is None
            continue
        generic = core.histogram_update(generic, rows, False, 8, xp=fast._np())
        mine = core.histogram_update(mine, rows, False, 8, xp=fast._np()) if got is None else got
        _same_state(mine, generic, f"{name} torch mode step {step}")


def test_torch_mode_class_on_host_arrays_equals_modelopt() -> None:
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        # ModelOpt's import calls torch.jit.script, which torch 2.13 deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        calib = pytest.importorskip(
            "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
        )
    from arrayobs.calib import modelopt

    rng = np.random.default_rng(4)
    calls = [(rng.standard_normal(70000) * s).astype(f32) for s in (1.0, 3.0, 0.5, 7.0)]
    calls[2] = np.abs(calls[2])  # a batch without a negative value: no abs
    ref = calib.HistogramCalibrator(num_bins=512, torch_hist=True)
    want = []
    for x in calls:
        ref.collect(torch.from_numpy(x.copy()))
        want.append((ref._calib_hist.numpy().tobytes(), ref._calib_bin_edges.numpy().tobytes()))
    for wrap in (np.asarray, torch.from_numpy):
        ours = modelopt.HistogramCalibrator(num_bins=512, torch_hist=True)
        for i, x in enumerate(calls):
            ours.collect(wrap(x))
            got = tuple(np.asarray(a).tobytes() for a in (ours.calib_hist, ours.calib_bin_edges))
            assert got == want[i], f"{wrap.__name__} call {i}"


def test_max_fast_equals_generic(monkeypatch: Any) -> None:
    """ModelOpt's MaxCalibrator per tensor: the update on the batch's one-pass (min, max)
    is the generic update's, bit for bit, NaN, infinities and signed zeros included."""
    from arrayobs._core import _calib_modelopt as core
    from arrayobs.calib import modelopt

    monkeypatch.setattr(_kernels, "PARALLEL_MIN_BYTES", 0)
    xp = fast._np()
    batches = [
        np.array([-0.0, 0.0, -0.0], f32),
        np.random.default_rng(2).standard_normal(5000).astype(f32),
        np.array(3.5, f32),
        np.array([[1.0, -np.inf]], f32),
        np.array([1.0, np.nan, -2.0], f32),
        np.array([7.0, -9.0], f32),
    ]
    mine = generic = fresh = modelopt.max_init((), xp=np)
    for step, x in enumerate(batches):
        # The stand-in comes from the compiled pass (without numba: the generic update).
        assert (fast.max_stand_in(x, xp) is not None) == _kernels.enabled()
        mine = modelopt.max_update(mine, x)
        generic = core.max_update(generic, x, None, xp=xp)
        _same_state(mine, generic, f"max step {step}")
        alone = core.max_update(fresh, x, None, xp=xp)  # each batch first, too
        _same_state(modelopt.max_update(fresh, x), alone, f"max batch {step} first")
    assert fast.max_stand_in(np.ones(3), xp) is None  # float64: the generic update
