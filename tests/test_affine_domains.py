"""torchao's zero point domains FLOAT (tinygemm) and NONE, fake quantization, and
the int64 zero point, against live torchao 0.18.0, on every backend.

Every expected number comes from torchao run here on the same values.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import affine
from arrayobs._compat import to_host
from tests.test_affine import TORCH_DTYPES, _data, _lazy, _match, _require, _supports, _to

torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import quant_primitives as tq

TINYGEMM = [
    # input dtype, target, quant_min, quant_max, scale dtype, zero point dtype, output dtype
    ("float32", "uint4", None, None, None, None, "float32"),
    ("bfloat16", "int8", 0, 15, "bfloat16", "bfloat16", "bfloat16"),
    ("float16", "uint8", None, None, "float32", "float16", "float16"),
]


def _nan_row(t: Any) -> Any:
    t = t.clone()
    t[4, 3] = float("nan")
    return t


@pytest.mark.parametrize("case", range(len(TINYGEMM)))
def test_tinygemm_matches_torchao(backend: Any, case: int) -> None:
    """ZeroPointDomain.FLOAT: choose, quantize, dequantize and fake quantize."""
    dtype, target, qmin, qmax, sdt, zdt, out = TINYGEMM[case]
    _require(backend, dtype, sdt or dtype, zdt or dtype, out)
    t = _nan_row(_data((8, 64), dtype, seed=40 + case))
    block, ttarget = (1, 32), TORCH_DTYPES[target]
    want_s, want_z = tq._choose_qparams_affine_tinygemm(
        t, tq.MappingType.ASYMMETRIC, block, ttarget, qmin, qmax, None,
        TORCH_DTYPES.get(sdt), TORCH_DTYPES.get(zdt),
    )  # fmt: skip
    x, s, z = _to(backend, t), _to(backend, want_s), _to(backend, want_z)
    with _lazy(backend):
        scale, zp = affine.choose_qparams_affine_tinygemm(
            x, "ASYMMETRIC", block, target, qmin, qmax, scale_dtype=sdt, zero_point_dtype=zdt
        )
        q = affine.quantize_affine_tinygemm(x, block, s, z, target, qmin, qmax)
    _match(scale, want_s, "scale", backend)
    _match(zp, want_z, "zero_point", backend)
    want_q = tq._quantize_affine_tinygemm(t, block, want_s, want_z, ttarget, qmin, qmax)
    _match(q, want_q, "quantized", backend)
    for zero in (want_z, None):
        want_d = tq._dequantize_affine_tinygemm(
            want_q, block, want_s, zero, ttarget, qmin, qmax, output_dtype=TORCH_DTYPES[out]
        )
        z_in = None if zero is None else z
        with _lazy(backend):
            d = affine.dequantize_affine_tinygemm(
                _to(backend, want_q), block, s, z_in, target, qmin, qmax, output_dtype=out
            )
        _match(d, want_d, f"dequantized (zero point {zero is not None})", backend)
    lo, hi = {"uint4": (0, 15), "uint8": (0, 255)}.get(target, (qmin, qmax))
    want_f, want_m = tq._fake_quantize_affine_cachemask(
        t, block, want_s, want_z, ttarget, lo, hi, tq.ZeroPointDomain.FLOAT
    )
    with _lazy(backend):
        f, m = affine.fake_quantize_affine_cachemask(x, block, s, z, target, lo, hi, "FLOAT")
    _match(f, want_f, "fake quantized", backend)
    _match(m, want_m, "mask", backend)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_no_zero_point_and_fake_quantize_match_torchao(backend: Any, dtype: str) -> None:
    """ZeroPointDomain.NONE (quantize, dequantize, fake) and INT fake quantization."""
    _require(backend, dtype)
    t = _nan_row(_data((8, 64), dtype, seed=50))
    block = (1, 16)
    want_s, want_z = tq.choose_qparams_affine(t, tq.MappingType.ASYMMETRIC, block, torch.int8)
    x, s, z = _to(backend, t), _to(backend, want_s), _to(backend, want_z)
    want_q = tq._quantize_affine_no_zero_point(t, block, want_s, None, torch.int8, -127, 127)
    out = dtype if _supports(backend, "bfloat16") else "float32"
    want_d = tq._dequantize_affine_no_zero_point(
        want_q, block, want_s, None, torch.int8, output_dtype=TORCH_DTYPES[out]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want_none = tq._fake_quantize_affine(
            t, block, want_s, None, torch.int8, zero_point_domain=tq.ZeroPointDomain.NONE
        )
    want_int = tq._fake_quantize_affine(t, block, want_s, want_z, torch.int8)
    with _lazy(backend):
        q = affine.quantize_affine_no_zero_point(x, block, s, None, "int8", -127, 127)
        d = affine.dequantize_affine_no_zero_point(
            _to(backend, want_q), block, s, None, "int8", output_dtype=out
        )
        f_none = affine.fake_quantize_affine(x, block, s, None, "int8", zero_point_domain="NONE")
        f_int = affine.fake_quantize_affine(x, block, s, z, "int8")
    _match(q, want_q, "quantized", backend)
    _match(d, want_d, "dequantized", backend)
    _match(f_none, want_none, "fake quantized (NONE)", backend)
    _match(f_int, want_int, "fake quantized (INT)", backend)


def test_int64_zero_point_matches_torchao(backend: Any) -> None:
    """torchao's test_choose_qparams_token_asym: a float64 scale and an int64 zero
    point per token (a NaN token gives int64's minimum, as the x86 cast)."""
    t = _nan_row(_data((8, 16), "float32", seed=60))
    eps = float(torch.finfo(torch.float32).eps)
    x = _to(backend, t)
    if backend.library == "jax" and not _supports(backend, "float64"):
        with pytest.raises(TypeError, match="zero_point_dtype int64 is not available"):
            affine.choose_qparams_affine(x, "ASYMMETRIC", (1, 16), "int8", eps=eps,
                                         zero_point_dtype="int64")  # fmt: skip
        obs = _int64_observer(eps)
        obs(x)
        with pytest.raises(TypeError, match="scale_dtype float64 is not available"):
            obs.calculate_qparams()
        return
    _require(backend, "float64")
    want_s, want_z = tq.choose_qparams_affine(
        t, tq.MappingType.ASYMMETRIC, (1, 16), torch.int8, eps=eps,
        scale_dtype=torch.float64, zero_point_dtype=torch.int64,
    )  # fmt: skip
    _, aten_z = torch.ops.quantized_decomposed.choose_qparams_per_token_asymmetric(t, torch.int8)
    # The reference agrees with ATen's per-token op on ordinary rows (not on 0..4).
    assert torch.equal(want_z[5:], aten_z.flatten()[5:])
    with _lazy(backend):
        scale, zp = affine.choose_qparams_affine(
            x, "ASYMMETRIC", (1, 16), "int8", eps=eps, scale_dtype="float64",
            zero_point_dtype="int64",
        )  # fmt: skip
    _match(scale, want_s, "scale", backend)
    _match(zp, want_z, "zero_point", backend)
    assert int(to_host(zp)[4]) == -(2**63)
    obs = _int64_observer(eps)
    obs(x)
    scale, zp = obs.calculate_qparams()
    _match(scale, want_s, "observer scale", backend)
    _match(zp, want_z, "observer zero_point", backend)


def _int64_observer(eps: float) -> Any:
    return affine.AffineQuantizedMinMaxObserver(
        "ASYMMETRIC", "int8", affine.PerRow(), eps=eps, scale_dtype="float64",
        zero_point_dtype="int64",
    )  # fmt: skip


def test_float64_product_to_float16_rounds_through_float32(backend: Any) -> None:
    """A float64 scale and a float16 output: ATen rounds the double to float32,
    then to float16 (a half-way value after the first rounding goes to even)."""
    _require(backend, "float64", "float16")
    q = torch.tensor([[1, 2]], dtype=torch.int8)
    s = torch.tensor([[1.00048828125 + 2.0**-40]], dtype=torch.float64)
    want = tq.dequantize_affine(q, (1, 2), s, None, torch.int8, output_dtype=torch.float16)
    assert float(want[0, 0]) == 1.0  # one rounding would give 1.0009765625
    with _lazy(backend):
        got = affine.dequantize_affine(
            _to(backend, q), (1, 2), _to(backend, s), None, "int8", output_dtype="float16"
        )
    _match(got, want, "dequantized", backend)


def test_domain_refusals() -> None:
    x = np.ones((2, 4), np.float32)
    s, z = np.ones((2, 1), np.float32), np.zeros((2, 1), np.float32)
    with pytest.raises(ValueError, match="ASYMMETRIC only, got mapping_type"):
        affine.choose_qparams_affine_tinygemm(x, "SYMMETRIC", (1, 4), "uint4")
    with pytest.raises(TypeError, match="zero_point is None"):
        affine.quantize_affine_tinygemm(x, (1, 4), s, None, "uint4")
    with pytest.raises(ValueError, match="zero_point should be None"):
        affine.fake_quantize_affine(x, (1, 4), s, z, "int8", zero_point_domain="NONE")
    with pytest.raises(ValueError, match="zero_point must be None"):
        affine.dequantize_affine_no_zero_point(np.ones((2, 4), np.int8), (1, 4), s, z, "int8")
    with pytest.raises(TypeError, match="must both be given"):
        affine.fake_quantize_affine_cachemask(x, (1, 4), s, z, "int8")
    with pytest.raises(ValueError, match=r"use ZeroPointDomain\.NONE instead of None"):
        affine.fake_quantize_affine(x, (1, 4), s, z, "int8", zero_point_domain=None)
    with pytest.raises(ValueError, match="cannot be converted to float16"):
        affine.quantize_affine_no_zero_point(x.astype(np.float16), (1, 4), s.astype(np.float16),
                                             None, "int32")  # fmt: skip
