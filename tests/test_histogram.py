"""HistogramObserver against live torch.ao, batch by batch, on every backend."""

from __future__ import annotations

import copy
import functools
import itertools
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, _backends
from arrayobs._compat import to_host
from arrayobs._core import _histogram as hist
from arrayobs._core import _search
from arrayobs._observers._histogram import HistogramObserver

Batches = Callable[[Any], list[Any]]
SIZE = 512


def _normal(scales_offsets: list[tuple[float, float]], seed: int) -> Batches:
    # One batch size throughout: JAX compiles each op once per shape.
    def make(torch: Any) -> list[Any]:
        g = torch.Generator().manual_seed(seed)
        return [torch.randn(SIZE, generator=g) * s + o for s, o in scales_offsets]

    return make


def _values(*batches: list[float], dtype: str = "float32") -> Batches:
    return lambda torch: [torch.tensor(b, dtype=getattr(torch, dtype)) for b in batches]


def _cast(make: Batches, dtype: str) -> Batches:
    return lambda torch: [t.to(getattr(torch, dtype)) for t in make(torch)]


def _heavy(torch: Any) -> list[Any]:
    g = torch.Generator().manual_seed(3)
    cauchy = [torch.empty(SIZE).cauchy_(generator=g) for _ in range(3)]
    return [*cauchy, torch.randn(SIZE, generator=g) * 1e-3]


GROW = _normal([(1.0, 0.0), (2.0, 0.0), (5.0, 1.0), (40.0, -3.0)], 0)
SHIFT = _normal([(1.0, 0.0), (1.0, 3.0), (1.0, -4.0), (0.2, 0.5)], 1)
SHRINK = _normal([(10.0, 0.0), (0.5, 0.0), (0.01, 2.0)], 2)
CASES: dict[str, tuple[int, dict[str, Any], Batches]] = {
    "grow": (2048, {}, GROW),
    "shift": (2048, {}, SHIFT),
    "shrink": (2048, {}, SHRINK),
    "heavy": (2048, {}, _heavy),
    "constants": (2048, {}, _values([3.0] * 10, [3.0] * 4, [1.0, 5.0], [0.0])),
    "singles": (2048, {}, _values([0.5], [-2.0], [0.25], [7.0])),
    "negative-constant": (256, {}, _values([-1.5] * 3, [-1.5], [-1.0])),
    "inf": (
        2048,
        {},
        _values([1.0, float("inf"), -2.0, 0.5], [float("-inf"), 3.0], [float("inf")]),
    ),
    "bins1": (1, {}, GROW),
    "bins2": (2, {}, SHIFT),
    "bins7": (7, {}, GROW),
    "bins256": (256, {}, SHIFT),
    "bins4096": (4096, {}, GROW),
    "float16": (2048, {}, _cast(SHIFT, "float16")),
    "bfloat16": (2048, {}, _cast(GROW, "bfloat16")),
    "float64": (2048, {}, _cast(SHIFT, "float64")),
    "symmetric": (2048, {"dtype": "qint8", "qscheme": "per_tensor_symmetric"}, GROW),
    "reduce-range": (2048, {"reduce_range": True}, SHIFT),
    "custom-range": (512, {"quant_min": 0, "quant_max": 15}, _heavy),
    "qint32": (256, {"dtype": "qint32"}, SHIFT),
}


def _torch_kwargs(torch: Any, kw: dict[str, Any]) -> dict[str, Any]:
    return {k: getattr(torch, v) if k in ("dtype", "qscheme") else v for k, v in kw.items()}


def _bits(a: Any) -> np.ndarray:
    return np.asarray(to_host(a), dtype=np.float32).reshape(-1).view(np.int32)


@functools.cache
def _reference(name: str) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """The batches and torch.ao's state and qparams after each."""
    import torch
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    bins, kw, make = CASES[name]
    batches = make(torch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = TorchHistogram(bins=bins, **_torch_kwargs(torch, kw))
        after = []
        for b in batches:
            obs(b)
            scale, zp = obs.calculate_qparams()
            after.append(
                (
                    _bits(obs.histogram),
                    obs.min_val.item(),
                    obs.max_val.item(),
                    _bits(scale),
                    int(zp),
                )
            )
    return batches, after


@pytest.fixture
def backend(backend: Any) -> Any:
    """The shared backend fixture, less array-api-strict's no_x64 device: the generic
    histc counts with ``searchsorted``, whose index dtype is int64 there (JAX without
    x64 counts with ``bincount`` and runs)."""
    if backend.name == "array_api_strict:no_x64":
        pytest.skip("searchsorted returns int64, which the no_x64 device lacks")
    return backend


def _case_on(name: str, backend: Any) -> tuple[list[Any], list[tuple[Any, ...]], int, Any]:
    """The case's batches, torch.ao's state after each, its bins and keyword arguments;
    skipped where ``backend`` lacks an input dtype."""
    batches, after = _reference(name)
    dtypes = {str(b.dtype).removeprefix("torch.") for b in batches}
    if not all(backend.has(d) for d in dtypes):
        pytest.skip(f"{backend.name} has no {dtypes}")
    bins, kw, _ = CASES[name]
    return batches, after, bins, kw


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_after_every_batch(name: str, backend: Any, torch_ref: Any) -> None:
    batches, after, bins, kw = _case_on(name, backend)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reduce_range is deprecated", UserWarning)
        obs = HistogramObserver(bins=bins, **kw, xp=backend.xp, device=backend.device)
    for i, (b, (h, lo, hi, scale, zp)) in enumerate(zip(batches, after, strict=True)):
        x = backend.from_torch(b)
        if bool(torch_ref.isinf(b).any()):
            with pytest.warns(UserWarning, match="torch.inf detected"):
                obs(x)
        else:
            obs(x)
        assert obs.histogram.dtype == backend.xp.float32
        assert obs.histogram.shape == (bins,)
        np.testing.assert_array_equal(_bits(obs.histogram), h, err_msg=f"histogram, batch {i}")
        assert (float(obs.min_val), float(obs.max_val)) == (lo, hi), f"batch {i}"
        s, z = obs.calculate_qparams()
        assert _bits(s).tolist() == scale.tolist(), f"scale, batch {i}"
        assert int(to_host(z)[0]) == zp, f"zero point, batch {i}"


def test_nan_raises_and_keeps_state(backend: Any, torch_ref: Any) -> None:
    obs = HistogramObserver(bins=16, xp=backend.xp, device=backend.device)
    nan = backend.from_torch(torch_ref.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="not finite"):
        obs(nan)
    assert float(obs.min_val) == float("inf")
    obs(backend.from_torch(torch_ref.tensor([0.0, 2.0])))
    before = _bits(obs.histogram).copy()
    # NaN anywhere in a larger batch (XLA's CPU reductions can drop one), with inf too.
    host = np.linspace(-3.0, 3.0, 4000, dtype=np.float32)
    batches = [nan]
    for where in (0, 1, 1999, 3998, 3999):
        for extra in ((), (np.inf,)):
            b = host.copy()
            b[where] = np.nan
            b[(where + 7) % 4000 : (where + 7) % 4000 + len(extra)] = extra
            batches.append(backend.from_numpy(b))
    for b in batches:
        with pytest.raises(ValueError, match="not finite"):
            obs(b)
    np.testing.assert_array_equal(_bits(obs.histogram), before)
    assert (float(obs.min_val), float(obs.max_val)) == (0.0, 2.0)


def test_integer_input_refused(backend: Any) -> None:
    obs = HistogramObserver(bins=16, xp=backend.xp, device=backend.device)
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        obs(backend.xp.asarray([1, 2, 3], device=backend.device))
    assert float(obs.min_val) == float("inf")


def test_never_observed_warns() -> None:
    obs = HistogramObserver()
    with pytest.warns(UserWarning, match="must run observer"):
        scale, zp = obs.calculate_qparams()
    assert scale.tolist() == [1.0] and zp.tolist() == [0] and zp.dtype == np.int64


def test_all_inf_batch_changes_nothing() -> None:
    obs = HistogramObserver(bins=8)
    with pytest.warns(UserWarning, match="torch.inf detected"):
        obs(np.asarray([np.inf, -np.inf], dtype=np.float32))
    assert float(obs.min_val) == np.inf
    obs(np.zeros(0, dtype=np.float32))
    assert float(obs.max_val) == -np.inf


def test_refusals() -> None:
    with pytest.raises(NotImplementedError, match="dynamic"):
        HistogramObserver(is_dynamic=True)
    with pytest.raises(NotImplementedError, match="per-channel"):
        HistogramObserver(qscheme="per_channel_affine")
    with pytest.raises(ValueError, match="bins"):
        HistogramObserver(bins=0)


def _observed(bins: int = 64) -> HistogramObserver:
    obs = HistogramObserver(bins=bins)
    obs(np.linspace(-1.0, 3.0, 100, dtype=np.float32))
    obs(np.linspace(-2.0, 1.0, 50, dtype=np.float32))
    return obs


def test_state_dict_both_ways(torch_ref: Any) -> None:
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    obs = _observed()
    sd = obs.state_dict()
    assert list(sd) == ["eps", "histogram", "min_val", "max_val"]
    theirs = TorchHistogram(bins=64)
    theirs.load_state_dict({k: torch_ref.asarray(np.asarray(v)) for k, v in sd.items()})
    assert list(theirs.state_dict()) == list(sd)
    np.testing.assert_array_equal(theirs.histogram.numpy(), obs.histogram)
    back = HistogramObserver(bins=64)
    back.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(back.histogram, obs.histogram)
    s1, z1 = back.calculate_qparams()
    s2, z2 = theirs.calculate_qparams()
    assert s1.tolist() == s2.tolist() and z1.tolist() == z2.tolist()


@pytest.mark.parametrize("edges", [(np.inf, np.inf), (-np.inf, -np.inf), (np.inf, 2.0)])
def test_loaded_half_fresh_state_is_torchs(edges: tuple[float, float], torch_ref: Any) -> None:
    """torch's forward takes a state with min_val +inf or max_val -inf as never
    observed (its is_uninitialized): the eager class and the functional core
    (one definition) then bin the batch over its own range, as torch does."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    from arrayobs import functional as F

    lo, hi = (np.asarray(v, dtype=np.float32) for v in edges)
    sd = {"eps": np.float32([2**-23]), "histogram": np.ones(8, np.float32)}
    sd.update(min_val=lo, max_val=hi)
    theirs = TorchHistogram(bins=8)
    theirs.load_state_dict({k: torch_ref.asarray(np.asarray(v)) for k, v in sd.items()})
    batch = np.linspace(-1.0, 3.0, 10, dtype=np.float32)
    theirs(torch_ref.from_numpy(batch))
    ours = HistogramObserver(bins=8)
    if lo > hi:  # torch loads it; arrayobs refuses a crossed state at load
        with pytest.raises(ValueError, match="greater"):
            ours.load_state_dict(sd)
    else:
        ours.load_state_dict(sd)
        ours(batch)
        np.testing.assert_array_equal(_bits(ours.histogram), _bits(theirs.histogram.numpy()))
    state = F.histogram_update(F.HistogramState(sd["histogram"], lo, hi), batch)
    np.testing.assert_array_equal(_bits(state.histogram), _bits(theirs.histogram.numpy()))
    assert (float(state.min_val), float(state.max_val)) == (-1.0, 3.0)
    assert (theirs.min_val.item(), theirs.max_val.item()) == (-1.0, 3.0)


def test_state_dict_refusals_leave_state() -> None:
    obs = _observed()
    before = obs.histogram.copy()
    bad = dict(obs.state_dict(), histogram=np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        obs.load_state_dict(bad)
    missing = {k: v for k, v in obs.state_dict().items() if k != "histogram"}
    with pytest.raises(KeyError, match="histogram"):
        obs.load_state_dict(missing)
    crossed = dict(obs.state_dict(), min_val=np.float32(5.0), max_val=np.float32(1.0))
    with pytest.raises(ValueError, match="greater"):
        obs.load_state_dict(crossed)
    np.testing.assert_array_equal(obs.histogram, before)
    keys = obs.load_state_dict(missing, strict=False)
    assert keys.missing_keys == ["histogram"]


def test_copy_pickle_repr_reset() -> None:
    obs = _observed()
    for other in (copy.deepcopy(obs), pickle.loads(pickle.dumps(obs))):
        np.testing.assert_array_equal(other.histogram, obs.histogram)
        batch = np.linspace(-5.0, 0.5, 30, dtype=np.float32)
        mine, theirs = copy.deepcopy(obs), other
        mine(batch)
        theirs(batch)
        np.testing.assert_array_equal(mine.histogram, theirs.histogram)
        assert mine.calculate_qparams()[0].tolist() == theirs.calculate_qparams()[0].tolist()
    assert repr(obs) == "HistogramObserver(bins=64, min_val=-2.0, max_val=3.0)"
    obs.reset_min_max_vals()
    assert float(obs.min_val) == np.inf and obs.histogram.shape == (64,)
    assert not obs.histogram.any()


def test_linspace_is_torchs(torch_ref: Any) -> None:
    rng = np.random.default_rng(0)
    xp = HistogramObserver()._backend.xp
    for steps in (1, 2, 3, 8, 113, 2049, 32769):
        for _ in range(20):
            lo, hi = sorted(rng.standard_normal(2) * rng.uniform(1e-3, 1e3))
            ours = np.asarray(hist.linspace(lo, hi, steps, xp=xp, device=None))
            theirs = torch_ref.linspace(lo, hi, steps).numpy()
            np.testing.assert_array_equal(ours.view(np.int32), theirs.view(np.int32))


def test_search_walk_is_torchs() -> None:
    """The skipping walk against a literal transcription of torch's loop."""
    rng = np.random.default_rng(1)
    for bins in (1, 2, 7, 64, 512):
        for _ in range(5):
            counts = np.floor(rng.exponential(size=bins) * rng.uniform(0, 50)).astype(np.float32)
            counts[rng.random(bins) < 0.3] = 0
            values = counts.tolist()
            total = hist.f32(sum(values))
            csum = _search.cumulative_float32(counts)
            assert list(_search.search_walk(csum, total)) == _literal_walk(values, total)


def _literal_walk(values: list[float], total: float) -> list[tuple[int, int]]:
    csum = np.cumsum(np.asarray(values, dtype=np.float64)).astype(np.float32).tolist()
    alpha, beta, start, end, path = 0.0, 1.0, 0, len(values) - 1, []
    while alpha < beta:
        na, nb = alpha + 1e-5, beta - 1e-5
        left, right = start, end
        while left < end and csum[left] < hist.f32(na * total):
            left += 1
        while right > start and csum[right] > hist.f32(nb * total):
            right -= 1
        ns, ne = start, end
        if left - start > end - right:
            ns, alpha = left, na
        else:
            ne, beta = right, nb
        if (ns, ne) != (start, end):
            path.append((ns, ne))
            start, end = ns, ne
    return path


def test_torch_sum_is_atens(torch_ref: Any) -> None:
    rng = np.random.default_rng(2)
    for n in (*range(1, 70), 100, 255, 256, 257, 2047, 2048, 2049, 4096, 8191, 32768):
        v = rng.exponential(size=(6, n)) * rng.uniform(1e-6, 1e3, size=(6, 1))
        v = v * (rng.random((6, n)) < 0.7) * np.where(rng.random((6, n)) < 0.1, -1, 1)
        v = v.astype(np.float32)
        ours = _search.torch_sum(v)
        theirs = np.array([torch_ref.from_numpy(row.copy()).sum().item() for row in v], np.float32)
        np.testing.assert_array_equal(_bits(ours), theirs.view(np.int32), err_msg=f"n={n}")


@pytest.mark.parametrize("name", ["grow", "heavy", "bins7", "symmetric", "qint32"])
def test_search_errors_are_torchs(name: str, torch_ref: Any) -> None:
    """Every candidate's quantization error, bit for bit: the early stop
    compares them, so a last-bit difference could move the chosen range."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    batches, _ = _reference(name)
    bins, kw, _ = CASES[name]
    theirs = TorchHistogram(bins=bins, **_torch_kwargs(torch_ref, kw))
    for b in batches:
        theirs(b)
    seen: list[tuple[tuple[int, int], float]] = []
    compute = theirs._compute_quantization_error

    def record(start: int, end: int) -> float:
        seen.append(((start, end), compute(start, end)))
        return seen[-1][1]

    theirs._compute_quantization_error = record
    theirs._non_linear_param_search()
    counts = theirs.histogram.numpy()
    total = theirs.histogram.sum().item()
    assert float(_search.torch_sum(counts.reshape(1, -1))[0]) == total
    csum = _search.cumulative_float32(counts)
    walk = _search.search_walk(csum, total)
    assert list(itertools.islice(walk, len(seen))) == [p for p, _ in seen]
    width = (theirs.max_val.item() - theirs.min_val.item()) / bins
    errors = _search.quantization_errors(counts, width, [p for p, _ in seen], theirs.dst_nbins)
    assert errors.tolist() == [np.float32(e) for _, e in seen]


def test_floor_quotient_is_floor_divide() -> None:
    """The search's fast floor division against NumPy's floor_divide (torch's
    algorithm), where they could part: integer, huge, tiny, infinite and NaN
    quotients, both signs, then torch's clamp."""
    rng = np.random.default_rng(4)
    b = rng.uniform(1e-3, 10, size=(64, 1)).astype(np.float32)
    k = rng.integers(-300, 300, size=(64, 512)).astype(np.float32)
    a = np.concatenate(
        [
            k * b,  # integer quotients, rounded either way
            np.nextafter(k * b, np.float32(np.inf)),
            np.nextafter(k * b, np.float32(-np.inf)),
            rng.standard_normal((64, 512)).astype(np.float32) * 1e3,
            rng.uniform(0, 3e38, size=(64, 512)).astype(np.float32),
            np.tile(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-45], np.float32), (64, 8)),
        ],
        axis=1,
    )
    for divisor in (b, np.full_like(b, 1e-40), np.full_like(b, 3e38)):
        for top in (255.0, 65535.0, 2.0**32 - 1):
            with np.errstate(all="ignore"):
                want = np.clip(np.floor_divide(a, divisor), 0.0, top)
                got = _search._floor_quotient(a, divisor, top)
            np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    # The search's shortcut where it knows every quotient is finite and small.
    near = a[:, : 4 * 512]
    want = np.clip(np.floor_divide(near, b), 0.0, 255.0)
    got = _search._floor_quotient(near, b, 255.0, small=True)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_fast_histc_is_generic(dtype: str, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's histc and value range against the generic ones, bit for
    bit, with blocks small enough that every branch (pipelined blocks, one
    block, the last bin, ranges wider than the batch) runs."""
    from arrayobs._backends import _numpy

    monkeypatch.setattr(_numpy, "HISTC_BLOCK", 1000)
    if backend.library == "torch":
        from arrayobs._backends import _torch

        monkeypatch.setattr(_torch, "HISTC_BLOCK", 1000)
    if not backend.has(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    fast = _backends.new(backend.xp)
    generic = _backends.Backend(backend.xp)
    rng = np.random.default_rng(5)
    for n in (1, 999, 1000, 4321):
        host = (rng.standard_normal(n) * rng.uniform(1e-3, 1e3)).astype(dtype)
        host[rng.integers(0, n)] = host.max()  # the top edge itself, somewhere
        x = backend.from_numpy(host)
        lo, hi = fast.value_range(x)
        assert (lo, hi) == generic.value_range(x)
        for bins, edges in itertools.product(
            (1, 7, 2048), [(lo, hi), (lo - 1.0, hi + 0.5), (lo * 3 - 1.0, hi)]
        ):
            left, right = hist.histc_range(*edges)
            with warnings.catch_warnings():  # float16 overflow; Dask computes it here, in threads
                warnings.simplefilter("ignore", RuntimeWarning)
                want = _bits(generic.histc(x, bins, left, right))
                got = _bits(fast.histc(x, bins, left, right, finite=True))
            assert got.tolist() == want.tolist(), (n, bins, left, right)


def test_large_batches_match_torch(backend: Any, torch_ref: Any) -> None:
    """Batches of a million values (the fast paths' blocks and threads) and a
    growing range, against live torch.ao after every batch."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    rng = np.random.default_rng(6)
    ours, theirs = HistogramObserver(), TorchHistogram()
    for scale in (1.0, 3.0, 0.5, 10.0):
        host = (rng.standard_normal(10**6) * scale).astype(np.float32)
        ours(backend.from_numpy(host))
        theirs(torch_ref.from_numpy(host))
        assert _bits(ours.histogram).tolist() == _bits(theirs.histogram).tolist()
        assert _bits(ours.calculate_qparams()[0]) == _bits(theirs.calculate_qparams()[0])


def _torch_rescaled(torch: Any, obs: Any, lo: float, hi: float) -> Any:
    """torch.ao's own re-binning of ``obs``'s histogram into [lo, hi] (its
    _combine_histograms with an empty update)."""
    f = torch.tensor
    zeros = torch.zeros_like(obs.histogram)
    return obs._combine_histograms(obs.histogram, obs.min_val, obs.max_val, zeros, f(lo), f(hi))


@pytest.mark.parametrize("same_range", [True, False])
def test_merge_is_torchs_rebinning(backend: Any, torch_ref: Any, same_range: bool) -> None:
    """Same ranges: the exact sum, equal to one torch.ao observer that saw every
    batch. Different ranges: each histogram re-binned into the union by torch's
    own _combine_histograms, then added."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    rng = np.random.default_rng(7)
    first = np.linspace(-4.0, 5.0, 999, dtype=np.float32)
    a_batches = [first, (rng.standard_normal(500) * (1 if same_range else 3)).astype(np.float32)]
    b_batches = [first, (rng.standard_normal(300) - (0 if same_range else 4)).astype(np.float32)]
    ours = [HistogramObserver(bins=128, xp=backend.xp, device=backend.device) for _ in "ab"]
    theirs = [TorchHistogram(bins=128) for _ in "ab"]
    for o, t, batches in zip(ours, theirs, (a_batches, b_batches), strict=True):
        for b in batches:
            o(backend.from_numpy(b))
            t(torch_ref.from_numpy(b))
    ours[0].merge(ours[1])
    lo = min(t.min_val.item() for t in theirs)
    hi = max(t.max_val.item() for t in theirs)
    want = _torch_rescaled(torch_ref, theirs[0], lo, hi) + _torch_rescaled(
        torch_ref, theirs[1], lo, hi
    )
    assert _bits(ours[0].histogram).tolist() == _bits(want).tolist()
    assert (float(ours[0].min_val), float(ours[0].max_val)) == (lo, hi)
    if same_range:  # one observer of all four batches
        single = TorchHistogram(bins=128)
        for b in (*a_batches, *b_batches):
            single(torch_ref.from_numpy(b))
        assert _bits(ours[0].histogram).tolist() == _bits(single.histogram).tolist()
        assert _bits(ours[0].calculate_qparams()[0]) == _bits(single.calculate_qparams()[0])


def test_merge_refusals_keep_state() -> None:
    obs = _observed()
    before = _bits(obs.histogram).copy()
    with pytest.raises(ValueError, match="different configurations"):
        obs.merge(_observed(bins=32))
    with pytest.raises(TypeError, match="merge takes a HistogramObserver"):
        obs.merge(MinMaxObserver())
    np.testing.assert_array_equal(_bits(obs.histogram), before)
    fresh = HistogramObserver(bins=64)
    fresh.merge(obs)
    np.testing.assert_array_equal(_bits(fresh.histogram), before)
    obs.merge(HistogramObserver(bins=64))  # nothing observed there: nothing changes
    np.testing.assert_array_equal(_bits(obs.histogram), before)


def test_threads_and_autograd(torch_ref: Any) -> None:
    """Eight threads observing at once: every update is atomic (batches inside
    the first one's range add exactly, so any order gives torch.ao's serial
    histogram); a tensor that requires grad leaves no graph in the state."""
    import threading

    from torch.ao.quantization import HistogramObserver as TorchHistogram

    rng = np.random.default_rng(8)
    first = np.linspace(-6.0, 6.0, 1001, dtype=np.float32)
    batches = [np.clip(rng.standard_normal(20000), -6, 6).astype(np.float32) for _ in range(16)]
    ours, theirs = HistogramObserver(xp=torch_ref), TorchHistogram()
    ours(torch_ref.from_numpy(first).requires_grad_())
    theirs(torch_ref.from_numpy(first))
    for b in batches:
        theirs(torch_ref.from_numpy(b))
    threads = [
        threading.Thread(target=lambda part=part: [ours(torch_ref.from_numpy(b)) for b in part])
        for part in (batches[i::8] for i in range(8))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _bits(ours.histogram).tolist() == _bits(theirs.histogram).tolist()
    state = (ours.histogram, ours.min_val, ours.max_val)
    assert not any(v.requires_grad or v.grad_fn is not None for v in state)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_requires_grad_batches_warn_nothing(fast: bool, torch_ref: Any) -> None:
    """PyTorch's test_histogram_observer_same_inputs sequence (batches that require grad):
    torch.ao's numbers, bit for bit, and no warning on either path, as torch.ao gives none
    (the generic path read the range of the tensor itself and torch warned about autograd)."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    kwargs = {"bins": 3, "dtype": torch_ref.qint8, "qscheme": torch_ref.per_tensor_symmetric}
    values = [[1.0] * 4, [0.0] * 4, [0.0] * 4, [2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0]]
    ours, theirs = HistogramObserver(xp=torch_ref, fast=fast, **kwargs), TorchHistogram(**kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i, v in enumerate(values):
            batch = torch_ref.tensor(v, requires_grad=i < 4)
            assert ours(batch) is batch
            theirs(batch)
        got, want = ours.calculate_qparams(), theirs.calculate_qparams()
    assert [str(w.message) for w in caught] == []
    for name in ("histogram", "min_val", "max_val"):
        assert _bits(getattr(ours, name)).tolist() == _bits(getattr(theirs, name)).tolist()
    assert _bits(got[0]).tolist() == _bits(want[0]).tolist()
    assert torch_ref.equal(got[1], want[1])


def test_inf_warning_points_at_the_caller() -> None:
    obs = HistogramObserver(bins=8)
    with pytest.warns(UserWarning, match="torch.inf detected") as caught:
        obs(np.array([1.0, np.inf, -2.0], np.float32))
    assert caught[0].filename == __file__
    assert (float(obs.min_val), float(obs.max_val)) == (-2.0, 1.0)


# -- the functional core ---------------------------------------------------------------------
@functools.cache
def _jitted_update() -> Any:
    import jax

    from arrayobs import functional as F

    return jax.jit(F.histogram_update)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", list(CASES))
def test_functional_matches_torch_after_every_batch(
    name: str, jit: bool, backend: Any, torch_ref: Any
) -> None:
    """histogram_update (eagerly, and under jax.jit) then histogram_qparams: torch.ao's
    state and qparams after every batch (its warnings aside: the core never warns)."""
    from arrayobs import functional as F

    if jit and backend.name != "jax":
        pytest.skip("jax.jit is JAX's")
    batches, after, bins, kw = _case_on(name, backend)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "reduce_range is deprecated", UserWarning)
        config = F.quant_config(**kw)
    update = _jitted_update() if jit else F.histogram_update
    state = F.histogram_init(bins, xp=backend.xp, device=backend.device)
    states = []
    for b in batches:
        state = update(state, backend.from_torch(b))
        states.append(state)
    if backend.name == "dask":  # lazy: every state computed at the end, in one graph
        import dask
        import dask.array as da

        assert all(isinstance(v, da.Array) for v in state)
        states = [F.HistogramState(*v) for v in dask.compute(*[tuple(s) for s in states])]
    for i, (state, (h, lo, hi, scale, zp)) in enumerate(zip(states, after, strict=True)):
        assert state.histogram.dtype == backend.xp.float32
        assert state.histogram.shape == (bins,)
        np.testing.assert_array_equal(_bits(state.histogram), h, err_msg=f"histogram, batch {i}")
        assert (float(state.min_val), float(state.max_val)) == (lo, hi), f"batch {i}"
        s, z = F.histogram_qparams(state, config)
        assert _bits(s).tolist() == scale.tolist(), f"scale, batch {i}"
        assert int(to_host(z)[0]) == zp, f"zero point, batch {i}"


def test_functional_nan_empty_and_inf(backend: Any) -> None:
    """A NaN batch marks the state (min_val, max_val NaN; the counts kept, later
    batches change nothing), which histogram_qparams refuses; empty and all-inf
    batches change nothing."""
    from arrayobs import functional as F

    xp, device = backend.xp, backend.device
    config = F.quant_config()
    fresh = F.histogram_init(8, xp=xp, device=device)
    scale, zp = F.histogram_qparams(fresh, config)  # never observed: torch's defaults
    assert (float(to_host(scale)[0]), int(to_host(zp)[0])) == (1.0, 0)
    state = F.histogram_update(fresh, backend.from_numpy(np.array([0.0, 2.0], np.float32)))
    counts = _bits(state.histogram).copy()
    for nothing in (np.array([np.inf, -np.inf], np.float32), np.zeros((0,), np.float32)):
        same = F.histogram_update(state, backend.from_numpy(nothing))
        np.testing.assert_array_equal(_bits(same.histogram), counts)
        assert (float(same.min_val), float(same.max_val)) == (0.0, 2.0)
    marked = F.histogram_update(state, backend.from_numpy(np.array([1.0, np.nan], np.float32)))
    np.testing.assert_array_equal(_bits(marked.histogram), counts)
    assert np.isnan(float(marked.min_val)) and np.isnan(float(marked.max_val))
    later = F.histogram_update(marked, backend.from_numpy(np.array([5.0, -9.0], np.float32)))
    assert np.isnan(float(later.min_val)) and np.isnan(float(later.max_val))
    np.testing.assert_array_equal(_bits(later.histogram), counts)
    with pytest.raises(ValueError, match="NaN"):
        F.histogram_qparams(later, config)


def test_functional_refusals() -> None:
    from arrayobs import functional as F

    with pytest.raises(ValueError, match="bins"):
        F.histogram_init(0, xp=np)
    with pytest.raises(ValueError, match="bins"):
        F.histogram_init(True, xp=np)
    state = F.histogram_init(4, xp=np)
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        F.histogram_update(state, np.arange(3))
    with pytest.raises(TypeError, match="must be an array"):
        F.histogram_update(state, [1.0, 2.0])
    with pytest.raises(TypeError, match="masked"):
        F.histogram_update(state, np.ma.masked_array([1.0, 2.0], mask=[False, True]))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="torch"):
        F.histogram_update(state, torch.ones(3))


def test_functional_jit_transfers_nothing() -> None:
    """The jitted update moves nothing between host and device, re-binning included
    (JAX's guard; on the CPU it sees host-to-device transfers, on a GPU reads too),
    and histogram_qparams under jax.jit says why it cannot run there."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from arrayobs import functional as F

    update = _jitted_update()
    x = jnp.linspace(-1.0, 1.0, 100, dtype=jnp.float32)
    wider, narrower, point = x * 3.0, x * 0.5, jnp.full((100,), 7.0, dtype=jnp.float32)
    state = F.histogram_init(64, xp=jnp)
    for b in (x, wider, narrower, point):  # compiled for this shape, each branch seen
        state = update(state, b)
    state = F.histogram_init(64, xp=jnp)
    with jax.transfer_guard("disallow"):
        for b in (point, x, wider, narrower):
            state = update(state, b)
    ref = F.histogram_init(64, xp=np)
    for b in (point, x, wider, narrower):
        ref = F.histogram_update(ref, np.asarray(b))
    np.testing.assert_array_equal(_bits(state.histogram), _bits(ref.histogram))
    with pytest.raises(TypeError, match=r"outside jax\.jit"):
        jax.jit(lambda s: F.histogram_qparams(s, F.quant_config()))(state)


@pytest.mark.parametrize("bins", [1, 7, 256, 2048])
def test_rebinning_is_torchs_upscale(bins: int, torch_ref: Any) -> None:
    """The re-binning two ways (on the host with np.add.at; as runs in a loop, as
    under jax.jit) against torch.ao's own ``_upscale_histogram``, for ranges that
    grow 1.01x to 1e6x (the loop's worst case: every run in one bin)."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    rng = np.random.default_rng(bins)
    ref = TorchHistogram(bins=bins)
    for grow in (1.01, 3.0, 1e3, 1e6):
        counts = (rng.exponential(size=bins) * 1e4).astype(np.float32)  # not whole numbers
        lo, hi = np.float32(-0.5), np.float32(1.25)
        new_lo, new_hi = float(lo) - float(grow), float(hi) * grow
        want = ref._upscale_histogram(
            torch_ref.from_numpy(counts),
            torch_ref.tensor(lo),
            torch_ref.tensor(hi),
            torch_ref.tensor(new_lo, dtype=torch_ref.float32),
            torch_ref.tensor(new_hi, dtype=torch_ref.float32),
        ).numpy()
        f32 = (float(np.float32(new_lo)), float(np.float32(new_hi)))
        assigned = hist.bucket_assignments((float(lo), float(hi)), f32, bins, xp=np, device=None)
        host = hist.bincount_upsampled(counts, assigned)
        runs = hist.rebin_runs(counts, assigned, xp=np)
        for got in (host, runs):
            np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32), f"{grow}")
