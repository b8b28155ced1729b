"""arrayobs.affine against live torchao 0.18.0 (on torch 2.13.0), on every backend.

Every expected number comes from torchao (or torch.ao) run here on the same
values: scale bits in their dtype, zero points, quantized integers and
dequantized floats; JAX also under ``jax.jit``, Dask lazily (computing is
forbidden while the graph is built).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from arrayobs import affine
from arrayobs._compat import resolve_namespace, to_host

pytest.importorskip("torchao")
torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import granularity as tg
    from torchao.quantization import quant_primitives as tq
    from torchao.quantization import utils as tu
    from torchao.quantization.observer import AffineQuantizedMinMaxObserver as TorchaoObserver

A = affine.MappingType
TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
    "uint4": torch.uint4,
}


# -- conversions -------------------------------------------------------------------
def _dtype_name(dtype: Any) -> str:
    text = str(dtype)
    if "'" in text:
        text = text.split("'")[1]
    return text.rsplit(".", 1)[-1]


def _supports(backend: Any, name: str) -> bool:
    lib = backend.library
    if name in ("float32", "int8", "uint8", "int16", "int32"):
        return True
    if name == "float16":
        return lib != "array_api_strict"
    if name == "float64":
        return lib not in ("jax",) and "no_x64" not in backend.name
    # bfloat16 and float8: torch, JAX, and NumPy/Dask through ml_dtypes.
    return lib in ("torch", "jax", "numpy", "dask")


def _require(backend: Any, *names: str) -> None:
    missing = [n for n in names if n in TORCH_DTYPES and not _supports(backend, n)]
    if missing:
        pytest.skip(f"{backend.name} has no {', '.join(missing)}")


def _to(backend: Any, t: Any) -> Any:
    """CPU tensor ``t`` as an array of the backend, same dtype."""
    name = str(t.dtype).removeprefix("torch.")
    xp, lib = backend.xp, backend.library
    if lib == "torch":
        return t.to(backend.device)
    if (t.is_floating_point() and t.element_size() < 4) or name.startswith("float8"):
        host = t.float().numpy()
        if lib in ("numpy", "dask"):
            ml_dtypes = importlib.import_module("ml_dtypes")
            host = host.astype(np.float16 if name == "float16" else getattr(ml_dtypes, name))
            if lib == "dask":
                da = importlib.import_module("dask.array")
                return da.from_array(host, chunks=max(1, host.shape[0] // 2))
            return host
        return xp.astype(xp.asarray(host, device=backend.device), getattr(xp, name))
    host = t.numpy()
    if lib == "dask":
        da = importlib.import_module("dask.array")
        return da.from_array(host, chunks=max(1, host.shape[0] // 2) if host.ndim else ())
    return xp.asarray(host, device=backend.device)


def _host(v: Any) -> np.ndarray:
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        h = np.asarray(to_host(v))
    if h.dtype.kind not in "iub" and h.dtype != np.float64:
        h = h.astype(np.float32)  # float16, bfloat16, float8: exact in float32
    return h


def _ref_host(t: Any) -> np.ndarray:
    t = t.detach().to("cpu")
    if t.is_floating_point() and t.dtype != torch.float64:
        return t.float().numpy()
    return t.numpy()


def _match(got: Any, want: Any, what: str, backend: Any) -> None:
    """Same dtype (by name), shape, namespace and values (NaN matches NaN)."""
    want_name = str(want.dtype).removeprefix("torch.")
    if want_name == "uint4":
        want_name = "uint8"
    assert _dtype_name(got.dtype) == want_name, f"{what}: dtype {got.dtype}, torchao {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {got.shape}, torchao {want.shape}"
    g, w = _host(got), _ref_host(want)
    same = (g == w) | (np.isnan(g) & np.isnan(w)) if g.dtype.kind == "f" else g == w
    bad = int(np.size(same) - np.count_nonzero(same))
    assert bad == 0, f"{what}: {bad} of {np.size(same)} differ on {backend.name}: {g!r} vs {w!r}"


@contextlib.contextmanager
def _lazy(backend: Any) -> Iterator[None]:
    """On Dask, forbid computing while the graph is built."""
    if backend.library != "dask":
        yield
        return
    dask = importlib.import_module("dask")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        msg = "arrayobs.affine computed a Dask graph"
        raise AssertionError(msg)

    with dask.config.set(scheduler=refuse):
        yield


def _run(backend: Any, jit: bool, fn: Callable[..., Any], *args: Any) -> Any:
    if not jit:
        with _lazy(backend):
            return fn(*args)
    jax = importlib.import_module("jax")
    return jax.jit(fn)(*args)


# -- data --------------------------------------------------------------------------
def _data(shape: tuple[int, ...], dtype: str, seed: int) -> Any:
    """Rows of widely different magnitudes; zero, constant, one-signed rows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    rows = x.reshape(-1, shape[-1])
    scales = 10.0 ** torch.empty(rows.shape[0], 1, dtype=torch.float64).uniform_(-3, 3, generator=g)
    rows.mul_(scales)
    rows[0] = 0.0
    rows[1] = 1.5
    rows[2] = rows[2].abs()
    rows[3] = -rows[3].abs()
    return x.to(TORCH_DTYPES[dtype])


CASES = [
    # shape, input dtype, granularity, mapping, target, extra choose keywords
    ((16, 256), "float32", affine.PerGroup(32), A.ASYMMETRIC, "uint4", {}),
    ((16, 256), "float32", affine.PerGroup(128), A.SYMMETRIC, "int4", {}),
    ((16, 256), "bfloat16", affine.PerGroup(64), A.SYMMETRIC, "int8", {}),
    ((16, 256), "bfloat16", affine.PerGroup(32), A.ASYMMETRIC, "uint8", {"scale_dtype": "float32"}),
    ((4, 8, 64), "float32", affine.PerToken(), A.ASYMMETRIC, "int8", {}),
    ((4, 8, 64), "float16", affine.PerToken(), A.SYMMETRIC_NO_CLIPPING_ERR, "int4", {}),
    ((32, 64), "float32", affine.PerAxis(0), A.SYMMETRIC, "int8", {"keepdim": True}),
    (
        (32, 64),
        "float32",
        affine.PerRow(),
        A.SYMMETRIC_NO_CLIPPING_ERR,
        "int8",
        {"scale_dtype": "bfloat16"},
    ),
    ((32, 64), "float32", affine.PerTensor(), A.ASYMMETRIC, "int16", {}),
    ((16, 64), "float32", affine.PerBlock((8, 16)), A.ASYMMETRIC, "uint8", {"keepdim": True}),
    ((16, 64), "float16", affine.PerGroup(16), A.ASYMMETRIC, "int16", {}),
    ((16, 64), "bfloat16", affine.PerGroup(16), A.ASYMMETRIC, "int32", {"eps": 1e-6}),
    ((32, 64), "float32", affine.PerGroup(16), A.SYMMETRIC, "uint8", {"zero_point_dtype": None}),
    ((32, 64), "float32", affine.PerRow(), A.SYMMETRIC, "float8_e4m3fn", {}),
    ((32, 64), "bfloat16", affine.PerAxis(1), A.SYMMETRIC, "float8_e5m2", {}),
]


JAX_EAGER = (0, 2, 5, 11, 14)


def _torch_granularity(g: Any) -> Any:
    fields = {k: getattr(g, k) for k in g.__dataclass_fields__}
    return getattr(tg, type(g).__name__)(**fields)


def _torch_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    out = dict(kw)
    for k in ("scale_dtype", "zero_point_dtype"):
        if out.get(k) is not None:
            out[k] = TORCH_DTYPES[out[k]]
    return out


def _torch_target(name: str) -> Any:
    # torch.int4 cannot be quantized to on the CPU: torchao holds int4 as int8 in -8..7.
    return (torch.int8, -8, 7) if name == "int4" else (TORCH_DTYPES[name], None, None)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_primitives_match_torchao(backend: Any, case: int, jit: bool) -> None:
    shape, dtype, gran, mapping, target, kw = CASES[case]
    if jit and backend.library != "jax":
        pytest.skip("jax.jit runs on the JAX backend")
    if not jit and backend.library == "jax" and case not in JAX_EAGER:
        pytest.skip("JAX eagerly on a sample (each op compiles alone; slow); jit runs every case")
    _require(backend, dtype, target, *(v for k, v in kw.items() if k.endswith("dtype") and v))
    t = _data(shape, dtype, seed=case)
    block = tu.get_block_size(t.shape, _torch_granularity(gran))
    assert affine.get_block_size(shape, gran) == tuple(block)
    ttarget, qmin, qmax = _torch_target(target)
    want_s, want_z = tq.choose_qparams_affine(
        t, tq.MappingType[mapping.name], block, ttarget, qmin, qmax, **_torch_kwargs(kw)
    )
    x = _to(backend, t)

    def choose(v: Any) -> Any:
        return affine.choose_qparams_affine(v, mapping, block, target, **kw)

    scale, zp = _run(backend, jit, choose, x)
    _match(scale, want_s, "scale", backend)
    _match(zp, want_z, "zero_point", backend)

    if kw.get("keepdim"):
        want_s, want_z = want_s.flatten(), want_z.flatten()
    want_q = tq.quantize_affine(t, block, want_s, want_z, ttarget, qmin, qmax)

    def quantize(v: Any, s: Any, z: Any) -> Any:
        return affine.quantize_affine(v, block, s, z, target)

    q = _run(backend, jit, quantize, x, _to(backend, want_s), _to(backend, want_z))
    _match(q, want_q, "quantized", backend)

    out = "bfloat16" if _supports(backend, "bfloat16") and case % 2 else "float32"
    want_d = tq.dequantize_affine(
        want_q, block, want_s, want_z, ttarget, qmin, qmax, output_dtype=TORCH_DTYPES[out]
    )

    def dequantize(v: Any, s: Any, z: Any) -> Any:
        return affine.dequantize_affine(v, block, s, z, target, output_dtype=out)

    d = _run(
        backend, jit, dequantize, _to(backend, want_q), _to(backend, want_s), _to(backend, want_z)
    )
    _match(d, want_d, "dequantized", backend)


def test_special_values_match_torchao(backend: Any) -> None:
    """NaN, infinities and huge values, per group, every mapping."""
    t = torch.tensor(
        [
            [float("nan"), 1.0, -2.0, 3.0],
            [float("inf"), 1.0, 0.0, -1.0],
            [-float("inf"), 2.0, 1.0, 0.5],
            [3e38, -3e38, 1.0, 0.0],
            [1e-30, -1e-30, 0.0, 0.0],
            [0.0, -0.0, 0.0, -0.0],
        ],
        dtype=torch.float32,
    )
    x = _to(backend, t)
    for mapping in A:
        for target in ("int8", "uint8", "int32"):
            where = f"{mapping.name} {target}"
            want_s, want_z = tq.choose_qparams_affine(
                t, tq.MappingType[mapping.name], (1, 4), TORCH_DTYPES[target]
            )
            with _lazy(backend):
                scale, zp = affine.choose_qparams_affine(x, mapping, (1, 4), target)
            _match(scale, want_s, f"{where} scale", backend)
            _match(zp, want_z, f"{where} zero_point", backend)
            want_q = tq.quantize_affine(t, (1, 4), want_s, want_z, TORCH_DTYPES[target])
            q = affine.quantize_affine(
                x, (1, 4), _to(backend, want_s), _to(backend, want_z), target
            )
            _match(q, want_q, f"{where} quantized", backend)


def test_with_min_max_matches_torchao(backend: Any) -> None:
    g = torch.Generator().manual_seed(7)
    lo = -torch.rand(5, 3, generator=g) * 10
    hi = torch.rand(5, 3, generator=g) * 10
    for mapping in A:
        for zdt in (None, "int32"):
            want = tq.choose_qparams_affine_with_min_max(
                lo,
                hi,
                tq.MappingType[mapping.name],
                [],
                torch.int8,
                zero_point_dtype=None if zdt is None else torch.int32,
            )
            got = affine.choose_qparams_affine_with_min_max(
                _to(backend, lo), _to(backend, hi), mapping, [], "int8", zero_point_dtype=zdt
            )
            _match(got[0], want[0], f"{mapping.name} scale", backend)
            _match(got[1], want[1], f"{mapping.name} zero_point", backend)


# -- float8 ---------------------------------------------------------------------------
FLOAT8_CASES = [
    ("float32", "float8_e4m3fn", "tensorwise", "float32"),
    ("float32", "float8_e4m3fn", "rowwise", "float8_e8m0fnu"),
    ("bfloat16", "float8_e4m3fn", "rowwise", "float32"),
    ("float32", "float8_e5m2", "blockwise", "float32"),
    ("bfloat16", "float8_e5m2", "blockwise", "float8_e8m0fnu"),
]


@pytest.mark.parametrize("case", range(len(FLOAT8_CASES)))
def test_float8_matches_torchao(backend: Any, case: int) -> None:
    dtype, f8, kind, scale_dtype = FLOAT8_CASES[case]
    _require(backend, dtype, f8)
    t = _data((64, 128), dtype, seed=100 + case)
    block = {"tensorwise": (64, 128), "rowwise": (1, 128), "blockwise": (32, 32)}[kind]
    sdt = torch.float32 if scale_dtype == "float32" else torch.float8_e8m0fnu
    want_s = tq._choose_scale_float8(t, list(block), TORCH_DTYPES[f8], sdt)
    x = _to(backend, t)
    with _lazy(backend):
        scale = affine.choose_scale_float8(x, block, f8, scale_dtype)
    _match(scale, want_s, "scale", backend)
    want_q = tq._quantize_affine_float8(t, want_s, TORCH_DTYPES[f8])
    with _lazy(backend):
        q = affine.quantize_affine_float8(x, _to(backend, want_s), f8)
    _match(q, want_q, "quantized", backend)
    want_d = tq._dequantize_affine_float8(want_q, want_s, torch.float32)
    with _lazy(backend):
        d = affine.dequantize_affine_float8(_to(backend, want_q), _to(backend, want_s))
    _match(d, want_d, "dequantized", backend)


def test_float8_scale_under_jit() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    t = _data((64, 128), "float32", seed=3)
    want = tq._choose_scale_float8(t, [1, 128], torch.float8_e4m3fn, torch.float8_e8m0fnu)
    f = jax.jit(
        lambda v: affine.choose_scale_float8(v, (1, 128), "float8_e4m3fn", "float8_e8m0fnu")
    )
    got = np.asarray(f(jnp.asarray(t.numpy())))
    assert (got == want.numpy()).all()


# -- granularities ----------------------------------------------------------------------
BLOCK_CASES = [
    ((8, 16), affine.PerTensor()),
    ((8, 16), affine.PerAxis(0)),
    ((2, 3, 4), affine.PerAxis(-1)),
    ((8, 16), affine.PerGroup(4)),
    ((3, 7, 48), affine.PerToken()),
    ((8, 16), affine.PerRow()),
    ((2, 3, 4), affine.PerRow(1)),
    ((8, 16), affine.PerBlock((4, 8))),
    ((2, 8, 16), affine.PerBlock((4, 8))),
    ((8, 15), affine.PerGroup(4)),
    ((8, 16), affine.PerBlock((3, 8))),
    ((8,), affine.PerBlock((1, 8))),
    ((8, 16), affine.PerAxis(2)),
]


@pytest.mark.parametrize("case", range(len(BLOCK_CASES)))
def test_get_block_size_matches_torchao(case: int) -> None:
    shape, gran = BLOCK_CASES[case]
    try:
        want = tu.get_block_size(shape, _torch_granularity(gran))
    except (AssertionError, IndexError):
        with pytest.raises(ValueError, match=r"\S"):
            affine.get_block_size(shape, gran)
        return
    assert affine.get_block_size(shape, gran) == tuple(want)
    # torchao's own granularity objects are taken too.
    assert affine.get_block_size(shape, _torch_granularity(gran)) == tuple(want)


def test_block_of_ones_reduces_everything_as_torchao() -> None:
    t = _data((4, 8), "float32", seed=5)
    want = tq.choose_qparams_affine(t, tq.MappingType.ASYMMETRIC, (1, 1), torch.int8)
    got = affine.choose_qparams_affine(t.numpy(), A.ASYMMETRIC, (1, 1), "int8")
    assert got[0].shape == () and float(got[0]) == want[0].item()
    assert int(got[1]) == want[1].item()


def test_refusals() -> None:
    x = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match="block_size"):
        affine.choose_qparams_affine(x, A.SYMMETRIC, (4,), "int8")
    with pytest.raises(ValueError, match="divisible"):
        affine.choose_qparams_affine(x, A.SYMMETRIC, (1, 3), "int8")
    with pytest.raises(ValueError, match="out of bound"):
        affine.choose_qparams_affine(x, A.SYMMETRIC, (1, 8), "int4", quant_min=-9)
    with pytest.raises(ValueError, match="target dtype"):
        affine.choose_qparams_affine(x, A.SYMMETRIC, (1, 8), "int64")
    with pytest.raises(ValueError, match="mapping_type"):
        affine.choose_qparams_affine(x, "AFFINE", (1, 8), "int8")
    with pytest.raises(TypeError, match="input"):
        affine.choose_qparams_affine(x.astype(np.int32), A.SYMMETRIC, (1, 8), "int8")
    s, z = affine.choose_qparams_affine(x, A.SYMMETRIC, (1, 8), "int8")
    with pytest.raises(TypeError, match="zero_point"):
        affine.quantize_affine(x, (1, 8), s, None, "int8")
    with pytest.raises(ValueError, match="scale"):
        affine.quantize_affine(x, (1, 4), s, z, "int8")
    q = affine.quantize_affine(x, (1, 8), s, z, "int8")
    with pytest.raises(TypeError, match="held in"):
        affine.dequantize_affine(q, (1, 8), s, z, "uint8")
    with pytest.raises(ValueError, match="output_dtype"):
        affine.dequantize_affine(q, (1, 8), s, z, "int8", output_dtype="float64")


# -- observers ----------------------------------------------------------------------------
OBSERVER_CASES = [
    ((8, 64), "float32", affine.PerGroup(16), A.ASYMMETRIC, "uint8", {}),
    ((8, 64), "float32", affine.PerAxis(0), A.SYMMETRIC, "int8", {"keepdim": True}),
    ((4, 6, 32), "float32", affine.PerToken(), A.SYMMETRIC_NO_CLIPPING_ERR, "int8", {}),
    ((8, 64), "bfloat16", affine.PerRow(), A.SYMMETRIC, "int8", {"zero_point_dtype": "int32"}),
    (
        (8, 64),
        "float32",
        affine.PerTensor(),
        A.SYMMETRIC,
        "float8_e4m3fn",
        {"zero_point_domain": affine.ZeroPointDomain.NONE},
    ),
]


@pytest.mark.parametrize("case", range(len(OBSERVER_CASES)))
def test_observer_matches_torchao(backend: Any, case: int) -> None:
    shape, dtype, gran, mapping, target, kw = OBSERVER_CASES[case]
    _require(backend, dtype, target)
    tkw = _torch_kwargs(kw)
    if "zero_point_domain" in kw:
        tkw["zero_point_domain"] = tq.ZeroPointDomain[kw["zero_point_domain"].name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = TorchaoObserver(
            tq.MappingType[mapping.name], TORCH_DTYPES[target], _torch_granularity(gran), **tkw
        )
        obs = affine.AffineQuantizedMinMaxObserver(mapping, target, gran, **kw)
    for i in range(4):
        t = _data(shape, dtype, seed=20 * case + i) * (i + 1)
        assert obs(_to(backend, t)) is not None
        ref(t)
        _match(obs.min_val, ref.min_val, f"batch {i} min_val", backend)
        _match(obs.max_val, ref.max_val, f"batch {i} max_val", backend)
    scale, zp = obs.calculate_qparams()
    want_s, want_z = ref.calculate_qparams()
    _match(scale, want_s, "scale", backend)
    if want_z is None:
        assert zp is None
    else:
        _match(zp, want_z, "zero_point", backend)


@pytest.mark.parametrize("per_axis", [False, True], ids=["per_tensor", "per_axis"])
def test_moving_average_is_torch_ao_per_block(backend: Any, per_axis: bool) -> None:
    """The moving-average variant equals torch.ao's moving-average observers on
    the blocks they share (the whole tensor; channels along an axis)."""
    from torch.ao.quantization import observer as tao

    gran = affine.PerAxis(1) if per_axis else affine.PerTensor()
    ref = (
        tao.MovingAveragePerChannelMinMaxObserver(
            0.3, ch_axis=1, dtype=torch.qint8, qscheme=torch.per_channel_symmetric
        )
        if per_axis
        else tao.MovingAverageMinMaxObserver(
            0.3, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric
        )
    )
    obs = affine.AffineQuantizedMovingAverageMinMaxObserver(
        A.SYMMETRIC, "int8", gran, averaging_constant=0.3
    )
    for i in range(5):
        t = _data((6, 5, 4), "float32", seed=40 + i) * (1 + i)
        obs(_to(backend, t))
        ref(t)
        _match(obs.min_val, ref.min_val, f"batch {i} min_val", backend)
        _match(obs.max_val, ref.max_val, f"batch {i} max_val", backend)
    want = tq.choose_qparams_affine_with_min_max(
        ref.min_val, ref.max_val, tq.MappingType.SYMMETRIC, [], torch.int8
    )
    got = obs.calculate_qparams()
    _match(got[0], want[0], "scale", backend)
    _match(got[1], want[1], "zero_point", backend)


def _observer(backend: Any) -> Any:
    obs = affine.AffineQuantizedMinMaxObserver(A.ASYMMETRIC, "uint8", affine.PerGroup(8))
    obs(_to(backend, _data((4, 16), "float32", seed=1)))
    return obs


def _same_state(a: Any, b: Any, backend: Any) -> None:
    for name in ("min_val", "max_val"):
        ga, gb = _host(getattr(a, name)), _host(getattr(b, name))
        assert ga.dtype == gb.dtype and (ga == gb).all(), f"{name} on {backend.name}"


def test_observer_api(backend: Any) -> None:
    obs = _observer(backend)
    assert repr(obs) == "AffineQuantizedMinMaxObserver()"
    nxt = _to(backend, _data((4, 16), "float32", seed=2) * 3)
    # state_dict into a fresh observer, deepcopy and pickle: later batches agree.
    loaded = affine.AffineQuantizedMinMaxObserver(
        A.ASYMMETRIC, "uint8", affine.PerGroup(8), xp=backend.xp, device=backend.device
    )
    assert loaded.load_state_dict(obs.state_dict()) == ([], [])
    copies = [loaded, copy.deepcopy(obs)]
    copies.append(pickle.loads(pickle.dumps(obs)))
    obs(nxt)
    for c in copies:
        c(nxt)
        _same_state(c, obs, backend)
    # Errors leave the state as it was.
    before = obs.state_dict()
    with pytest.raises(ValueError, match="shape"):
        obs(_to(backend, _data((8, 16), "float32", seed=3)))
    with pytest.raises(TypeError, match="bound to"):
        obs(np.zeros((4, 16), np.float32) if backend.library != "numpy" else torch.zeros(4, 16))
    with pytest.raises(KeyError, match="max_val"):
        obs.load_state_dict({"min_val": before["min_val"]})
    after = obs.state_dict()
    for k in before:
        assert (_host(before[k]) == _host(after[k])).all()
    # An empty batch changes nothing; before any batch qparams refuse.
    obs(_to(backend, torch.zeros(0, 16)))
    fresh = affine.AffineQuantizedMinMaxObserver(A.SYMMETRIC, "int8", affine.PerTensor())
    assert fresh.state_dict() == {}
    with pytest.raises(ValueError, match="run the observer"):
        fresh.calculate_qparams()
    with pytest.warns(DeprecationWarning):
        affine.AffineQuantizedMinMaxObserver(
            A.SYMMETRIC, "int8", affine.PerTensor(), preserve_zero=False
        )
    with pytest.raises(ValueError, match=r"ZeroPointDomain\.NONE"):
        affine.AffineQuantizedMinMaxObserver(
            A.SYMMETRIC, "int8", affine.PerTensor(), zero_point_domain=None
        )


def test_observer_threads(backend: Any) -> None:
    """Concurrent forwards: the state is that of some serial order (min-max
    commutes, so of every order)."""
    batches = [_to(backend, _data((4, 16), "float32", seed=60 + i) * (i + 1)) for i in range(8)]
    serial = affine.AffineQuantizedMinMaxObserver(A.SYMMETRIC, "int8", affine.PerGroup(4))
    for b in batches:
        serial(b)
    obs = affine.AffineQuantizedMinMaxObserver(A.SYMMETRIC, "int8", affine.PerGroup(4))
    threads = [threading.Thread(target=obs, args=(b,)) for b in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    _same_state(obs, serial, backend)


# -- torchao's copies of the torch.ao observers -------------------------------------------------
PT2E_CASES = [
    ("MinMaxObserver", {"dtype": "qint8", "qscheme": "per_tensor_symmetric"}),
    ("MinMaxObserver", {"dtype": "quint8", "reduce_range": True}),
    ("MinMaxObserver", {"dtype": "int16", "quant_min": -1000, "quant_max": 1000}),
    ("MovingAverageMinMaxObserver", {"averaging_constant": 0.25}),
    (
        "PerChannelMinMaxObserver",
        {"ch_axis": 1, "qscheme": "per_channel_symmetric", "dtype": "qint8"},
    ),
    ("PerChannelMinMaxObserver", {"ch_axis": 1, "qscheme": "per_channel_affine_float_qparams"}),
    ("MovingAveragePerChannelMinMaxObserver", {"ch_axis": 1, "averaging_constant": 0.5}),
]


@pytest.mark.parametrize("case", range(len(PT2E_CASES)))
def test_torch_ao_copies_in_torchao(case: int) -> None:
    """arrayobs's torch.ao observers against ``torchao.quantization.pt2e.observer``'s
    copies, batch by batch, specials included (NumPy; the other backends are
    held to torch.ao elsewhere)."""
    import arrayobs
    from arrayobs.testing import assert_qparams_match, assert_state_match

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.quantization.pt2e import observer as pt2e
    name, kw = PT2E_CASES[case]
    tkw = {k: getattr(torch, v) if k in ("dtype", "qscheme") else v for k, v in kw.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's reduce_range notice
        ref = getattr(pt2e, name)(**tkw)
        obs = getattr(arrayobs, name)(**kw)
    g = torch.Generator().manual_seed(case)
    batches = [torch.randn(4, 3, generator=g) * s for s in (1.0, 0.01, 100.0)]
    batches += [
        torch.tensor([[float("inf"), 0.0, 1.0], [-1.0, 2.0, 0.5]]),
        torch.zeros(0, 3),
        torch.full((2, 3), -0.0),
    ]
    np_xp = resolve_namespace(np)
    for i, b in enumerate(batches):
        ref(b)
        obs(b.numpy())
        where = f"{name} batch {i}"
        assert_state_match(obs, ref, xp=np_xp, device="cpu", where=where)
        try:
            want = ref.calculate_qparams()
        except AssertionError:
            # The one difference: torchao's copy asserts min_val <= max_val, which
            # a NaN fails; torch.ao 2.13.0 (and arrayobs) raise only where
            # min_val > max_val, and give NaN qparams.
            assert np.isnan(_host(obs.min_val)).any() or np.isnan(_host(obs.max_val)).any()
            assert np.isnan(_host(obs.calculate_qparams()[0])).any(), where
            continue
        assert_qparams_match(obs.calculate_qparams(), want, xp=np_xp, device="cpu", where=where)


def test_regressions_found_by_the_corpus(backend) -> None:
    """Three cases the conformance section found: each against live torchao."""
    from torchao.quantization import quant_primitives as tq

    xp = backend.xp
    # A NaN min under SYMMETRIC_NO_CLIPPING_ERR: torchao's where(smin > smax, ...) drops it.
    mn = torch.tensor([float("nan"), -1.0, 0.5])
    mx = torch.tensor([1.0, float("nan"), 2.0])
    want = tq.choose_qparams_affine_with_min_max(
        mn, mx, tq.MappingType.SYMMETRIC_NO_CLIPPING_ERR, [1], torch.int8, -128, 127
    )
    got = affine.choose_qparams_affine_with_min_max(
        backend.from_torch(mn), backend.from_torch(mx), "SYMMETRIC_NO_CLIPPING_ERR", [1], "int8"
    )
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(to_host(got[0]), want[0].numpy())
    # A NaN in a large block that also holds an infinity (XLA's CPU reduction drops it).
    x = torch.ones(64, 128)
    x[1, 5], x[0, 3] = float("nan"), float("inf")
    want_s, _ = tq.choose_qparams_affine(x, tq.MappingType.SYMMETRIC, (64, 128), torch.int8)
    got_s, _ = affine.choose_qparams_affine(backend.from_torch(x), "SYMMETRIC", (64, 128), "int8")
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(to_host(got_s), want_s.numpy())
    # float16 min/max with an ASYMMETRIC range beyond float16: torchao refuses.
    if backend.has("float16") and hasattr(xp, "float16"):
        h = torch.ones(8, dtype=torch.float16)
        with pytest.raises(RuntimeError, match="Half"):
            tq.choose_qparams_affine(h, tq.MappingType.ASYMMETRIC, (8,), torch.int32)
        with pytest.raises(ValueError, match="float16"):
            affine.choose_qparams_affine(backend.from_torch(h), "ASYMMETRIC", (8,), "int32")
