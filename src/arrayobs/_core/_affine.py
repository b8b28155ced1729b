"""torchao 0.18.0's affine quantization primitives, generically.

``choose_qparams_affine``, ``quantize_affine``, ``dequantize_affine`` and the
float8 scale choices of ``torchao.quantization.quant_primitives``, with
torch's arithmetic: every float16/bfloat16 operation computed in float32 and
rounded back (ATen's op math), a Python scalar rounded to float32 where ATen
takes it as op math, and to the tensor's dtype where ATen converts it
(``clamp``'s bounds, ``full_like``), torch's type promotion between the input's
and the scale's dtypes, and x86's float-to-integer cast.

Nothing reads a value back: the functions run under ``jax.jit`` and lazily on
Dask. Block sizes, dtypes and ranges are Python values, checked here.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import math
import numbers
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._core._fakequant import _to_int, dtype_name

__all__ = [
    "FLOAT8_MAX",
    "FLOAT_NAMES",
    "INT_BOUNDS",
    "Arith",
    "Granularity",
    "MappingType",
    "PerAxis",
    "PerBlock",
    "PerGroup",
    "PerRow",
    "PerTensor",
    "PerToken",
    "Target",
    "ZeroPointDomain",
    "backend_dtype",
    "block_minmax",
    "blocks",
    "boolean",
    "cast",
    "choose_from_minmax",
    "choose_qparams",
    "choose_scale_float8",
    "dequantize",
    "dequantize_float8",
    "dtype_name",
    "eps_value",
    "exp2_integer",
    "finish",
    "float_name",
    "get_block_size",
    "granularity",
    "mapping_type",
    "name_of",
    "promote",
    "qparams_from_minmax",
    "quantize",
    "quantize_float8",
    "reduced_shape",
    "reduction_params",
    "scale_dtype_name",
    "target",
    "zero_point_domain",
    "zero_point_dtype_name",
]
from arrayobs._core._minmax import first_max, first_min, quiet
from arrayobs._core._qparams import _divisor


class MappingType(enum.Enum):
    """How the float range maps to the integer range (torchao's enum)."""

    SYMMETRIC = enum.auto()
    SYMMETRIC_NO_CLIPPING_ERR = enum.auto()
    ASYMMETRIC = enum.auto()


class ZeroPointDomain(enum.Enum):
    """Where the zero point lives (torchao's enum; only INT and NONE act here)."""

    INT = enum.auto()
    FLOAT = enum.auto()
    NONE = enum.auto()


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


# -- granularities ---------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Granularity:
    """What shares one scale and zero point (torchao's ``Granularity``)."""


@dataclasses.dataclass(frozen=True)
class PerTensor(Granularity):
    """One block: the whole array."""


@dataclasses.dataclass(frozen=True)
class PerAxis(Granularity):
    """One block per index along ``axis`` (the other axes reduced)."""

    axis: int


@dataclasses.dataclass(frozen=True)
class PerGroup(Granularity):
    """Blocks of ``group_size`` consecutive elements of the last axis."""

    group_size: int


@dataclasses.dataclass(frozen=True)
class PerRow(Granularity):
    """One block per index of every axis but ``dim``, which is reduced."""

    dim: int = -1


@dataclasses.dataclass(frozen=True)
class PerToken(Granularity):
    """One block per token: the last axis reduced, every other kept."""


@dataclasses.dataclass(frozen=True)
class PerBlock(Granularity):
    """Blocks of ``block_size`` over the trailing axes (padded with 1s in front)."""

    block_size: tuple[int, ...]


_GRANULARITIES: dict[str, type[Granularity]] = {
    cls.__name__: cls for cls in (PerTensor, PerAxis, PerGroup, PerRow, PerToken, PerBlock)
}


def granularity(value: Any) -> Granularity:
    """Ours, or torchao's granularity object converted by its class name and fields."""
    if isinstance(value, Granularity):
        return value
    cls = _GRANULARITIES.get(type(value).__name__)
    if cls is None or not dataclasses.is_dataclass(value):
        allowed = ", ".join(_GRANULARITIES)
        msg = f"granularity must be one of {allowed}, got {value!r}"
        raise TypeError(msg)
    fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return cls(**fields)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int, got {value!r}"
        raise TypeError(msg)
    return int(value)


def _axis(axis: Any, ndim: int, what: str) -> int:
    index = _int(axis, what)
    if not -ndim <= index < ndim:
        msg = f"{what} {index} is out of range for an input of rank {ndim}"
        raise ValueError(msg)
    return index % ndim


def get_block_size(shape: Sequence[int], gran: Any) -> tuple[int, ...]:
    """torchao's ``get_block_size``: the block shape ``gran`` gives an input of ``shape``.

    Refused with ValueError where torchao fails (an AssertionError or an
    IndexError there): a PerGroup whose group size does not divide the last
    axis, a PerBlock longer than the shape or not dividing it, an axis out of
    range, a 0-d shape for the per-row, per-token and per-group kinds.
    """
    shape = tuple(int(n) for n in shape)
    g = granularity(gran)
    ndim = len(shape)
    if isinstance(g, PerTensor):
        return shape
    if isinstance(g, PerAxis):
        axis_block = list(shape)
        axis_block[_axis(g.axis, ndim, "PerAxis axis")] = 1
        return tuple(axis_block)
    if isinstance(g, PerBlock):
        given = tuple(_int(b, "PerBlock block_size entry") for b in g.block_size)
        if len(given) > ndim:
            msg = f"Block size {given} must have the same number of dimensions as input {shape}"
            raise ValueError(msg)
        padded = (1,) * (ndim - len(given)) + given
        if any(b < 1 for b in padded) or any(n % b for n, b in zip(shape, padded, strict=True)):
            msg = f"Not all sizes of input shape {shape} are divisible by block size {padded}"
            raise ValueError(msg)
        return padded
    if ndim == 0:
        msg = f"{type(g).__name__} needs an input with at least one axis, got shape ()"
        raise ValueError(msg)
    if isinstance(g, PerToken):
        return (1,) * (ndim - 1) + (shape[-1],)
    if isinstance(g, PerRow):
        block = [1] * ndim
        dim = _axis(g.dim, ndim, "PerRow dim")
        block[dim] = shape[dim]
        return tuple(block)
    assert isinstance(g, PerGroup)
    size = _int(g.group_size, "PerGroup group_size")
    if size < 1 or shape[-1] % size:
        msg = f"Last dimension of input {shape[-1]} is not divisible by group size {size}"
        raise ValueError(msg)
    return (1,) * (ndim - 1) + (size,)


def reduction_params(
    block_size: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """torchao's ``_get_reduction_params``: the shape to view the input as, and
    the axes of that view to reduce. ValueError where torchao asserts, and for a
    block size below 1 (which torchao takes as a whole axis)."""
    block = tuple(_int(b, "block_size entry") for b in block_size)
    shape = tuple(int(n) for n in shape)
    if len(block) != len(shape):
        msg = f"block_size {block} must have one entry per axis of the input (shape {shape})"
        raise ValueError(msg)
    view: list[int] = []
    axes: list[int] = []
    for n, b in zip(shape, block, strict=True):
        if b < 1:
            msg = f"block_size entries must be at least 1, got {block}"
            raise ValueError(msg)
        if b not in (n, 1):
            if n % b:
                msg = f"input size {n} is not divisible by block size {b} (block_size {block})"
                raise ValueError(msg)
            view += [n // b, b]
            axes.append(len(view) - 1)
        else:
            view.append(n)
            if b != 1:
                axes.append(len(view) - 1)
    return tuple(view), tuple(axes)


def reduced_shape(view: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The view's shape with the reduced axes kept as 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(view))


# -- dtypes ----------------------------------------------------------------------
FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")
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
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    **{f"uint{b}": (0, 2**b - 1) for b in range(1, 8)},
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in range(1, 8)},
}


def name_of(dtype: Any, what: str = "dtype") -> str:
    """A dtype's name (``"int8"``) from a name or any library's dtype object."""
    if isinstance(dtype, str):
        return dtype
    if dtype is None:
        msg = f"{what} must be a dtype or a dtype name, got None"
        raise TypeError(msg)
    return dtype_name(dtype)


@dataclasses.dataclass(frozen=True)
class Target:
    """A quantized dtype: its name, the dtype that holds it, its range."""

    name: str
    storage: str
    quant_min: Any
    quant_max: Any

    @property
    def is_float8(self) -> bool:
        return self.name in FLOAT8_MAX


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


# -- torch's arithmetic ---------------------------------------------------------------
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
        return v if v.dtype == self.dtype else self.xp.astype(v, self.dtype)

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


def cast(v: Any, name: str, xp: ModuleType) -> Any:
    """``tensor.to(name)`` of a float array: x86's float-to-int rule for integers."""
    if name in ("uint8", "int8", "int16", "int32"):
        return _to_int(v, name, xp)
    return xp.astype(v, backend_dtype(name, xp))


@quiet
def qparams_from_minmax(
    mn: Any,
    mx: Any,
    mapping: MappingType,
    tgt: Target,
    eps: float | None,
    *,
    xp: ModuleType,
) -> tuple[Any, Any, str]:
    """Scale and zero point of (min, max) arrays of one float dtype, before the
    casts to scale_dtype and zero_point_dtype: both in that dtype (its name is
    returned third), computed as torchao's ``_choose_qparams_affine``."""
    a = Arith(float_name(mn.dtype, "min_val"), xp)
    eps = SMALLEST_NORMAL[a.name] if eps is None else float(eps)
    mn, mx = a.load(mn), a.load(mx)
    zero = xp.zeros_like(mn)
    min_neg = first_min(mn, zero, xp)
    max_pos = first_max(mx, zero, xp)
    qmin, qmax = tgt.quant_min, tgt.quant_max
    if mapping is MappingType.ASYMMETRIC and a.name == "float16" and max(-qmin, qmax) > 65504:
        # torchao's ``quant_min - round(...)`` and clamp take the bounds as float16
        # scalars and refuse them ("value cannot be converted to type c10::Half").
        msg = (
            f"an ASYMMETRIC range ({qmin}, {qmax}) does not fit float16, the dtype of the "
            "min and max (torchao refuses it too)"
        )
        raise ValueError(msg)
    if mapping is MappingType.ASYMMETRIC:
        span = a.round(max_pos - min_neg)
        scale = a.round(span / _divisor(float(qmax - qmin), mn, xp))
        scale = first_max(scale, a.full(scale, eps), xp)
        r = xp.round(a.round(min_neg / scale))
        zp = a.round(a.full(r, qmin) - r)
        lo, hi = a.full(zp, qmin), a.full(zp, qmax)
        zp = xp.where(xp.isnan(zp), zp, xp.clip(zp, lo, hi))
    else:
        if mapping is MappingType.SYMMETRIC:
            max_pos = first_max(-min_neg, max_pos, xp)
            scale = a.round(max_pos / _divisor(float(qmax - qmin) / 2, mn, xp))
        else:
            smin = a.round(min_neg / _divisor(float(qmin), mn, xp))
            # The divisor's NaN follows its own operand: a NaN min must not make smax
            # NaN (torchao's where(smin > smax, smin, smax) then picks smax).
            smax = a.round(max_pos / _divisor(float(qmax), mx, xp))
            scale = xp.where(smin > smax, smin, smax)
        zp = a.full(scale, int((qmax + qmin + 1) / 2))
        scale = first_max(scale, a.full(scale, eps), xp)
    return a.store(scale), a.store(zp), a.name


def _with_nan(res: Any, v: Any, axis: Any, keepdim: bool, xp: ModuleType) -> Any:
    """``res`` (a reduction of ``v``) NaN wherever its block holds a NaN."""
    nan = xp.any(xp.isnan(v), axis=axis, keepdims=keepdim)
    return xp.where(nan, xp.asarray(float("nan"), dtype=res.dtype), res)


@quiet
def block_minmax(
    x: Any, block_size: Sequence[int], keepdim: bool, *, xp: ModuleType, nan_safe: bool = False
) -> Any:
    """torchao's ``amin``/``amax`` over each block, in the input's dtype.

    ``nan_safe``: put back a NaN the library's reduction drops (XLA on the CPU
    drops one from a large block that also holds an infinity), one more pass."""
    view, axes = reduction_params(block_size, x.shape)
    for i in axes:
        if view[i] == 0:
            msg = f"cannot reduce an empty block (input shape {tuple(x.shape)}, block {block_size})"
            raise ValueError(msg)
    v = xp.reshape(x, view)
    # No axis to reduce (every block one element) reduces them all: torchao
    # passes dim=[] to torch.amin, which means every dimension.
    axis = axes or None
    lo, hi = xp.min(v, axis=axis, keepdims=keepdim), xp.max(v, axis=axis, keepdims=keepdim)
    if nan_safe:
        lo, hi = _with_nan(lo, v, axis, keepdim, xp), _with_nan(hi, v, axis, keepdim, xp)
    return lo, hi


def choose_qparams(
    x: Any,
    mapping: MappingType,
    block_size: Sequence[int],
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    keepdim: bool,
    *,
    xp: ModuleType,
    nan_safe: bool = False,
) -> tuple[Any, Any]:
    """torchao's ``choose_qparams_affine`` (arguments checked by the caller)."""
    float_name(x.dtype, "input")
    mn, mx = block_minmax(x, block_size, keepdim, xp=xp, nan_safe=nan_safe)
    return choose_from_minmax(
        mn,
        mx,
        tuple(x.shape),
        mapping,
        block_size,
        tgt,
        eps,
        scale_dtype,
        zero_point_dtype,
        keepdim,
        xp=xp,
    )


def choose_from_minmax(
    mn: Any,
    mx: Any,
    shape: tuple[int, ...],
    mapping: MappingType,
    block_size: Sequence[int],
    tgt: Target,
    eps: float | None,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    keepdim: bool,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """:func:`choose_qparams` after :func:`block_minmax` (``mn``, ``mx`` in the
    input's dtype, of the shape it returns; ``shape`` the input's)."""
    name = float_name(mn.dtype, "input")
    scale, zp, _ = qparams_from_minmax(mn, mx, mapping, tgt, eps, xp=xp)
    if keepdim:
        out = tuple(n // b for n, b in zip(shape, block_size, strict=True))
        scale, zp = xp.reshape(scale, out), xp.reshape(zp, out)
    return finish(scale, zp, name, mapping, scale_dtype, zero_point_dtype, xp=xp)


@quiet
def finish(
    scale: Any,
    zp: Any,
    name: str,
    mapping: MappingType,
    scale_dtype: str | None,
    zero_point_dtype: str | None,
    *,
    xp: ModuleType,
) -> tuple[Any, Any]:
    """The casts that end torchao's choose: scale to ``scale_dtype`` (default the
    min's dtype), zero point to ``zero_point_dtype`` (None: int32 for ASYMMETRIC,
    the min's float dtype for the symmetric mappings)."""
    scale = cast(scale, scale_dtype or name, xp)
    if zero_point_dtype is None and mapping is MappingType.ASYMMETRIC:
        zero_point_dtype = "int32"
    if zero_point_dtype is not None:
        zp = cast(zp, zero_point_dtype, xp)
    return scale, zp


@quiet
def moving_average(state: Any, batch: Any, c: float, *, xp: ModuleType) -> tuple[Any, Any]:
    """torchao pt2e's ``AffineQuantizedMovingAverageMinMaxObserver`` step: ``m + c *
    (cur - m)`` per block in the dtype of ``m`` promoted with ``cur``'s (float16 and
    bfloat16 computed in float32 and rounded after every operation, ``c`` taken in
    float32 op math, float64 in double), copied back into the state's dtype."""
    (m_lo, m_hi), (b_lo, b_hi) = state, batch
    keep = m_lo.dtype
    a = Arith(promote(dtype_name(keep), dtype_name(b_lo.dtype)), xp)
    cw = float(c) if a.name == "float64" else float(np.float32(c))

    def move(m: Any, cur: Any) -> Any:
        m, cur = a.load(m), a.load(cur)
        step = a.round(xp.full_like(m, cw) * a.round(cur - m))
        return xp.astype(a.round(m + step), keep)

    return move(m_lo, b_lo), move(m_hi, b_hi)


def blocks(v: Any, shape: tuple[int, ...], what: str, xp: ModuleType) -> Any:
    """``v`` (one value per block) viewed as ``shape``; ValueError if the sizes differ."""
    if math.prod(v.shape) != math.prod(shape):
        msg = f"{what} of shape {tuple(v.shape)} does not fit the blocks (shape {shape})"
        raise ValueError(msg)
    return xp.reshape(v, shape)


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


def quantize_dtype(x_dtype: Any, scale_dtype: Any, zero_point_dtype: Any) -> str:
    """The float dtype :func:`quantize` clamps in: ``x`` promoted with ``scale``,
    then with a float zero point."""
    name = promote(dtype_name(x_dtype), float_name(scale_dtype, "scale"))
    zname = dtype_name(zero_point_dtype)
    return promote(name, zname) if zname in FLOAT_NAMES else name


@quiet
def quantize(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    tgt: Target,
    *,
    xp: ModuleType,
) -> Any:
    """torchao's ``quantize_affine``: ``round(x * (1.0 / scale)) + zero_point``,
    clamped, cast to the target's storage dtype."""
    view, axes = reduction_params(block_size, x.shape)
    per_block = reduced_shape(view, axes)
    sname = float_name(scale.dtype, "scale")
    s = Arith(sname, xp)
    scale = s.load(blocks(scale, per_block, "scale", xp))
    inv = s.round(1.0 / scale)
    p = Arith(promote(dtype_name(x.dtype), sname), xp)
    r = xp.round(p.round(p.load(xp.reshape(x, view)) * inv))
    zname = dtype_name(zero_point.dtype)
    zp = blocks(zero_point, per_block, "zero_point", xp)
    if zname in FLOAT_NAMES:
        p = Arith(promote(p.name, zname), xp)
        zp = p.load(zp)
    else:
        # An integer zero point is converted to the float dtype first (TensorIterator).
        zp = p.round(p.load(zp))
    q = p.round(r + zp)
    lo, hi = p.full(q, tgt.quant_min), p.full(q, tgt.quant_max)
    q = xp.where(xp.isnan(q), q, xp.clip(q, lo, hi))
    q = xp.reshape(p.store(q), tuple(x.shape))
    return cast(q, tgt.storage, xp)


@quiet
def dequantize(
    q: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: str,
    *,
    xp: ModuleType,
) -> Any:
    """torchao's ``dequantize_affine``: ``(q.to(out) - zero_point.to(out)) * scale``."""
    view, axes = reduction_params(block_size, q.shape)
    per_block = reduced_shape(view, axes)
    o = Arith(output_dtype, xp)
    d = o.load(o.store(xp.reshape(q, view)))
    if zero_point is not None:
        zp = o.load(o.store(blocks(zero_point, per_block, "zero_point", xp)))
        d = o.round(d - zp)
    sname = float_name(scale.dtype, "scale")
    p = Arith(promote(output_dtype, sname), xp)
    out = p.round(d * p.load(blocks(scale, per_block, "scale", xp)))
    return o.store(xp.reshape(out, tuple(q.shape)))


# -- float8 --------------------------------------------------------------------------
@quiet
def choose_scale_float8(
    x: Any,
    block_size: Sequence[int],
    float8: str,
    power_of_two: bool,
    lower: float | None,
    upper: float | None,
    *,
    xp: ModuleType,
    nan_safe: bool = False,
) -> Any:
    """torchao's ``_choose_scale_float8``: ``amax(|x|) / fp8 max`` per block, in
    the input's dtype, optionally rounded to a power of two; float32, of shape
    ``input shape // block_size``."""
    a = Arith(float_name(x.dtype, "input"), xp)
    view, axes = reduction_params(block_size, x.shape)
    magnitude = xp.abs(xp.reshape(x, view))
    amax = xp.max(magnitude, axis=axes or None, keepdims=True)
    if nan_safe:
        amax = _with_nan(amax, magnitude, axes or None, True, xp)
    amax = a.load(amax)
    if lower is not None or upper is not None:
        clipped = xp.clip(
            amax,
            None if lower is None else a.full(amax, lower),
            None if upper is None else a.full(amax, upper),
        )
        amax = xp.where(xp.isnan(amax), amax, clipped)
    scale = a.round(amax / _divisor(FLOAT8_MAX[float8], amax, xp))
    out = tuple(n // b for n, b in zip(x.shape, block_size, strict=True))
    scale = xp.reshape(scale, out)
    if power_of_two:
        scale = a.round(exp2_integer(xp.round(a.round(xp.log2(scale))), xp))
    return xp.astype(a.store(scale), xp.float32)


def _power(e: Any, like: Any, xp: ModuleType) -> Any:
    """``2.0**e`` for integers ``0 <= e <= 127``, as a product of exact powers of two."""
    p = xp.ones_like(like)
    for bit in range(7):
        p = xp.where((e >> bit) & 1 == 1, p * (2.0 ** (2**bit)), p)
    return p


def exp2_integer(k: Any, xp: ModuleType) -> Any:
    """``exp2(k)`` of integral float32 values, exactly (XLA computes exp2 as
    ``exp(k * ln 2)``, off in the last bits even for integers). The product of
    two exact halves keeps results down to the subnormals exact; +-inf and NaN
    give what exp2 gives."""
    if k.dtype == getattr(xp, "float64", None):
        return xp.exp2(k)  # float64 exists only where exp2 is exact (NumPy, torch, Dask)
    finite = xp.isfinite(k)
    zero = xp.zeros_like(k)
    e = xp.astype(xp.clip(xp.where(finite, k, zero), -300.0, 300.0), xp.int32)
    mag = xp.abs(e)
    half = mag // 2
    p1, p2 = _power(half, k, xp), _power(mag - half, k, xp)
    out = xp.where(e >= 0, p1 * p2, (1.0 / p1) * (1.0 / p2))
    # Beyond 254 the halves overflow: exp2 is inf or 0 there anyway.
    out = xp.where((mag > 254) & (e > 0), xp.full_like(k, math.inf), out)
    out = xp.where((mag > 254) & (e < 0), zero, out)
    return xp.where(finite, out, xp.where(k < 0, zero, k))


def _expand(scale: Any, shape: tuple[int, ...], xp: ModuleType) -> tuple[Any, Any]:
    """torchao's ``_maybe_expand_scale_to_tensor_shape`` as a (view of x, scale)
    pair that broadcast: blockwise scales are viewed per block, not repeated."""
    sshape = tuple(scale.shape)
    if sshape == shape or math.prod(sshape) == 1:
        return None, scale
    if len(sshape) == len(shape) and all(a in (b, 1) for a, b in zip(sshape, shape, strict=True)):
        return None, scale
    if len(sshape) != len(shape):
        msg = f"Scale tensor has {len(sshape)} dimensions but target has {len(shape)}"
        raise ValueError(msg)
    view: list[int] = []
    sview: list[int] = []
    for n, s in zip(shape, sshape, strict=True):
        if s == 0 or n % s:
            msg = f"target size {n} is not evenly divisible by scale size {s}"
            raise ValueError(msg)
        view += [s, n // s]
        sview += [s, 1]
    return tuple(view), xp.reshape(scale, tuple(sview))


@quiet
def quantize_float8(x: Any, scale: Any, float8: str, *, xp: ModuleType) -> Any:
    """torchao's ``_quantize_affine_float8``: ``x.to(float32) / scale``, clamped to
    the float8 range, cast."""
    view, s = _expand(scale, tuple(x.shape), xp)
    xf = xp.astype(x, xp.float32)
    if view is not None:
        xf = xp.reshape(xf, view)
    sname = float_name(s.dtype, "scale")
    p = Arith(promote("float32", sname), xp)
    num = p.load(xf)
    # The divisor as a full array chosen by the data: XLA turns a division by a
    # broadcast into a multiplication by its reciprocal (last-bit differences).
    den = xp.where(xp.isnan(num), num, xp.broadcast_to(p.load(s), num.shape))
    y = p.round(num / den)
    top = FLOAT8_MAX[float8]
    y = xp.where(xp.isnan(y), y, xp.clip(y, p.full(y, -top), p.full(y, top)))
    y = p.store(y)
    if view is not None:
        y = xp.reshape(y, tuple(x.shape))
    return xp.astype(y, backend_dtype(float8, xp))


@quiet
def dequantize_float8(q: Any, scale: Any, output_dtype: str, *, xp: ModuleType) -> Any:
    """torchao's ``_dequantize_affine_float8``: ``q.to(float32) * scale``, cast."""
    view, s = _expand(scale, tuple(q.shape), xp)
    qf = xp.astype(q, xp.float32)
    if view is not None:
        qf = xp.reshape(qf, view)
    sname = float_name(s.dtype, "scale")
    p = Arith(promote("float32", sname), xp)
    y = p.store(p.round(p.load(qf) * p.load(s)))
    if view is not None:
        y = xp.reshape(y, tuple(q.shape))
    return xp.astype(y, backend_dtype(output_dtype, xp))


# -- arguments, checked once at the boundary ----------------------------------------
ZERO_POINT_NAMES = ("uint8", "int8", "int16", "int32", *FLOAT_NAMES)


def scale_dtype_name(value: Any) -> str | None:
    """None, or float16/bfloat16/float32/float64 as a name (ValueError otherwise)."""
    if value is None:
        return None
    name = name_of(value, "scale_dtype")
    if name not in FLOAT_NAMES:
        msg = f"scale_dtype must be one of {FLOAT_NAMES} or None, got {value!r}"
        raise ValueError(msg)
    return name


def zero_point_dtype_name(value: Any) -> str | None:
    """None, or an integer or float dtype name a zero point can have."""
    if value is None:
        return None
    name = name_of(value, "zero_point_dtype")
    if name not in ZERO_POINT_NAMES:
        msg = f"zero_point_dtype must be one of {ZERO_POINT_NAMES} or None, got {value!r}"
        raise ValueError(msg)
    return name


def eps_value(value: Any) -> float | None:
    """None, or a real number that is not NaN."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        msg = f"eps must be a real number (not NaN) or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


def boolean(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{what} must be a bool, got {value!r}"
        raise TypeError(msg)
    return value
