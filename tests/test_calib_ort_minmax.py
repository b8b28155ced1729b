"""ORT 1.31.1's MinMaxCalibrater (spec cases 1-4) and compute_scale_zp (case 10), bit for bit.

Expected numbers come from live ONNX Runtime: a one-node Identity model
(ir_version 10, opset 17) calibrated by ``MinMaxCalibrater`` with a data
reader, compared per tensor with ``compute_data()``; ``compute_scale_zp``
from ``onnxruntime.quantization.quant_utils``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime", reason="reference not installed: onnxruntime 1.31.1")
onnx = pytest.importorskip("onnx", reason="reference not installed: onnx (ORT reads an ONNX model)")

from onnx import TensorProto, helper  # noqa: E402
from onnxruntime.quantization import calibrate, quant_utils  # noqa: E402

from arrayobs._compat import to_host  # noqa: E402
from arrayobs.calib import ort as aort  # noqa: E402


@functools.cache
def _model(folder: str, rank: int, elem: int) -> str:
    path = str(Path(folder) / f"identity_{rank}_{elem}.onnx")
    dims = [f"d{i}" for i in range(rank)]
    x = helper.make_tensor_value_info("X", elem, dims)
    y = helper.make_tensor_value_info("Y", elem, dims)
    graph = helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.save(model, path)
    return path


class _Reader(calibrate.CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter([{"X": b} for b in batches])

    def get_next(self) -> Any:
        return next(self._it, None)


@pytest.fixture
def backend(backend: Any) -> Any:
    """conftest's backend, without the devices that lack argmin's index dtype
    (array-api-strict's no_x64; test_refused_without_int64 tests that refusal)."""
    try:
        aort.minmax_init(xp=backend.xp, device=backend.device)
    except TypeError:
        pytest.skip(f"{backend.name} has no index dtype, which MinMaxCalibrater refuses")
    return backend


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("ort_minmax"))


def reference(folder: str, calls: list[list[np.ndarray]], **kw: Any) -> Any:
    """ORT's (lowest, highest) for tensor X after ``calls``; or the exception it raises."""
    b0 = calls[0][0] if calls and calls[0] else np.zeros((1, 1), np.float32)
    elem = TensorProto.FLOAT16 if b0.dtype == np.float16 else TensorProto.FLOAT
    path = _model(folder, b0.ndim, elem)
    c = calibrate.MinMaxCalibrater(path, augmented_model_path=path + ".aug.onnx", **kw)
    c.augment_graph()
    c.create_inference_session()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's All-NaN / empty-slice warnings
        for batches in calls:
            c.collect_data(_Reader(batches))
    lo, hi = c.compute_data()["X"].range_value
    return np.asarray(lo), np.asarray(hi)


def ours(backend: Any, calls: list[list[np.ndarray]], **kw: Any) -> Any:
    cal = aort.MinMaxCalibrater(**kw)
    for batches in calls:
        cal.collect([backend.from_numpy(b) for b in batches])
    return cal.compute_data()


def same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())


def check(backend: Any, folder: str, calls: list[list[np.ndarray]], **kw: Any) -> None:
    lo, hi = reference(folder, calls, **kw)
    mine = ours(backend, calls, **kw)
    assert same(mine[0], lo), (mine[0], lo)
    assert same(mine[1], hi), (mine[1], hi)


def batches(
    seed: int, count: int, shape: tuple[int, ...] = (2, 3, 4), dtype: Any = np.float32
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * rng.uniform(0.1, 5)).astype(dtype) for _ in range(count)]


CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "symmetric": {"symmetric": True},
    "moving-average": {"moving_average": True},
    "moving-average-0.5": {"moving_average": True, "averaging_constant": 0.5},
    "symmetric-moving-average": {"symmetric": True, "moving_average": True},
}


# -- case 1 and 2: one call of several batches, several one-batch calls -----------------
@pytest.mark.parametrize("config", list(CONFIGS))
def test_one_call_three_batches(backend: Any, folder: str, config: str) -> None:
    check(backend, folder, [batches(1, 3)], **CONFIGS[config])


@pytest.mark.parametrize("config", list(CONFIGS))
def test_three_one_batch_calls(backend: Any, folder: str, config: str) -> None:
    check(backend, folder, [[b] for b in batches(2, 3)], **CONFIGS[config])


@pytest.mark.parametrize("config", ["plain", "moving-average", "symmetric-moving-average"])
@pytest.mark.parametrize("count", [9, 20, 130])
def test_many_batches_sum_order(backend: Any, folder: str, config: str, count: int) -> None:
    """nanmean over many batches: NumPy's pairwise sum (per tensor), then an EMA."""
    data = batches(3, count, shape=(2, 5))
    check(backend, folder, [data[: count // 2], data[count // 2 :]], **CONFIGS[config])


@pytest.mark.parametrize("config", ["plain", "moving-average", "symmetric"])
def test_per_channel_one_call(backend: Any, folder: str, config: str) -> None:
    check(backend, folder, [batches(4, 12, shape=(2, 5, 3))], per_channel=True, **CONFIGS[config])


@pytest.mark.parametrize("config", ["plain", "moving-average"])
def test_float16(backend: Any, folder: str, config: str) -> None:
    if not backend.has("float16"):
        pytest.skip(f"{backend.name} has no float16")
    data = batches(5, 11, shape=(3, 4), dtype=np.float16)
    check(backend, folder, [data[:9], data[9:]], **CONFIGS[config])


# -- case 3: NaN, signed zeros ----------------------------------------------------------
def _nan_first(b: np.ndarray) -> np.ndarray:
    b = b.copy()
    b.flat[0] = np.nan  # ORT's ReduceMin/Max give NaN for a leading NaN (see _calib_ort)
    return b


@pytest.mark.parametrize("config", ["plain", "moving-average", "symmetric"])
def test_nan_batch_is_ignored(backend: Any, folder: str, config: str) -> None:
    data = batches(6, 3)
    data[1] = _nan_first(data[1]) * 100
    check(backend, folder, [data], **CONFIGS[config])


@pytest.mark.parametrize("config", ["plain", "moving-average"])
def test_all_nan_call(backend: Any, folder: str, config: str) -> None:
    data = [_nan_first(b) for b in batches(7, 2)]
    check(backend, folder, [data, batches(8, 1)], **CONFIGS[config])


@pytest.mark.parametrize("config", ["plain", "symmetric", "moving-average"])
def test_signed_zeros(backend: Any, folder: str, config: str) -> None:
    zeros = np.array([[0.0, -0.0, 0.0], [-0.0, -0.0, 0.0]], np.float32)
    check(backend, folder, [[zeros], [-zeros]], **CONFIGS[config])


def test_infinities_pass_through(backend: Any, folder: str) -> None:
    data = batches(9, 2)
    data[0][0, 0, 1] = np.inf
    data[1][1, 2, 3] = -np.inf
    check(backend, folder, [data])


# -- case 4: per channel over calls, discarded batches, refusals -----------------------
@pytest.mark.parametrize("config", ["plain", "moving-average"])
def test_per_channel_calls_are_per_tensor_per_channel(
    backend: Any, folder: str, config: str
) -> None:
    """ORT refuses a second per-channel call (plain); arrayobs defines it as the
    per-tensor rule on each channel's slices."""
    calls = [batches(10, 2, shape=(2, 3, 4)), batches(11, 3, shape=(1, 3, 2))]
    kw = CONFIGS[config]
    if not kw:
        with pytest.raises(ValueError, match="truth value"):
            reference(folder, calls, per_channel=True)
    lo, hi = ours(backend, calls, per_channel=True, **kw)
    for c in range(3):
        sliced = [[np.ascontiguousarray(np.take(b, c, axis=1)) for b in call] for call in calls]
        rlo, rhi = reference(folder, sliced, **kw)
        assert same(lo[c : c + 1], rlo)
        assert same(hi[c : c + 1], rhi)


@pytest.mark.parametrize("k", [2, 3, 1])
def test_max_intermediate_outputs_discards(backend: Any, folder: str, k: int) -> None:
    calls = [batches(12, 3), batches(13, 5)]
    if k in {1, 3}:
        # a first call whose batches are all discarded: ORT raises
        with pytest.raises(ValueError, match="No data is collected"):
            reference(folder, calls[:1], max_intermediate_outputs=k)
        cal = aort.MinMaxCalibrater(max_intermediate_outputs=k)
        with pytest.raises(ValueError, match="No data is collected"):
            cal.collect([backend.from_numpy(b) for b in calls[0]])
        assert cal.state_dict() == {}
        if k == 1:
            return  # every batch is discarded, always
        calls = calls[1:]
    check(backend, folder, calls, max_intermediate_outputs=k)


def test_averaging_constant_refused() -> None:
    with pytest.raises(ValueError, match="averaging constant"):
        aort.MinMaxCalibrater(moving_average=True, averaging_constant=1.5)
    aort.MinMaxCalibrater(averaging_constant=1.5)  # as ORT: checked with moving_average only


def test_empty_reader_refused(backend: Any, folder: str) -> None:
    with pytest.raises(ValueError, match="No data is collected"):
        reference(folder, [[]])
    cal = aort.MinMaxCalibrater()
    with pytest.raises(ValueError, match="No data is collected"):
        cal.collect([])
    with pytest.raises(ValueError, match="No data is collected"):
        cal.compute_data()


def test_refused_call_changes_nothing(backend: Any) -> None:
    cal = aort.MinMaxCalibrater(per_channel=True)
    cal.collect([backend.from_numpy(b) for b in batches(15, 2, shape=(2, 3))])
    before = {k: to_host(v) for k, v in cal.state_dict().items()}
    good = backend.from_numpy(batches(16, 1, shape=(2, 3))[0] * 10)
    for bad in (
        [good, backend.from_numpy(np.ones((2, 4), np.float32))],
        [good, backend.from_numpy(np.ones((2, 3), np.float32))[0, ...]],
        [good, backend.from_numpy(np.ones((2, 3), np.int32))],
    ):
        with pytest.raises((ValueError, TypeError)):
            cal.collect(bad)
        after = {k: to_host(v) for k, v in cal.state_dict().items()}
        assert all(same(before[k], after[k]) for k in before)


# -- the class's shell: copy, pickle, state_dict ----------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_copy_pickle_state_dict(backend: Any, dtype: str) -> None:
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    kw = {"moving_average": True, "symmetric": True}
    data = [backend.from_numpy(b) for b in batches(17, 4, dtype=np.dtype(dtype))]
    cal = aort.MinMaxCalibrater(**kw)
    cal.collect(data[:2])
    clones = [copy.deepcopy(cal)]
    clones.append(pickle.loads(pickle.dumps(cal)))
    loaded = aort.MinMaxCalibrater(**kw, xp=backend.xp, device=backend.device)
    loaded.load_state_dict(cal.state_dict())
    clones.append(loaded)
    cal.collect(data[2:])
    for other in clones:
        other.collect(data[2:])
        result = other.compute_data()
        assert all(same(a, b) for a, b in zip(result, cal.compute_data(), strict=True))
        assert result[0].dtype == np.dtype(dtype)
    with pytest.raises(KeyError, match="missing keys"):
        aort.MinMaxCalibrater().load_state_dict({"lowest": np.zeros(1, np.float32)})
    assert "moving_average=True" in repr(cal)


# -- the functional core: jit and lazy Dask ---------------------------------------------
def test_functional_core_jit_and_lazy(backend: Any, folder: str) -> None:
    data = batches(18, 3, shape=(4, 5))
    kw: dict[str, Any] = {"moving_average": True, "symmetric": False}
    step: Any = functools.partial(aort.minmax_update, **kw)
    if backend.library == "jax":
        import jax

        step = jax.jit(step)
    state = aort.minmax_init(xp=backend.xp, device=backend.device)
    state = step(state, [backend.from_numpy(b) for b in data[:2]])
    state = step(state, [backend.from_numpy(data[2])])
    if backend.library == "dask":
        assert not isinstance(state.lowest, np.ndarray)  # still lazy
    lo, hi = aort.minmax_result(state)
    rlo, rhi = reference(folder, [data[:2], data[2:]], **kw)
    assert same(lo, rlo)
    assert same(hi, rhi)


# -- case 10: compute_scale_zp ----------------------------------------------------------
QTYPES = [
    (TensorProto.INT8, False, False),
    (TensorProto.UINT8, False, False),
    (TensorProto.INT8, False, True),
    (TensorProto.INT8, True, False),
    (TensorProto.UINT8, True, False),
    (TensorProto.INT16, False, True),
    (TensorProto.UINT16, False, False),
]
RANGES = [(-1.0, 3.0), (0.5, 2.0), (-2.0, -0.25), (0.0, 0.0), (-1e-40, 1e-40), (-3.1, 3.1)]


@pytest.mark.parametrize(("qtype", "reduce_range", "symmetric"), QTYPES)
@pytest.mark.parametrize("min_real_range", [None, 0.5])
def test_compute_scale_zp(
    qtype: int, reduce_range: bool, symmetric: bool, min_real_range: float | None
) -> None:
    qmin, qmax = quant_utils.get_qmin_qmax_for_qType(qtype, reduce_range, symmetric)
    rng = np.random.default_rng(19)
    ranges = RANGES + [tuple(sorted(rng.standard_normal(2) * 3)) for _ in range(20)]
    for dtype in (np.float32, np.float16):
        for lo, hi in ranges:
            rmin, rmax = np.array([lo], dtype), np.array([hi], dtype)
            args = (rmin, rmax, qmin, qmax, symmetric, min_real_range)
            expected = quant_utils.compute_scale_zp(*args)
            mine = aort.compute_scale_zp(*args)
            assert all(same(a, b) for a, b in zip(mine, expected, strict=True)), (lo, hi)
        # Arrays of several ranges (arrayobs): each element as ORT computes it alone.
        rmin = np.array([r[0] for r in ranges], dtype)
        rmax = np.array([r[1] for r in ranges], dtype)
        zp, scale = aort.compute_scale_zp(rmin, rmax, qmin, qmax, symmetric, min_real_range)
        for i in range(len(ranges)):
            ezp, escale = quant_utils.compute_scale_zp(
                rmin[i : i + 1], rmax[i : i + 1], qmin, qmax, symmetric, min_real_range
            )
            assert same(np.reshape(zp[i], np.shape(ezp)), ezp)
            assert same(np.reshape(scale[i], np.shape(escale)), escale)


def test_compute_scale_zp_refusals() -> None:
    f = np.float32
    for args, kind in (
        (
            (np.array([f(0)]), np.array([f(1)]), np.array(1, np.int8), np.array(5, np.int8)),
            ValueError,
        ),
        (
            (np.array([f(np.nan)]), np.array([f(1)]), np.array(-8, np.int8), np.array(7, np.int8)),
            AssertionError,
        ),
        (
            (np.array([f(0)]), np.array([f(1)]), np.array(0, np.int8), np.array(-1, np.int8)),
            ValueError,
        ),
    ):
        with pytest.raises(kind):
            quant_utils.compute_scale_zp(*args)
        with pytest.raises(kind):
            aort.compute_scale_zp(*args)
    with pytest.raises(TypeError, match="rmin must be a NumPy float"):
        aort.compute_scale_zp(0.0, np.float32(1), np.int8(-128), np.int8(127))


@pytest.mark.parametrize("per_channel", [False, True])
def test_dask_chunks_equal_one_call_on_the_whole(
    backend: Any, folder: str, per_channel: bool
) -> None:
    """Batches chunked over Dask (the data-parallel case): the reference on the whole batches."""
    if backend.library != "dask":
        pytest.skip("Dask chunks")
    import dask.array as da

    data = batches(20, 3, shape=(6, 4, 5))
    data[1][2, 1, 3] = -0.0
    data[2][:] = 0.0
    data[2][4, 2, 1] = -0.0
    chunked = [da.from_array(b, chunks=(2, 2, 3)) for b in data]  # type: ignore[no-untyped-call]
    kw: dict[str, Any] = {"per_channel": per_channel, "moving_average": True}
    cal = aort.MinMaxCalibrater(**kw)
    cal.collect(chunked[:2])
    cal.collect(chunked[2:])
    lo, hi = cal.compute_data()
    rlo, rhi = reference(folder, [data[:2], data[2:]], **kw)
    assert same(lo, rlo)
    assert same(hi, rhi)


def test_xp_binds_the_default_device() -> None:
    """``xp=`` alone binds ``xp``'s default device, as the observers do: its arrays are
    taken, another device is refused clearly, and ``device=`` needs ``xp=``."""
    from arrayobs.calib import modelopt

    x = np.ones(4, np.float32)
    makers = (
        aort.MinMaxCalibrater,
        lambda **kw: aort.HistogramCollector("entropy", False, 16, 8, 99.9, **kw),
        modelopt.MaxCalibrator,
        lambda **kw: modelopt.HistogramCalibrator(num_bins=16, **kw),
    )
    for make in makers:
        cal = make(xp=np)
        assert cal.device == "cpu"
        cal.collect([x] if isinstance(cal, aort.MinMaxCalibrater) else x)
        with pytest.raises(ValueError, match="needs xp="):
            make(device="cpu")
    strict = pytest.importorskip("array_api_strict")
    other = strict.asarray(x, device=strict.Device("device1"))
    for make in makers:
        cal = make(xp=strict)
        with pytest.raises(ValueError, match="bound to array_api_strict on device"):
            cal.collect([other] if isinstance(cal, aort.MinMaxCalibrater) else other)
        assert cal.state_dict() == make(xp=strict).state_dict()


def test_refused_without_int64() -> None:
    """A device without int64 (array-api-strict's no_x64): a clear TypeError, and
    the calibrator keeps no state."""
    strict = pytest.importorskip("array_api_strict")
    x = strict.asarray(np.ones((2, 3), np.float32), device=strict.Device("no_x64"))
    cal = aort.MinMaxCalibrater()
    with pytest.raises(TypeError, match="has no index dtype"):
        cal.collect([x])
    assert cal.state_dict() == aort.MinMaxCalibrater().state_dict()
    with pytest.raises(TypeError, match="has no index dtype"):
        aort.minmax_init(xp=strict, device=x.device)
