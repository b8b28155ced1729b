"""Quantization configuration: dtype, qscheme and range, validated once.

Pure Python: nothing here touches an array library. The rules are those of
``UniformQuantizationObserverBase.__init__`` and ``calculate_qmin_qmax`` in
torch 2.13.0 (``torch/ao/quantization/observer.py`` and ``utils.py``), with
Python exceptions instead of torch's ``AssertionError``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any

import numpy as np

__all__ = ["FLOAT32_EPS", "QuantConfig", "quant_config"]

# torch.finfo(torch.float32).eps, the reference's default eps.
FLOAT32_EPS = 2.0**-23

DTYPES = (
    "qint8",
    "quint8",
    "quint4x2",
    "qint32",
    "int8",
    "uint8",
    "int16",
    "int32",
    "float8_e5m2",
    "float8_e4m3fn",
    "uint16",
)
PER_TENSOR_QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric")
PER_CHANNEL_QSCHEMES = (
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
)
QSCHEMES = PER_TENSOR_QSCHEMES + PER_CHANNEL_QSCHEMES

_SYMMETRIC = ("per_tensor_symmetric", "per_channel_symmetric")
_INT8 = ("qint8", "int8")
_UINT8 = ("quint8", "uint8")
_INT32 = ("qint32", "int32")
_INT32_RANGE = (-(2**31), 2**31 - 1)


def _torch_name(obj: object) -> str | None:
    """``"quint8"`` for ``torch.quint8`` (and qscheme objects), without importing torch."""
    if type(obj).__module__ == "torch":
        text = str(obj)
        if text.startswith("torch."):
            return text[len("torch.") :]
    return None


def _name(value: object, allowed: tuple[str, ...], what: str) -> str:
    name = value if isinstance(value, str) else _torch_name(value)
    if name is None:
        msg = f"{what} must be a name or a torch object, one of {allowed}; got {value!r}"
        raise TypeError(msg)
    if name not in allowed:
        msg = f"{what} {value!r} is not supported; use one of {allowed}"
        raise ValueError(msg)
    return name


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int, got {value!r}"
        raise TypeError(msg)
    return int(value)


def boolean(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{what} must be a bool, got {value!r}"
        raise TypeError(msg)
    return value


def real_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{what} must be a real number, got {value!r}"
        raise TypeError(msg)
    return float(value)


def to_float32(value: float) -> float:
    """Round a Python float to the nearest float32, as ``torch.tensor([v])`` does."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """A validated quantization configuration.

    Build it with :func:`quant_config`; the fields are the reference's
    attributes after construction (``quant_min``/``quant_max`` are the
    effective range, after defaults and ``reduce_range``).
    """

    dtype: str
    qscheme: str
    reduce_range: bool
    quant_min: int
    quant_max: int
    has_customized_qrange: bool
    eps: float
    #: Whether every zero point of this configuration fits int32 (computed once:
    #: qparams ask on every call, under torch.compile too).
    zero_point_fits_int32: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zero_point_fits_int32", self._fits_int32())

    @property
    def float_qparams(self) -> bool:
        """per_channel_affine_float_qparams: a float zero point, ``-min / scale``."""
        return self.qscheme == "per_channel_affine_float_qparams"

    @property
    def symmetric(self) -> bool:
        return self.qscheme in _SYMMETRIC

    def symmetric_zero_point(self) -> int:
        """The constant zero point of the symmetric schemes, as the reference picks it."""
        if self.dtype in _UINT8:
            if self.has_customized_qrange:
                return (self.quant_min + self.quant_max) // 2
            return 128
        if self.dtype == "uint16":
            return 2**15
        return 0

    def with_eps(self, eps: float) -> QuantConfig:
        return dataclasses.replace(self, eps=to_float32(eps))

    def _fits_int32(self) -> bool:
        if self.float_qparams:
            return True
        if self.symmetric:
            return _INT32_RANGE[0] <= self.symmetric_zero_point() <= _INT32_RANGE[1]
        return _INT32_RANGE[0] <= self.quant_min and self.quant_max <= _INT32_RANGE[1]

    def check_zero_point(self, *, int64: bool) -> None:
        """Raise ValueError where the zero point cannot be held: an affine range
        beyond int32 (torch.ao raises RuntimeError in ``calculate_qparams``: its
        zero point is int32), or a symmetric zero point beyond int32 on a backend
        without int64 (JAX without x64)."""
        if self.zero_point_fits_int32 or (self.symmetric and int64):
            return
        if self.symmetric:
            msg = (
                f"the symmetric zero point {self.symmetric_zero_point()} of range "
                f"({self.quant_min}, {self.quant_max}) does not fit int32, the widest "
                "integer this backend has"
            )
        else:
            msg = (
                f"quantization range ({self.quant_min}, {self.quant_max}) does not fit "
                "int32, the dtype of the affine zero point (torch.ao raises here too)"
            )
        raise ValueError(msg)


def _qmin_qmax(
    dtype: str, quant_min: int | None, quant_max: int | None, reduce_range: bool
) -> tuple[int, int, bool]:
    if quant_min is not None and quant_max is not None:
        if not quant_min <= 0 <= quant_max:
            msg = f"quantization range ({quant_min}, {quant_max}) must include 0"
            raise ValueError(msg)
        if quant_min >= quant_max:
            msg = f"quant_min ({quant_min}) must be less than quant_max ({quant_max})"
            raise ValueError(msg)
        length = quant_max - quant_min + 1
        limit = 256 if dtype in _INT8 else 2**32 if dtype in _INT32 else None
        if limit is not None and length > limit:
            msg = (
                f"quantization range ({quant_min}, {quant_max}) has {length} values; "
                f"dtype {dtype} allows at most {limit}"
            )
            raise ValueError(msg)
        if reduce_range:
            return quant_min // 2, quant_max // 2, True
        return quant_min, quant_max, True
    if dtype in _INT8:
        qmin, qmax = (-64, 63) if reduce_range else (-128, 127)
    elif dtype in _UINT8:
        qmin, qmax = (0, 127) if reduce_range else (0, 255)
    elif dtype in _INT32:
        qmin, qmax = -(2**31), 2**31 - 1
    elif dtype == "uint16":
        qmin, qmax = 0, 2**16 - 1
    elif dtype == "int16":
        qmin, qmax = -(2**15), 2**15 - 1
    else:
        # quint4x2 and both float8 dtypes: (0, 15) in the reference (an accident
        # upstream for float8, but it is what torch 2.13.0 computes).
        qmin, qmax = 0, 15
    return qmin, qmax, False


def quant_config(
    dtype: Any = "quint8",
    qscheme: Any = "per_tensor_affine",
    reduce_range: bool = False,
    quant_min: int | None = None,
    quant_max: int | None = None,
    eps: float = FLOAT32_EPS,
    *,
    per_tensor: bool = True,
    per_channel: bool = False,
    histogram: bool = False,
    stacklevel: int = 2,
) -> QuantConfig:
    """Validate observer options and compute the effective quantization range.

    Parameters
    ----------
    dtype, qscheme
        A name (``"quint8"``, ``"per_tensor_symmetric"``) or the torch object.
    reduce_range
        Halve the range (deprecated upstream; emits a ``UserWarning`` as torch does).
    quant_min, quant_max
        A customized range, used only when both are given (one alone is
        ignored, as in the reference).
    eps
        Lower bound of the scale, rounded to float32.
    per_tensor
        Refuse per-channel schemes with ``NotImplementedError``, as the
        per-tensor observers of the reference do.
    per_channel
        Refuse per-tensor schemes with ``NotImplementedError``, as the
        per-channel observers do (pass ``per_tensor=False`` with it).
    histogram
        HistogramObserver's rules: it accepts a symmetric qscheme with
        ``reduce_range`` and quint8, which torch's MinMax observers refuse
        (NotImplementedError).

    Returns
    -------
    QuantConfig

    Examples
    --------
    >>> from arrayobs.functional import quant_config
    >>> cfg = quant_config("qint8", "per_tensor_symmetric", quant_min=-8, quant_max=7)
    >>> (cfg.quant_min, cfg.quant_max, cfg.symmetric_zero_point())
    (-8, 7, 0)
    """
    name = qscheme if isinstance(qscheme, str) else _torch_name(qscheme)
    if per_tensor and name in PER_CHANNEL_QSCHEMES:
        msg = f"qscheme {name!r} is per-channel; this observer supports only {PER_TENSOR_QSCHEMES}"
        raise NotImplementedError(msg)
    if per_channel and name in PER_TENSOR_QSCHEMES:
        msg = f"qscheme {name!r} is per-tensor; this observer supports only {PER_CHANNEL_QSCHEMES}"
        raise NotImplementedError(msg)
    if boolean(reduce_range, "reduce_range"):
        warnings.warn(
            "reduce_range is deprecated in PyTorch; use quant_min and quant_max "
            "to specify the range",
            UserWarning,
            stacklevel=stacklevel,
        )
    eps32 = to_float32(real_number(eps, "eps"))
    qscheme_name = _name(qscheme, QSCHEMES, "qscheme")
    dtype_name = _name(dtype, DTYPES, "dtype")
    qmin_in = None if quant_min is None else _int(quant_min, "quant_min")
    qmax_in = None if quant_max is None else _int(quant_max, "quant_max")
    qmin, qmax, customized = _qmin_qmax(dtype_name, qmin_in, qmax_in, reduce_range)
    if not histogram and qscheme_name in _SYMMETRIC and reduce_range and dtype_name == "quint8":
        msg = f"reduce_range is not supported for {qscheme_name} with dtype quint8"
        raise NotImplementedError(msg)
    if math.isnan(eps32):
        msg = f"eps must not be NaN, got {eps!r}"
        raise ValueError(msg)
    return QuantConfig(
        dtype=dtype_name,
        qscheme=qscheme_name,
        reduce_range=reduce_range,
        quant_min=qmin,
        quant_max=qmax,
        has_customized_qrange=customized,
        eps=eps32,
    )
