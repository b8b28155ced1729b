"""Quantize, dequantize and fake-quantize against live torch 2.13.0, bit for bit.

Every expected number comes from torch: ``torch.fake_quantize_per_*_affine``
(ATen's CPU kernels), ``torch.ops.quantized_decomposed`` (the pt2e ops) and
``torch.ao.quantization.FakeQuantize``.
"""

from __future__ import annotations

import copy
import importlib
import pickle
from typing import Any

import numpy as np
import pytest

import arrayobs
from arrayobs import functional as F
from arrayobs._compat import to_host

SPECIALS = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, -1e30, 3e9, 1e-40, 65504.0, -3e38]
# (scale, zero_point, quant_min, quant_max): the common ranges, zero points at
# the bounds, tiny and huge scales, and a zero point beyond float32's integers.
QPARAMS = [
    (0.0173, 128, 0, 255),
    (0.1, 0, -128, 127),
    (2.0**-7, -5, -128, 127),
    (1e-3, 255, 0, 255),
    (1e-30, 3, 0, 15),
    (12345.678, 0, -(2**31), 2**31 - 1),
    (0.37, 2**24 + 1, 0, 2**25),
]
FLOATS = ["float32", "float64", "float16", "bfloat16"]


def _inputs(torch: Any, dtype: str, n: int = 4000, seed: int = 0, scale: float = 0.1) -> Any:
    """Normals at several magnitudes, exact ties (k + 0.5) * scale, and specials."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * rng.choice([1e-3, 1.0, 100.0, 1e6], n)
    x[: n // 4] = (rng.integers(-300, 300, n // 4) + 0.5) * np.float32(scale)
    x[n // 4 : n // 4 + len(SPECIALS) * 4] = np.tile(SPECIALS, 4)
    return torch.from_numpy(x).to(getattr(torch, dtype))


def _same(got: Any, want: Any) -> None:
    """Equal values, NaN matching NaN, and equal zero signs (torch's bits)."""
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        g = np.asarray(to_host(got), dtype=np.float64)
        w = np.asarray(to_host(want), dtype=np.float64)
    assert g.shape == w.shape
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    assert same.all(), (
        f"{int((~same).sum())} of {g.size} differ, e.g. {g[~same][:5]} vs {w[~same][:5]}"
    )
    assert (np.signbit(g) == np.signbit(w))[~np.isnan(g)].all()


def _host(v: Any) -> np.ndarray:
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        return to_host(v)


def _need(backend: Any, dtype: str) -> None:
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("qp", QPARAMS, ids=lambda q: f"s{q[0]}-z{q[1]}-{q[2]}..{q[3]}")
def test_fake_quantize_per_tensor_matches_torch(backend, torch_ref, dtype, qp):
    _need(backend, dtype)
    torch = torch_ref
    s, z, qmin, qmax = qp
    if not -(2**31) <= z < 2**31:
        pytest.skip("torch refuses")
    t = _inputs(torch, dtype, scale=s)
    want = torch.fake_quantize_per_tensor_affine(t, s, z, qmin, qmax)
    x = backend.from_torch(t)
    got = F.fake_quantize_per_tensor_affine(x, s, z, qmin, qmax)
    assert got.dtype == x.dtype
    if not backend.has("float64") and (abs(z) >= 2**24 or qmax - qmin >= 2**24):
        pytest.skip("beyond 2**24 needs float64 (documented)")
    _same(got, want)
    # The tensor overload: one-element arrays, a float32 scale.
    xp = backend.xp
    s_arr = xp.asarray([s], dtype=xp.float32, device=backend.device)
    z_arr = xp.asarray([z], dtype=xp.int32, device=backend.device)
    _same(F.fake_quantize_per_tensor_affine(x, s_arr, z_arr, qmin, qmax), want)
    # fast=False: the generic Array API path, same numbers.
    _same(F.fake_quantize_per_tensor_affine(x, s, z, qmin, qmax, fast=False), want)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("zp_dtype", ["int32", "float32", "float16"])
@pytest.mark.parametrize("axis", [0, 1])
def test_fake_quantize_per_channel_matches_torch(backend, torch_ref, dtype, zp_dtype, axis):
    _need(backend, dtype)
    _need(backend, zp_dtype)
    if not hasattr(backend.xp, zp_dtype):
        pytest.skip(f"{backend.name}'s namespace names no {zp_dtype}")
    torch = torch_ref
    t = _inputs(torch, dtype).reshape(8, -1)
    if axis == 1:
        t = t.T.contiguous()
    rng = np.random.default_rng(1)
    scale = torch.from_numpy((rng.uniform(0.5, 2.0, 8) * 0.05).astype(np.float32))
    zp = torch.from_numpy(rng.integers(-10, 10, 8)).to(getattr(torch, zp_dtype))
    want = torch.fake_quantize_per_channel_affine(t, scale, zp, axis, -128, 127)
    got = F.fake_quantize_per_channel_affine(
        backend.from_torch(t), backend.from_torch(scale), backend.from_torch(zp), axis, -128, 127
    )
    _same(got, want)
    got = F.fake_quantize_per_channel_affine(
        backend.from_torch(t),
        backend.from_torch(scale),
        backend.from_torch(zp),
        axis,
        -128,
        127,
        fast=False,
    )
    _same(got, want)


@pytest.mark.parametrize(
    "qp",
    [
        (0.0173, 128, 0, 255, "uint8"),
        (0.1, 0, -128, 127, "int8"),
        (0.3, 17, -(2**15), 2**15 - 1, "int16"),
        (12345.678, 3, -(2**31), 2**31 - 1, "int32"),
    ],
)
def test_decomposed_ops_match_torch(backend, torch_ref, qp):
    importlib.import_module("torch.ao.quantization.fx._decomposed")  # registers the ops
    torch = torch_ref
    ops = torch.ops.quantized_decomposed
    s, z, qmin, qmax, name = qp
    tdtype = getattr(torch, name)
    t = _inputs(torch, "float32", scale=s)
    want = ops.quantize_per_tensor(t, s, z, qmin, qmax, tdtype)
    got = F.quantize_per_tensor(backend.from_torch(t), s, z, qmin, qmax, name)
    assert _host(got).dtype == np.dtype(name)
    np.testing.assert_array_equal(_host(got), want.numpy())
    for out in ("float32", "float64", "float16"):
        if not backend.has(out) or not hasattr(backend.xp, out):
            continue
        back = ops.dequantize_per_tensor(
            want, s, z, qmin, qmax, tdtype, out_dtype=getattr(torch, out)
        )
        mine = F.dequantize_per_tensor(
            backend.from_torch(want), s, z, qmin, qmax, name, out_dtype=out
        )
        _same(mine, back)
    t2 = t.reshape(10, -1)
    scales = torch.from_numpy(np.linspace(0.5, 2.0, 10, dtype=np.float32) * np.float32(s))
    zps = torch.full((10,), z, dtype=torch.int32)
    want = ops.quantize_per_channel(t2, scales, zps, 0, qmin, qmax, tdtype)
    got = F.quantize_per_channel(
        backend.from_torch(t2),
        backend.from_torch(scales),
        backend.from_torch(zps),
        0,
        qmin,
        qmax,
        name,
    )
    np.testing.assert_array_equal(_host(got), want.numpy())
    back = ops.dequantize_per_channel(want, scales, zps, 0, qmin, qmax, tdtype)
    mine = F.dequantize_per_channel(
        backend.from_torch(want),
        backend.from_torch(scales),
        backend.from_torch(zps),
        0,
        qmin,
        qmax,
        name,
    )
    _same(mine, back)


def test_refusals_are_torchs(backend, torch_ref):
    torch = torch_ref
    t = torch.tensor([0.5, 1.5])
    x = backend.from_torch(t)
    for args, err in [((1.0, 300, 0, 255), ValueError), ((1.0, 0, 5, 2), ValueError)]:
        with pytest.raises(RuntimeError):
            torch.fake_quantize_per_tensor_affine(t, *args)
        with pytest.raises(err):
            F.fake_quantize_per_tensor_affine(x, *args)
    with pytest.raises(TypeError):
        F.fake_quantize_per_tensor_affine(
            backend.from_torch(torch.tensor([1, 2], dtype=torch.int32)), 1.0, 0, 0, 255
        )
    x2 = backend.from_torch(torch.ones(2, 3))
    xp = backend.xp
    s = xp.ones(2, dtype=xp.float32, device=backend.device)
    z = xp.zeros(2, dtype=xp.int32, device=backend.device)
    with pytest.raises(ValueError, match="axis"):
        F.fake_quantize_per_channel_affine(x2, s, z, -2, 0, 255)
    with pytest.raises(ValueError):
        F.fake_quantize_per_channel_affine(x2, s, z, 1, 0, 255)
    if backend.has("int64"):
        with pytest.raises(TypeError):
            F.fake_quantize_per_channel_affine(x2, s, xp.astype(z, xp.int64), 0, 0, 255)
    with pytest.raises(ValueError):
        F.quantize_per_tensor(backend.from_torch(t), 1.0, 0, -129, 127, "int8")
    with pytest.raises(TypeError):
        F.dequantize_per_tensor(
            backend.from_torch(torch.tensor([1], dtype=torch.int8)), 1.0, 0, 0, 255, "uint8"
        )


def test_torch_gradient_is_straight_through(torch_ref):
    torch = torch_ref
    t = _inputs(torch, "float32", n=400)
    for fast in (True, False):
        a = t.clone().requires_grad_(True)
        torch.fake_quantize_per_tensor_affine(a, 0.1, 3, 0, 255).sum().backward()
        b = t.clone().requires_grad_(True)
        F.fake_quantize_per_tensor_affine(b, 0.1, 3, 0, 255, fast=fast).sum().backward()
        assert torch.equal(a.grad, b.grad)
        assert 0 < int(b.grad.sum()) < t.numel()


def test_jax_jit_and_gradient(torch_ref):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    torch = torch_ref
    t = _inputs(torch, "float32", n=400)
    a = t.clone().requires_grad_(True)
    want = torch.fake_quantize_per_tensor_affine(a, 0.1, 3, 0, 255)
    want.sum().backward()
    x = jnp.asarray(t.numpy())
    f = jax.jit(lambda v, s: F.fake_quantize_per_tensor_affine(v, s, 3, 0, 255))
    _same(f(x, jnp.asarray([0.1], dtype=jnp.float32)), want.detach())
    grad = jax.grad(lambda v: F.fake_quantize_per_tensor_affine(v, 0.1, 3, 0, 255).sum())(x)
    np.testing.assert_array_equal(np.asarray(grad), a.grad.numpy())
    scale = jnp.full((8,), 0.1, dtype=jnp.float32)
    zp = jnp.zeros((8,), dtype=jnp.int32)
    xc = x.reshape(8, -1)
    gc = jax.grad(lambda v: F.fake_quantize_per_channel_affine(v, scale, zp, 0, -128, 127).sum())(
        xc
    )
    tc = t.reshape(8, -1).clone().requires_grad_(True)
    torch.fake_quantize_per_channel_affine(
        tc, torch.full((8,), 0.1), torch.zeros(8, dtype=torch.int32), 0, -128, 127
    ).sum().backward()
    np.testing.assert_array_equal(np.asarray(gc), tc.grad.numpy())


def test_dask_stays_lazy(torch_ref):
    da = pytest.importorskip("dask.array")
    torch = torch_ref
    t = _inputs(torch, "float32", n=4000)
    x = da.from_array(t.numpy(), chunks=1000)
    got = F.fake_quantize_per_tensor_affine(x, 0.1, 3, 0, 255)
    assert isinstance(got, da.Array)
    _same(got, torch.fake_quantize_per_tensor_affine(t, 0.1, 3, 0, 255))


# -- FakeQuantize ---------------------------------------------------------------------------
def _torch_fq(torch: Any, name: str) -> Any:
    from torch.ao.quantization import fake_quantize as tfq

    return getattr(tfq, name)()


FACTORIES = [
    "default_fake_quant",
    "default_weight_fake_quant",
    "default_per_channel_weight_fake_quant",
    "default_fused_act_fake_quant",
    "default_fused_wt_fake_quant",
    "default_fused_per_channel_wt_fake_quant",
    "fused_wt_fake_quant_range_neg_127_to_127",
    "default_fixed_qparams_range_0to1_fake_quant",
    "default_fixed_qparams_range_neg1to1_fake_quant",
]
# Magnitudes per step: tiny ones reach the fused op's 6.1e-5 scale floor.
MAGNITUDES = [1.0, 2.0, 1e-6, 3.0, 1e3, 1e-9, 0.5]


@pytest.mark.filterwarnings("ignore:reduce_range is deprecated")
@pytest.mark.filterwarnings("ignore:Please use quant_min and quant_max")
@pytest.mark.parametrize("name", FACTORIES)
def test_fake_quantize_module_matches_torch(backend, torch_ref, name):
    torch = torch_ref
    # JAX without x64 runs the double steps under a local jax.enable_x64 (exact).
    if "fused" in name and not backend.has("float64") and backend.library != "jax":
        pytest.skip("the fused qparams take double steps: float32 only is documented inexact")
    ref = _torch_fq(torch, name)
    ours = getattr(arrayobs, name)(xp=backend.xp, device=backend.device)
    rng = np.random.default_rng(2)
    # enable/disable sequences: observe+fq, fq only, observe only, neither, both again.
    plan = [(1, 1), (1, 1), (0, 1), (1, 0), (0, 0), (1, 1), (1, 1)]
    for step, (obs_on, fq_on) in enumerate(plan):
        for mod in (ref, ours):
            mod.enable_observer(bool(obs_on))
            mod.enable_fake_quant(bool(fq_on))
        t = rng.standard_normal((4, 50)) * MAGNITUDES[step] + rng.choice([0.0, MAGNITUDES[step]])
        t = torch.from_numpy(t.astype(np.float32))
        want = ref(t)
        got = ours(backend.from_torch(t))
        _same(got, want)
        _same(ours.scale, ref.scale)
        np.testing.assert_array_equal(_host(ours.zero_point), ref.zero_point.numpy())
    sd = ours.state_dict()
    ref_sd = ref.state_dict()
    assert list(sd) == list(ref_sd)
    for k in sd:
        got_v, want_v = _host(sd[k]), ref_sd[k].numpy()
        if backend.has("int64") or want_v.dtype != np.int64:
            assert got_v.dtype == want_v.dtype, k
        np.testing.assert_array_equal(got_v, want_v)
    # Loadable both ways.
    fresh = getattr(arrayobs, name)(xp=backend.xp, device=backend.device)
    fresh.load_state_dict({k: backend.from_torch(v) for k, v in ref_sd.items()})
    t = torch.from_numpy(rng.standard_normal((4, 50)).astype(np.float32))
    _same(fresh(backend.from_torch(t)), ref(t))
    back = _torch_fq(torch, name)
    back(torch.zeros(4, 50))  # per channel: torch sizes its buffers on the first batch
    back.load_state_dict(
        {k: torch.tensor(np.array(_host(v))) for k, v in fresh.state_dict().items()}
    )
    _same(back(t), fresh(backend.from_torch(t)))


@pytest.mark.filterwarnings("ignore:reduce_range is deprecated")
@pytest.mark.parametrize(
    "name",
    [
        "default_fake_quant",
        "default_fused_per_channel_wt_fake_quant",
        "default_fixed_qparams_range_0to1_fake_quant",
    ],
)
def test_fake_quantize_copies_and_refusals(backend, torch_ref, name):
    torch = torch_ref
    make = getattr(arrayobs, name)
    fq = make(xp=backend.xp, device=backend.device)
    rng = np.random.default_rng(3)
    batches = [
        backend.from_torch(torch.from_numpy(rng.standard_normal((4, 25)).astype(np.float32)))
        for _ in range(3)
    ]
    fq(batches[0])
    for clone in (copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))):
        twin = clone(fq)
        assert type(twin) is type(fq)
        _same(twin.scale, fq.scale)
        for b in batches[1:]:
            _same(twin(b), fq(b))
            _same(twin.scale, fq.scale)
        for k, v in twin.state_dict().items():
            np.testing.assert_array_equal(_host(v), _host(fq.state_dict()[k]))
    before = fq.state_dict()
    with pytest.raises(TypeError):
        fq(backend.from_torch(torch.tensor([1, 2], dtype=torch.int32)))
    with pytest.raises(KeyError):
        fq.load_state_dict({"scale": before["scale"]})
    bad = dict(before)
    bad["scale"] = backend.from_torch(torch.tensor([[1.0]]))  # not 1-d
    with pytest.raises(ValueError):
        fq.load_state_dict(bad)
    for k, v in fq.state_dict().items():
        np.testing.assert_array_equal(_host(v), _host(before[k]))
    with pytest.raises(ValueError):
        arrayobs.FakeQuantize(quant_min=0, quant_max=300, dtype="quint8")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside torch's inductor
@pytest.mark.parametrize("fast", [True, False])
def test_torch_compile_fullgraph(torch_ref, fast):
    """The ops trace under torch.compile(fullgraph=True): no host read, no graph break."""
    torch = torch_ref
    t = _inputs(torch, "float32", n=1000)
    scale, zp = torch.tensor([0.05]), torch.tensor([7], dtype=torch.int32)

    def step(x: Any, s: Any, z: Any) -> Any:
        y = F.fake_quantize_per_tensor_affine(x, s, z, 0, 255, fast=fast)
        c = F.fake_quantize_per_channel_affine(
            x.reshape(10, -1),
            s.expand(10).contiguous(),
            z.expand(10).contiguous(),
            0,
            0,
            255,
            fast=fast,
        )
        return y, c

    y, c = torch.compile(step, fullgraph=True)(t, scale, zp)
    _same(y, torch.fake_quantize_per_tensor_affine(t, scale, zp, 0, 255))
    want_c = torch.fake_quantize_per_channel_affine(
        t.reshape(10, -1),
        torch.full((10,), 0.05),
        torch.full((10,), 7, dtype=torch.int32),
        0,
        0,
        255,
    )
    _same(c, want_c)


def test_fake_quantize_threads(backend, torch_ref):
    """Concurrent forwards of one module: each is atomic (a MinMax observer's final
    state does not depend on the order, so it must equal the serial one)."""
    import threading

    if backend.library == "dask":
        pytest.skip("Dask batches compute; covered by the other backends")
    torch = torch_ref
    make = arrayobs.FakeQuantize.with_args(observer=arrayobs.MinMaxObserver)
    shared = make(xp=backend.xp, device=backend.device)
    serial = make(xp=backend.xp, device=backend.device)
    rng = np.random.default_rng(5)
    batches = [
        backend.from_torch(
            torch.from_numpy((rng.standard_normal(20_000) * (i + 1)).astype(np.float32))
        )
        for i in range(16)
    ]
    for b in batches:
        serial(b)
    threads = [
        threading.Thread(target=lambda bs=batches[i::8]: [shared(b) for b in bs]) for i in range(8)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k, v in serial.state_dict().items():
        np.testing.assert_array_equal(_host(shared.state_dict()[k]), _host(v))
