"""The boundary: user arguments checked and converted once, as torch and torchao
check them, before the math (``arrayobs._core``) trusts them.

Used by the functional API (``arrayobs.functional``), torchao's API
(``arrayobs.affine``) and the classes (``arrayobs._observers``). Nothing here
reads a value back from a device, except :func:`check_channel_zero_points`,
which its caller runs on host arrays only.
"""

from __future__ import annotations

import math
import numbers
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import backend_name, has_dtype, namespace_of, size
from arrayobs._config import boolean
from arrayobs._core._affine import MappingType, Target, ZeroPointDomain
from arrayobs._core._blocks import integer
from arrayobs._core._dtypes import (
    FLOAT8_MAX,
    FLOAT_NAMES,
    INT_BOUNDS,
    INT_RANGES,
    dtype_name,
    name_of,
)
from arrayobs._core._fakequant import float32_value

__all__ = [
    "array_namespace",
    "boolean",
    "channel_axis",
    "channel_axis_checked",
    "channel_qparams",
    "check_bound",
    "check_bounds",
    "check_channel_zero_points",
    "check_range",
    "check_zero_point",
    "checked_bins",
    "eps_value",
    "float_dtype",
    "fused_state",
    "int_dtype",
    "integer",
    "mapping_type",
    "require_fake_quantizable",
    "require_size",
    "scale_dtype_name",
    "switch",
    "target",
    "tensor_scale",
    "tensor_zero_point",
    "zero_point_domain",
    "zero_point_dtype_name",
]


# -- the fake-quantize functions (torch's checks) -----------------------------------
def require_fake_quantizable(xp: ModuleType, dtype: Any) -> None:
    """TypeError unless ``dtype`` is float16, bfloat16, float32 or float64."""
    if dtype_name(dtype) not in FLOAT_NAMES:
        msg = f"fake quantization takes float16, bfloat16, float32 or float64 arrays, got {dtype}"
        raise TypeError(msg)


def check_range(quant_min: Any, quant_max: Any) -> tuple[int, int]:
    """``(quant_min, quant_max)`` as ints; ValueError unless ``quant_min <= quant_max``
    (torch raises RuntimeError)."""
    qmin, qmax = integer(quant_min, "quant_min"), integer(quant_max, "quant_max")
    if qmin > qmax:
        msg = f"quant_min ({qmin}) should be less than or equal to quant_max ({qmax})"
        raise ValueError(msg)
    return qmin, qmax


def check_zero_point(zero_point: int, quant_min: int, quant_max: int) -> None:
    """ValueError for a Python-number zero point outside the range (torch's
    RuntimeError; torch does not check a tensor zero point, nor does arrayobs
    check an array one: that would read it back from the device)."""
    if not quant_min <= zero_point <= quant_max:
        msg = (
            f"zero_point ({zero_point}) must be between quant_min ({quant_min}) "
            f"and quant_max ({quant_max})"
        )
        raise ValueError(msg)


def _same_namespace(value: Any, xp: ModuleType, what: str) -> None:
    try:
        other = namespace_of(value)
    except TypeError:
        msg = f"{what} must be a number or an array, got {type(value).__name__}"
        raise TypeError(msg) from None
    if other is not xp:
        msg = f"{what} is an array of {backend_name(other)}; the input is {backend_name(xp)}"
        raise TypeError(msg)


def _one_element(value: Any, what: str) -> None:
    n = math.prod(value.shape)
    if n != 1:
        msg = f"{what} must have one element, got shape {tuple(value.shape)}"
        raise ValueError(msg)


def tensor_scale(scale: Any, xp: ModuleType, device: Any) -> Any:
    """A per-tensor scale as a 0-d float32 array: a Python number rounded to
    float32 (ATen's kernels take a float), or a one-element float array."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        return xp.asarray(float32_value(float(scale)), dtype=xp.float32, device=device)
    _same_namespace(scale, xp, "scale")
    _one_element(scale, "scale")
    if not xp.isdtype(scale.dtype, "real floating"):
        msg = f"scale must be a float array, got {scale.dtype}"
        raise TypeError(msg)
    return xp.reshape(xp.astype(scale, xp.float32), ())


def tensor_zero_point(
    zero_point: Any, quant_min: int, quant_max: int, xp: ModuleType, device: Any
) -> Any:
    """A per-tensor zero point as a 0-d int32 array. A Python int must lie in
    ``[quant_min, quant_max]``; an array (one element) is not checked, as torch
    does not check a tensor, and a float one is truncated (torch's ``toInt``)."""
    if isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        zp = int(zero_point)
        check_zero_point(zp, quant_min, quant_max)
        if -(2**31) <= zp < 2**31:
            return xp.asarray(zp, dtype=xp.int32, device=device)
        # torch's kernels take an int64 zero point (converted to float in their arithmetic).
        if not -(2**63) <= zp < 2**63:
            msg = f"zero_point ({zp}) does not fit int64 (torch cannot convert it either)"
            raise ValueError(msg)
        if not has_dtype(xp, device, "int64"):
            msg = (
                f"zero_point ({zp}) needs int64, which this backend lacks here "
                "(JAX: enable jax_enable_x64)"
            )
            raise ValueError(msg)
        return xp.asarray(zp, dtype=xp.int64, device=device)
    if isinstance(zero_point, numbers.Number):
        msg = f"zero_point must be an int or an array, got {zero_point!r}"
        raise TypeError(msg)
    _same_namespace(zero_point, xp, "zero_point")
    _one_element(zero_point, "zero_point")
    if not xp.isdtype(zero_point.dtype, ("integral", "real floating")):
        msg = f"zero_point must be an integer or float array, got {zero_point.dtype}"
        raise TypeError(msg)
    return xp.reshape(xp.astype(zero_point, xp.int32), ())


# -- the observers' batches and layout (shared by the classes and the functional core) --
def require_size(n: int | None) -> int:
    """``n``, the number of elements of a batch; a Dask array of unknown size raises."""
    if n is None:
        msg = (
            "cannot observe an array of unknown size (a Dask array with unknown "
            "chunk sizes); call x.compute_chunk_sizes() first"
        )
        raise ValueError(msg)
    return n


def channel_axis(ch_axis: int, ndim: int) -> int:
    """``ch_axis`` as a non-negative axis of an array of rank ``ndim`` (negative as torch)."""
    if not -ndim <= ch_axis < ndim:
        msg = f"ch_axis {ch_axis} is out of range for an input of rank {ndim}"
        raise ValueError(msg)
    return ch_axis % ndim


def checked_bins(value: Any) -> int:
    """``value`` as a bin count: a positive int (bool refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        msg = f"bins must be a positive int, got {value!r}"
        raise ValueError(msg)
    return int(value)


def channel_axis_checked(axis: Any, ndim: int) -> int:
    """``axis`` as torch's fake-quantize per channel takes it: 0 <= axis < ndim."""
    value = integer(axis, "axis")
    if not 0 <= value < ndim:
        msg = f"axis ({value}) must be in [0, {ndim}): torch takes no negative axis here"
        raise ValueError(msg)
    return value


def channel_qparams(
    x: Any, scale: Any, zero_point: Any, axis: int, xp: ModuleType
) -> tuple[Any, Any]:
    """Per-channel qparams checked as ``torch.fake_quantize_per_channel_affine``
    checks them: a 1-d float32 scale, a 1-d int32, float32 or float16 zero point
    of the same length, as long as the input's ``axis``."""
    _same_namespace(scale, xp, "scale")
    _same_namespace(zero_point, xp, "zero_point")
    if scale.dtype != xp.float32:
        msg = f"scale must be float32, found {scale.dtype} (torch refuses it too)"
        raise TypeError(msg)
    if dtype_name(zero_point.dtype) not in ("int32", "float32", "float16"):
        msg = f"zero_point must be int32, float32 or float16, found {zero_point.dtype} (as torch)"
        raise TypeError(msg)
    if scale.ndim != 1 or zero_point.ndim != 1:
        msg = "scale and zero_point must be 1-d arrays"
        raise ValueError(msg)
    if scale.shape != zero_point.shape or scale.shape[0] != x.shape[axis]:
        msg = (
            f"scale {tuple(scale.shape)} and zero_point {tuple(zero_point.shape)} must both have "
            f"the input's length along axis {axis} ({x.shape[axis]})"
        )
        raise ValueError(msg)
    if x.shape[axis] == 0:
        # torch's range check of the zero points reduces them: an empty one raises.
        msg = f"the input has no channels along axis {axis} (torch raises for zero channels)"
        raise ValueError(msg)
    return scale, zero_point


def check_channel_zero_points(
    zero_point: Any, quant_min: int, quant_max: int, xp: ModuleType
) -> None:
    """ValueError if an integer per-channel zero point lies outside ``[quant_min,
    quant_max]``, as torch checks it (for host arrays only: elsewhere the check
    would read the zero points back from the device)."""
    if xp.isdtype(zero_point.dtype, "real floating"):
        return  # torch checks only integer zero points
    lo, hi = int(xp.min(zero_point)), int(xp.max(zero_point))
    if lo < quant_min or hi > quant_max:
        msg = (
            f"zero_point must be between quant_min ({quant_min}) and quant_max ({quant_max}), "
            f"got values in [{lo}, {hi}]"
        )
        raise ValueError(msg)


def int_dtype(dtype: Any, xp: ModuleType) -> tuple[str, Any]:
    """The ``(name, backend dtype)`` of uint8, int8, int16 or int32, from a name
    or any library's dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in INT_RANGES:
        msg = f"dtype must be one of {tuple(INT_RANGES)}, got {dtype!r}"
        raise ValueError(msg)
    return name, getattr(xp, name)


def check_bounds(quant_min: int, quant_max: int, name: str) -> None:
    """torch's ``_quant_min_max_bounds_check``: the range within the dtype's."""
    lo, hi = INT_RANGES[name]
    if quant_min < lo:
        msg = (
            f"quant_min out of bounds for dtype, quant_min_lower_bound: {lo} quant_min: {quant_min}"
        )
        raise ValueError(msg)
    if quant_max > hi:
        msg = (
            f"quant_max out of bounds for dtype, quant_max_upper_bound: {hi} quant_max: {quant_max}"
        )
        raise ValueError(msg)


def float_dtype(dtype: Any, xp: ModuleType) -> Any:
    """An output float dtype from a name or a backend dtype."""
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in FLOAT_NAMES or not hasattr(xp, name):
        msg = f"out_dtype must be a float dtype this backend has, got {dtype!r}"
        raise TypeError(msg)
    return getattr(xp, name)


# -- torchao's affine API (torchao's checks) ----------------------------------------
def mapping_type(value: Any) -> MappingType:
    """A MappingType from ours, torchao's member or a name."""
    name = value if isinstance(value, str) else getattr(value, "name", None)
    try:
        return MappingType[str(name)]
    except KeyError:
        allowed = ", ".join(m.name for m in MappingType)
        msg = f"mapping_type must be one of {allowed}, got {value!r}"
        raise ValueError(msg) from None


def zero_point_domain(value: Any) -> ZeroPointDomain:
    """A ZeroPointDomain from ours, torchao's member or a name (None refused, as torchao)."""
    if value is None:
        msg = "zero_point_domain None: use ZeroPointDomain.NONE instead of None"
        raise ValueError(msg)
    name = value if isinstance(value, str) else getattr(value, "name", None)
    try:
        return ZeroPointDomain[str(name)]
    except KeyError:
        allowed = ", ".join(m.name for m in ZeroPointDomain)
        msg = f"zero_point_domain must be one of {allowed}, got {value!r}"
        raise ValueError(msg) from None


def target(dtype: Any, quant_min: Any = None, quant_max: Any = None) -> Target:
    """torchao's ``_get_and_check_qmin_qmax``: the dtype's range unless given,
    a given bound within it. Sub-byte integers are held in int8/uint8."""
    name = name_of(dtype, "target dtype")
    if name in FLOAT8_MAX:
        lo, hi, storage = -FLOAT8_MAX[name], FLOAT8_MAX[name], name
    elif name in INT_BOUNDS:
        lo, hi = INT_BOUNDS[name]
        storage = name if name in ("uint8", "int8", "int16", "int32") else name[:-1] + "8"
    else:
        allowed = ", ".join((*INT_BOUNDS, *FLOAT8_MAX))
        msg = f"unsupported target dtype {dtype!r}; allowed: {allowed}"
        raise ValueError(msg)
    for value, what in ((quant_min, "quant_min"), (quant_max, "quant_max")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            msg = f"{what} must be a number or None, got {value!r}"
            raise TypeError(msg)
    qmin = lo if quant_min is None else quant_min
    qmax = hi if quant_max is None else quant_max
    if qmin < lo:
        msg = f"quant_min out of bound for dtype {name}, lower bound {lo}, quant_min {qmin}"
        raise ValueError(msg)
    if qmax > hi:
        msg = f"quant_max out of bound for dtype {name}, upper bound {hi}, quant_max {qmax}"
        raise ValueError(msg)
    return Target(name, storage, qmin, qmax)


_FLOAT_MAX = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
}


def check_bound(value: float, dtype: str, what: str) -> None:
    """ValueError where torch's ``clamp`` refuses a Python bound for a ``dtype``
    tensor: finite and beyond its largest value (c10's checked conversion;
    torch raises RuntimeError)."""
    if math.isfinite(value) and abs(value) > _FLOAT_MAX[dtype]:
        msg = (
            f"{what} ({value}) cannot be converted to {dtype} without overflow "
            f"(torchao clamps in {dtype}; torch raises RuntimeError)"
        )
        raise ValueError(msg)


ZERO_POINT_NAMES = (*INT_RANGES, "int64", *FLOAT_NAMES)


def _optional_dtype_name(value: Any, what: str, allowed: tuple[str, ...]) -> str | None:
    """None, or ``value``'s dtype name if it is one of ``allowed`` (ValueError otherwise)."""
    if value is None:
        return None
    name = name_of(value, what)
    if name not in allowed:
        msg = f"{what} must be one of {allowed} or None, got {value!r}"
        raise ValueError(msg)
    return name


def scale_dtype_name(value: Any) -> str | None:
    """None, or float16/bfloat16/float32/float64 as a name (ValueError otherwise)."""
    return _optional_dtype_name(value, "scale_dtype", FLOAT_NAMES)


def zero_point_dtype_name(value: Any) -> str | None:
    """None, or an integer or float dtype name a zero point can have."""
    return _optional_dtype_name(value, "zero_point_dtype", ZERO_POINT_NAMES)


def eps_value(value: Any) -> float | None:
    """None, or a real number that is not NaN."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        msg = f"eps must be a real number (not NaN) or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


def array_namespace(x: Any, what: str) -> ModuleType:
    """``x``'s namespace; TypeError if it is not an array (traceable by torch.compile)."""
    try:
        return namespace_of(x)
    except TypeError:
        msg = f"{what} must be an array, got {type(x).__name__}"
        raise TypeError(msg) from None


def switch(flag: Any, what: str, xp: ModuleType) -> Any:
    """A Python bool, or a one-element array of ``xp`` as a 0-d boolean array."""
    if isinstance(flag, numbers.Integral):
        return bool(flag)
    if array_namespace(flag, what) is not xp:
        msg = f"{what} must be a Python int or bool or an array of the input's library"
        raise TypeError(msg)
    if size(flag) != 1:
        msg = f"{what} must have one element, got shape {tuple(flag.shape)}"
        raise ValueError(msg)
    return xp.reshape(flag, ()) != 0


def fused_state(state: tuple[Any, Any, Any, Any], channels: int, xp: ModuleType) -> None:
    """TypeError/ValueError unless the four state arrays are ``xp``'s arrays with
    torch's dtypes (float32, float32, float32, int32 or float32) and ``channels``
    elements each."""
    names = ("running_min", "running_max", "scale", "zero_point")
    for name, a in zip(names, state, strict=True):
        if array_namespace(a, name) is not xp:
            msg = f"{name} must be an array of the input's library ({xp.__name__})"
            raise TypeError(msg)
        allowed = ("int32", "float32") if name == "zero_point" else ("float32",)
        if dtype_name(a.dtype) not in allowed:
            msg = f"{name} must be {' or '.join(allowed)}, got {a.dtype}"
            raise TypeError(msg)
        if size(a) != channels:
            msg = f"{name} has {size(a)} elements; the input needs {channels}"
            raise ValueError(msg)
