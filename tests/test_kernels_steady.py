"""HistogramObserver's steady state in one compiled pass (``Backend.steady_histc``).

Where a batch lies inside the observed range, the kernel's counts over that
range are the forward's; anywhere else (NaN, an infinity, a value one ulp
outside) it declines and the library path runs. Every case runs with the
kernels and with the library path (``ARRAYOBS_NUMBA=0``) on the same inputs,
and the observers against live torch.ao.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import HistogramObserver, _backends
from arrayobs._backends import _kernels
from arrayobs._backends._generic import Backend
from arrayobs._compat import to_host

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None,
    reason="numba is not installed (the kernels are the optional extra arrayobs[numba])",
)

FLOATS = ("float16", "bfloat16", "float32", "float64")
# 1 and 17: the serial kernel and its tails; 300_003: the threaded one (above 256 KiB).
SIZES = (1, 17, 1000, 300_003)


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARRAYOBS_NUMBA", raising=False)


@pytest.fixture
def host(backend: Any) -> Any:
    if backend.library not in ("numpy", "torch") or str(backend.device) not in ("cpu", "None"):
        pytest.skip(f"the kernels serve NumPy and CPU torch, not {backend.name}")
    return backend


def _bits(v: Any) -> bytes:
    a = np.asarray(to_host(v), dtype=np.float32)
    return a.tobytes()


def _array(host: Any, values: np.ndarray, dtype: str) -> Any:
    torch = pytest.importorskip("torch")
    return host.from_torch(
        torch.from_numpy(np.asarray(values, np.float64)).to(getattr(torch, dtype))
    )


def _next(value: float, toward: float, dtype: str) -> float:
    """The neighbour of ``value`` toward ``toward`` in ``dtype`` (float32 or float64)."""
    return float(np.nextafter(np.asarray(value, dtype), np.asarray(toward, dtype)))


def _cases(n: int, lo: float, hi: float, dtype: str) -> list[tuple[str, np.ndarray, bool]]:
    """(label, values, inside [lo, hi])."""
    rng = np.random.default_rng(n)
    base = rng.uniform(lo, hi, n)
    spots = sorted({0, n // 2, n - 1})
    out = [("inside", base, True)]
    for where in spots:
        for label, value in (("lo", lo), ("hi", hi)):
            a = base.copy()
            a[where] = value
            out.append((f"{label}@{where}", a, True))
    if lo <= 0.0 <= hi:
        out.append(("-0.0", np.where(base > 0, base, -0.0), True))
        out.append(("+0.0", np.where(base > 0, base, 0.0), True))
    outside = {
        "below": _next(lo, -np.inf, dtype),
        "above": _next(hi, np.inf, dtype),
        "nan": np.nan,
        "-nan": -np.nan,
        "+inf": np.inf,
        "-inf": -np.inf,
    }
    for label, value in outside.items():
        for where in spots:
            a = base.copy()
            a[where] = value
            out.append((f"{label}@{where}", a, False))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", SIZES)
def test_steady_histc(dtype: str, n: int, host: Any) -> None:
    generic = _backends.new(host.xp, fast=False)
    # -0.0 as the low edge: -0.0 and +0.0 values both lie inside ([-0.0, 1] == [0, 1]).
    for lo, hi in ((-2.5, 3.0), (-0.0, 1.0), (0.0, 1e-40), (1e8 - 8, 1e8 + 8)):
        for label, values, inside in _cases(n, lo, hi, dtype):
            x = _array(host, values, dtype)
            for bins in (1, 7, 2048):
                got = _kernels.steady_histc(x, bins, lo, hi)
                if not inside:
                    assert got is None, (label, lo, hi, bins)
                    continue
                assert got is not None, (label, lo, hi, bins)
                reference = generic.histc(x, bins, lo, hi)
                assert _bits(got) == _bits(reference), (label, lo, hi, bins)


def test_steady_histc_declines(host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    x = _array(host, np.linspace(-1.0, 1.0, 1000), "float32")
    assert _kernels.steady_histc(x, 16, -1.0, 1.0) is not None
    assert _kernels.steady_histc(x, 16, 0.5, 0.5) is None  # one value: histc widens its edges
    assert _kernels.steady_histc(x, 16, 1.0, -1.0) is None
    assert _kernels.steady_histc(x, 16, -np.inf, 1.0) is None
    assert _kernels.steady_histc(x, 16, -3e38, 3e38) is None  # hi - lo overflows float32
    assert _kernels.steady_histc(x, 2**24 + 1, -1.0, 1.0) is None
    assert _kernels.steady_histc(x[:0], 16, -1.0, 1.0) is None
    for dtype in [d for d in ("float16", "bfloat16") if host.has(d)]:
        assert _kernels.steady_histc(_array(host, np.zeros(4), dtype), 16, -1.0, 1.0) is None
    assert _kernels.steady_histc(host.from_torch(torch.arange(4)), 16, -1.0, 5.0) is None
    monkeypatch.setenv("ARRAYOBS_NUMBA", "0")
    assert _kernels.steady_histc(x, 16, -1.0, 1.0) is None
    assert _backends.new(host.xp, fast=False).steady_histc(x, 16, -1.0, 1.0) is None


def test_steady_histc_threads_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(3).uniform(-4.0, 4.0, 10**6).astype(np.float32)
    threaded = _kernels.steady_histc(x, 2048, -4.0, 4.0)
    edge = x.copy()
    edge[-1] = 5.0  # only the last part sees it
    assert _kernels.steady_histc(edge, 2048, -4.0, 4.0) is None
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_BYTES", 2**62)  # one part, one thread
    one = _kernels.steady_histc(x, 2048, -4.0, 4.0)
    assert threaded is not None and one is not None
    assert threaded.tobytes() == one.tobytes() == _kernels.histc(x, 2048, -4.0, 4.0).tobytes()
    assert _kernels.steady_histc(edge, 2048, -4.0, 4.0) is None


def _batches(
    rng: np.random.Generator, lo: float, hi: float, n: int
) -> list[tuple[str, np.ndarray]]:
    """Batches for an observer whose range is ``[lo, hi]`` (float32 values) after the first."""
    edges = rng.uniform(lo, hi, n)
    edges[0], edges[-1] = lo, hi
    zeros = np.where(rng.uniform(lo, hi, 17) > 0, 0.0, -0.0)
    return [
        ("steady, on both edges", edges),
        ("steady, signed zeros", zeros),
        ("NaN", np.concatenate([edges[:100], [np.nan]])),
        ("inf", np.concatenate([edges[:100], [np.inf, -np.inf]])),
        ("one ulp above (float32)", np.array([_next(hi, np.inf, "float32"), lo])),
        ("steady again", rng.uniform(lo, hi, min(n, 1000))),
        ("wider", rng.standard_normal(n) * 3),
        ("steady, float64 ulps inside", np.array([_next(lo, 0.0, "float64"), 0.5])),
    ]


def _step(obs: Any, x: Any) -> type[Exception] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's and our inf warnings
        try:
            obs(x)
        except (RuntimeError, ValueError) as e:
            return RuntimeError if isinstance(e, RuntimeError) else ValueError
    return None


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("first", ["normal", "constant"])
def test_steady_forward_against_torch(
    dtype: str, first: str, host: Any, torch_ref: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not host.has(dtype):
        pytest.skip(f"{host.name} has no {dtype}")
    backend = _backends.new(host.xp)
    takes = (
        dtype in ("float32", "float64") and type(backend).steady_histc is not Backend.steady_histc
    )
    taken: list[bool] = []
    steady = _kernels.steady_histc

    def spy(*args: Any) -> Any:
        out = steady(*args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(_kernels, "steady_histc", spy)
    rng = np.random.default_rng(11)
    # torch counts 16-bit input in that dtype per thread: exact up to 256 a bin (bfloat16).
    n = 300_003 if dtype in ("float32", "float64") else 200
    start = rng.standard_normal(n) * 2 if first == "normal" else np.full(50, 2.0)
    ref = torch_ref.ao.quantization.HistogramObserver(bins=2048)
    ours, library = HistogramObserver(bins=2048), HistogramObserver(bins=2048)
    t = torch_ref.from_numpy(start).to(getattr(torch_ref, dtype))
    for obs in (ref, ours, library):
        _step(obs, t if obs is ref else host.from_torch(t))
    lo, hi = float(ref.min_val), float(ref.max_val)
    for label, values in [("again", start), *_batches(rng, lo, hi, n)]:
        t = torch_ref.from_numpy(values).to(getattr(torch_ref, dtype))
        before = len(taken)
        raised = _step(ref, t)
        assert _step(ours, host.from_torch(t)) == (ValueError if raised else None), label
        if takes:
            # The kernel counts every batch inside a range wider than one value.
            v = t.double().numpy()
            inside = bool(np.all((v >= lo) & (v <= hi))) and lo < hi
            assert taken[before:] == [inside], label
        monkeypatch.setenv("ARRAYOBS_NUMBA", "0")
        _step(library, host.from_torch(t))
        monkeypatch.delenv("ARRAYOBS_NUMBA")
        for name in ("histogram", "min_val", "max_val"):
            mine, theirs = getattr(ours, name), getattr(ref, name)
            assert _bits(mine) == _bits(theirs) == _bits(getattr(library, name)), (label, name)
        lo, hi = float(ref.min_val), float(ref.max_val)
    scale, zero_point = ours.calculate_qparams()
    ref_scale, ref_zero_point = ref.calculate_qparams()
    assert _bits(scale) == _bits(ref_scale)
    assert int(to_host(zero_point)[0]) == int(ref_zero_point[0])
