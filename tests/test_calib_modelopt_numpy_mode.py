"""ModelOpt 0.47.0's ``HistogramCalibrator(torch_hist=False)`` (NumPy mode)
through the functional core, against the live reference: jitted (JAX) and
lazy (Dask); and the entropy search's first-bin change, threaded as state."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs._compat import to_host
from arrayobs.calib import modelopt as mo

torch = pytest.importorskip("torch", reason="torch runs ModelOpt, the reference")
with warnings.catch_warnings():
    # ModelOpt's import calls torch.jit.script, which torch 2.13 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    ref_calib = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )


def bits(a: Any) -> tuple[str, bytes]:
    a = np.asarray(a)
    return str(a.dtype), a.tobytes()


def _forbid_compute(*args: Any, **kwargs: Any) -> Any:
    msg = "histogram_update computed a Dask graph"
    raise AssertionError(msg)


def _steps() -> list[list[np.ndarray]]:
    """Pieces of each step: a first batch, a growth, a batch inside the range."""
    rng = np.random.default_rng(21)
    return [
        [(rng.standard_normal(n) * s).astype(np.float32) for n in (90, 41, 200)]
        for s in (1.0, 2.5, 0.5)
    ]


def _update(backend: Any) -> tuple[Any, Any]:
    """The update to run (jitted on JAX) and the context it runs in."""
    if backend.name == "jax":
        jax = importlib.import_module("jax")
        return jax.jit(mo.histogram_update), jax.enable_x64(True)
    if backend.name == "dask":
        dask = importlib.import_module("dask")
        return mo.histogram_update, dask.config.set(scheduler=_forbid_compute)
    return mo.histogram_update, contextlib.nullcontext()


def _batch(backend: Any, pieces: list[np.ndarray]) -> Any:
    if backend.name == "dask":
        da = importlib.import_module("dask.array")
        return da.concatenate([da.from_array(p, chunks=64) for p in pieces])
    return backend.from_numpy(np.concatenate(pieces))


def _check(state: Any, ref: Any) -> None:
    ((counts, edges),) = mo.histogram_host(state)
    assert bits(counts) == bits(ref._calib_hist)
    assert bits(edges) == bits(ref._calib_bin_edges)


def _searched(state: Any, ref: Any, method: str) -> Any:
    """One search on both sides (the amax and the state after it)."""
    amax, state = mo.histogram_result(state, method, start_bin=8)
    assert bits(amax) == bits(ref.compute_amax(method, start_bin=8).numpy())
    _check(state, ref)
    return state


def test_numpy_mode_functional_jit_and_dask(backend: Any) -> None:
    """One update per step on the concatenated pieces (jitted or lazy), an
    entropy search between steps (its first-bin change threaded as state):
    counts and edges after every step and search, and every amax, as the
    reference called once per step on ``np.concatenate``."""
    if backend.name not in ("jax", "dask"):
        pytest.skip("jax.jit and Dask's lazy update (eager: test_entropy_first_bin_threaded)")
    update, scope = _update(backend)
    state = mo.histogram_init(128, xp=backend.xp, device=backend.device, torch_hist=False)
    ref = ref_calib.HistogramCalibrator(num_bins=128, torch_hist=False)
    for step, pieces in enumerate(_steps()):
        with scope:
            state = update(state, _batch(backend, pieces))
        ref.collect(torch.from_numpy(np.concatenate(pieces)))
        _check(state, ref)
        if backend.name == "dask":  # each check computes the graph: keep what it computed
            state = type(state)(*importlib.import_module("dask").persist(*state))
        if step == 1:
            state = _searched(state, ref, "entropy")
    for method in ("mse", "percentile", "entropy"):
        state = _searched(state, ref, method)


def test_entropy_first_bin_threaded(backend: Any) -> None:
    """Entropy, more collects, entropy again: the functional core (state
    threaded through ``histogram_result``) and the class give the
    reference's counts and amax throughout; a refused entropy search keeps
    the reference's first-bin change in the class."""
    if backend.name in ("jax", "dask"):
        pytest.skip("op by op here; jitted and lazy in test_numpy_mode_functional_jit_and_dask")
    if not backend.has("float64"):
        pytest.skip("NumPy mode's state needs int64 and float64 (refused there)")
    state = mo.histogram_init(128, xp=backend.xp, device=backend.device, torch_hist=False)
    ours = mo.HistogramCalibrator(num_bins=128, torch_hist=False)
    ref = ref_calib.HistogramCalibrator(num_bins=128, torch_hist=False)
    for step, pieces in enumerate(_steps()):
        x = np.concatenate(pieces)
        state = mo.histogram_update(state, backend.from_numpy(x))
        ours.collect(backend.from_numpy(x))
        ref.collect(torch.from_numpy(x))
        if step != 1:
            continue
        amax = to_host(ours.compute_amax("entropy", start_bin=8))
        state = _searched(state, ref, "entropy")
        assert bits(amax) == bits(mo.histogram_result(state, "entropy", start_bin=8)[0])
    _check(state, ref)
    assert bits(ours.calib_hist) == bits(ref._calib_hist)
    for method in ("percentile", "entropy"):
        amax = to_host(ours.compute_amax(method, start_bin=8))
        state = _searched(state, ref, method)
        assert bits(amax) == bits(mo.histogram_result(state, method, start_bin=8)[0])
    # a refusal after the change: start_bin past the bins (NumPy's argmin of nothing)
    ours.collect(backend.from_numpy(_steps()[0][0] * np.float32(4)))
    ref.collect(torch.from_numpy(_steps()[0][0] * np.float32(4)))
    with pytest.raises(ValueError, match="empty sequence"):
        ref.compute_amax("entropy", start_bin=100_000)
    with pytest.raises(ValueError, match="empty sequence"):
        ours.compute_amax("entropy", start_bin=100_000)
    assert bits(ours.calib_hist) == bits(ref._calib_hist)
