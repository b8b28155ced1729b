"""ModelOpt 0.47.0's MseCalibrator through the functional core (``mse_init`` /
``mse_update`` / ``mse_result``) against the live reference: eagerly, under
``jax.jit`` and lazily on Dask; and ATen's cascade sum in every namespace."""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs._compat import to_host
from arrayobs._core._sum import cascade_sum
from arrayobs.calib import modelopt as mo

torch = pytest.importorskip("torch", reason="torch runs ModelOpt, the reference")
with warnings.catch_warnings():
    # ModelOpt's import calls torch.jit.script, which torch 2.13 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    ref_calib = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )
    tq = pytest.importorskip(
        "modelopt.torch.quantization.tensor_quant",
        reason="reference not installed: ModelOpt 0.47.0",
    )


def bits(a: Any) -> tuple[str, bytes]:
    a = np.asarray(a)
    return str(a.dtype), a.tobytes()


def _forbid_compute(*args: Any, **kwargs: Any) -> Any:
    msg = "mse_update computed a Dask graph"
    raise AssertionError(msg)


# (shape, axis, num_bits, error): per tensor, per leading axis, per two leading axes
CASES = {
    "tensor": ((4, 300), None, 8, None),
    "axis0": ((4, 300), 0, 4, None),
    "axes01_abs": ((2, 3, 70), (0, 1), 8, "abs"),
}


def _abs_error(x: Any, xq: Any, *, xp: Any) -> Any:
    return xp.abs(x - xq)


@pytest.mark.parametrize("name", list(CASES))
def test_mse_functional(backend: Any, name: str) -> None:
    """Eagerly (NumPy, torch, array-api-strict), jitted (JAX) or lazy (Dask):
    the summed losses after every batch and the amax, as the reference."""
    if backend.name in ("jax", "dask") and name == "axes01_abs":
        pytest.skip("per tensor and one axis under jit and on Dask (compiled or lazy per case)")
    shape, axis, num_bits, error = CASES[name]
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.2, 4.0, (*shape[:-1], 1))
    batches = [(rng.standard_normal(shape) * scale * s).astype(np.float32) for s in (1.0, 1.7)]
    keep = tuple(range(len(shape) - 1)) if axis is not None else ()
    amax = np.abs(batches[0]).max(axis=-1, keepdims=True).astype(np.float32)
    if not keep:
        amax = np.asarray(np.abs(batches[0]).max(), dtype=np.float32)
    ref = ref_calib.MseCalibrator(
        torch.from_numpy(amax.copy()),
        axis=axis,
        quant_func=lambda x, a: tq._tensor_quant(x, a, num_bits, False),
        error_func=None if error is None else (lambda x, xq: torch.abs(x - xq)),
    )
    xp = backend.xp
    update = functools.partial(
        mo.mse_update,
        quant_func=lambda x, a: mo.tensor_quant(x, a, num_bits, False, xp=xp),
        error_func=None if error is None else functools.partial(_abs_error, xp=xp),
    )
    if backend.name == "jax":
        update = importlib.import_module("jax").jit(update)
    state = mo.mse_init(backend.from_numpy(amax), shape, axis, xp=xp, device=backend.device)
    for x in batches:
        ref.collect(torch.from_numpy(x))
        if backend.name == "dask":
            dask = importlib.import_module("dask")
            da = importlib.import_module("dask.array")
            with dask.config.set(scheduler=_forbid_compute):
                state = update(state, da.from_array(x, chunks=(2,) * (x.ndim - 1) + (150,)))
            assert isinstance(state.losses, da.Array)
        else:
            state = update(state, backend.from_numpy(x))
        assert bits(to_host(state.losses)) == bits(torch.stack(ref._losses_sum).numpy())
    assert bits(mo.mse_result(state)) == bits(ref.compute_amax().numpy())


def test_mse_functional_refusals() -> None:
    xp = importlib.import_module("array_api_compat.numpy")
    amax = np.ones((3, 1), np.float32)
    with pytest.raises(NotImplementedError, match="leading dims"):
        mo.mse_init(amax, (3, 4), axis=1)
    state = mo.mse_init(amax, (3, 4), axis=0)
    assert mo.mse_result(state) is None
    with pytest.raises(RuntimeError, match="Quantization function not set"):
        mo.mse_update(state, np.ones((3, 4), np.float32), None)
    with pytest.raises(ValueError, match=r"keep dims \(3,\)"):
        mo.mse_update(state, np.ones((2, 4), np.float32), lambda x, a: x)
    wide = lambda x, q: xp.astype(x, xp.float64)  # noqa: E731
    with pytest.raises(TypeError, match="float32"):
        mo.mse_update(state, np.ones((3, 4), np.float32), lambda x, a: x, wide)


@pytest.mark.parametrize("n", [0, 5, 37, 4097, 8192 + 16 * 32 * 3 + 77, 32768])
def test_cascade_sum(backend: Any, n: int) -> None:
    """Each row's sum as ``torch.sum`` (one thread per row), in the backend's
    own arithmetic: the levels of ATen's cascade, its tail and its lanes."""
    rng = np.random.default_rng(n)
    a = (rng.standard_normal((2, n)) * rng.uniform(0.1, 1e3, (2, 1))).astype(np.float32)
    got = cascade_sum(backend.from_numpy(a), xp=backend.xp)
    assert bits(to_host(got)) == bits(torch.from_numpy(a).sum(dim=1).numpy())
