"""The functional core: pure, jittable, lazy on Dask, and the same numbers as the classes."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from arrayobs import functional as F
from arrayobs._compat import to_host
from tests.test_reference import make_batch

SEQ_SEED = 20261128


def _batches(n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(SEQ_SEED)
    return [
        (rng.standard_normal(32) * 10.0 ** rng.uniform(-3, 3) + rng.uniform(-1, 1))
        for _ in range(n)
    ]


def _torch_run(torch: Any, c: float | None, qscheme: str) -> list[tuple[Any, ...]]:
    from torch.ao.quantization import observer as tobs

    ref = (
        tobs.MinMaxObserver(qscheme=getattr(torch, qscheme))
        if c is None
        else tobs.MovingAverageMinMaxObserver(c, qscheme=getattr(torch, qscheme))
    )
    out = []
    for values in _batches():
        ref(make_batch(torch, values, "float32"))
        s, z = ref.calculate_qparams()
        out.append((ref.min_val.numpy().copy(), ref.max_val.numpy().copy(), s.numpy(), z.numpy()))
    return out


def _check(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        g = [to_host(a) for a in g]  # noqa: PLW2901
        assert g[0] == w[0] and g[1] == w[1], f"batch {step}: state {g[:2]} vs torch {w[:2]}"
        assert g[2].tobytes() == w[2].tobytes(), f"batch {step}: scale {g[2]} vs torch {w[2]}"
        assert g[3].tolist() == w[3].tolist(), f"batch {step}: zero point {g[3]} vs torch {w[3]}"


@pytest.mark.parametrize("qscheme", ["per_tensor_affine", "per_tensor_symmetric"])
@pytest.mark.parametrize("c", [None, 0.01, 1 / 3, 1.0])
def test_jax_jit_matches_torch(torch_ref: Any, c: float | None, qscheme: str) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    cfg = F.quant_config("quint8", qscheme)
    update = jax.jit(
        F.minmax_update
        if c is None
        else functools.partial(F.moving_average_update, averaging_constant=c)
    )
    qparams = jax.jit(functools.partial(F.calculate_qparams, config=cfg))
    state, got = F.init_state(xp=jnp), []
    for values in _batches():
        state = update(state, jnp.asarray(values.astype(np.float32)))
        got.append((*state, *qparams(state)))
    _check(got, _torch_run(torch_ref, c, qscheme))


def test_jax_jit_with_traced_averaging_constant(torch_ref: Any) -> None:
    jax = pytest.importorskip("jax")
    update = jax.jit(F.moving_average_update)
    state, got = F.init_state(xp=jax.numpy), []
    cfg = F.quant_config()
    for values in _batches():
        state = update(
            state, jax.numpy.asarray(values.astype(np.float32)), jax.numpy.float32(1 / 3)
        )
        got.append((*state, *F.calculate_qparams(state, cfg)))
    _check(got, _torch_run(torch_ref, 1 / 3, "per_tensor_affine"))


def _forbid_compute(*args: Any, **kwargs: Any) -> Any:
    msg = "the functional core computed a Dask graph"
    raise AssertionError(msg)


@pytest.mark.parametrize("c", [None, 0.5])
def test_dask_stays_lazy(torch_ref: Any, c: float | None) -> None:
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    xp = pytest.importorskip("array_api_compat.dask.array")
    cfg = F.quant_config("qint8", "per_tensor_symmetric")
    state, got = F.init_state(xp=xp), []
    with dask.config.set(scheduler=_forbid_compute):
        for values in _batches():
            x = da.from_array(values.astype(np.float32), chunks=7)
            state = F.minmax_update(state, x) if c is None else F.moving_average_update(state, x, c)
            got.append((*state, *F.calculate_qparams(state, cfg)))
    assert all(isinstance(a, da.Array) for step in got for a in step)
    from torch.ao.quantization import observer as tobs

    torch = torch_ref
    ref = (
        tobs.MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
        if c is None
        else (
            tobs.MovingAverageMinMaxObserver(
                c, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric
            )
        )
    )
    want = []
    for values in _batches():
        ref(make_batch(torch, values, "float32"))
        s, z = ref.calculate_qparams()
        want.append((ref.min_val.numpy().copy(), ref.max_val.numpy().copy(), s.numpy(), z.numpy()))
    _check(got, want)


def test_state_is_a_named_tuple_of_arrays() -> None:
    state = F.init_state(xp=np)
    assert state._fields == ("min_val", "max_val")
    assert state.min_val.dtype == np.float32 and state.min_val.shape == ()
    assert bool(F.is_fresh(state))
    new = F.minmax_update(state, np.asarray([1.0, 2.0]))
    assert state.min_val == np.inf, "update must not mutate its input state"
    assert F.minmax_update(new, np.zeros((0,))) is new


def test_no_int64_device_uses_int32_zero_point() -> None:
    strict = pytest.importorskip("array_api_strict")
    dev = strict.Device("no_x64")
    state = F.minmax_update(
        F.init_state(xp=strict, device=dev), strict.asarray([-1.0, 2.0], device=dev)
    )
    _, zp = F.calculate_qparams(state, F.quant_config("quint8", "per_tensor_symmetric"))
    assert zp.dtype == strict.int32 and zp.device == dev
    assert int(zp[0]) == 128


def test_fast_path_equals_generic(backend: Any) -> None:
    """Each fast path gives the generic path's bits, NaN, infinities and signed zeros included."""
    from arrayobs import _backends

    cases = [[1.0, -2.0, 3.0], [np.nan, 1.0], [np.inf, -np.inf], [0.0, -0.0], [-0.0], [5.0]]
    for values in cases:
        for dtype in ("float32", "float16", "float64", "int32", "bool"):
            if not backend.has(dtype) or (
                dtype in ("int32", "bool") and not np.isfinite(values).all()
            ):
                continue
            x = backend.from_numpy(np.asarray(values).astype(dtype))
            fast = [to_host(v) for v in _backends.new(backend.xp).aminmax(x)]
            slow = [to_host(v) for v in _backends.Backend(backend.xp).aminmax(x)]
            for f, s in zip(fast, slow, strict=True):
                assert f.dtype == s.dtype == np.float32
                assert (f == s) or (np.isnan(f) and np.isnan(s)), (values, dtype, f, s)


# array-api-compat's namespace checks are lru_cache-wrapped (Dynamo traces through them and says
# so), and Inductor 2.13.0 itself calls the deprecated torch.jit.script_method.
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`:UserWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_fullgraph_matches_torch_ao(torch_ref: Any) -> None:
    """torch.compile(fullgraph=True) traces the core (torch.ao's observers cannot be compiled)."""
    torch = torch_ref
    xp = pytest.importorskip("array_api_compat.torch")
    cfg = F.quant_config("quint8", "per_tensor_affine")

    def step(lo: Any, hi: Any, x: Any) -> tuple[Any, ...]:
        state = F.moving_average_update(F.MinMaxState(lo, hi), x, 1 / 3, xp=xp)
        return (*state, *F.calculate_qparams(state, cfg, xp=xp))

    compiled = torch.compile(step, fullgraph=True)
    state, got = F.init_state(xp=xp), []
    for values in _batches():
        out = compiled(*state, torch.from_numpy(values.astype(np.float32)))
        state = F.MinMaxState(out[0], out[1])
        got.append(out)
    _check(got, _torch_run(torch, 1 / 3, "per_tensor_affine"))
