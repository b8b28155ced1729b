"""Stand-ins for ``torch`` and ``torchao`` that route the quantization names to arrayobs.

The upstream test files are run with only their import lines rewritten (``run.py``): ``import
torch`` becomes ``import aoshim_torch as torch`` and ``from torchao.X import`` becomes ``from
aoshim_torchao.X import``. Everything not listed here is the real module's attribute, so the
tests' own reference code (``torch.quantize_per_tensor``, ``torch.testing``, torch.ao's observers
in torchao's tests) stays the reference.

AOSHIM_MODE picks the binding: ``fast`` (arrayobs's defaults, xp=torch), ``slow`` (every
``fast=`` default set to False: the generic Array API path on torch tensors), ``numpy`` and
``jax`` (torchao names only: torch tensors are converted to the backend's arrays on the way in
and back on the way out, bit for bit). A name arrayobs does not provide becomes a stand-in that
skips the test using it, with the reason (the runner counts those skips by name).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import types
import unittest
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

import arrayobs
from arrayobs import affine as A
from arrayobs import functional as F

MODE = os.environ.get("AOSHIM_MODE", "fast")
CALLS = [0]  # calls into arrayobs through the stand-ins; per test in the junit xml
if MODE == "jax64":  # JAX with jax_enable_x64, as the jax mode is without it
    os.environ["JAX_ENABLE_X64"] = "1"
    MODE = "jax"
if MODE not in ("fast", "slow", "numpy", "jax"):
    raise ValueError(f"AOSHIM_MODE must be fast, slow, numpy, jax or jax64, got {MODE!r}")


def counted(fn: Any) -> Any:
    """``fn``, counting its calls (a test that passes without any did not test arrayobs)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        CALLS[0] += 1
        return fn(*args, **kwargs)

    return call


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    before = CALLS[0]
    yield
    item.user_properties.append(("aoshim_calls", CALLS[0] - before))


class Missing:
    """A name arrayobs does not provide: using it skips the test (N/A), naming the name."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _skip(self) -> unittest.SkipTest:
        return unittest.SkipTest(f"aoshim N/A: arrayobs has no {self._name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._skip()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._skip()


class Proxy(types.ModuleType):
    """A module whose attributes are ``names`` first, then ``fallback``'s (or Missing)."""

    def __init__(self, qualname: str, names: dict[str, Any], fallback: Any, missing: str) -> None:
        super().__init__(qualname)
        self.__dict__.update(names)
        self._fallback = fallback
        self._missing = missing
        sys.modules[qualname] = self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._fallback is not None:
            return getattr(self._fallback, name)
        return Missing(f"{self._missing}.{name}")


def set_default(name: str, old: Any, new: Any, *, classes_only: bool = False) -> None:
    """Change every ``name=old`` default in arrayobs's functions (or only its classes' __init__)."""
    seen: set[int] = set()
    for mod in list(sys.modules.values()):
        if not getattr(mod, "__name__", "").startswith("arrayobs"):
            continue
        for obj in list(vars(mod).values()):
            candidates = [getattr(obj, "__init__", None)] if isinstance(obj, type) else []
            if not classes_only:
                candidates.append(obj)
            for candidate in candidates:
                fn = inspect.unwrap(candidate) if callable(candidate) else candidate
                if getattr(fn, "__code__", None) is None or id(fn) in seen:
                    continue
                seen.add(id(fn))
                params = inspect.signature(fn, follow_wrapped=False).parameters
                if name not in params or params[name].default is not old:
                    continue
                if fn.__kwdefaults__ and name in fn.__kwdefaults__:
                    fn.__kwdefaults__[name] = new
                else:
                    names = list(params)[-len(fn.__defaults__) :]
                    values = list(fn.__defaults__)
                    values[names.index(name)] = new
                    fn.__defaults__ = tuple(values)


if MODE == "slow":
    set_default("fast", True, False)


# ---- torch: the torch.ao.quantization names and the ops ------------------------------------


def _fused(x, observer_on, fake_quant_on, rmin, rmax, scale, zp, *args: Any) -> Any:
    """torch's op updates its state in place; arrayobs's returns it: copy it back."""
    out, *state = F.fused_moving_avg_obs_fake_quant(
        x, observer_on, fake_quant_on, rmin, rmax, scale, zp, *args
    )
    with torch.no_grad():
        for old, new in zip((rmin, rmax, scale, zp), state, strict=True):
            old.copy_(new)
    return out


def _op(fn: Any) -> Any:
    """An op with torch's ``.default`` and ``.tensor`` overloads (arrayobs takes both)."""
    wrapped = types.SimpleNamespace(default=fn, tensor=fn)
    return type("Op", (), {"__call__": staticmethod(fn), **vars(wrapped)})()


_DECOMPOSED = {
    name: _op(counted(getattr(F, name)))
    for name in (
        "quantize_per_tensor",
        "dequantize_per_tensor",
        "quantize_per_channel",
        "dequantize_per_channel",
    )
}


def bind_torch() -> None:
    """torch's test files: every class binds to xp=torch at construction, as torch.ao's do."""
    set_default("xp", None, torch, classes_only=True)


_ao_names = {n: getattr(arrayobs, n) for n in arrayobs.__all__ if hasattr(tq, n)}
_ao_names.update({n: getattr(A, n) for n in A.__all__ if hasattr(tq, n)})
quantization = Proxy("aoshim_torch.ao.quantization", _ao_names, None, "torch.ao.quantization")
for _sub in ("observer", "fake_quantize", "quantize", "_learnable_fake_quantize"):
    setattr(quantization, _sub, Proxy(f"{quantization.__name__}.{_sub}", _ao_names, None, _sub))


def _to(self: Any, *args: Any, **kwargs: Any) -> Any:
    """nn.Module.to on the CPU, where the state already is: a no-op (not an arrayobs method)."""
    device = kwargs.get("device", args[0] if args else "cpu")
    if torch.device(device).type != "cpu":
        raise unittest.SkipTest("aoshim N/A: .to() onto another device (not an nn.Module)")
    return self


for _cls in [v for v in _ao_names.values() if isinstance(v, type)]:
    if _cls.__module__.startswith("arrayobs") and not hasattr(_cls, "to"):
        _cls.to = _to
    if _cls.__module__.startswith("arrayobs") and "__init__" in vars(_cls):
        _cls.__init__ = counted(_cls.__init__)


def _script(obj: Any, *args: Any, **kwargs: Any) -> Any:
    if type(obj).__module__.startswith("arrayobs"):
        raise unittest.SkipTest("aoshim N/A: arrayobs objects are not TorchScript modules")
    return torch.jit.script(obj, *args, **kwargs)


torch_proxy = Proxy(
    "aoshim_torch",
    {
        "fake_quantize_per_tensor_affine": counted(F.fake_quantize_per_tensor_affine),
        "fake_quantize_per_channel_affine": counted(F.fake_quantize_per_channel_affine),
        "fused_moving_avg_obs_fake_quant": counted(_fused),
        "_fake_quantize_learnable_per_tensor_affine": Missing("_fake_quantize_learnable_*"),
        "_fake_quantize_learnable_per_channel_affine": Missing("_fake_quantize_learnable_*"),
        "ao": Proxy("aoshim_torch.ao", {"quantization": quantization}, torch.ao, "torch.ao"),
        "ops": Proxy(
            "aoshim_torch.ops",
            {
                "quantized_decomposed": Proxy(
                    "aoshim_torch.ops.quantized_decomposed",
                    _DECOMPOSED,
                    None,
                    "quantized_decomposed",
                )
            },
            torch.ops,
            "torch.ops",
        ),
        "jit": Proxy("aoshim_torch.jit", {"script": _script}, torch.jit, "torch.jit"),
    },
    torch,
    "torch",
)


# ---- torchao: the affine primitives, on torch, NumPy or JAX --------------------------------

_FLOATS = {
    torch.bfloat16: (torch.int16, ml_dtypes.bfloat16),
    torch.float8_e4m3fn: (torch.uint8, ml_dtypes.float8_e4m3fn),
    torch.float8_e5m2: (torch.uint8, ml_dtypes.float8_e5m2),
}


def _xp() -> Any:
    if MODE == "jax":
        import jax.numpy as jnp

        return jnp
    return np


def to_backend(v: Any) -> Any:
    """torch -> the mode's arrays (same bits); dtypes -> names; containers recursively."""
    if MODE not in ("numpy", "jax"):
        return v
    if isinstance(v, torch.Tensor):
        t = v.detach().cpu()
        if t.dtype in _FLOATS:
            carrier, np_dtype = _FLOATS[t.dtype]
            a = t.view(carrier).numpy().view(np_dtype)
        else:
            a = t.numpy()
        return _xp().asarray(a)
    if isinstance(v, torch.dtype):
        return str(v).removeprefix("torch.")
    if isinstance(v, torch.Size):
        return tuple(v)
    if isinstance(v, (list, tuple)):
        return type(v)(to_backend(e) for e in v)
    return v


def to_torch(v: Any) -> Any:
    """The mode's arrays -> torch (same bits); containers recursively."""
    if MODE not in ("numpy", "jax") or isinstance(v, (bool, int, float, str, type(None))):
        return v
    if isinstance(v, (list, tuple)):
        return type(v)(to_torch(e) for e in v)
    if hasattr(v, "dtype") and hasattr(v, "shape"):
        a = np.array(v)
        for t_dtype, (carrier, np_dtype) in _FLOATS.items():
            if a.dtype == np_dtype:
                c = np.dtype(str(carrier).removeprefix("torch."))
                return torch.from_numpy(a.view(c)).view(t_dtype)
        return torch.from_numpy(a)
    return v


def converted(fn: Any) -> Any:
    if MODE not in ("numpy", "jax"):
        return counted(fn)

    def call(*args: Any, **kwargs: Any) -> Any:
        CALLS[0] += 1
        out = fn(*to_backend(args), **{k: to_backend(v) for k, v in kwargs.items()})
        return to_torch(out)

    call.__name__ = getattr(fn, "__name__", "call")
    return call


def converted_class(cls: Any) -> Any:
    if MODE not in ("numpy", "jax"):
        return type(cls.__name__, (cls,), {"__init__": counted(cls.__init__)})

    class Converted:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            CALLS[0] += 1
            kwargs = {k: to_backend(v) for k, v in kwargs.items()}
            self._inner = cls(*to_backend(args), xp=_xp(), **kwargs)

        def __call__(self, x: Any) -> Any:
            self._inner(to_backend(x))
            return x

        def __getattr__(self, name: str) -> Any:
            value = getattr(self._inner, name)
            return converted(value) if callable(value) else to_torch(value)

    Converted.__name__ = cls.__name__
    return Converted


_TORCHAO = importlib.import_module("torchao.quantization.quant_primitives")
_PRIMITIVES = {  # torchao's own enums: arrayobs takes them, and the tests hand them to torchao too
    "MappingType": _TORCHAO.MappingType,
    "ZeroPointDomain": _TORCHAO.ZeroPointDomain,
    "choose_qparams_affine": converted(A.choose_qparams_affine),
    "quantize_affine": converted(A.quantize_affine),
    "dequantize_affine": converted(A.dequantize_affine),
    "_choose_scale_float8": converted(A.choose_scale_float8),
    "_quantize_affine_float8": converted(A.quantize_affine_float8),
    "_dequantize_affine_float8": converted(A.dequantize_affine_float8),
    "_choose_qparams_affine_tinygemm": converted(A.choose_qparams_affine_tinygemm),
    "_fake_quantize_affine": converted(A.fake_quantize_affine),
    "_fake_quantize_affine_cachemask": converted(A.fake_quantize_affine_cachemask),
}
_GRANULARITY = {
    n: getattr(A, n)
    for n in ("PerAxis", "PerBlock", "PerGroup", "PerRow", "PerTensor", "PerToken", "Granularity")
}
torchao_proxy = Proxy("aoshim_torchao", {}, None, "torchao")
_q = Proxy("aoshim_torchao.quantization", {}, None, "torchao.quantization")
torchao_proxy.quantization = _q
_q.quant_primitives = Proxy(
    "aoshim_torchao.quantization.quant_primitives", _PRIMITIVES, None, "quant_primitives"
)
_q.granularity = Proxy("aoshim_torchao.quantization.granularity", _GRANULARITY, None, "granularity")
_q.utils = Proxy(  # torchao's helpers are the tests' references: only get_block_size is ours
    "aoshim_torchao.quantization.utils",
    {"get_block_size": converted(A.get_block_size)},
    importlib.import_module("torchao.quantization.utils"),
    "torchao.quantization.utils",
)
_q.observer = Proxy(
    "aoshim_torchao.quantization.observer",
    {
        name: converted_class(getattr(A, name))
        for name in (
            "AffineQuantizedMinMaxObserver",
            "AffineQuantizedMSEObserver",
            "AffineQuantizedFixedQParamObserver",
        )
    },
    None,
    "torchao.quantization.observer",
)
