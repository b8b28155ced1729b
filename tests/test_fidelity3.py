"""Fidelity round 3 (issue 24): each finding against the live reference.

torch 2.13.0 and torchao 0.18.0 run inside each test on the same values; a
test names the issue's item it pins.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from arrayobs import affine
from arrayobs._compat import to_host

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import granularity as tg
    from torchao.quantization import observer as tobs
    from torchao.quantization import quant_primitives as tq
    from torchao.quantization.pt2e import _affine_quantization as pt2e


def _same(got: Any, want: Any) -> None:
    """Same dtype name, shape and bits (NaN matching NaN)."""
    assert str(got.dtype).rsplit(".", 1)[-1] == str(want.dtype).rsplit(".", 1)[-1]
    assert tuple(got.shape) == tuple(want.shape)
    g, w = to_host(got), to_host(want)
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
