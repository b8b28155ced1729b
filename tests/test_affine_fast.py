"""The fast paths of torchao's choose and quantize (NumPy, torch on the CPU) against
the generic arithmetic and against live torchao 0.18.0, bit for bit.

The generic path (``fast=False``, ``_core._affine``) is the specification;
``tests/test_affine.py`` checks it against torchao on every backend. Here the
fast paths must give the same bytes on inputs chosen to break them: exact ties,
signed zeros, NaN, infinities, constant, zero and subnormal groups, values whose
span overflows, float16 and bfloat16 inputs, degenerate scales and zero points
out of range; with tiny slabs and thresholds, so small arrays take the threaded,
many-slab branches too.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import _arguments as arguments
from arrayobs import _backends, affine
from arrayobs._backends import _numpy, _numpy_affine
from arrayobs._compat import namespace_of

pytest.importorskip("torchao")
torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import quant_primitives as tq

from arrayobs._backends import _torch_affine  # noqa: E402 - after torch is known to import

A = affine.MappingType
LIBS = ("numpy", "torch")
# mapping, target, extra choose keywords: torchao's weight paths first.
SCHEMES = [
    (A.ASYMMETRIC, "uint4", {}),
    (A.SYMMETRIC, "int4", {}),
    (A.SYMMETRIC, "int8", {}),
    (A.ASYMMETRIC, "uint8", {"eps": 0.0}),
    (A.SYMMETRIC_NO_CLIPPING_ERR, "int4", {}),
    (A.ASYMMETRIC, "int16", {"zero_point_dtype": "int8"}),
    (A.SYMMETRIC, "int8", {"zero_point_dtype": None}),
    (A.ASYMMETRIC, "int32", {}),
    (A.SYMMETRIC, "uint4", {"scale_dtype": "bfloat16"}),
]
GRANULARITIES = [
    affine.PerGroup(8),
    affine.PerGroup(32),
    affine.PerAxis(0),
    affine.PerAxis(1),
    affine.PerTensor(),
    affine.PerBlock((4, 16)),
]
SHAPE = (24, 64)


@pytest.fixture(params=["small slabs", "defaults"])
def slabs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Slabs of a few rows and threads from 64 bytes: small arrays take every branch."""
    if request.param == "small slabs":
        monkeypatch.setattr(_numpy, "THREAD_MIN_BYTES", 64)
        monkeypatch.setattr(_numpy, "BLOCK_BYTES", 256)
        monkeypatch.setattr(_numpy_affine, "SLAB_BYTES", 300)
    return str(request.param)


def _values(seed: int) -> np.ndarray:
    """float64 rows of 8-element groups: ties, zeros, specials, subnormals, normals."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(SHAPE) * rng.choice([1e-6, 1e-2, 1.0, 1e3, 1e30], (SHAPE[0], 1))
    g = x.reshape(SHAPE[0], -1, 8)
    nan, inf = np.nan, np.inf
    special = [
        [0.0, 15.0, 0.5, 1.5, 2.5, 13.5, 14.5, 7.5],  # scale 1 (uint4): every value a tie
        [7.5, -7.5, 0.5, -0.5, 2.5, -3.5, 6.5, -6.5],  # scale 1 (int4 symmetric)
        [0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0],
        [-0.0] * 8,
        [1.5] * 8,
        [-2.25] * 8,
        [nan, 1.0, -2.0, 3.0, 0.0, -0.0, 4.0, 5.0],
        [inf, 1.0, 0.0, -1.0, 2.0, -3.0, 0.5, 0.25],
        [-inf, 2.0, 1.0, 0.5, -0.5, 3.0, 1.0, 2.0],
        [inf, -inf, 1.0, 0.0, 2.0, 3.0, -1.0, 4.0],
        [3e38, -3e38, 1.0, 0.0, 2e38, -1e38, 5.0, 6.0],
        [1e-40, -1e-40, 3e-41, 0.0, -2e-45, 1e-45, 7e-39, -7e-39],
        [1e-30, -1e-30, 0.0, 2e-30, 5e-31, -5e-31, 1e-31, 0.0],
        [65504.0, -65504.0, 65520.0, 7e4, -7e4, 1.0, 0.0, 2.0],
    ]
    for i, row in enumerate(special):
        g[(3 * i + seed) % SHAPE[0], i % g.shape[1]] = row
    x[seed % SHAPE[0], 8:16] = -x[seed % SHAPE[0], 8:16]
    return x


def _array(lib: str, values: np.ndarray, dtype: str) -> Any:
    t = torch.from_numpy(values).to(getattr(torch, dtype))
    if lib == "torch":
        return t
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return t.float().numpy().astype(ml_dtypes.bfloat16)
    return t.numpy()


def _pair(x: Any) -> tuple[Any, Any]:
    """The backend of ``x``'s namespace with its fast paths, and without (the generic one)."""
    xp = namespace_of(x)
    return _backends.new(xp, fast=True), _backends.new(xp, fast=False)


def _bits(v: Any) -> np.ndarray:
    """Raw bytes, with every NaN made one NaN (payloads are no part of torch's contract)."""
    if isinstance(v, torch.Tensor):
        v = v.detach()
        v = v.float() if v.is_floating_point() and v.dtype.itemsize < 4 else v
        v = v.view(torch.uint8) if v.dtype.itemsize == 1 and v.is_floating_point() else v
    h = np.array(v.numpy() if isinstance(v, torch.Tensor) else v)
    if h.dtype.name in ("float16", "bfloat16"):
        h = h.astype(np.float32)  # exact
    if h.dtype.kind == "f":
        h = np.where(np.isnan(h), np.nan, h).astype(h.dtype)
    return h.reshape(-1).view(np.uint8)


def _same(got: Any, want: Any, what: str) -> None:
    assert type(got) is type(want), what
    assert str(got.dtype) == str(want.dtype), f"{what}: {got.dtype} vs {want.dtype}"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: {got.shape} vs {want.shape}"
    bad = np.flatnonzero(_bits(got) != _bits(want))
    assert bad.size == 0, f"{what}: bytes differ at {bad[:10]}"


def _choose(backend: Any, x: Any, mapping: Any, block: Any, target: str, kw: dict[str, Any]) -> Any:
    tgt = arguments.target(*_torchao_range(target))
    return backend.choose_qparams_affine(
        x,
        mapping,
        block,
        tgt,
        kw.get("eps"),
        kw.get("scale_dtype"),
        kw.get("zero_point_dtype", "int32"),
        kw.get("keepdim", False),
    )


def _torchao_range(target: str) -> tuple[str, int | None, int | None]:
    """int4 as torchao's weight paths hold it: int8 in -8..7."""
    return ("int8", -8, 7) if target == "int4" else (target, None, None)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("gran", GRANULARITIES, ids=repr)
@pytest.mark.parametrize("lib", LIBS)
def test_fast_equals_generic(slabs: str, lib: str, gran: Any, dtype: str) -> None:
    block = affine.get_block_size(SHAPE, gran)
    for seed, (mapping, target, kw) in enumerate(SCHEMES):
        x = _array(lib, _values(seed), dtype)
        fast, generic = _pair(x)
        where = f"{lib} {dtype} {gran} {mapping.name} {target} {kw}"
        if dtype == "float16" and mapping is A.ASYMMETRIC and target == "int32":
            # torchao refuses: the int32 bounds are float16 scalars there (overflow).
            for backend in (fast, generic):
                with pytest.raises(ValueError, match="does not fit float16"):
                    _choose(backend, x, mapping, block, target, kw)
            continue
        # NumPy's min of ml_dtypes' bfloat16 warns on NaN (the generic reduction, which
        # the fast path keeps where blocks are not runs of the last axis).
        with np.errstate(invalid="ignore"):
            want_s, want_z = _choose(generic, x, mapping, block, target, kw)
            got_s, got_z = _choose(fast, x, mapping, block, target, kw)
        _same(got_s, want_s, f"{where} scale")
        _same(got_z, want_z, f"{where} zero_point")
        tgt = arguments.target(*_torchao_range(target))
        want_q = generic.quantize_affine(x, block, want_s, want_z, tgt)
        _same(fast.quantize_affine(x, block, want_s, want_z, tgt), want_q, f"{where} quantized")


@pytest.mark.parametrize("target", ["uint4", "int4", "int8", "int16", "int32", "float8_e4m3fn"])
@pytest.mark.parametrize("lib", LIBS)
def test_degenerate_qparams(slabs: str, lib: str, target: str) -> None:
    """Zero, negative, NaN, infinite and subnormal scales; zero points out of range."""
    x = _array(lib, _values(3), "float32")
    fast, generic = _pair(x)
    scales = np.array([0.0, -0.0, -0.5, np.nan, np.inf, -np.inf, 1e-45, 1e-40, 3e38, 0.3, 1.0, 2.5])
    rng = np.random.default_rng(1)
    s = np.resize(scales, (SHAPE[0], 8)).astype(np.float32)
    rng.shuffle(s.reshape(-1))
    for zname in ("int32", "int8", "uint8", "float32"):
        z = rng.integers(-300, 300, s.shape).astype(zname)
        if zname == "float32":
            z = z + np.float32(0.5)
        args = [torch.from_numpy(a) if lib == "torch" else a for a in (s, z)]
        tgt = arguments.target(*_torchao_range(target))
        want = generic.quantize_affine(x, (1, 8), *args, tgt)
        _same(fast.quantize_affine(x, (1, 8), *args, tgt), want, f"{lib} {target} {zname}")


WEIGHT_PATHS = [
    (A.ASYMMETRIC, "uint4", torch.uint4, None, None),
    (A.SYMMETRIC, "int4", torch.int8, -8, 7),
    (A.SYMMETRIC, "int8", torch.int8, None, None),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("path", range(len(WEIGHT_PATHS)))
@pytest.mark.parametrize("lib", LIBS)
def test_weight_paths_match_torchao(slabs: str, lib: str, path: int, dtype: str) -> None:
    """The public functions (fast paths on) against torchao, per group and per channel."""
    mapping, target, tdtype, qmin, qmax = WEIGHT_PATHS[path]
    t = torch.from_numpy(_values(path)).to(getattr(torch, dtype))
    x = _array(lib, _values(path), dtype)
    for block in ((1, 32), (1, SHAPE[1])):
        ws, wz = tq.choose_qparams_affine(
            t, tq.MappingType[mapping.name], block, tdtype, qmin, qmax
        )
        wq = tq.quantize_affine(t, block, ws, wz, tdtype, qmin, qmax)
        s, z = affine.choose_qparams_affine(x, mapping, block, target)
        q = affine.quantize_affine(x, block, s, z, target)
        where = f"{lib} {dtype} {target} {block}"
        _same(_tensor(s), ws, f"{where} scale")
        _same(_tensor(z), wz, f"{where} zero_point")
        _same(_tensor(q), wq.view(torch.uint8) if wq.dtype == torch.uint4 else wq, where)


def _tensor(v: Any) -> Any:
    """A CPU tensor of the values and dtype of ``v`` (bfloat16 through float32)."""
    if isinstance(v, torch.Tensor):
        return v
    if v.dtype.name == "bfloat16":
        return torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.asarray(v))


def test_the_fast_paths_are_taken() -> None:
    """The bench's case runs the fast code (not a silent fallback to the generic one)."""
    x = np.random.default_rng(0).standard_normal((64, 256), dtype=np.float32)
    block = (1, 128)
    assert _numpy_affine.block_minmax(x, block, False, _numpy.aminmax_axis) is not None
    s, z = affine.choose_qparams_affine(x, A.ASYMMETRIC, block, "uint4")
    assert _numpy_affine.quantize(x, block, s, z, arguments.target("uint4")) is not None
    t, ts, tz = (torch.from_numpy(a) for a in (x, s, z))
    assert _torch_affine.applies(t, ts, tz)
    assert not _torch_affine.applies(t.requires_grad_(), ts, tz)


@pytest.mark.parametrize("lib", LIBS)
def test_layouts_and_autograd(lib: str) -> None:
    """A transposed input, and (torch) one that requires grad: the generic numbers."""
    values = np.ascontiguousarray(_values(5).T)[:, :24]
    x = _array(lib, values, "float32").T
    fast, generic = _pair(x)
    inputs = [x] + ([x.detach().clone().requires_grad_()] if lib == "torch" else [])
    tgt = arguments.target("uint4")
    for v in inputs:
        want = _choose(generic, v, A.ASYMMETRIC, (1, 16), "uint4", {})
        got = _choose(fast, v, A.ASYMMETRIC, (1, 16), "uint4", {})
        for g, w in zip(got, want, strict=True):
            _same(g, w, f"{lib} choose")
        q = fast.quantize_affine(v, (1, 16), *want, tgt)
        _same(q, generic.quantize_affine(v, (1, 16), *want, tgt), f"{lib} quantize")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_block_minmax_fast_equals_generic(dtype: str, keepdim: bool) -> None:
    """The affine observers' per-block reduction: the NumPy backend's threaded one
    against the generic one, bit for bit, NaN and both zeros included."""
    x = np.random.default_rng(5).standard_normal((6, 32)).astype(dtype)
    x[0, 3], x[1, :4], x[2, 5], x[3, :] = np.nan, [-0.0, 0.0, -0.0, 0.0], np.inf, -0.0
    xp = namespace_of(x)
    fast, generic = _backends.new(xp), _backends.Backend(xp, True)
    for block in ((1, 8), (1, 32), (6, 32)):
        found = fast.block_minmax(x, block, keepdim)
        want = generic.block_minmax(x, block, keepdim)
        for a, b in zip(found, want, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), block
