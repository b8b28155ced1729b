"""Backends and assertions shared by tests/, conformance/ and bench/.

One list of backends feeds every suite. ``ARRAYOBS_BACKENDS`` (comma
separated names, e.g. ``numpy,torch``) narrows it; a backend named there that
cannot be used is an error, never a silent skip. Without the variable, every
CPU backend that imports runs and the others skip with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import (
    array_namespace,
    backend_name,
    device_of,
    has_dtype,
    resolve_namespace,
    to_host,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "assert_observers_match",
    "assert_qparams_match",
    "assert_state_match",
    "flushes_subnormals",
    "selected_backends",
    "supports_dtype",
]


class BackendUnavailable(Exception):
    """A backend cannot run here; the message says why."""


def _gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None


@dataclasses.dataclass(frozen=True)
class Backend:
    """A namespace on one device: ``name`` is ``library`` or ``library:device``."""

    name: str
    module: str
    device: Callable[[ModuleType], Any] | None = None
    gpu: bool = False

    def load(self) -> tuple[ModuleType, Any]:
        """``(namespace, device)``, or :class:`BackendUnavailable` with the reason."""
        if self.gpu and not _gpu_present():
            msg = f"{self.name} needs an NVIDIA GPU and none is present (no nvidia-smi)"
            raise BackendUnavailable(msg)
        try:
            lib = importlib.import_module(self.module)
        except ImportError as exc:
            msg = f"{self.name}: cannot import {self.module} ({exc})"
            raise BackendUnavailable(msg) from exc
        xp = resolve_namespace(lib)
        try:
            device = None if self.device is None else self.device(lib)
        except Exception as exc:  # a library's own "no such device" error
            msg = f"{self.name}: device unavailable ({exc})"
            raise BackendUnavailable(msg) from exc
        return xp, device_of(xp.empty((0,), device=device))


def _strict_device(name: str) -> Callable[[ModuleType], Any]:
    return lambda lib: lib.Device(name)


def _jax_gpu(lib: ModuleType) -> Any:
    return importlib.import_module("jax").devices("gpu")[0]


BACKENDS: tuple[Backend, ...] = (
    Backend("numpy", "numpy"),
    Backend("array_api_strict", "array_api_strict"),
    # A non-default device, and a device with neither float64 nor int64 (as JAX without x64).
    Backend("array_api_strict:device1", "array_api_strict", _strict_device("device1")),
    Backend("array_api_strict:no_x64", "array_api_strict", _strict_device("no_x64")),
    Backend("torch", "torch"),
    Backend("jax", "jax.numpy"),
    Backend("dask", "dask.array"),
    Backend("torch:cuda", "torch", lambda lib: lib.device("cuda"), gpu=True),
    Backend("jax:gpu", "jax.numpy", _jax_gpu, gpu=True),
    Backend("cupy", "cupy", gpu=True),
)


def flushes_subnormals(xp: ModuleType, device: Any) -> bool:
    """Whether the backend flushes subnormal float32 to zero (documented deviations).

    XLA's CPU backend does in every operation; CuPy compiles every kernel with
    ``-ftz=true`` (https://github.com/cupy/cupy/issues/9576), so its arithmetic
    and comparisons do (arrayobs's own CuPy min and max, on integer keys, do not).
    """
    name = backend_name(xp)
    return name == "cupy" or (name == "jax" and "cpu" in str(device).lower())


def supports_dtype(xp: ModuleType, device: Any, name: str) -> bool:
    """Whether arrays of ``name`` can be observed on this backend.

    float16 and bfloat16 are outside the Array API standard, so namespaces do
    not list them: NumPy, CuPy, torch, JAX and Dask (NumPy chunks) hold
    float16; torch and JAX hold bfloat16; array-api-strict holds neither.
    """
    library = backend_name(xp)
    if name == "float16":
        return library in ("numpy", "cupy", "torch", "jax", "dask")
    if name == "bfloat16":
        return library in ("torch", "jax")
    return has_dtype(xp, device, name)


def selected_backends() -> tuple[list[Backend], bool]:
    """The backends to run, and whether each of them is required (named explicitly)."""
    names = os.environ.get("ARRAYOBS_BACKENDS", "").strip()
    if not names:
        return list(BACKENDS), False
    known = {b.name: b for b in BACKENDS}
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        msg = f"ARRAYOBS_BACKENDS names unknown backends {unknown}; known: {sorted(known)}"
        raise ValueError(msg)
    return [known[n] for n in chosen], True


def _check_array(
    a: Any, xp: ModuleType, device: Any, dtype: Any, shape: tuple[int, ...], what: str
) -> None:
    assert array_namespace(a) is xp, (
        f"{what}: namespace {array_namespace(a).__name__}, want {xp.__name__}"
    )
    assert a.dtype == dtype, f"{what}: dtype {a.dtype}, want {dtype}"
    assert tuple(a.shape) == shape, f"{what}: shape {a.shape}, want {shape}"
    assert device_of(a) == device, f"{what}: device {device_of(a)}, want {device}"


def flushed(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) with every subnormal replaced by the zero of its sign:
    what a backend that flushes subnormals (:func:`flushes_subnormals`) gives
    where torch leaves a subnormal."""
    v = np.asarray(values, dtype=np.float32)
    tiny = (v != 0) & (np.abs(v) < np.finfo(np.float32).tiny)
    return np.where(tiny, np.copysign(np.float32(0), v), v).astype(np.float32)


def _values_equal(got: np.ndarray, want: np.ndarray) -> bool:
    both_nan = np.isnan(got) & np.isnan(want)
    return bool(np.all((got == want) | both_nan))


def assert_state_match(
    obs: Any, ref: Any, *, xp: ModuleType, device: Any, where: str = "", flushes: bool = False
) -> None:
    """``obs.min_val``/``max_val`` equal the torch observer ``ref``'s (NaN matches NaN).

    ``flushes``: the backend flushes subnormals (a documented deviation), so
    where torch's value is subnormal, ours must be the zero of its sign.

    torch's values are read through copies: a NumPy view of a torch.ao
    per-channel buffer would stop it resizing at the next batch.

    ``==`` lets +0.0 and -0.0 match: which zero a reduction returns on a tie is
    the backend's choice, and no qparam depends on it.
    """
    for name in ("min_val", "max_val"):
        got, want = getattr(obs, name), getattr(ref, name)
        _check_array(got, xp, device, xp.float32, tuple(want.shape), f"{where} {name}")
        g, w = to_host(got), want.detach().to("cpu", copy=True).numpy()
        if flushes:
            w = flushed(w)
        assert _values_equal(g, w), f"{where} {name}: got {g!r}, torch {w!r}"


def zero_signs_differ(obs: Any, ref: Any) -> np.ndarray:
    """Where min_val or max_val is a zero of the other sign than torch's: a
    boolean per element of the state (one per channel; one per tensor).

    Which zero a reduction returns on a +0.0/-0.0 tie is each backend's own
    choice (a documented deviation). No qparam depends on it, except the sign
    of a zero scale, possible only with ``eps <= 0``.
    """
    differ = np.zeros(0, dtype=bool)
    for name in ("min_val", "max_val"):
        g = to_host(getattr(obs, name)).astype(np.float32).reshape(-1)
        w = getattr(ref, name).detach().to("cpu", copy=True).numpy().astype(np.float32)
        w = w.reshape(-1)
        if g.shape != w.shape:
            return np.zeros(0, dtype=bool)
        signs = (g == 0) & (w == 0) & (g.view(np.uint32) != w.view(np.uint32))
        differ = signs if differ.size == 0 else differ | signs
    return differ


def assert_qparams_match(
    got: tuple[Any, Any],
    want: tuple[Any, Any],
    *,
    xp: ModuleType,
    device: Any,
    where: str = "",
    zero_sign_free: Any = False,
    flushes: bool = False,
) -> None:
    """Scale bitwise equal, zero point equal, dtypes as torch (int64 -> int32 without int64).

    Element by element (per channel): a NaN matches any NaN (sign and payload
    are not compared: torch's own NaN bits depend on the CPU it runs on), in the
    scale and in a float zero point. ``zero_sign_free`` (a bool, or one per
    element of the scale, from :func:`zero_signs_differ`): there a zero scale
    may differ from torch's in sign only. ``flushes``: where torch's scale or
    float zero point is subnormal, ours is the zero of its sign.
    """
    scale, zp = got
    want_scale = want[0].detach().to("cpu", copy=True).numpy()
    want_zp = want[1].detach().to("cpu", copy=True).numpy()
    if flushes:
        want_scale = flushed(want_scale)
        if want_zp.dtype.kind == "f":
            want_zp = flushed(want_zp)
    _check_array(scale, xp, device, xp.float32, want_scale.shape, f"{where} scale")
    zp_name = str(want_zp.dtype)
    if zp_name == "int64" and not has_dtype(xp, device, "int64"):
        zp_name = "int32"
    _check_array(zp, xp, device, getattr(xp, zp_name), want_zp.shape, f"{where} zero_point")
    g_scale, g_zp = to_host(scale), to_host(zp)
    same = g_scale.view(np.uint32) == want_scale.view(np.uint32)
    same |= np.isnan(g_scale) & np.isnan(want_scale)
    free = np.asarray(zero_sign_free, dtype=bool)
    if free.shape in ((), g_scale.shape):
        same |= free & (g_scale == 0) & (want_scale == 0)
    assert same.all(), f"{where} scale: got {g_scale!r}, torch {want_scale!r}"
    equal_nan = want_zp.dtype.kind == "f"
    assert np.array_equal(g_zp, want_zp, equal_nan=equal_nan), (
        f"{where} zero_point: got {g_zp!r}, torch {want_zp!r}"
    )


def assert_observers_match(
    obs: Any, ref: Any, *, xp: ModuleType, device: Any, where: str = "", flushes: bool = False
) -> None:
    """State and qparams of ``obs`` equal those of the torch observer ``ref``.

    Where torch refuses to compute qparams (``min_val > max_val``, reachable
    by rounding in a moving average), arrayobs must refuse too. ``flushes``:
    as :func:`assert_state_match` and :func:`assert_qparams_match`.
    """
    assert_state_match(obs, ref, xp=xp, device=device, where=where, flushes=flushes)
    try:
        want = ref.calculate_qparams()
    except AssertionError as exc:
        try:
            obs.calculate_qparams()
        except ValueError as ours:
            assert "greater than max_val" in str(ours), f"{where}: {ours}"
        else:
            msg = f"{where}: torch raised {exc!r} on a crossed state, arrayobs did not"
            raise AssertionError(msg) from exc
        return
    assert_qparams_match(
        obs.calculate_qparams(),
        want,
        xp=xp,
        device=device,
        where=where,
        zero_sign_free=zero_signs_differ(obs, ref),
        flushes=flushes,
    )
