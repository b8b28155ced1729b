"""ModelOpt 0.47.0's calibrators against the live reference, bit for bit."""

from __future__ import annotations

import copy
import pickle
import threading
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import _backends
from arrayobs._compat import has_dtype, to_host
from arrayobs._core import _calib_modelopt_search as search
from arrayobs.calib import modelopt as mo

torch = pytest.importorskip("torch", reason="torch runs ModelOpt, the reference")
with warnings.catch_warnings():
    # ModelOpt's import calls torch.jit.script, which torch 2.13 deprecates
    # (DeprecationWarning); pytest turns warnings into errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    ref_calib = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )
    ref_hist = pytest.importorskip(
        "modelopt.torch.quantization.calib.histogram",
        reason="reference not installed: ModelOpt 0.47.0",
    )


def bits(a: Any) -> tuple[str, bytes]:
    a = np.asarray(a)
    return str(a.dtype), a.tobytes()


def host(x: Any) -> np.ndarray:
    """A host copy keeping float16 (``to_host`` widens torch's to float32)."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.float16:
        return x.detach().cpu().numpy()
    return to_host(x)


def same(ours: Any, theirs: Any) -> None:
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.numpy()
    assert bits(ours) == bits(theirs), (ours, theirs)


# -- the searches, fed the reference's own histograms ------------------------------------
def _histograms() -> list[tuple[np.ndarray, np.ndarray, bool]]:
    rng = np.random.default_rng(7)
    out = []
    for t in range(6):
        x = (
            rng.standard_normal(20000) * rng.uniform(0.1, 3) * rng.random(20000) ** (t % 3)
        ).astype(np.float32)
        torch_hist = t % 2 == 0
        ref = ref_calib.HistogramCalibrator(num_bins=200 + 29 * t, torch_hist=torch_hist)
        ref.collect(torch.from_numpy(x))
        ref.collect(torch.from_numpy(x * np.float32(1.6)))
        if torch_hist:
            out.append((ref._calib_hist.int().numpy(), ref._calib_bin_edges.numpy(), True))
        else:
            out.append((ref._calib_hist.copy(), ref._calib_bin_edges.copy(), False))
    return out


HISTOGRAMS = _histograms()
SEARCH_ARGS = [
    {"num_bits": 8, "unsigned": False},
    {"num_bits": 8, "unsigned": False, "stride": 3},
    {"num_bits": 8, "unsigned": False, "start_bin": 64},
    {"num_bits": 4, "unsigned": True},
]


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        out = fn(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__
    return bits(out.numpy() if isinstance(out, torch.Tensor) else out)


@pytest.mark.parametrize("case", range(len(HISTOGRAMS)))
@pytest.mark.parametrize("kwargs", SEARCH_ARGS)
def test_entropy_search_kl_values(case: int, kwargs: dict[str, Any], monkeypatch: Any) -> None:
    """Every candidate's KL value and the chosen amax equal the reference's."""
    hist, edges, _ = HISTOGRAMS[case]
    recorded: list[float] = []
    original = ref_hist.entropy

    def record(p: Any, q: Any, *a: Any, **k: Any) -> Any:
        recorded.append(original(p, q, *a, **k))
        return recorded[-1]

    monkeypatch.setattr(ref_hist, "entropy", record)
    kw = dict(kwargs)
    num_bits, unsigned = kw.pop("num_bits"), kw.pop("unsigned")
    theirs = ref_hist._compute_amax_entropy(hist.copy(), edges, num_bits, unsigned, **kw)
    ours = search.amax_entropy(hist, edges, num_bits, unsigned, **kw)
    same(ours, theirs)
    divergences = search.entropy_divergences(
        hist, num_bits, unsigned, kw.get("stride", 1), kw.get("start_bin", 128)
    )
    assert bits(divergences) == bits(np.array(recorded, dtype=np.float64))


@pytest.mark.parametrize("case", range(len(HISTOGRAMS)))
@pytest.mark.parametrize("kwargs", SEARCH_ARGS)
def test_mse_search(case: int, kwargs: dict[str, Any]) -> None:
    """The reference's mse search as it runs, calling bug included."""
    hist, edges, _ = HISTOGRAMS[case]
    kw = dict(kwargs)
    num_bits, unsigned = kw.pop("num_bits"), kw.pop("unsigned")
    theirs = _outcome(ref_hist._compute_amax_mse, hist.copy(), edges, num_bits, unsigned, **kw)
    assert _outcome(search.amax_mse, hist, edges, num_bits, unsigned, **kw) == theirs


def test_mse_search_above_eight() -> None:
    """Data well above 8: the argmin moves off the first candidate."""
    x = torch.from_numpy(np.random.default_rng(3).uniform(0, 40, 5000).astype(np.float32))
    ref = ref_calib.HistogramCalibrator(num_bins=512)
    ref.collect(x)
    hist, edges = ref._calib_hist.int().numpy(), ref._calib_bin_edges.numpy()
    same(search.amax_mse(hist, edges, 8, False), ref_hist._compute_amax_mse(hist, edges, 8, False))


@pytest.mark.parametrize("case", range(len(HISTOGRAMS)))
@pytest.mark.parametrize("p", [0, 50, 99.99, 100])
def test_percentile_search(case: int, p: float) -> None:
    hist, edges, _ = HISTOGRAMS[case]
    same(search.amax_percentile(hist, edges, p), ref_hist._compute_amax_percentile(hist, edges, p))


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        ("entropy", {"start_bin": 5000}),
        ("mse", {"start_bin": 5000}),
        ("entropy", {"start_bin": 0}),
    ],
)
def test_search_refusals(fn: str, args: dict[str, Any]) -> None:
    hist, edges, _ = HISTOGRAMS[0]
    ours = getattr(search, f"amax_{fn}")
    theirs = getattr(ref_hist, f"_compute_amax_{fn}")
    assert _outcome(ours, hist, edges, 8, False, **args) == _outcome(
        theirs, hist.copy(), edges, 8, False, **args
    )
    with pytest.raises(ValueError, match="percentile"):
        search.amax_percentile(hist, edges, -1)


# -- HistogramCalibrator (torch_hist=True), after every collect ------------------------------
def _streams() -> dict[str, tuple[dict[str, Any], list[np.ndarray]]]:
    rng = np.random.default_rng(11)

    def normal(n: int, s: float) -> np.ndarray:
        return (rng.standard_normal(n) * s).astype(np.float32)

    chain = [normal(int(rng.integers(50, 3000)), float(rng.uniform(0.1, 4))) for _ in range(5)]
    zeros = normal(2000, 1.0)
    zeros[::3] = 0
    # the reference's bins != len(edges) - 1 after a growth (docs/design 4.3)
    w = np.float32(0.0015810085460543633)
    first = np.full(16, w * 16, dtype=np.float32)
    mismatch = [first, np.asarray([0.04426823928952217], dtype=np.float32)]
    return {
        "one": ({"num_bins": 256}, [normal(1000, 1.0)]),
        "grow": ({"num_bins": 200}, [normal(1000, 1.0), normal(800, 2.5)]),
        "chain": ({"num_bins": 128}, chain),
        "skip_zeros": ({"skip_zeros": True, "num_bins": 256}, [zeros, zeros * 3]),
        "positive": ({"num_bins": 100}, [np.abs(normal(500, 1.0)), np.abs(normal(500, 2.0))]),
        "mismatch": ({"num_bins": 16}, mismatch),
        "odd": ({"num_bins": 3}, [normal(100, 1.0), normal(100, 3.0)]),
    }


STREAMS = _streams()
# Backends whose eager updates run op by op (compiled per shape): fewer cases.
_SLOW = ("jax", "dask")


def _skip_without_float64(backend: Any) -> None:
    """HistogramCalibrator computes in float64 (test_histogram_refused_without_float64)."""
    with _backends.shared(backend.xp).float64_scope():
        if not has_dtype(backend.xp, backend.device, "float64"):
            pytest.skip("this device has no float64, which HistogramCalibrator refuses")


def test_histogram_refused_without_float64() -> None:
    """A device without float64 (array-api-strict's no_x64): a clear TypeError at
    the first collect, and the calibrator stays unbound and empty."""
    xp = pytest.importorskip("array_api_strict")
    x = xp.asarray([1.0, -2.0], dtype=xp.float32, device=xp.Device("no_x64"))
    for torch_hist in (True, False):
        ours = mo.HistogramCalibrator(num_bins=8, torch_hist=torch_hist)
        with pytest.raises(TypeError, match="has no float64"):
            ours.collect(x)
        assert ours.xp is None
        assert ours.calib_hist is None
        with pytest.raises(TypeError, match="has no float64"):
            mo.histogram_init(8, xp=xp, device=x.device, torch_hist=torch_hist)


def _check_state(ours: Any, ref: Any) -> None:
    same(ours.calib_hist, ref._calib_hist)
    same(ours.calib_bin_edges, ref._calib_bin_edges)


@pytest.mark.parametrize("torch_hist", [True, False])
@pytest.mark.parametrize("name", list(STREAMS))
def test_histogram_stream(backend: Any, name: str, torch_hist: bool) -> None:
    """Counts and edges after every collect, then every search (and the state
    after each: NumPy mode's entropy changes the first bin), as the reference."""
    _skip_without_float64(backend)
    if backend.name in _SLOW and name not in ("grow", "mismatch"):
        pytest.skip("two streams on the op-by-op backends (the rules are the same on each)")
    kwargs, batches = STREAMS[name]
    kwargs = {**kwargs, "torch_hist": torch_hist}
    ref = ref_calib.HistogramCalibrator(**kwargs)
    ours = mo.HistogramCalibrator(**kwargs)
    for x in batches:
        ref.collect(torch.from_numpy(x.copy()))
        ours.collect(backend.from_numpy(x))
        _check_state(ours, ref)
    for method, extra in [
        ("entropy", {}),
        ("entropy", {"stride": 3, "start_bin": 8}),
        ("mse", {"start_bin": 1}),
        ("percentile", {"percentile": 99.0}),
        ("percentile", {}),
    ]:
        theirs = _outcome(ref.compute_amax, method, **extra)
        got = _outcome(lambda *a, **k: to_host(ours.compute_amax(*a, **k)), method, **extra)
        assert got == theirs, (method, extra)
        _check_state(ours, ref)


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_histogram_dtypes(backend: Any, dtype: str) -> None:
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    x = np.random.default_rng(2).standard_normal(700).astype(dtype)
    ref = ref_calib.HistogramCalibrator(num_bins=64)
    ours = mo.HistogramCalibrator(num_bins=64)
    ref.collect(torch.from_numpy(x))
    ours.collect(backend.from_numpy(x))
    _check_state(ours, ref)


def _host_state(cal: Any) -> list[tuple[str, bytes]]:
    return [bits(to_host(v)) for v in cal.state_dict().values()]


def _refused(ref_call: Any, our_call: Any) -> None:
    with pytest.raises(Exception) as theirs:
        ref_call()
    with pytest.raises(type(theirs.value)):
        our_call()


def test_histogram_refusals(backend: Any) -> None:
    """Zero first batch then growth (OverflowError), NaN first batch, empty
    input, axis: the reference's exception types; the state is unchanged."""
    _skip_without_float64(backend)
    zero = np.zeros(10, dtype=np.float32)
    grow = np.asarray([1.0, 2.0], dtype=np.float32)
    ref = ref_calib.HistogramCalibrator(num_bins=8)
    ours = mo.HistogramCalibrator(num_bins=8)
    ref.collect(torch.from_numpy(zero))
    ours.collect(backend.from_numpy(zero))
    _check_state(ours, ref)
    before = _host_state(ours)
    _refused(
        lambda: ref.collect(torch.from_numpy(grow)), lambda: ours.collect(backend.from_numpy(grow))
    )
    assert _host_state(ours) == before
    nan = np.asarray([1.0, np.nan], dtype=np.float32)
    _refused(
        lambda: ref_calib.HistogramCalibrator().collect(torch.from_numpy(nan)),
        lambda: mo.HistogramCalibrator().collect(backend.from_numpy(nan)),
    )
    empty = np.zeros(0, dtype=np.float32)
    _refused(
        lambda: ref_calib.HistogramCalibrator().collect(torch.from_numpy(empty)),
        lambda: mo.HistogramCalibrator().collect(backend.from_numpy(empty)),
    )
    _refused(lambda: ref_calib.HistogramCalibrator(axis=0), lambda: mo.HistogramCalibrator(axis=0))
    with pytest.raises(TypeError, match="Unknown calibration method"):
        mo.HistogramCalibrator().compute_amax("max")
    with pytest.raises(ValueError, match="percentile"):
        mo.HistogramCalibrator().compute_amax("percentile", percentile=101)
    assert mo.HistogramCalibrator().compute_amax("entropy") is None


def test_histogram_nan_later(backend: Any) -> None:
    """A NaN after the first batch: no abs (torch.min is NaN), NaN dropped."""
    _skip_without_float64(backend)
    ref = ref_calib.HistogramCalibrator(num_bins=32)
    ours = mo.HistogramCalibrator(num_bins=32)
    for x in (
        np.asarray([0.5, -1.0, 2.0], np.float32),
        np.asarray([-0.5, np.nan, 1.5, 3.0], np.float32),
    ):
        ref.collect(torch.from_numpy(x))
        ours.collect(backend.from_numpy(x))
        _check_state(ours, ref)


def test_small_capacity_repads(backend: Any) -> None:
    """The class re-pads past its capacity: the same numbers as a large one."""
    _skip_without_float64(backend)
    kwargs, batches = STREAMS["chain"]
    ref = ref_calib.HistogramCalibrator(**kwargs)
    ours = mo.HistogramCalibrator(capacity=128, **kwargs)
    for x in batches:
        ref.collect(torch.from_numpy(x.copy()))
        ours.collect(backend.from_numpy(x))
        _check_state(ours, ref)


# -- per channel ------------------------------------------------------------------------
@pytest.mark.parametrize("torch_hist", [True, False])
@pytest.mark.parametrize("axis", [0, -1])
def test_histogram_per_channel(backend: Any, axis: int, torch_hist: bool) -> None:
    """Each channel equals the reference fed that channel's slices."""
    _skip_without_float64(backend)
    if backend.name in _SLOW and axis != 0:
        pytest.skip("one axis on the op-by-op backends")
    rng = np.random.default_rng(5)
    batches = [
        (rng.standard_normal((3, 40, 5)) * rng.uniform(0.2, 3, (1, 1, 5))).astype(np.float32)
        for _ in range(3)
    ]
    ours = mo.HistogramCalibrator(num_bins=64, channel_axis=axis, torch_hist=torch_hist)
    channels = batches[0].shape[axis]
    refs = [
        ref_calib.HistogramCalibrator(num_bins=64, torch_hist=torch_hist) for _ in range(channels)
    ]
    for x in batches:
        ours.collect(backend.from_numpy(x))
        for c, ref in enumerate(refs):
            ref.collect(torch.from_numpy(np.ascontiguousarray(np.take(x, c, axis=axis)).ravel()))
        for c, ref in enumerate(refs):
            same(ours.calib_hist[c], ref._calib_hist)
            same(ours.calib_bin_edges[c], ref._calib_bin_edges)
    for method in ("entropy", "mse", "percentile"):
        got = np.asarray(to_host(ours.compute_amax(method, start_bin=16)))
        want = [
            r.compute_amax(method, start_bin=16)
            if method != "percentile"
            else r.compute_amax(method)
            for r in refs
        ]
        if method == "percentile":
            got = np.asarray(to_host(ours.compute_amax(method)))
        assert bits(got) == bits(np.stack([w.numpy() for w in want]))


# -- the functional core under jax.jit and on Dask ------------------------------------------
def test_histogram_functional_jit_and_dask(backend: Any) -> None:
    """``histogram_update`` jitted (JAX) or lazy (Dask) on the concatenation of
    pieces equals the reference called once per step on ``np.concatenate``."""
    if backend.name not in ("jax", "dask"):
        pytest.skip("jax.jit and Dask's lazy update")
    rng = np.random.default_rng(9)
    steps = [
        [rng.standard_normal(n).astype(np.float32) * s for n in (100, 57, 300)]
        for s in (1.0, 2.5, 0.5)
    ]
    state = mo.histogram_init(128, xp=backend.xp, device=backend.device)
    update = mo.histogram_update
    if backend.name == "jax":
        import jax

        update = jax.jit(mo.histogram_update)
    ref = ref_calib.HistogramCalibrator(num_bins=128)
    for pieces in steps:
        whole = np.concatenate(pieces)
        if backend.name == "dask":
            import dask.array as da

            x = da.concatenate([da.from_array(p, chunks=64) for p in pieces])
        else:
            x = backend.xp.asarray(whole)
        state = update(state, x)
        ref.collect(torch.from_numpy(whole))
    counts, edges = mo.histogram_host(state)[0]
    same(counts, ref._calib_hist)
    same(edges, ref._calib_bin_edges)
    same(mo.histogram_result(state, "entropy")[0], ref.compute_amax("entropy"))


def test_functional_capacity_refusal() -> None:
    import array_api_compat.numpy as xp

    state = mo.histogram_init(8, xp=xp, capacity=8)
    state = mo.histogram_update(state, xp.asarray(np.asarray([1.0], np.float32)))
    state = mo.histogram_update(state, xp.asarray(np.asarray([5.0], np.float32)))
    with pytest.raises(ValueError, match="capacity >= 40"):
        mo.histogram_result(state, "entropy")


# -- MaxCalibrator ------------------------------------------------------------------------
MAX_CASES = [
    ((4, 6), None, "float32"),
    ((4, 6), 0, "float32"),
    ((4, 6), -1, "float16"),
    ((2, 3, 4), (0, 2), "float32"),
    ((7,), 0, "float32"),  # every dim named: the per-tensor scalar
]


@pytest.mark.parametrize(("shape", "axis", "dtype"), MAX_CASES)
def test_max_calibrator(backend: Any, shape: tuple[int, ...], axis: Any, dtype: str) -> None:
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    rng = np.random.default_rng(4)
    ref = ref_calib.MaxCalibrator(axis=axis)
    ours = mo.MaxCalibrator(axis=axis)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        ref.collect(torch.from_numpy(x))
        ours.collect(backend.from_numpy(x))
        same(host(ours.compute_amax()), ref.compute_amax())


def test_max_refusals(backend: Any) -> None:
    x = np.ones((2, 3), np.float32)
    for bad in (np.asarray([1.0, np.nan], np.float32), np.asarray([1.0, np.inf], np.float32)):
        _refused(
            lambda b=bad: ref_calib.MaxCalibrator().collect(torch.from_numpy(b)),
            lambda b=bad: mo.MaxCalibrator().collect(backend.from_numpy(b)),
        )
    ref, ours = ref_calib.MaxCalibrator(axis=0), mo.MaxCalibrator(axis=0)
    ref.collect(torch.from_numpy(x))
    ours.collect(backend.from_numpy(x))
    y = np.ones((3, 3), np.float32)
    _refused(lambda: ref.collect(torch.from_numpy(y)), lambda: ours.collect(backend.from_numpy(y)))
    same(host(ours.compute_amax()), ref.compute_amax())
    empty = np.zeros((0,), np.float32)
    _refused(
        lambda: ref_calib.MaxCalibrator().collect(torch.from_numpy(empty)),
        lambda: mo.MaxCalibrator().collect(backend.from_numpy(empty)),
    )
    assert mo.MaxCalibrator().compute_amax() is None


# -- the shell: copies, pickles, state_dict, threads ---------------------------------------
def test_copy_pickle_state_dict(backend: Any) -> None:
    _skip_without_float64(backend)
    kwargs, batches = STREAMS["grow"]
    a = mo.HistogramCalibrator(**kwargs)
    a.collect(backend.from_numpy(batches[0]))
    for b in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        b.collect(backend.from_numpy(batches[1]))
        c = mo.HistogramCalibrator(**kwargs)
        c.load_state_dict(b.state_dict())
        for d in (b, c):
            same(d.calib_hist, b.calib_hist)
            same(to_host(d.compute_amax("entropy")), to_host(b.compute_amax("entropy")))
    assert a.calib_hist.shape == (kwargs["num_bins"],)
    with pytest.raises(KeyError):
        mo.HistogramCalibrator().load_state_dict({"counts": 1})


def test_threads() -> None:
    """Concurrent collects of one value each: every update is atomic."""
    ours = mo.HistogramCalibrator(num_bins=16)
    ours.collect(np.asarray([1.0], np.float32))
    x = np.asarray([0.5], np.float32)

    def work() -> None:
        for _ in range(20):
            ours.collect(x)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert float(ours.calib_hist.sum()) == 81.0


# -- MseCalibrator ----------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0])
def test_mse_calibrator(backend: Any, axis: Any) -> None:
    """Two collects with ModelOpt's ``_tensor_quant`` (8 bits): the summed
    losses and the chosen amax, as the reference."""
    tq = pytest.importorskip(
        "modelopt.torch.quantization.tensor_quant",
        reason="reference not installed: ModelOpt 0.47.0",
    )
    rng = np.random.default_rng(8)
    batches = [(rng.standard_normal((4, 300)) * [[0.5], [1], [2], [4]]).astype(np.float32)]
    batches.append((batches[0] * np.float32(1.3)).astype(np.float32))
    amax = np.abs(batches[0]).max(axis=1, keepdims=axis is not None).astype(np.float32)
    if axis is None:
        amax = np.asarray(np.abs(batches[0]).max(), dtype=np.float32)
    ref = ref_calib.MseCalibrator(
        torch.from_numpy(amax.copy()),
        axis=axis,
        quant_func=lambda x, a: tq._tensor_quant(x, a, 8, False),
    )
    xp = backend.xp
    ours = mo.MseCalibrator(
        backend.from_numpy(amax),
        axis=axis,
        quant_func=lambda x, a: mo.tensor_quant(x, a, 8, False, xp=xp),
    )
    for x in batches:
        ref.collect(torch.from_numpy(x))
        ours.collect(backend.from_numpy(x))
        theirs = torch.stack(ref._losses_sum).numpy()
        assert bits(ours.losses) == bits(theirs)
    same(to_host(ours.compute_amax()), ref.compute_amax())


def _zero_quant(x: Any, amax: Any) -> Any:
    return x * 0  # a module-level quant_func: pickles by name (a lambda would not)


def test_mse_calibrator_refusals() -> None:
    x = np.ones((2, 3), np.float32)
    _refused(
        lambda: ref_calib.MseCalibrator(torch.tensor(1.0)).collect(torch.from_numpy(x)),
        lambda: mo.MseCalibrator(np.asarray(1.0, np.float32)).collect(x),
    )
    assert mo.MseCalibrator(np.asarray(1.0, np.float32)).compute_amax() is None
    with pytest.raises(NotImplementedError, match="leading dims"):
        mo.MseCalibrator(np.ones((1, 3), np.float32), axis=1, quant_func=lambda x, a: x).collect(x)
    cal = mo.MseCalibrator(np.asarray(1.0, np.float32), quant_func=_zero_quant)
    cal.collect(x)
    pickled = pickle.loads(pickle.dumps(cal))
    assert bits(pickled.losses) == bits(cal.losses)
    cal.reset()
    assert cal.compute_amax() is None


def test_docstring_examples() -> None:
    """The classes' examples run (tests/test_docs.py lists other modules)."""
    import doctest

    from arrayobs._observers import _modelopt

    result = doctest.testmod(_modelopt, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
