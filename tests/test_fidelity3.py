"""Fidelity round 3 (issue 24): each finding against the live reference.

torch 2.13.0 and torchao 0.18.0 run inside each test on the same values; a
test names the issue's item it pins.
"""

from __future__ import annotations

import warnings
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
    return host.astype(np.float32) if host.dtype.kind == "f" and host.itemsize < 4 else host


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
    gen = torch.Generator().manual_seed(hash((qname, zname, sname)) % 2**31)
    qdt = getattr(torch, qname)
    info = torch.iinfo(qdt)
    lo, hi = (-(2**20), 2**20) if qname == "int32" else (info.min, info.max)
    q = torch.randint(lo, hi + 1, (6, 40), generator=gen, dtype=torch.int64).to(qdt)
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
    for out in ("float32", "float16") if backend.has("float16") else ("float32",):
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
        _same(got, want)
