"""Every fast path against the generic path, bit for bit, on the same inputs.

The thresholds that switch a fast path to its threaded, blocked or split form
are lowered here, so small arrays take every branch a large one would.
Of two zeros of different sign in one batch, a reduction may return either
(the standard leaves it open, and the generic reductions differ too); only
there are the two results compared as values, not bits.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver, _backends
from arrayobs._compat import to_host

DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "int32", "uint8", "bool")
SIZES = (1, 2, 7, 1000, 5003)


@pytest.fixture(autouse=True)
def _small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    from arrayobs._backends import _numpy

    monkeypatch.setattr(_numpy, "THREAD_MIN_BYTES", 64)
    monkeypatch.setattr(_numpy, "BLOCK_BYTES", 96)
    try:
        from arrayobs._backends import _jax
    except ImportError:
        return
    monkeypatch.setattr(_jax, "SPLIT_MIN", 2)


def _inputs(dtype: str, n: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(n)
    base = rng.standard_normal(n) * 100
    if dtype == "bool":
        return [("random", base > 0), ("all true", np.ones(n, bool))]
    if not dtype.startswith(("float", "bfloat")):
        info = np.iinfo(dtype)
        return [("random", np.clip(base, info.min, info.max)), ("extremes", _spread(n, info))]
    out = [("random", base), ("negative", -np.abs(base) - 1)]
    for label, value in (("nan", np.nan), ("-nan", -np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
        for where in sorted({0, n // 2, n - 1}):
            a = base.copy()
            a[where] = value
            out.append((f"{label}@{where}", a))
    zeros = np.zeros(n)
    out += [("+0", zeros), ("-0", -zeros), ("mixed zeros", np.where(base > 0, 0.0, -0.0))]
    if n > 1:
        out.append(("inf and -inf", np.resize([np.inf, -np.inf], n)))
    return out


def _spread(n: int, info: Any) -> np.ndarray:
    return np.resize(np.array([info.min, info.max, 0], dtype=np.float64), n)


def _bits(v: Any) -> bytes:
    a = np.asarray(to_host(v), dtype=np.float32)
    if np.isnan(a).all():
        return b"nan"
    return a.tobytes()


def _zero_sign_open(values: np.ndarray, got: Any) -> bool:
    """A zero result from a batch that holds both +0 and -0: either sign is right."""
    zeros = values[values == 0]
    mixed = zeros.size > 0 and np.signbit(zeros).any() and not np.signbit(zeros).all()
    return bool(mixed) and float(to_host(got)) == 0.0


def _same(fast: Any, slow: Any, values: np.ndarray) -> bool:
    if _zero_sign_open(values, fast):
        return float(to_host(slow)) == 0.0
    return _bits(fast) == _bits(slow)


@pytest.mark.parametrize("dtype", DTYPES)
def test_aminmax_fast_equals_generic(backend: Any, dtype: str) -> None:
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    for n, (label, values) in itertools.chain.from_iterable(
        ((n, case) for case in _inputs(dtype, n)) for n in SIZES
    ):
        torch = pytest.importorskip("torch")
        t = torch.from_numpy(np.ascontiguousarray(values)).to(getattr(torch, dtype))
        x = backend.from_torch(t)
        host = t.float().numpy()
        fast = _backends.new(backend.xp, fast=True).aminmax(x)
        slow = _backends.new(backend.xp, fast=False).aminmax(x)
        for f, s, what in zip(fast, slow, ("min", "max"), strict=True):
            assert _same(f, s, host), f"{dtype} n={n} {label}: {what} {f} (fast) vs {s}"


def test_numpy_views_and_orders() -> None:
    """Strided and Fortran-ordered NumPy inputs take the generic reduction or a copy."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 48)).astype(np.float32)
    for x in (a[::3, 1::2], a.T, np.asfortranarray(a), a.astype(np.float16)[::2].T):
        fast = _backends.new(np, fast=True).aminmax(x)
        want = (np.float32(x.min()), np.float32(x.max()))
        assert [_bits(v) for v in fast] == [_bits(v) for v in want]


def test_numpy_bfloat16_of_ml_dtypes() -> None:
    """NumPy arrays of ml_dtypes' bfloat16 (JAX's bfloat16 on the host) take the key path."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for n in SIZES:
        for label, values in _inputs("float32", n):
            x = values.astype(np.float32).astype(ml_dtypes.bfloat16)
            host = x.astype(np.float32)
            fast = _backends.new(np, fast=True).aminmax(x)
            with np.errstate(invalid="ignore"):  # ml_dtypes' reduction warns on NaN
                slow = _backends.new(np, fast=False).aminmax(x)
            for f, s, what in zip(fast, slow, ("min", "max"), strict=True):
                assert _same(f, s, host), f"bfloat16 n={n} {label}: {what} {f} vs {s}"


def _sequence(n_batches: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(n_batches):
        b = rng.standard_normal(int(rng.integers(0, 300))) * 10.0 ** rng.uniform(-3, 3)
        if i % 7 == 3 and b.size:
            b[rng.integers(b.size)] = rng.choice([np.inf, -np.inf, np.nan, 0.0, -0.0])
        batches.append(b.astype(np.float32))
    return batches


@pytest.mark.parametrize("c", [None, 0.01, 1.0, 1.5])
def test_observer_fast_equals_generic(backend: Any, c: float | None) -> None:
    """Whole observers: the fast route's state after every batch is the generic route's."""

    def make(fast: bool) -> Any:
        if c is None:
            return MinMaxObserver(xp=backend.xp, device=backend.device, fast=fast)
        return MovingAverageMinMaxObserver(c, xp=backend.xp, device=backend.device, fast=fast)

    for seed in range(3):
        fast, slow = make(True), make(False)
        seen = np.zeros(0, np.float32)
        for step, values in enumerate(_sequence(25, seed)):
            x = backend.from_numpy(values)
            fast(x)
            slow(x)
            seen = np.concatenate([seen, values])  # a zero's sign, once open, stays open
            for got, want in zip(fast.state, slow.state, strict=True):
                assert got.dtype == want.dtype and got.shape == want.shape
                assert _same(got, want, seen), f"seed {seed} batch {step}: {got} vs {want}"
        (scale, zp), (want_scale, want_zp) = (
            fast.calculate_qparams(check=False),
            slow.calculate_qparams(check=False),
        )
        assert _bits(scale) == _bits(want_scale)  # a NaN's sign bit carries nothing
        assert to_host(zp).tolist() == to_host(want_zp).tolist()


def test_torch_combine_equals_generic(torch_ref: Any) -> None:
    """The torch backend's rules (torch.ao's own ops) against the generic backend's, on CPU
    tensors, for every rule and every ``fresh`` hint the classes pass."""
    from arrayobs import _core as core

    torch = torch_ref
    xp = pytest.importorskip("array_api_compat.torch")
    fast, generic = _backends.new(xp), _backends.Backend(xp)
    assert type(fast) is not _backends.Backend
    special = [0.0, -0.0, 1.0, -2.5, 3e38, -3e38, np.inf, -np.inf, np.nan, 1e-40, 7.25]
    t = [torch.tensor(v, dtype=torch.float32) for v in special]
    rules = [core.RunningMinMax()] + [core.MovingAverage(c) for c in (0.01, 1 / 3, 1.0, 1.5)]
    for (m, big_m), (lo, hi) in itertools.product(itertools.product(t, t), itertools.product(t, t)):
        state = core.MinMaxState(m, big_m)
        is_fresh = float(m) == np.inf and float(big_m) == -np.inf
        # The hints the classes pass: True only for a fresh state, False only for a
        # state that is not, None for any.
        for rule, fresh in itertools.product(rules, (True, False, None)):
            if fresh is not None and fresh != is_fresh:
                continue
            got = fast.combine(state, lo, hi, rule, fresh)
            want = generic.combine(state, lo, hi, rule, fresh)
            assert [_bits(g) for g in got] == [_bits(w) for w in want], (m, big_m, lo, hi, rule)


def test_host_qparams_equal_core() -> None:
    """The host-scalar qparams (NumPy, torch CPU) against the core, special values included."""
    from arrayobs import functional as F
    from arrayobs._backends import _host

    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 3e38, -3e38, 1.0, -1.0]
    values += [0.5, -2.5, 1e-7, 123.456, -7e5, 2.0**31, -(2.0**31) * 300]
    configs = [
        F.quant_config(dtype, qscheme, eps=eps)
        for dtype in ("quint8", "qint8", "int16", "uint16", "qint32", "quint4x2")
        for qscheme in ("per_tensor_affine", "per_tensor_symmetric")
        for eps in (F.quant_config().eps, 0.0, 1e-3)
    ]
    configs += [
        F.quant_config("qint32", quant_min=-(2**31), quant_max=2**31 - 1),
        F.quant_config("quint8", quant_min=0, quant_max=1000),
    ]
    for a, b in itertools.product(values, values):
        m, big_m = np.float32(a), np.float32(b)
        for config in configs:
            scale, zero_point = _host.qparams(m, big_m, config)
            want = F.calculate_qparams(F.MinMaxState(np.asarray(m), np.asarray(big_m)), config)
            assert _bits(scale) == _bits(want.scale[0]), (a, b, config)
            assert zero_point == int(want.zero_point[0]), (a, b, config)
