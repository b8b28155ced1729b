"""The one module that talks to array-api-compat.

Everything backend-aware that is not a fast path lives here: finding the
namespace of an array or a library module, devices, and moving small host
values in and out. Backends are recognised through array-api-compat, which
looks in ``sys.modules`` and so never imports a library the user has not.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import array_api_compat as _aac
import numpy as np

__all__ = [
    "array_namespace",
    "backend_name",
    "default_device",
    "device_of",
    "has_dtype",
    "is_array",
    "is_observable_dtype",
    "namespace_of",
    "resolve_namespace",
    "size",
    "to_host",
    "torch_compiling",
]

array_namespace = _aac.array_namespace
device_of = _aac.device
is_array = _aac.is_array_api_obj
size = _aac.size

# (test, canonical namespace module, short name), in the order they are tried.
_KNOWN: tuple[tuple[Any, str, str], ...] = (
    (_aac.is_numpy_namespace, "array_api_compat.numpy", "numpy"),
    (_aac.is_torch_namespace, "array_api_compat.torch", "torch"),
    (_aac.is_cupy_namespace, "array_api_compat.cupy", "cupy"),
    (_aac.is_dask_namespace, "array_api_compat.dask.array", "dask"),
    (_aac.is_jax_namespace, "jax.numpy", "jax"),
    (_aac.is_array_api_strict_namespace, "array_api_strict", "array_api_strict"),
)


def resolve_namespace(xp: object) -> ModuleType:
    """The Array API namespace for a library module or namespace.

    ``numpy``, ``torch``, ``cupy`` and ``dask.array`` map to their
    array-api-compat wrappers; ``jax``/``jax.numpy`` and ``array_api_strict``
    are namespaces already. Anything else that has ``__array_namespace_info__``
    is taken as a standard namespace.
    """
    if isinstance(xp, ModuleType):
        if xp.__name__ == "jax":
            xp = importlib.import_module("jax.numpy")
        for test, module, _ in _KNOWN:
            if test(xp):
                return importlib.import_module(module)
        if hasattr(xp, "__array_namespace_info__"):
            return xp
    known = ", ".join(name for _, _, name in _KNOWN)
    msg = f"xp must be an array library or Array API namespace ({known}); got {xp!r}"
    raise TypeError(msg)


_NAMES = {module: name for _, module, name in _KNOWN}


def backend_name(xp: ModuleType) -> str:
    """Short name of a namespace: numpy, torch, cupy, dask, jax, array_api_strict."""
    # The canonical namespaces by name first: a dict lookup torch.compile can trace.
    known = _NAMES.get(xp.__name__)
    if known is not None:
        return known
    for test, _, name in _KNOWN:
        if test(xp):
            return name
    return xp.__name__


def xp_argument(xp: ModuleType) -> str:
    """How a user names ``xp``'s library in an ``xp=`` argument (for error hints)."""
    name = backend_name(xp)
    return {"dask": "dask.array", "jax": "jax.numpy"}.get(name, name)


def is_observable_dtype(xp: ModuleType, dtype: Any) -> bool:
    """Whether arrays of ``dtype`` can be observed: real floating, integral or bool."""
    if getattr(getattr(dtype, "type", None), "__module__", None) == "ml_dtypes":
        # ml_dtypes' bfloat16, float8, float4/6 and int2/int4 (JAX's on the host):
        # NumPy's isdtype refuses them (TypeError), but NumPy reduces them.
        return True
    try:
        return bool(xp.isdtype(dtype, ("real floating", "integral", "bool")))
    except TypeError:  # a dtype the namespace does not know
        return False


def torch_compiling() -> bool:
    """Whether torch.compile is tracing this call (never imports torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.compiler.is_compiling())


def namespace_of(x: Any) -> ModuleType:
    """``array_namespace(x)``, also while torch.compile traces (Dynamo cannot trace
    array-api-compat's class cache; a traced value is a torch tensor)."""
    if torch_compiling():
        torch = sys.modules["torch"]
        if isinstance(x, torch.Tensor):
            # An import statement (Dynamo executes those; it refuses importlib).
            import array_api_compat.torch as torch_namespace

            return torch_namespace
    return array_namespace(x)  # type: ignore[no-any-return]


def default_device(xp: ModuleType) -> Any:
    """The device a new array of ``xp`` lands on."""
    return device_of(xp.empty((0,)))


def has_dtype(xp: ModuleType, device: Any, name: str) -> bool:
    """Whether ``xp`` can hold dtype ``name`` on ``device`` (no int64 in JAX without x64)."""
    info = xp.__array_namespace_info__()
    try:
        dtypes = info.dtypes(device=device)
    except (TypeError, ValueError):
        # Some namespaces accept only their own default device spelling here.
        dtypes = info.dtypes()
    return name in dtypes


def on_host(x: Any) -> bool:
    """Whether reading ``x``'s values costs no device transfer or compute: NumPy,
    array-api-strict, and CPU torch tensors outside torch.compile."""
    module = type(x).__module__.split(".")[0]
    if module == "torch":
        return not torch_compiling() and x.device.type == "cpu"  # type: ignore[attr-defined]
    return module in ("numpy", "array_api_strict")


def without_graph(x: Any) -> Any:
    """``x`` without its autograd graph (torch), else ``x`` itself: what an
    observer keeps, and what torchao's custom ops see, never records one."""
    return x.detach() if getattr(x, "requires_grad", False) else x


def state_text(value: Any) -> str:
    """A per-channel state array as an observer's repr shows it: torch's own text
    for a tensor (``tensor([ 1., -4.])``, as torch.ao prints it), else NumPy's,
    summarised past 8 values as torch's repr summarises."""
    if type(value).__module__.split(".")[0] == "torch":
        return repr(value)
    return np.array2string(to_host(value), separator=", ", threshold=8)


def to_host(value: object) -> np.ndarray:
    """A NumPy copy of a small array of any supported library (or a number).

    Used only at the boundary (``load_state_dict``), never on the update path.
    """
    module = type(value).__module__.split(".")[0]
    if module == "torch":
        tensor: Any = value
        # A copy, also on the CPU: a NumPy view would leave the tensor's storage
        # unresizable for good (torch's per-channel observers resize theirs).
        tensor = tensor.detach().to("cpu", copy=True)
        if tensor.is_floating_point() and tensor.element_size() < 4:
            # NumPy has no bfloat16; widening is exact.
            tensor = tensor.float()
        return np.asarray(tensor.numpy())
    if module == "cupy":
        return np.asarray(value.get())  # type: ignore[attr-defined]
    if module == "dask":
        return np.asarray(value.compute())  # type: ignore[attr-defined]
    if module == "array_api_strict":
        # array-api-strict refuses __array__ off its default device; DLPack is public.
        return np.from_dlpack(value)  # type: ignore[arg-type, call-overload]
    return np.asarray(value)


def numpy_avx512() -> tuple[str, ...]:
    """NumPy's AVX512 dispatch targets (``X86_V4``, ``AVX512_*``) that are on in this
    process: on with the CPU's support unless ``NPY_DISABLE_CPU_FEATURES`` turned them off."""
    try:
        from numpy._core import _multiarray_umath as umath  # type: ignore[attr-defined]
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as umath  # type: ignore[attr-defined,no-redef]
    targets = [*umath.__cpu_baseline__, *umath.__cpu_dispatch__]
    on = umath.__cpu_features__
    return tuple(t for t in targets if ("AVX512" in t or t == "X86_V4") and on.get(t))
