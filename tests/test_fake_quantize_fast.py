"""NumPy's blocked per-tensor fake quantization against the generic arithmetic, bit for bit.

The generic path (``fast=False``, ``_core._fakequant.fake_quantize``) is the
specification; ``tests/test_fake_quantize.py`` checks it against torch. Here the
fast path must give the same bytes on inputs chosen to break it: NaN of both
signs, infinities, signed zeros, subnormals, exact ties, values beyond 2**24,
2**31 and 2**63, degenerate scales, and zero points and ranges that float32
cannot hold (which move the clamp to float64).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from arrayobs import _backends
from arrayobs import functional as F
from arrayobs._backends import _numpy

FAST = _backends.new(np, fast=True)
GENERIC = _backends.new(np, fast=False)
DTYPES = ("float32", "float16", "float64")
SCALES = [0.0173, 0.1, 2.0**-7, 1.0, 3.0, 0.0, -0.0, -0.5, np.nan, np.inf, -np.inf]
SCALES += [1e-45, 1e-40, 1e-30, 3e38, 12345.678]
# (zero_point, quant_min, quant_max): the common ranges, zero points at the bounds, the
# int32 range (its bounds are not float32 values), zero points beyond float32's integers,
# a one-value range, and ranges beyond 2**53 and 2**63 (the latter takes the generic path).
QPARAMS = [
    (128, 0, 255),
    (0, -128, 127),
    (-128, -128, 127),
    (255, 0, 255),
    (0, 0, 15),
    (0, -(2**31), 2**31 - 1),
    (2**31 - 1, -(2**31), 2**31 - 1),
    (-(2**31), -(2**31), 2**31 - 1),
    (123457, -(2**31), 2**31 - 1),
    (2**24 + 1, 0, 2**25),
    (2**24, 0, 2**24),
    (7, 7, 7),
    (3, -(2**60) - 1, 2**60 + 1),
    (0, -(2**64), 2**64),
]


@pytest.fixture(params=["small blocks", "defaults"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Tiny blocks and thresholds: small arrays take the threaded, blocked, filled branches."""
    if request.param == "small blocks":
        monkeypatch.setattr(_numpy, "THREAD_MIN_BYTES", 64)
        monkeypatch.setattr(_numpy, "FQ_BLOCK", 7)
        monkeypatch.setattr(_numpy, "FQ_FILL_MIN", 2)
    return str(request.param)


def _values(scale: float, n: int = 600, seed: int = 0) -> np.ndarray:
    """Normals at several magnitudes, ties (k + 0.5) * scale, and special values (float64)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * rng.choice([1e-3, 1.0, 100.0, 1e6, 1e12], n)
    with np.errstate(all="ignore"):
        s = float(np.float32(scale))
        ties = (rng.integers(-300, 300, n // 4) + 0.5) * s
    specials = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40]
    specials += [0.5, -0.5, 1.5, -2.5, 2.0**24 + 1, 2.0**31, -(2.0**31), 2.0**63, -(2.0**64)]
    specials += [3.4e38, -3.4e38, 1e300, 65504.0, 65520.0]
    return np.concatenate([ties, specials, x])


def _cast(values: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def _same_bits(fast: Any, slow: Any, what: str) -> None:
    assert type(fast) is np.ndarray, what
    assert (fast.dtype, fast.shape) == (slow.dtype, slow.shape), what
    differ = fast.reshape(-1).view(np.uint8) != slow.reshape(-1).view(np.uint8)
    assert not differ.any(), f"{what}: {fast.reshape(-1)[:8]} vs {slow.reshape(-1)[:8]}"


def _both(x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int) -> tuple[Any, Any]:
    return (
        FAST.fake_quantize(x, scale, zero_point, qmin, qmax),
        GENERIC.fake_quantize(x, scale, zero_point, qmin, qmax),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_equals_generic(blocks: str, dtype: str) -> None:
    """Every scale, zero point and range of the grid, through the public function."""
    for scale, (zp, qmin, qmax) in itertools.product(SCALES, QPARAMS):
        x = _cast(_values(scale), dtype)
        fast = F.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        slow = F.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax, fast=False)
        _same_bits(fast, slow, f"{dtype} scale={scale} zp={zp} [{qmin}, {qmax}] ({blocks})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_qparams(blocks: str, dtype: str) -> None:
    """The qparams FakeQuantize passes: (1,) float32 scales, int64 and float zero points
    (a fraction, NaN, beyond 2**53), and a scale of more axes than the input."""
    x = _cast(_values(0.05, n=200, seed=1), dtype)
    zero_points = [
        np.asarray([17], np.int64),
        np.asarray([2**53 + 1], np.int64),
        np.asarray([-(2**62)], np.int64),
        np.asarray([0.5], np.float32),
        np.asarray([np.nan], np.float64),
        np.asarray([-3.0], np.float16),
        np.asarray(200, np.uint8),
    ]
    scales = [np.asarray([0.05], np.float32), np.asarray(0.1, np.float64), np.asarray([np.nan])]
    for scale, zp in itertools.product(scales, zero_points):
        fast, slow = _both(x, scale, zp, -(2**40), 2**40)
        _same_bits(fast, slow, f"{dtype} scale={scale!r} zp={zp!r} ({blocks})")
    for shape in [(), (1, 1, 1)]:
        one = _cast(np.asarray([0.3]).reshape(shape), dtype)
        fast, slow = _both(one, np.ones((1, 1), np.float32), np.zeros((1,), np.int32), 0, 9)
        _same_bits(fast, slow, f"{dtype} input {shape} against a (1, 1) scale")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts(blocks: str, dtype: str) -> None:
    """Fortran order (walked as its transpose), strided views (copied), 0-d and empty."""
    a = _cast(_values(0.02, n=300, seed=2)[:300].reshape(20, 15), dtype)
    for x in (a, np.asfortranarray(a), a[::3, 1::2], a.T[::-1], a[0, 0, ...], a[:0], a[:, :0].T):
        fast = F.fake_quantize_per_tensor_affine(x, 0.02, 3, -128, 127)
        slow = F.fake_quantize_per_tensor_affine(x, 0.02, 3, -128, 127, fast=False)
        _same_bits(fast, slow, f"{dtype} {x.shape} {x.strides} ({blocks})")


def test_large_input_threads() -> None:
    """Above the thread threshold with the real blocks: parts end mid-block."""
    n = max(3 * _numpy.FQ_BLOCK, _numpy.THREAD_MIN_BYTES // 4) + 12345
    x = np.random.default_rng(5).standard_normal(n).astype(np.float32)
    x[:: _numpy.FQ_BLOCK // 3] = np.nan
    fast = F.fake_quantize_per_tensor_affine(x, 0.0173, 128, 0, 255)
    slow = F.fake_quantize_per_tensor_affine(x, 0.0173, 128, 0, 255, fast=False)
    _same_bits(fast, slow, "large float32")


def test_other_dtypes_and_channels_take_the_generic_path() -> None:
    """bfloat16 (ml_dtypes) and per channel are not the fast path's, and still agree."""
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    scale, zp = np.full(5, 0.1, np.float32), np.arange(5, dtype=np.int32)
    fast = F.fake_quantize_per_channel_affine(x.reshape(5, 10), scale, zp, 0, -128, 127)
    slow = F.fake_quantize_per_channel_affine(x.reshape(5, 10), scale, zp, 0, -128, 127, fast=False)
    _same_bits(fast, slow, "per channel")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    b = x.astype(ml_dtypes.bfloat16)
    fast = F.fake_quantize_per_tensor_affine(b, 0.1, 0, -128, 127)
    slow = F.fake_quantize_per_tensor_affine(b, 0.1, 0, -128, 127, fast=False)
    _same_bits(fast, slow, "bfloat16")
