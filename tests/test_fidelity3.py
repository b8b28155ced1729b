"""Fidelity round 3 (issue 24): each finding against the live reference.

torch 2.13.0 and torchao 0.18.0 run inside each test on the same values; a
test names the issue's item it pins.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np
import pytest

from arrayobs import affine
from arrayobs import functional as F
from arrayobs._compat import to_host

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import granularity as tg
    from torchao.quantization import observer as tobs
    from torchao.quantization import quant_primitives as tq
    from torchao.quantization.pt2e import _affine_quantization as pt2e


def _wide(host: np.ndarray) -> np.ndarray:
    # to_host widens torch's 16-bit floats (NumPy has no bfloat16); widening is exact.
    narrow = host.dtype.name in ("float16", "bfloat16")  # bfloat16: ml_dtypes' (JAX)
    return host.astype(np.float32) if narrow else host


def _same(got: Any, want: Any) -> None:
    """Same dtype name, shape and bits (NaN matching NaN)."""
    assert str(got.dtype).rsplit(".", 1)[-1] == str(want.dtype).rsplit(".", 1)[-1]
    assert tuple(got.shape) == tuple(want.shape)
    g, w = (_wide(to_host(v)) for v in (got, want))
    assert g.tobytes() == w.tobytes(), f"got {g}, torch {w}"


# -- item 1: no autograd graph in affine state or in choose_qparams_affine -----------
@pytest.mark.parametrize("moving", [False, True])
def test_affine_observer_state_keeps_no_graph(torch_ref: Any, moving: bool) -> None:
    cls = (
        affine.AffineQuantizedMovingAverageMinMaxObserver
        if moving
        else affine.AffineQuantizedMinMaxObserver
    )
    ref_cls = (
        pt2e.AffineQuantizedMovingAverageMinMaxObserver
        if moving
        else tobs.AffineQuantizedMinMaxObserver
    )
    ours = cls(affine.MappingType.ASYMMETRIC, "uint8", affine.PerAxis(0), zero_point_dtype="int32")
    ref = ref_cls(
        tq.MappingType.ASYMMETRIC, torch.uint8, tg.PerAxis(0), zero_point_dtype=torch.int32
    )
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(4, 16, generator=gen).requires_grad_()
        ours(x)
        ref(x)
    for got, want in ((ours.min_val, ref.min_val), (ours.max_val, ref.max_val)):
        assert (
            (got.requires_grad, got.grad_fn) == (want.requires_grad, want.grad_fn) == (False, None)
        )
    scale, zp = ours.calculate_qparams()
    want_scale, want_zp = ref.calculate_qparams()
    assert scale.requires_grad is want_scale.requires_grad is False
    _same(scale, want_scale)
    _same(zp, want_zp)


@pytest.mark.parametrize(
    ("mapping", "block"),
    [("ASYMMETRIC", (4, 8)), ("SYMMETRIC", (1, 8)), ("SYMMETRIC_NO_CLIPPING_ERR", (2, 4))],
)
def test_choose_qparams_affine_returns_no_graph(torch_ref: Any, mapping: str, block: Any) -> None:
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(2)).requires_grad_()
    want = tq.choose_qparams_affine(x, getattr(tq.MappingType, mapping), block, torch.int8)
    got = affine.choose_qparams_affine(x, getattr(affine.MappingType, mapping), block, "int8")
    for g, w in zip(got, want, strict=True):
        assert (g.requires_grad, g.grad_fn) == (w.requires_grad, w.grad_fn) == (False, None)
        _same(g, w)
    # The min/max variant and the float8 scale are plain torch ops in torchao: they
    # keep the graph, and so do ours.
    lo, hi = x.amin(1), x.amax(1)
    want2 = tq.choose_qparams_affine_with_min_max(
        lo, hi, tq.MappingType.SYMMETRIC, (1, 8), torch.int8
    )
    got2 = affine.choose_qparams_affine_with_min_max(
        lo, hi, affine.MappingType.SYMMETRIC, (1, 8), "int8"
    )
    assert got2[0].requires_grad is want2[0].requires_grad


# -- item 2: dequantize_per_channel promotes as torch -------------------------------
def _ops() -> Any:
    import torch.ao.quantization.fx._decomposed  # registers the ops

    return torch.ops.quantized_decomposed


_FLOATS = ("float16", "bfloat16", "float32", "float64")


def test_dequantize_per_channel_issue_example(backend: Any, torch_ref: Any) -> None:
    if not backend.has("float16"):
        pytest.skip(f"{backend.name} has no float16")
    q = torch.tensor([[12, 7]], dtype=torch.uint8)
    scales = torch.tensor([0.1, 0.3], dtype=torch.float16)
    zps = torch.tensor([0.0, 0.5])
    want = _ops().dequantize_per_channel(q, scales, zps, 1, 0, 255, torch.uint8)
    got = F.dequantize_per_channel(
        backend.from_torch(q),
        backend.from_torch(scales),
        backend.from_torch(zps),
        1,
        0,
        255,
        "uint8",
    )
    _same(got, want)


@pytest.mark.parametrize("qname", ["uint8", "int8", "int32"])
@pytest.mark.parametrize("zname", ["int32", "uint8", *_FLOATS, None])
@pytest.mark.parametrize("sname", _FLOATS)
def test_dequantize_per_channel_promotion(
    backend: Any, torch_ref: Any, qname: str, zname: str | None, sname: str
) -> None:
    names = {qname, sname, "float32"} | ({zname} if zname else set())
    if not all(backend.has(n) for n in names):
        pytest.skip(f"{backend.name} lacks one of {sorted(names)}")
    # A fixed seed (str hashes change per process); 6 * 40 values per dtype triple caught
    # ATen's double -> Half conversion through float (two roundings) only now and then.
    gen = torch.Generator().manual_seed(zlib.crc32(f"{qname}-{zname}-{sname}".encode()))
    qdt = getattr(torch, qname)
    info = torch.iinfo(qdt)
    lo, hi = (-(2**20), 2**20) if qname == "int32" else (info.min, info.max)
    q = torch.randint(lo, hi + 1, (6, 400), generator=gen, dtype=torch.int64).to(qdt)
    scales = (torch.rand(6, generator=gen, dtype=torch.float64) * 0.37 + 1e-3).to(
        getattr(torch, sname)
    )
    zps = None
    if zname is not None:
        zdt = getattr(torch, zname)
        if zdt.is_floating_point:
            zps = (torch.rand(6, generator=gen, dtype=torch.float64) * 300 - 40).to(zdt)
        else:
            zps = torch.randint(0, 256, (6,), generator=gen).to(zdt)
    outs = [o for o in ("float32", "float16") if backend.has(o) and hasattr(backend.xp, o)]
    for out in outs:
        want = _ops().dequantize_per_channel(
            q,
            scales,
            zps,
            0,
            lo if qname == "int32" else info.min,
            hi if qname == "int32" else info.max,
            qdt,
            out_dtype=getattr(torch, out),
        )
        got = F.dequantize_per_channel(
            backend.from_torch(q),
            backend.from_torch(scales),
            None if zps is None else backend.from_torch(zps),
            0,
            lo if qname == "int32" else info.min,
            hi if qname == "int32" else info.max,
            qname,
            out_dtype=out,
        )
        with np.errstate(over="ignore"):  # Dask computes here: int32 beyond float16 is inf
            _same(got, want)


# -- item 3: a batch whose range overflows its dtype: torch's histc counts nothing -----
_OVERFLOW: dict[str, tuple[str, list[list[float]]]] = {
    "float16-one": ("float16", [[-60000.0, 1.0, 2.0, 60000.0]]),
    "float16-grow": ("float16", [[-1.0, 1.0, 0.3], [-60000.0, 60000.0], [5.0, 7.0]]),
    "float16-first": ("float16", [[-60000.0, 60000.0], [1.0, 2.0]]),
    "float32-one": ("float32", [[-2e38, 0.5, 2e38]]),
    "float32-grow": ("float32", [[-1.0, 1.0, 0.25], [-2e38, 2e38], [3.0]]),  # torch: inf scale
    "float32-half": ("float32", [[-1.0, 1.0], [-1e38, 1.0], [2e38]]),
    "bfloat16": ("bfloat16", [[-1.0, 2.0], [-3e38, 3e38]]),
}


def _torch_histogram_run(name: str, bins: int) -> tuple[list[Any], list[tuple[Any, ...]]]:
    dtype, values = _OVERFLOW[name]
    batches = [torch.tensor(v, dtype=getattr(torch, dtype)) for v in values]
    obs = torch.ao.quantization.HistogramObserver(bins=bins)
    after = []
    for b in batches:
        obs(b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty histogram's search
            scale, zp = obs.calculate_qparams()
        after.append((obs.histogram.clone(), obs.min_val.clone(), obs.max_val.clone(), scale, zp))
    return batches, after


def _bits_nan(a: Any) -> list[Any]:
    """float32 bits, every NaN as one value (its sign is not torch's contract)."""
    host = np.asarray(to_host(a), dtype=np.float32).reshape(-1)
    return [
        "nan" if np.isnan(v) else int(b) for v, b in zip(host, host.view(np.int32), strict=True)
    ]


def _check_state(state: Any, qparams: Any, want: tuple[Any, ...], i: int) -> None:
    hist, lo, hi, scale, zp = want
    pairs = ((state[0], hist, "histogram"), (state[1], lo, "min"), (state[2], hi, "max"))
    for got, ref, what in (*pairs, (qparams[0], scale, "scale")):
        assert _bits_nan(got) == _bits_nan(ref), f"{what}, batch {i}: {to_host(got)}, torch {ref}"
    assert int(to_host(qparams[1])[0]) == int(zp[0]), f"zero point, batch {i}"


def _histogram_runs(backend: Any) -> None:
    """Skip array-api-strict's no_x64 device, as tests/test_histogram.py does: the
    generic histc counts with ``searchsorted``, whose int64 index that device lacks."""
    if backend.name == "array_api_strict:no_x64":
        pytest.skip("searchsorted returns int64, which the no_x64 device lacks")


@pytest.mark.parametrize("name", list(_OVERFLOW))
def test_histogram_range_overflow_class(backend: Any, torch_ref: Any, name: str) -> None:
    from arrayobs import HistogramObserver

    _histogram_runs(backend)
    if not backend.has(_OVERFLOW[name][0]):
        pytest.skip(f"{backend.name} has no {_OVERFLOW[name][0]}")
    batches, after = _torch_histogram_run(name, 64)
    obs = HistogramObserver(bins=64, xp=backend.xp, device=backend.device)
    for i, (b, want) in enumerate(zip(batches, after, strict=True)):
        obs(backend.from_torch(b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qparams = obs.calculate_qparams()
        _check_state((obs.histogram, obs.min_val, obs.max_val), qparams, want, i)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(_OVERFLOW))
def test_histogram_range_overflow_functional(
    backend: Any, torch_ref: Any, name: str, jit: bool
) -> None:
    """The functional core eagerly, under jax.jit, and lazily on Dask (one compute)."""
    if jit and backend.library != "jax":
        pytest.skip("jax.jit is JAX's")
    if not backend.has(_OVERFLOW[name][0]):
        pytest.skip(f"{backend.name} has no {_OVERFLOW[name][0]}")
    if backend.name == "array_api_strict:no_x64":
        pytest.skip("searchsorted returns int64, which the no_x64 device lacks")
    batches, after = _torch_histogram_run(name, 64)
    update = F.histogram_update
    if jit:
        import jax

        update = jax.jit(F.histogram_update)
    state = F.histogram_init(64, xp=backend.xp, device=backend.device)
    states = []
    for b in batches:
        state = update(state, backend.from_torch(b))
        states.append(state)
    if backend.library == "dask":
        import dask

        # A lazy result computed outside arrayobs may warn of the overflow
        # (docs/exactness.md: Dask).
        with np.errstate(over="ignore", invalid="ignore"):
            computed = dask.compute(*[tuple(s) for s in states])
        states = [F.HistogramState(*v) for v in computed]
    config = F.quant_config()
    for i, (s, want) in enumerate(zip(states, after, strict=True)):
        _check_state(s, F.histogram_qparams(s, config), want, i)


# -- item 5: HistogramObserver takes symmetric quint8 with reduce_range, as torch ------
@pytest.mark.parametrize("qscheme", ["per_tensor_symmetric", "per_tensor_affine"])
def test_histogram_symmetric_quint8_reduce_range(
    backend: Any, torch_ref: Any, qscheme: str
) -> None:
    from arrayobs import HistogramObserver, MinMaxObserver

    _histogram_runs(backend)
    x = torch.randn(1000, generator=torch.Generator().manual_seed(5)) * 3 + 0.5
    kw = {"dtype": "quint8", "qscheme": qscheme, "reduce_range": True}
    tkw = {"dtype": torch.quint8, "qscheme": getattr(torch, qscheme), "reduce_range": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reduce_range is deprecated (both warn)
        ref = torch.ao.quantization.HistogramObserver(bins=256, **tkw)
        ours = HistogramObserver(bins=256, **kw, xp=backend.xp, device=backend.device)
        config = F.quant_config(**kw, histogram=True)
    ref(x)
    ours(backend.from_torch(x))
    want = ref.calculate_qparams()
    for got in (
        ours.calculate_qparams(),
        F.histogram_qparams(F.HistogramState(ours.histogram, ours.min_val, ours.max_val), config),
    ):
        _same(got[0], want[0])
        assert int(to_host(got[1])[0]) == int(want[1][0])
    assert (ours.quant_min, ours.quant_max) == (ref.quant_min, ref.quant_max)
    # torch's MinMax observers still refuse it, and so do ours.
    if qscheme == "per_tensor_symmetric":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(NotImplementedError):
                torch.ao.quantization.MinMaxObserver(**tkw)
            with pytest.raises(NotImplementedError, match="quint8"):
                MinMaxObserver(**kw)


# -- item 6: torch.compile(fullgraph=True) with Python float scales ---------------------
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside torch's inductor
@pytest.mark.parametrize("scale", [0.05, 1 / 3, 1e-39])
def test_torch_compile_python_float_scale(torch_ref: Any, scale: float) -> None:
    ops = _ops()
    t = torch.randn(1000, generator=torch.Generator().manual_seed(6)) * 4

    def step(x: Any) -> Any:
        y = F.fake_quantize_per_tensor_affine(x, scale, 7, 0, 255)
        q = F.quantize_per_tensor(x, scale, 7, 0, 255, "uint8")
        d = F.dequantize_per_tensor(q, scale, 7, 0, 255, "uint8")
        return y, q, d

    torch._dynamo.reset()
    y, q, d = torch.compile(step, fullgraph=True)(t)
    _same(y, torch.fake_quantize_per_tensor_affine(t, scale, 7, 0, 255))
    want_q = ops.quantize_per_tensor(t, scale, 7, 0, 255, torch.uint8)
    _same(q, want_q)
    _same(d, ops.dequantize_per_tensor(want_q, scale, 7, 0, 255, torch.uint8))


# -- item 8: accept and refuse what torch and torchao accept and refuse ----------------
def _outcome(fn: Any) -> Any:
    """("ok", result) or ("refused", None): torch's RuntimeError/AssertionError are
    arrayobs's ValueError/TypeError (docs/exactness.md, errors)."""
    try:
        return "ok", fn()
    except (RuntimeError, AssertionError, ValueError, TypeError):
        return "refused", None


def test_fake_quantize_int64_zero_point(backend: Any, torch_ref: Any) -> None:
    t = torch.tensor([0.5, 1e12, -3.0, 2.0**41, 3e12, -5e12, 7.25, float("nan")])
    args = (1.0, 2**40, -(2**41), 2**41)
    want = torch.fake_quantize_per_tensor_affine(t, *args)
    if not backend.has("int64"):
        with pytest.raises(ValueError, match="int64"):
            F.fake_quantize_per_tensor_affine(backend.from_torch(t), *args)
        return
    for fast in (True, False):
        _same(F.fake_quantize_per_tensor_affine(backend.from_torch(t), *args, fast=fast), want)


@pytest.mark.parametrize(
    ("xname", "sname", "target", "bounds"),
    [
        ("float16", "float16", "int32", ()),
        ("float16", "float16", "int16", ()),
        ("float16", "float16", "int32", (-1000, 1000)),
        ("float16", "float32", "int32", ()),
        ("bfloat16", "bfloat16", "int32", ()),
        ("float32", "float16", "int32", ()),
    ],
)
def test_quantize_affine_bounds_beyond_the_clamp_dtype(
    backend: Any, torch_ref: Any, xname: str, sname: str, target: str, bounds: tuple[int, ...]
) -> None:
    if not (backend.has(xname) and backend.has(sname)):
        pytest.skip(f"{backend.name} lacks {xname} or {sname}")
    x = torch.tensor([[1000.0, 1.0, -3.5, 0.25]], dtype=getattr(torch, xname))
    s = torch.tensor([[0.5]], dtype=getattr(torch, sname))
    z = torch.tensor([[3]], dtype=torch.int32)
    want = _outcome(lambda: tq.quantize_affine(x, (1, 4), s, z, getattr(torch, target), *bounds))
    got = _outcome(
        lambda: affine.quantize_affine(
            *(backend.from_torch(v) for v in (x,)),
            (1, 4),
            backend.from_torch(s),
            backend.from_torch(z),
            target,
            *bounds,
        )
    )
    assert got[0] == want[0]
    if want[0] == "ok":
        with np.errstate(over="ignore", invalid="ignore"):  # Dask computes here (docs/exactness.md)
            _same(got[1], want[1])


@pytest.mark.parametrize("xname", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize(
    "kw",
    [
        {"hp_value_ub": 1e12},
        {"hp_value_ub": 1e4},
        {"hp_value_lb": 1e12},
        {"hp_value_lb": -1e39},
        {"hp_value_ub": 1e40},
        {"hp_value_ub": float("inf")},
    ],
)
def test_choose_scale_float8_bounds(backend: Any, torch_ref: Any, xname: str, kw: Any) -> None:
    if not backend.has(xname):
        pytest.skip(f"{backend.name} has no {xname}")
    x = torch.tensor([[1000.0, 1.0, -3.5, 0.25]], dtype=getattr(torch, xname))
    want = _outcome(lambda: tq._choose_scale_float8(x, (1, 4), torch.float8_e4m3fn, **kw))
    got = _outcome(lambda: affine.choose_scale_float8(backend.from_torch(x), (1, 4), **kw))
    assert got[0] == want[0], kw
    if want[0] == "ok":
        _same(got[1], want[1])


@pytest.mark.parametrize(("shape", "axis"), [((0, 4), 0), ((3, 0), 1), ((0, 4), 1), ((3, 0), 0)])
def test_fake_quantize_per_channel_zero_channels(
    backend: Any, torch_ref: Any, shape: tuple[int, int], axis: int
) -> None:
    x = torch.zeros(shape)
    c = shape[axis]
    s, z = torch.ones(c), torch.zeros(c, dtype=torch.int32)
    want = _outcome(lambda: torch.fake_quantize_per_channel_affine(x, s, z, axis, 0, 255))
    for fast in (True, False):
        got = _outcome(
            lambda f=fast: F.fake_quantize_per_channel_affine(
                backend.from_torch(x),
                backend.from_torch(s),
                backend.from_torch(z),
                axis,
                0,
                255,
                fast=f,
            )
        )
        assert got[0] == want[0]
        if want[0] == "ok":
            _same(got[1], want[1])


@pytest.mark.parametrize("zp", [[0, 300], [-1, 4], [0, 255], [0.0, 300.0]])
def test_fake_quantize_per_channel_zero_point_range(backend: Any, torch_ref: Any, zp: Any) -> None:
    """torch refuses an integer zero point outside the range; so does arrayobs wherever
    the check reads nothing from a device (NumPy, array-api-strict, CPU torch); on JAX
    and Dask it is not checked (docs/exactness.md)."""
    x = torch.linspace(-3, 3, 6).reshape(2, 3)
    s = torch.tensor([0.1, 0.2])
    z = torch.tensor(zp, dtype=torch.float32 if isinstance(zp[0], float) else torch.int32)
    want = _outcome(lambda: torch.fake_quantize_per_channel_affine(x, s, z, 0, 0, 255))
    checks = backend.library in ("numpy", "array_api_strict", "torch")
    for fast in (True, False):
        got = _outcome(
            lambda f=fast: F.fake_quantize_per_channel_affine(
                backend.from_torch(x),
                backend.from_torch(s),
                backend.from_torch(z),
                0,
                0,
                255,
                fast=f,
            )
        )
        if checks or want[0] == "ok":
            assert got[0] == want[0]
        if got[0] == "ok" and want[0] == "ok":
            _same(got[1], want[1])


# -- item 9: crashes and unclear errors ------------------------------------------------
def test_histogram_init_takes_library_modules(backend: Any) -> None:
    """``xp=dask.array`` (a library module, not array-api-compat's namespace) works."""
    import importlib

    from arrayobs.cli import _LIBRARIES

    module = importlib.import_module(_LIBRARIES[backend.library])
    state = F.histogram_init(8, xp=module)
    assert state.histogram.shape == (8,)
    assert float(to_host(state.min_val)) == float("inf")


def test_histogram_qparams_checks_its_arguments() -> None:
    state = F.histogram_update(F.histogram_init(8, xp=np), np.arange(10, dtype=np.float32))
    with pytest.raises(TypeError, match="QuantConfig"):
        F.histogram_qparams(state, "quint8")  # type: ignore[arg-type]
    per_channel = F.quant_config(qscheme="per_channel_affine", per_tensor=False)
    with pytest.raises(ValueError, match="per tensor"):
        F.histogram_qparams(state, per_channel)
    with pytest.raises(TypeError, match="HistogramState"):
        F.histogram_qparams((state.histogram,), F.quant_config())  # type: ignore[arg-type]


def test_fixed_qparams_factory_error_names_xp(torch_ref: Any) -> None:
    import arrayobs

    fq = arrayobs.default_fixed_qparams_range_0to1_fake_quant()
    with pytest.raises(TypeError, match=r"xp=torch"):
        fq(torch.rand(4))
    fq = arrayobs.default_fixed_qparams_range_0to1_fake_quant(xp=torch)
    ref = torch.ao.quantization.default_fixed_qparams_range_0to1_fake_quant()
    x = torch.rand(16, generator=torch.Generator().manual_seed(9))
    _same(fq(x), ref(x))


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    from arrayobs.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('no GPU')\n", "RuntimeError"),
        ("raise ValueError('bad config')\n", "ValueError"),
    ],
)
def test_cli_target_import_errors(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    source: str,
    kind: str,
) -> None:
    name = f"fidelity3_target_{kind.lower()}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    err = _cli_error(capsys, ["compare", "--target", f"{name}:make"])
    assert f"{name}:make" in err and kind in err


def test_cli_argument_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--seed" in _cli_error(capsys, ["demo", "--seed", "-5"])
    with pytest.raises(SystemExit) as exit_info:
        _cli_error(capsys, ["compare", "--quick", "-3"])
    assert exit_info.value.code == 2
    assert "--quick" in capsys.readouterr().err


def test_cli_export_onto_a_file_or_a_full_disk(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from arrayobs._conformance import _export

    target = tmp_path / "f16.npy"
    target.write_bytes(b"")
    assert "is a file" in _cli_error(capsys, ["reference", "export", str(target)])
    written = []

    def full(self: Any, rel: str, a: Any, dtype: Any = None) -> Any:
        if len(written) == 3:
            raise OSError(28, "No space left on device", str(self.root / rel))
        written.append(rel)
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(b"x")
        return {"file": rel, "dtype": "float32", "shape": []}

    monkeypatch.setattr(_export._Writer, "array", full)
    for existed in (False, True):
        out = tmp_path / f"out{existed}"
        if existed:
            out.mkdir()
        written.clear()
        err = _cli_error(capsys, ["reference", "export", str(out), "--cases", "per-tensor"])
        assert "No space left on device" in err and "nothing was left" in err
        assert out.is_dir() == existed and (not existed or not any(out.iterdir()))


def test_cli_observe_json_is_json(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from arrayobs.cli import main

    np.save(tmp_path / "a.npy", np.array([1.0, np.nan], np.float32))
    assert main(["observe", str(tmp_path / "a.npy"), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert result["min_val"] == "nan" and result["scale"] == "nan"


# -- item 4: JAX bit-exact in its default configuration (no x64) and with x64 -----------
_FUSED = [
    "default_fused_act_fake_quant",
    "default_fused_wt_fake_quant",
    "default_fused_per_channel_wt_fake_quant",
    "fused_wt_fake_quant_range_neg_127_to_127",
]


def _jax_only(backend: Any) -> Any:
    if backend.library != "jax":
        pytest.skip("JAX's configurations")
    import jax

    return jax


@pytest.mark.filterwarnings("ignore:reduce_range is deprecated")
@pytest.mark.parametrize("x64", [False, True], ids=["no_x64", "x64"])
@pytest.mark.parametrize("name", _FUSED)
def test_fused_modules_exact_on_jax(backend: Any, torch_ref: Any, name: str, x64: bool) -> None:
    import arrayobs

    jax = _jax_only(backend)
    magnitudes = [1.0, 2.0, 1e-6, 3.0, 1e3, 1e-9, 0.5]
    with jax.enable_x64(x64):
        for seed in range(4):
            ref = getattr(torch.ao.quantization, name)()
            ours = getattr(arrayobs, name)(xp=backend.xp)
            rng = np.random.default_rng(seed)
            for step, m in enumerate(magnitudes):
                t = (rng.standard_normal((8, 50)) * m + rng.choice([0.0, m])).astype(np.float32)
                want = ref(torch.from_numpy(t))
                got = ours(backend.xp.asarray(t))
                _same(got, want)
                _same(ours.scale, ref.scale)
                assert to_host(ours.zero_point).tolist() == ref.zero_point.tolist(), (seed, step)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_fake_quantize_wide_ranges_exact_on_jax(backend: Any, torch_ref: Any, jit: bool) -> None:
    """Zero points and ranges beyond 2**24, per tensor and per channel, without x64."""
    jax = _jax_only(backend)
    t = torch.randn(4, 64, generator=torch.Generator().manual_seed(4)) * 1e8
    qmin, qmax = -(2**31), 2**31 - 1
    scales = torch.tensor([1.0, 3.0, 7.5, 0.25])
    zps = torch.tensor([2**30 + 3, -(2**29) - 1, 16777217, -16777219], dtype=torch.int32)
    want_c = torch.fake_quantize_per_channel_affine(t, scales, zps, 0, qmin, qmax)
    want_t = torch.fake_quantize_per_tensor_affine(t, 3.0, 16777217, qmin, qmax)

    def step(x: Any, s: Any, z: Any) -> Any:
        per_channel = F.fake_quantize_per_channel_affine(x, s, z, 0, qmin, qmax)
        return per_channel, F.fake_quantize_per_tensor_affine(x, 3.0, 16777217, qmin, qmax)

    run = jax.jit(step) if jit else step
    got_c, got_t = run(*(backend.xp.asarray(v.numpy()) for v in (t, scales, zps)))
    _same(got_c, want_c)
    _same(got_t, want_t)


# -- item 7: torchao's pt2e AffineQuantizedMovingAverageMinMaxObserver ------------------
@pytest.mark.parametrize(
    "dtypes",
    [("float32",), ("bfloat16",), ("float16",), ("float64",), ("bfloat16", "float32", "bfloat16")],
)
@pytest.mark.parametrize(
    ("mapping", "gran"),
    [
        ("ASYMMETRIC", ("PerAxis", 0)),
        ("SYMMETRIC", ("PerTensor",)),
        ("ASYMMETRIC", ("PerGroup", 8)),
    ],
)
def test_moving_average_is_torchao_pt2e(
    backend: Any, torch_ref: Any, dtypes: tuple[str, ...], mapping: str, gran: tuple[Any, ...]
) -> None:
    if not all(backend.has(d) for d in dtypes):
        pytest.skip(f"{backend.name} lacks one of {dtypes}")
    ref = pt2e.AffineQuantizedMovingAverageMinMaxObserver(
        getattr(tq.MappingType, mapping),
        torch.uint8 if mapping == "ASYMMETRIC" else torch.int8,
        getattr(tg, gran[0])(*gran[1:]),
        0.3,
    )
    ours = affine.AffineQuantizedMovingAverageMinMaxObserver(
        getattr(affine.MappingType, mapping),
        "uint8" if mapping == "ASYMMETRIC" else "int8",
        getattr(affine, gran[0])(*gran[1:]),
        averaging_constant=0.3,
        xp=backend.xp,
        device=backend.device,
    )
    gen = torch.Generator().manual_seed(7)
    for i in range(6):
        t = torch.randn(4, 16, generator=gen, dtype=torch.float64) * (i + 1) + i / 3
        t = t.to(getattr(torch, dtypes[i % len(dtypes)]))
        ref(t)
        ours(backend.from_torch(t))
        _same(ours.min_val, ref.min_val)
        _same(ours.max_val, ref.max_val)
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _same(got, want)


def test_moving_average_float32_running_dtype_is_torch_ao_per_block(torch_ref: Any) -> None:
    """running_dtype="float32": torch.ao's MovingAverageMinMaxObserver per block (bfloat16
    input rounded to float32 each batch), the earlier behaviour."""
    ref = torch.ao.quantization.MovingAverageMinMaxObserver(0.3, dtype=torch.quint8)
    ours = affine.AffineQuantizedMovingAverageMinMaxObserver(
        affine.MappingType.ASYMMETRIC,
        "uint8",
        affine.PerTensor(),
        averaging_constant=0.3,
        running_dtype="float32",
        xp=torch,
    )
    gen = torch.Generator().manual_seed(8)
    for i in range(5):
        t = (torch.randn(4, 16, generator=gen) * (i + 1)).to(torch.bfloat16)
        ref(t)
        ours(t)
        _same(ours.min_val, ref.min_val)
        _same(ours.max_val, ref.max_val)
    assert ours.calculate_qparams()[1].dtype == torch.int32
    with pytest.raises(ValueError, match="running_dtype"):
        affine.AffineQuantizedMovingAverageMinMaxObserver(
            affine.MappingType.ASYMMETRIC, "uint8", affine.PerTensor(), running_dtype="bf16"
        )


# -- item 10: torch's per-channel repr when bound to torch; negative loaded counts -------
def test_per_channel_repr_is_torchs_when_bound_to_torch(torch_ref: Any) -> None:
    from arrayobs import MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver

    x = torch.tensor([[1.0, 2.0], [-4.0, 3.0]]).T
    for name, cls in (
        ("PerChannelMinMaxObserver", PerChannelMinMaxObserver),
        ("MovingAveragePerChannelMinMaxObserver", MovingAveragePerChannelMinMaxObserver),
    ):
        ours, ref = cls(xp=torch), getattr(torch.ao.quantization, name)()
        assert repr(ours) == repr(ref)
        ours(x)
        ref(x)
        assert repr(ours) == repr(ref)


@pytest.mark.parametrize("seed", range(12))
def test_histogram_negative_loaded_counts(backend: Any, torch_ref: Any, seed: int) -> None:
    from arrayobs import HistogramObserver

    rng = np.random.default_rng(seed)
    bins = 128
    counts = rng.integers(-5, 20, bins).astype(np.float32)
    if seed % 3 == 0:
        counts[rng.integers(0, bins)] = -100.0
    if seed % 4 == 1:
        counts = -np.abs(counts)
    sd = {
        "histogram": torch.from_numpy(counts),
        "min_val": torch.tensor(-1.5),
        "max_val": torch.tensor(2.5),
        "eps": torch.tensor([2**-23]),
    }
    ref = torch.ao.quantization.HistogramObserver(bins=bins)
    ref.load_state_dict(sd)
    ours = HistogramObserver(bins=bins, xp=backend.xp, device=backend.device)
    ours.load_state_dict({k: backend.from_torch(v) for k, v in sd.items()})
    want = _outcome(ref.calculate_qparams)
    got = _outcome(ours.calculate_qparams)
    assert got[0] == want[0]
    if want[0] == "ok":
        _same(got[1][0], want[1][0])
        assert int(to_host(got[1][1])[0]) == int(want[1][1][0])


def test_histogram_rebins_many_bins_in_runs(backend: Any) -> None:
    """Item 10: re-binning goes through the upsampled points in runs (2**20 at a
    time); at 70,000 bins (1.12 million points, two runs, one across linspace's
    middle) the histogram is torch's bit for bit."""
    from arrayobs import HistogramObserver

    if backend.library not in ("numpy", "torch"):
        pytest.skip("the runs are backend-independent; NumPy and torch check them")
    rng = np.random.default_rng(24)
    batches = [torch.from_numpy(rng.standard_normal(4000).astype(np.float32) * s) for s in (1, 3)]
    ref = torch.ao.quantization.HistogramObserver(bins=70_000)
    ours = HistogramObserver(bins=70_000, xp=backend.xp, device=backend.device)
    for b in batches:
        ref(b)
        ours(backend.from_torch(b))
    got = np.asarray(to_host(ours.histogram))
    assert got.dtype == np.float32
    assert np.array_equal(got, ref.histogram.numpy())
    assert float(to_host(ours.min_val)) == float(ref.min_val)
    assert float(to_host(ours.max_val)) == float(ref.max_val)
