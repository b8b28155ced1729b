"""The NumPy-rule histograms' functional core against the live references: ONNX Runtime
1.31.1's ``HistogramCollector`` (collect_value, collect_absolute_value) and ModelOpt
0.47.0's ``HistogramCalibrator(torch_hist=False)``, after every collect, bit for bit
(counts, edges and their dtype, min, max, threshold), per tensor and per channel, eagerly,
under ``jax.jit`` and lazily on Dask (chunked input)."""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import _backends
from arrayobs._core import _calib_nphist as nphist
from arrayobs.calib import ort

f32 = np.float32


# -- the live references ------------------------------------------------------------------
def _ort() -> Any:
    return pytest.importorskip(
        "onnxruntime.quantization.calibrate", reason="reference not installed: onnxruntime 1.31.1"
    )


def ort_collector(method: str, symmetric: bool, num_bins: int) -> Any:
    """ORT's HistogramCollector (num_quantized_bins 128, percentile 99.9, scenario same)."""
    return _ort().HistogramCollector(method, symmetric, num_bins, 128, 99.9, "same")


def ort_collect(ref: Any, arrays: list[Any]) -> BaseException | None:
    """ORT's collect (its progress lines and NumPy's warnings silenced); its refusal, if any."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref.collect({"t": list(arrays)})
        except Exception as exc:  # the reference's own type is what we compare
            return exc
    return None


def ort_histograms(method: str, symmetric: bool, num_bins: int, calls: list[Any]) -> list[Any]:
    """ORT's histogram tuple after each ``collect`` (each call: a list of arrays)."""
    ref = ort_collector(method, symmetric, num_bins)
    out = []
    for arrays in calls:
        refused = ort_collect(ref, arrays)
        if refused is not None:
            raise refused
        out.append(tuple(np.copy(v) for v in ref.histogram_dict["t"]))
    return out


def ort_refusal(method: str, symmetric: bool, calls: list[Any]) -> type[BaseException]:
    """The exception ORT raises on the last of ``calls``."""
    ref = ort_collector(method, symmetric, 16)
    for arrays in calls[:-1]:
        ort_collect(ref, arrays)
    refused = ort_collect(ref, calls[-1])
    if refused is None:
        pytest.fail("the reference did not refuse")
    return type(refused)


def modelopt_histograms(num_bins: int, skip_zeros: bool, calls: list[Any]) -> list[Any]:
    torch = pytest.importorskip("torch")
    calib = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )
    ref = calib.HistogramCalibrator(num_bins=num_bins, skip_zeros=skip_zeros, torch_hist=False)
    out = []
    for x in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref.collect(torch.from_numpy(np.ascontiguousarray(x)))
        out.append((np.copy(ref._calib_hist), np.copy(ref._calib_bin_edges)))
    return out


# -- comparisons ----------------------------------------------------------------------------
def bits(v: Any) -> Any:
    a = np.asarray(v)
    return (a.dtype.str, a.shape, a.tobytes())


def assert_same(mine: tuple[Any, ...], ref: tuple[Any, ...], where: str) -> None:
    """Counts and edges equal with their dtypes; min, max, threshold by float32 bits."""
    assert len(mine) == len(ref), where
    assert bits(mine[0]) == bits(np.asarray(ref[0], dtype=np.int64)), f"counts, {where}"
    assert bits(mine[1]) == bits(ref[1]), f"edges, {where}"
    for k in range(2, len(ref)):
        a, b = np.asarray(mine[k], f32), np.asarray(ref[k], f32)
        if k in (2, 3) and a == 0 and b == 0:
            # The sign of a zero min/max: NumPy's own nanmin/nanmax pick it by their SIMD
            # layout (np.nanmax([0., -0.]) is +0, np.nanmax([-0., 0., -0.]) is -0): a
            # documented deviation; the histogram itself never depends on it.
            continue
        assert bits(a) == bits(b), f"field {k}, {where}"


# -- cases ----------------------------------------------------------------------------------
def _normal(seed: int, sizes: list[int], scales: list[float]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * s).astype(f32) for n, s in zip(sizes, scales, strict=True)]


def _near_multiple() -> list[np.ndarray]:
    """A second call whose growth length differs between NumPy's float32-scalar
    arange rule and the same in float64 (docs/design/calibrators.md 1.3)."""
    first = np.linspace(0.1, 1.7, 50, dtype=f32)
    edges = np.histogram(first, bins=16)[1]
    w = edges[1] - edges[0]
    start = f32(edges[-1] + w)
    for k in range(1, 400):
        m = f32(edges[-1] + f32(k * w))
        for _ in range(6):
            m = np.nextafter(m, f32(np.inf))
            stop = f32(m + w)
            l32 = int(np.ceil(f32(f32(stop - start) / w)))
            l64 = int(np.ceil((float(stop) - float(start)) / float(w)))
            if l32 != l64:
                return [first, np.array([0.5, m], dtype=f32)]
    pytest.fail("no near-multiple case found")


def cases() -> dict[str, tuple[int, list[np.ndarray]]]:
    grow = _normal(1, [1000, 1000], [1.0, 3.0])
    return {
        "one": (128, _normal(2, [2000], [1.0])),
        "grow": (128, grow),
        "shrink_grow": (128, _normal(3, [500, 700, 900], [1.0, 0.3, 4.0])),
        "zeros_first": (64, [np.zeros(10, f32), *_normal(4, [300, 300], [1.0, 2.5])]),
        "empty_first": (64, [np.zeros(0, f32), *_normal(5, [300], [1.0])]),
        "odd_bins": (127, _normal(6, [400, 400, 400], [0.5, 1.0, 7.0])),
        "chain": (32, _normal(7, [200] * 6, [0.2, 1.0, 0.5, 3.0, 2.0, 6.0])),
        "equal_t": (64, [np.array([-2, 1, 0.5], f32), np.array([2, -1.5, 0.25], f32)]),
        "small_later": (64, [np.linspace(1, 2, 100, dtype=f32), np.linspace(-3, 3, 61, dtype=f32)]),
        "near_multiple": (16, _near_multiple()),
        "nan_later": (
            32,
            [_normal(8, [100], [1.0])[0], np.array([np.nan, 0.5, -3.0, np.nan], f32)],
        ),
        "signed_zeros": (8, [np.array([-0.0, 0.0, -0.0], f32), np.array([0.0, -1.0], f32)]),
    }


CASES = cases()
PATHS = {"value": ("entropy", False), "abs": ("percentile", True)}
JAX_EAGER = ("grow", "empty_first", "near_multiple", "signed_zeros")


@functools.cache
def _jitted() -> Any:
    import jax

    return jax.jit(ort.histogram_update, static_argnames=("channel_axis",))


def _run(backend: Any, update: Any, state: Any, inputs: list[Any], **kw: Any) -> list[Any]:
    states = []
    for x in inputs:
        state = update(state, x, **kw)
        states.append(state)
    if backend.name == "dask":  # lazy until here: one compute for every state
        import dask
        import dask.array as da

        assert all(isinstance(v, da.Array) for v in state)
        states = [type(state)(*v) for v in dask.compute(*[tuple(s) for s in states])]
    return states


def _scope(backend: Any, jit: bool) -> Any:
    if jit:
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(CASES))
def test_ort_after_every_collect(name: str, path: str, jit: bool, backend: Any) -> None:
    if jit and backend.name != "jax":
        pytest.skip("jax.jit is JAX's")
    if backend.library == "jax" and not jit and name not in JAX_EAGER:
        pytest.skip("JAX runs every case under jax.jit, a sample eagerly (op by op is slow)")
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the state holds float64 edges and int64 counts")
    method, symmetric = PATHS[path]
    bins, batches = CASES[name]
    expected = ort_histograms(method, symmetric, bins, [[b] for b in batches])
    with _scope(backend, jit):
        state = ort.histogram_init(
            method, symmetric, bins, capacity=4096, xp=backend.xp, device=backend.device
        )
        update = _jitted() if jit else ort.histogram_update
        states = _run(backend, update, state, [backend.from_numpy(b) for b in batches])
        for i, (s, ref) in enumerate(zip(states, expected, strict=True)):
            assert_same(ort.histogram_result(s)[0], ref, f"{name}, {path}, collect {i}")


@pytest.mark.parametrize("path", list(PATHS))
def test_ort_per_channel_is_each_slice(path: str, backend: Any) -> None:
    """Per channel: each row equals ORT run on ``np.take(x, i, axis)`` of every batch."""
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the state holds float64 edges and int64 counts")
    method, symmetric = PATHS[path]
    rng = np.random.default_rng(11)
    scales = np.array([0.01, 1.0, 5.0], f32).reshape(1, 3, 1)
    batches = [(rng.standard_normal((4, 3, 50)) * scales * s).astype(f32) for s in (1, 0.5, 3)]
    batches[0][:, 2, :] = 0  # one channel starts at zero (the T0 == 0 branch)
    with _scope(backend, False):
        state = ort.histogram_init(
            method, symmetric, 32, channels=3, capacity=4096, xp=backend.xp, device=backend.device
        )
        inputs = [backend.from_numpy(b) for b in batches]
        states = _run(backend, ort.histogram_update, state, inputs, channel_axis=1)
    for ch in range(3):
        expected = ort_histograms(method, symmetric, 32, [[np.take(b, ch, 1)] for b in batches])
        for i, s in enumerate(states):
            assert_same(ort.histogram_result(s)[ch], expected[i], f"channel {ch}, collect {i}")


def test_ort_several_arrays_in_one_collect() -> None:
    """ORT stacks one collect's arrays: the update on their concatenation."""
    batches = _normal(12, [100, 100, 100], [1.0, 2.0, 0.5])
    for method, symmetric in PATHS.values():
        expected = ort_histograms(method, symmetric, 64, [batches[:2], batches[2:]])
        state = ort.histogram_init(method, symmetric, 64, xp=np)
        state = ort.histogram_update(state, np.concatenate(batches[:2]))
        assert_same(ort.histogram_result(state)[0], expected[0], method)
        state = ort.histogram_update(state, batches[2])
        assert_same(ort.histogram_result(state)[0], expected[1], method)


@pytest.mark.parametrize("skip_zeros", [False, True])
def test_modelopt_numpy_mode_after_every_collect(skip_zeros: bool, backend: Any) -> None:
    """ModelOpt's torch_hist=False histogram: as ORT's abs path, edges never cast back;
    abs only when min < 0 (not with a NaN), skip_zeros, float64 input cast down."""
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the state holds float64 edges and int64 counts")
    streams = {
        "chain": _normal(13, [300] * 5, [0.5, 1.0, 0.7, 4.0, 11.0]),
        "positive": [np.abs(b) for b in _normal(14, [200, 200], [1.0, 3.0])],
        "zeros": [np.zeros(5, f32), *_normal(15, [100, 100], [1.0, 2.0])],
        "nan_later": [_normal(16, [100], [1.0])[0], np.array([np.nan, -9.0, 0.5], f32)],
        "near_multiple": _near_multiple(),
        "float64": [b.astype(np.float64) for b in _normal(17, [100, 100], [1.0, 2.0])],
    }
    if backend.has("float64"):  # ModelOpt tests min < 0 before its cast to float32
        streams["tiny_negative"] = [np.array([-1e-50, 0.5, 2.0]), np.array([3.0, -1e-60])]
    for name, batches in streams.items():
        expected = modelopt_histograms(64, skip_zeros, batches)
        xp = backend.xp
        with _backends.shared(xp).float64_scope():
            state = nphist.modelopt_init(64, capacity=4096, xp=xp, device=backend.device)
            inputs = [backend.from_numpy(b) for b in batches]

            def update(s: Any, x: Any, xp: Any = xp) -> Any:
                return nphist.modelopt_update(s, x, skip_zeros=skip_zeros, xp=xp)

            states = _run(backend, update, state, inputs)
        for i, (s, (h, e)) in enumerate(zip(states, expected, strict=True)):
            mine = nphist.modelopt_result(s)[0]
            assert bits(mine[0]) == bits(h), f"{name}, counts, collect {i}"
            assert bits(mine[1]) == bits(e), f"{name}, edges, collect {i}"


# -- refusals ---------------------------------------------------------------------------
REFUSED = {
    "value_nan_only_first": ("value", [[np.array([np.nan, np.nan], f32)]]),
    "value_inf_first": ("value", [[np.array([1.0, np.inf], f32)]]),
    "value_nan_only_later": ("value", [[np.ones(3, f32)], [np.full(2, np.nan, f32)]]),
    "value_inf_later": ("value", [[np.ones(3, f32)], [np.array([-np.inf], f32)]]),
    "value_zero_then_inf": ("value", [[np.zeros(3, f32)], [np.array([np.inf], f32)]]),
    "abs_nan_first": ("abs", [[np.array([np.nan, 1.0], f32)]]),
    "abs_inf_first": ("abs", [[np.array([1.0, np.inf], f32)]]),
    "abs_inf_later": ("abs", [[np.ones(3, f32)], [np.array([2.0, -np.inf], f32)]]),
    "abs_empty_later": ("abs", [[np.ones(3, f32)], [np.zeros(0, f32)]]),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refusals_are_sticky_and_keep_the_state(name: str) -> None:
    """The reference's exception type from the result; the state stops where it was."""
    path, calls = REFUSED[name]
    method, symmetric = PATHS[path]
    kind = ort_refusal(method, symmetric, calls)
    state = ort.histogram_init(method, symmetric, 16, xp=np)
    before = None
    for arrays in calls:
        before = state
        state = ort.histogram_update(state, np.concatenate(arrays))
    assert before is not None
    with pytest.raises(kind, match="collect call"):
        ort.histogram_result(state)
    later = ort.histogram_update(state, np.ones(4, f32))
    for field in ("counts", "bins", "min", "max"):
        assert bits(getattr(later, field)) == bits(getattr(before, field)), field


def test_overflow_flag_names_need_and_keeps_scalars() -> None:
    """A capacity too small: counts frozen, bins and need exact, the result refuses."""
    batches = _normal(18, [200, 200, 200], [1.0, 3.0, 9.0])
    for method, symmetric in PATHS.values():
        expected = ort_histograms(method, symmetric, 16, [[b] for b in batches])
        state = ort.histogram_init(method, symmetric, 16, capacity=20, xp=np)
        for b in batches:
            state = ort.histogram_update(state, b)
        need = len(expected[-1][0])
        assert bool(state.overflow) and int(state.need) == need
        assert int(state.bins[0]) == need
        with pytest.raises(OverflowError, match=f"capacity >= {need}"):
            ort.histogram_result(state)
        # re-padded before the call that overflowed, the state goes on exactly
        state = ort.histogram_init(method, symmetric, 16, capacity=20, xp=np)
        state = ort.histogram_update(state, batches[0])
        state = nphist.repad(state, need, xp=np)
        for b in batches[1:]:
            state = ort.histogram_update(state, b)
        assert_same(ort.histogram_result(state)[0], expected[-1], method)


def test_floor_divide_is_numpys() -> None:
    """NumPy's float32 ``//`` (npy_divmod) near integer quotients, where floor(a / b) is not."""
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(19)
    b = rng.uniform(1e-3, 1.0, 20000).astype(f32)
    k = rng.integers(1, 5000, 20000).astype(f32)
    a = (k * b).astype(f32)
    a = np.where(rng.random(20000) < 0.5, np.nextafter(a, f32(0)), a).astype(f32)
    with np.errstate(all="ignore"):
        mine = nphist._floor_divide32(xp.asarray(a), xp.asarray(b), xp)
    assert bits(mine) == bits(np.floor_divide(a, b))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="methods are supported"):
        ort.histogram_init("kl", False, 16, xp=np)
    with pytest.raises(ValueError, match="num_bins"):
        ort.histogram_init("entropy", False, 0, xp=np)
    with pytest.raises(ValueError, match="capacity"):
        ort.histogram_init("entropy", False, 16, capacity=8, xp=np)
    state = ort.histogram_init("percentile", True, 16, xp=np)
    with pytest.raises(AssertionError, match="only float32"):
        ort.histogram_update(state, np.ones(3))
    state = ort.histogram_init("entropy", False, 16, channels=2, xp=np)
    with pytest.raises(ValueError, match="3 channels"):
        ort.histogram_update(state, np.ones((3, 4), f32), channel_axis=0)
    with pytest.raises(TypeError, match="float32"):
        ort.histogram_update(state, np.ones((2, 4), np.float16), channel_axis=0)
