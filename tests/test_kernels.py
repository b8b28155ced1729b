"""The compiled kernels (numba) against the library path, bit for bit, and torch.ao.

Every case runs twice in one process: with the kernels (``ARRAYOBS_NUMBA``
unset) and with the library path (``ARRAYOBS_NUMBA=0``), on the same inputs.
The kernels serve NumPy arrays and CPU torch tensors; the other backends'
cases are skipped. Of two zeros of different sign in one batch a reduction
may return either (the library's own reductions pick by position, see
tests/test_fastpaths.py); only there are two zeros compared as values.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arrayobs import HistogramObserver, _backends
from arrayobs._backends import _kernels
from arrayobs._backends._generic import Backend
from arrayobs._compat import to_host
from arrayobs._core import _histogram as hist
from arrayobs._core import _search

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None,
    reason="numba is not installed (the kernels are the optional extra arrayobs[numba])",
)

FLOATS = ("float16", "bfloat16", "float32", "float64")
# 1 and 17: the serial kernels and their tails; 300_003: the threaded ones (above 256 KiB).
SIZES = (1, 17, 1000, 300_003)


@pytest.fixture(autouse=True)
def _kernels_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test switches the kernels itself (the suite may run with ARRAYOBS_NUMBA=0);
    the (min, max) kernels serve every size here, the small cases included."""
    monkeypatch.delenv("ARRAYOBS_NUMBA", raising=False)
    monkeypatch.setattr(_kernels, "MIN_BYTES", {})


def test_small_inputs_take_the_library_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below MIN_BYTES (by item size) the (min, max) kernels step aside: their fixed
    cost exceeds the library's reduction there; at and above it they serve."""
    monkeypatch.setattr(_kernels, "MIN_BYTES", {2: 1 << 16, 4: 1 << 22, 8: 1 << 22})
    for dtype, size in (("float32", 1 << 20), ("float64", 1 << 19), ("float16", 1 << 15)):
        small = np.ones(size - 1, dtype)
        assert _kernels.aminmax(small) is None, dtype
        assert _kernels.aminmax_axis(small.reshape(1, -1), 0) is None, dtype
        assert _kernels.aminmax(np.ones(size, dtype)) is not None, dtype


@pytest.fixture
def host(backend: Any) -> Any:
    """The backend, where the kernels serve it (NumPy, torch on the CPU)."""
    if backend.library not in ("numpy", "torch") or str(backend.device) not in ("cpu", "None"):
        pytest.skip(f"the kernels serve NumPy and CPU torch, not {backend.name}")
    return backend


def both(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], Any]) -> tuple[Any, Any]:
    """``fn()`` with the kernels, then on the library path."""
    monkeypatch.delenv("ARRAYOBS_NUMBA", raising=False)
    assert _kernels.enabled()
    fast = fn()
    monkeypatch.setenv("ARRAYOBS_NUMBA", "0")
    slow = fn()
    monkeypatch.delenv("ARRAYOBS_NUMBA")
    return fast, slow


def _bits(v: Any) -> bytes:
    a = np.asarray(to_host(v), dtype=np.float32)
    return b"nan" if np.isnan(a).all() else a.tobytes()


def _same(fast: Any, slow: Any, values: np.ndarray) -> None:
    zeros = values[values == 0]
    mixed = zeros.size and np.signbit(zeros).any() and not np.signbit(zeros).all()
    f, s = (np.asarray(to_host(v), dtype=np.float64).reshape(-1) for v in (fast, slow))
    if mixed:
        zero = (f == 0) & (s == 0)
        f, s = np.where(zero, 0.0, f), np.where(zero, 0.0, s)
    nan = np.isnan(f)
    assert np.array_equal(nan, np.isnan(s)), (fast, slow)
    assert f[~nan].tobytes() == s[~nan].tobytes(), (fast, slow)


def _cases(n: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(n)
    base = rng.standard_normal(n) * 100
    out = [("random", base), ("negative", -np.abs(base) - 1), ("positive", np.abs(base) + 1)]
    for label, value in (("nan", np.nan), ("-nan", -np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
        for where in sorted({0, n // 2, n - 1}):
            a = base.copy()
            a[where] = value
            out.append((f"{label}@{where}", a))
    zeros = np.zeros(n)
    out += [("+0", zeros), ("-0", -zeros), ("mixed zeros", np.where(base > 0, 0.0, -0.0))]
    out.append(("huge", np.resize([3e38, -3e38, 1e300, -1e300], n)))
    return out


def _array(host: Any, values: np.ndarray, dtype: str) -> Any:
    torch = pytest.importorskip("torch")
    with np.errstate(over="ignore"):
        t = torch.from_numpy(values).to(getattr(torch, dtype))
    return host.from_torch(t)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", SIZES)
def test_minmax_per_tensor(dtype: str, n: int, host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if not host.has(dtype):
        pytest.skip(f"{host.name} has no {dtype}")
    backend = _backends.new(host.xp)
    for label, values in _cases(n):
        x = _array(host, values, dtype)
        assert _kernels.aminmax(x) is not None, label
        fast, slow = both(monkeypatch, lambda x=x: backend.aminmax(x))
        for f, s in zip(fast, slow, strict=True):
            assert type(f) is type(s) and f.dtype == s.dtype and f.shape == s.shape
            _same(f, s, values)
        fast, slow = both(monkeypatch, lambda x=x: backend.value_range(x))
        assert all(type(v) is float for v in fast), label
        _same(np.asarray(fast), np.asarray(slow), values)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    ("shape", "ch_axis"),
    [((5, 3), 0), ((5, 3), 1), ((4, 6, 7), 1), ((4, 6, 7), 2), ((2, 300, 600), 1), ((1, 1, 9), 1)],
)
def test_minmax_per_channel(
    dtype: str, shape: tuple[int, ...], ch_axis: int, host: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not host.has(dtype):
        pytest.skip(f"{host.name} has no {dtype}")
    backend = _backends.new(host.xp)
    n = int(np.prod(shape))
    for label, values in _cases(n):
        x = _array(host, values.reshape(shape), dtype)
        assert _kernels.aminmax_axis(x, ch_axis) is not None, label
        fast, slow = both(monkeypatch, lambda x=x: backend.aminmax(x, ch_axis))
        for f, s in zip(fast, slow, strict=True):
            assert type(f) is type(s) and f.dtype == s.dtype and f.shape == s.shape, label
            lanes = np.moveaxis(values.reshape(shape), ch_axis, 0).reshape(shape[ch_axis], -1)
            for c in range(shape[ch_axis]):
                _same(to_host(f)[c], to_host(s)[c], lanes[c])


def test_unsupported_inputs_fall_back(host: Any) -> None:
    torch = pytest.importorskip("torch")
    ints = host.from_torch(torch.arange(10, dtype=torch.int32))
    strided = host.from_torch(torch.arange(40, dtype=torch.float32).reshape(5, 8))[:, ::2]
    assert _kernels.aminmax(ints) is None
    assert _kernels.aminmax(strided) is None
    assert _kernels.aminmax_axis(strided, 0) is None
    assert _kernels.histc(host.from_torch(torch.ones(4, dtype=torch.float16)), 4, 0, 1) is None
    assert _kernels.aminmax(host.from_torch(torch.ones(0))) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", (0, *SIZES))
def test_histc(dtype: str, n: int, host: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _backends.new(host.xp)
    generic = _backends.new(host.xp, fast=False)
    rng = np.random.default_rng(n)
    values = rng.standard_normal(n) * 2
    if n > 2:
        values[:3] = [np.nan, np.inf, -np.inf]  # skipped, as torch's histc skips them
    x = _array(host, values, dtype)
    finite = values[np.isfinite(values)]
    ranges = [(-1.0, 1.0), (-3e38, 3e38), (1e8 - 1, 1e8 + 1), (0.0, 1e-40), (-1e-300, 1e-300)]
    if finite.size:
        ranges.append(hist.histc_range(float(finite.min()), float(finite.max())))
    for bins in (1, 3, 2048):
        for lo, hi in ranges:
            assert _kernels.histc(x, bins, lo, hi) is not None
            fast, slow = both(monkeypatch, lambda b=bins, lo=lo, hi=hi: backend.histc(x, b, lo, hi))
            reference = generic.histc(x, bins, lo, hi)
            assert type(fast) is type(slow) and fast.dtype == slow.dtype
            assert _bits(fast) == _bits(slow) == _bits(reference), (bins, lo, hi)


def test_histc_threads_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(3).standard_normal(10**6).astype(np.float32)
    threaded = _kernels.histc(x, 2048, -4.0, 4.0)
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_BYTES", 2**62)  # one part, one thread
    one = _kernels.histc(x, 2048, -4.0, 4.0)
    assert threaded is not None and one is not None
    assert threaded.tobytes() == one.tobytes()


def _histograms() -> list[tuple[str, np.ndarray, float, float]]:
    rng = np.random.default_rng(5)
    normal = rng.standard_normal(10**5)
    out = []
    data = {
        "normal": normal,
        "relu": np.maximum(normal, 0.0),
        "uniform": rng.uniform(-1.0, 3.0, 10**5),
        "lognormal": rng.lognormal(size=10**5),
        "constant": np.full(50, 2.0),
        "two values": np.resize([0.0, 1.0], 100),
        "tiny range": 1e-30 * rng.standard_normal(1000),
    }
    for name, v in data.items():
        v32 = v.astype(np.float32)
        lo, hi = float(v32.min()), float(v32.max())
        for bins in (1, 7, 2048):
            h = np.asarray(hist.histc(v32, bins, *hist.histc_range(lo, hi), xp=np))
            out.append((f"{name}/{bins}", h, lo, hi))
    counts = np.random.default_rng(6).integers(0, 50, 2048).astype(np.float32)
    out.append(("random counts", counts, -3.0, 5.0))
    return out


@pytest.mark.parametrize("nbins", [256, 65536, 2**32])
def test_search(nbins: int) -> None:
    for label, h, lo, hi in _histograms():
        assert _kernels.search_range(h, lo, hi, nbins) == _search.search_range(h, lo, hi, nbins), (
            label
        )


def _feed(obs: Any, batches: list[Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's and our inf warnings
        for b in batches:
            obs(b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_histogram_observer_against_torch(
    dtype: str, host: Any, torch_ref: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    raw = [rng.standard_normal(300_003), rng.standard_normal(1000) * 0.5, rng.uniform(-9, 9, 5000)]
    raw.append(np.concatenate([rng.standard_normal(100), [np.inf, -np.inf]]))
    raw.append(np.maximum(rng.standard_normal(300_003), 0.0))
    tensors = [torch_ref.from_numpy(r).to(getattr(torch_ref, dtype)) for r in raw]
    ref = torch_ref.ao.quantization.HistogramObserver(bins=2048)
    ours = HistogramObserver(bins=2048)
    library = HistogramObserver(bins=2048)
    for t in tensors:
        _feed(ref, [t])
        monkeypatch.delenv("ARRAYOBS_NUMBA", raising=False)
        _feed(ours, [host.from_torch(t)])
        monkeypatch.setenv("ARRAYOBS_NUMBA", "0")
        _feed(library, [host.from_torch(t)])
        monkeypatch.delenv("ARRAYOBS_NUMBA")
        assert _bits(ours.histogram) == _bits(ref.histogram) == _bits(library.histogram)
        assert _bits(ours.min_val) == _bits(ref.min_val)
        assert _bits(ours.max_val) == _bits(ref.max_val)
        scale, zero_point = ours.calculate_qparams()
        ref_scale, ref_zero_point = ref.calculate_qparams()
        assert _bits(scale) == _bits(ref_scale)
        assert int(to_host(zero_point)[0]) == int(ref_zero_point[0])


_IMPORTS = """
import sys
import numpy as np
import arrayobs
obs = arrayobs.HistogramObserver()
print("numba" in sys.modules)
obs(np.linspace(-1, 1, 10, dtype=np.float32))
obs.calculate_qparams()
print("numba" in sys.modules)
"""


@pytest.mark.parametrize(("switch", "after_use"), [(None, "True"), ("0", "False")])
def test_numba_imported_at_first_kernel_use(switch: str | None, after_use: str) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "ARRAYOBS_NUMBA"}
    if switch is not None:
        env["ARRAYOBS_NUMBA"] = switch
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["False", after_use]


def test_search_leaves_negative_counts_to_the_library() -> None:
    # A loaded histogram with negative counts: torch scans literally, the kernel bisects.
    counts = np.random.default_rng(7).integers(-5, 20, 128).astype(np.float32)
    assert _kernels.search_range(counts, -1.5, 2.5, 256) is None
    assert _kernels.search_range(np.abs(counts), -1.5, 2.5, 256) is not None


def test_torch_state_read_back_leaves_it_resizable() -> None:
    # calculate_qparams reads CPU state as copies: a NumPy view of a tensor leaves its
    # storage unresizable for good.
    torch = pytest.importorskip("torch")
    obs = HistogramObserver(bins=64)
    x = torch.linspace(-1.0, 1.0, 1000)
    obs(x)
    obs(x)
    state = (obs.histogram, obs.min_val, obs.max_val)
    assert all(t.untyped_storage().resizable() for t in state)
    obs.calculate_qparams()
    assert all(t.untyped_storage().resizable() for t in state)


# -- the steady state of the histogram forward (Backend.steady_histc) ------------------------
# Where a batch lies inside the observed range, the kernel's counts over that range are the
# forward's; anywhere else (NaN, an infinity, a value one ulp outside) it declines and the
# library path runs.


def _next(value: float, toward: float, dtype: str) -> float:
    """The neighbour of ``value`` toward ``toward`` in ``dtype`` (float32 or float64)."""
    return float(np.nextafter(np.asarray(value, dtype), np.asarray(toward, dtype)))


def _steady_cases(n: int, lo: float, hi: float, dtype: str) -> list[tuple[str, np.ndarray, bool]]:
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
        for label, values, inside in _steady_cases(n, lo, hi, dtype):
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


def _steady_batches(
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


def _steady_step(obs: Any, x: Any) -> type[Exception] | None:
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
        _steady_step(obs, t if obs is ref else host.from_torch(t))
    lo, hi = float(ref.min_val), float(ref.max_val)
    for label, values in [("again", start), *_steady_batches(rng, lo, hi, n)]:
        t = torch_ref.from_numpy(values).to(getattr(torch_ref, dtype))
        before = len(taken)
        raised = _steady_step(ref, t)
        assert _steady_step(ours, host.from_torch(t)) == (ValueError if raised else None), label
        if takes:
            # The kernel counts every batch inside a range wider than one value.
            v = t.double().numpy()
            inside = bool(np.all((v >= lo) & (v <= hi))) and lo < hi
            assert taken[before:] == [inside], label
        monkeypatch.setenv("ARRAYOBS_NUMBA", "0")
        _steady_step(library, host.from_torch(t))
        monkeypatch.delenv("ARRAYOBS_NUMBA")
        for name in ("histogram", "min_val", "max_val"):
            mine, theirs = getattr(ours, name), getattr(ref, name)
            assert _bits(mine) == _bits(theirs) == _bits(getattr(library, name)), (label, name)
        lo, hi = float(ref.min_val), float(ref.max_val)
    scale, zero_point = ours.calculate_qparams()
    ref_scale, ref_zero_point = ref.calculate_qparams()
    assert _bits(scale) == _bits(ref_scale)
    assert int(to_host(zero_point)[0]) == int(ref_zero_point[0])
