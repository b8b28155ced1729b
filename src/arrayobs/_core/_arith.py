"""torch's float arithmetic on any namespace: op math (float16 and bfloat16
computed in float32, rounded after every operation), type promotion between
float dtypes, and ``tensor.to`` with x86's float-to-integer cast."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from arrayobs._core._dtypes import INT_RANGES, backend_dtype
from arrayobs._core._fakequant import _to_int


class Arith:
    """Values of dtype ``name`` held in its op-math dtype (float32; float64 for
    float64), each operation rounded back to ``name`` as ATen's kernels do."""

    def __init__(self, name: str, xp: ModuleType) -> None:
        self.xp = xp
        self.name = name
        self.dtype = backend_dtype(name, xp)
        self.work = xp.float64 if name == "float64" else xp.float32
        self.reduced = name in ("float16", "bfloat16")

    def load(self, v: Any) -> Any:
        """An array of this dtype (or any other) in op math."""
        return v if v.dtype == self.work else self.xp.astype(v, self.work)

    def round(self, v: Any) -> Any:
        """An op-math result rounded to this dtype (and held in op math)."""
        if not self.reduced:
            return v
        return self.xp.astype(self.xp.astype(v, self.dtype), self.work)

    def store(self, v: Any) -> Any:
        if v.dtype == self.dtype:
            return v
        return self.xp.astype(_narrow_double(v, self.name, self.xp), self.dtype)

    def scalar(self, value: float) -> float:
        """A Python number as ATen converts it to this dtype (through float32)."""
        import numpy as np

        if self.name == "float64":
            return float(value)
        f = np.float32(value)
        if not self.reduced:
            return float(f)
        ml_dtypes = importlib.import_module("ml_dtypes")
        narrow = np.float16 if self.name == "float16" else ml_dtypes.bfloat16
        return float(np.asarray(f).astype(narrow))

    def full(self, like: Any, value: float) -> Any:
        return self.xp.full_like(like, self.scalar(value))


def promote(a: str, b: str) -> str:
    """torch's promotion of two float dtypes (float16 with bfloat16 gives float32)."""
    if a == b:
        return a
    if "float64" in (a, b):
        return "float64"
    return "float32"


def _to_int64(v: Any, xp: ModuleType) -> Any:
    """x86's float-to-int64 cast (``cvttsd2si``) of integral float values: NaN
    and out-of-range values become ``-2**63``."""
    ok = (v >= -(2.0**63)) & (v < 2.0**63)
    out = xp.astype(xp.where(ok, v, xp.zeros_like(v)), xp.int64)
    return xp.where(ok, out, xp.full_like(out, -(2**63)))


def _narrow_double(v: Any, name: str, xp: ModuleType) -> Any:
    """``v`` ready for a cast to ``name``: a float64 bound for float16 or bfloat16
    goes through float32 first, as c10's Half and BFloat16 are built from a float
    (two roundings; NumPy and XLA round once)."""
    if name in ("float16", "bfloat16") and v.dtype == xp.float64:
        return xp.astype(v, xp.float32)
    return v


def cast(v: Any, name: str, xp: ModuleType) -> Any:
    """``tensor.to(name)`` of a float array: x86's float-to-int rule for integers."""
    if name == "int64":
        return _to_int64(v, xp)
    if name in INT_RANGES:
        return _to_int(v, name, xp)
    return xp.astype(_narrow_double(v, name, xp), backend_dtype(name, xp))
