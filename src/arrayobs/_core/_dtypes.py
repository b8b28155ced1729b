"""Dtype names and ranges: the one list of float dtypes, the one table of integer
ranges, and a dtype's name from any library's dtype object."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: The float dtypes arrayobs observes and quantizes (the one list).
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")

#: The integer dtypes torch's kernels quantize to, with their ranges (the one table).
INT_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
}

#: torchao's quantized dtypes: the integers above and the sub-byte ones.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    **INT_RANGES,
    **{f"uint{b}": (0, 2**b - 1) for b in range(1, 8)},
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in range(1, 8)},
}

SMALLEST_NORMAL = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
}

FLOAT8_MAX = {
    "float8_e4m3fn": 448.0,
    "float8_e5m2": 57344.0,
    "float8_e4m3fnuz": 240.0,
    "float8_e5m2fnuz": 57344.0,
}


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for any library's float32 dtype (``torch.float32``,
    ``array_api_strict.float32``, ``dtype('float32')``, ...)."""
    text = str(dtype)
    if "'" in text:
        text = text.split("'")[1]
    return text.rsplit(".", 1)[-1]


def name_of(dtype: Any, what: str = "dtype") -> str:
    """A dtype's name (``"int8"``) from a name or any library's dtype object."""
    if isinstance(dtype, str):
        return dtype
    if dtype is None:
        msg = f"{what} must be a dtype or a dtype name, got None"
        raise TypeError(msg)
    return dtype_name(dtype)


def backend_dtype(name: str, xp: ModuleType, what: str = "dtype") -> Any:
    """The dtype ``name`` of namespace ``xp``; bfloat16 and float8 on a NumPy-based
    namespace from ml_dtypes, when the namespace takes it."""
    found = getattr(xp, name, None)
    if found is not None:
        return found
    try:
        import numpy as np

        module = np if name == "float16" else importlib.import_module("ml_dtypes")
        candidate = getattr(module, name)
        xp.astype(xp.zeros((1,), dtype=xp.float32), candidate)
    except Exception:  # no ml_dtypes, no such dtype, or a namespace refusing it
        msg = f"{what} {name} is not available in {xp.__name__}"
        raise TypeError(msg) from None
    return candidate


def float_name(dtype: Any, what: str) -> str:
    name = dtype_name(dtype)
    if name not in FLOAT_NAMES:
        msg = f"{what} must be float16, bfloat16, float32 or float64, got {dtype}"
        raise TypeError(msg)
    return name
