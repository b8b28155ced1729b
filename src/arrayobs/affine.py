"""torchao's affine quantization, bit for bit, on every Array API backend.

The primitives of ``torchao.quantization.quant_primitives`` (torchao 0.18.0 on
torch 2.13.0) with torchao's names and argument order: choose a scale and zero
point per block (:func:`choose_qparams_affine`), quantize
(:func:`quantize_affine`) and dequantize (:func:`dequantize_affine`); torchao's
float8 scales (:func:`choose_scale_float8`); the granularities and
:func:`get_block_size`; and :class:`AffineQuantizedMinMaxObserver` with a
moving-average variant.

Dtypes are names (``"int8"``, ``"float8_e4m3fn"``) or the backend's dtype
objects (``torch.int8``, ``jnp.bfloat16``). Sub-byte integers are held in int8
(``"int4"``: -8..7) or uint8 (``"uint4"``: 0..15). Nothing is read back from a
device: every function runs under ``jax.jit`` and lazily on Dask.

Examples
--------
>>> import numpy as np
>>> from arrayobs import affine
>>> w = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
>>> block = affine.get_block_size(w.shape, affine.PerGroup(128))
>>> scale, zp = affine.choose_qparams_affine(
...     w, affine.MappingType.ASYMMETRIC, block, "uint4")
>>> q = affine.quantize_affine(w, block, scale, zp, "uint4")
>>> q.dtype, scale.shape, int(q.max()) <= 15
(dtype('uint8'), (4, 2), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs._compat import backend_name, is_array, namespace_of, without_graph
from arrayobs._core import _affine as core
from arrayobs._core._affine import (
    Granularity,
    MappingType,
    PerAxis,
    PerBlock,
    PerGroup,
    PerRow,
    PerTensor,
    PerToken,
    ZeroPointDomain,
    get_block_size,
)
from arrayobs._observers._affine import (
    AffineQuantizedMinMaxObserver,
    AffineQuantizedMovingAverageMinMaxObserver,
)

__all__ = [
    "AffineQuantizedMinMaxObserver",
    "AffineQuantizedMovingAverageMinMaxObserver",
    "Granularity",
    "MappingType",
    "PerAxis",
    "PerBlock",
    "PerGroup",
    "PerRow",
    "PerTensor",
    "PerToken",
    "ZeroPointDomain",
    "choose_qparams_affine",
    "choose_qparams_affine_with_min_max",
    "choose_scale_float8",
    "dequantize_affine",
    "dequantize_affine_float8",
    "get_block_size",
    "quantize_affine",
    "quantize_affine_float8",
]


_SUB_BYTE_UINTS = tuple(f"uint{b}" for b in range(1, 8))


def _namespace(x: Any, what: str, xp: ModuleType | None = None) -> ModuleType:
    if not is_array(x):
        msg = f"{what} must be an array, got {type(x).__name__}"
        raise TypeError(msg)
    found: ModuleType = namespace_of(x)
    if xp is not None and found is not xp:
        msg = f"{what} is an array of {backend_name(found)}; the input is {backend_name(xp)}"
        raise TypeError(msg)
    return found


def _block(block_size: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(block_size, str) or not isinstance(block_size, Sequence):
        msg = f"block_size must be a sequence of ints, got {block_size!r}"
        raise TypeError(msg)
    if len(block_size) != ndim:
        msg = f"block_size {tuple(block_size)} must have one entry per axis ({ndim})"
        raise ValueError(msg)
    return tuple(block_size)


def _float_input(x: Any, allowed: tuple[str, ...]) -> None:
    name = core.dtype_name(x.dtype)
    if name not in allowed:
        msg = f"input must be {', '.join(allowed)}, got {x.dtype}"
        raise TypeError(msg)


def choose_qparams_affine(
    x: Any,
    mapping_type: Any,
    block_size: Sequence[int],
    target_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    eps: float | None = None,
    scale_dtype: Any = None,
    zero_point_dtype: Any = "int32",
    keepdim: bool = False,
) -> tuple[Any, Any]:
    """``(scale, zero_point)`` per block of ``x``, as torchao's ``choose_qparams_affine``.

    The block min and max are taken in ``x``'s dtype and the arithmetic runs
    there (float16/bfloat16 rounded after every step, as torch); ``eps``
    defaults to the smallest normal of ``x``'s dtype; the scale has
    ``scale_dtype`` (default ``x``'s dtype, so bfloat16 stays bfloat16), the
    zero point ``zero_point_dtype`` (None keeps the float zero point of the
    symmetric mappings). SYMMETRIC: ``max(-min, max) / ((qmax - qmin) / 2)``
    with zero point ``int((qmax + qmin + 1) / 2)``; SYMMETRIC_NO_CLIPPING_ERR:
    the larger of ``min / qmin`` and ``max / qmax``; ASYMMETRIC: ``(max - min)
    / (qmax - qmin)``, zero point ``qmin - round(min / scale)`` clamped. (min
    and max extended to include 0.) Shapes: the input's shape with each
    blocked axis divided by its block, reduced axes dropped unless
    ``keepdim``.

    A block size of all ones (one element per block) gives one scale for the
    whole array, as in torchao (``torch.amin`` over ``dim=[]``).
    """
    xp = _namespace(x, "x")
    _float_input(x, core.FLOAT_NAMES)
    mapping = arguments.mapping_type(mapping_type)
    block = _block(block_size, x.ndim)
    tgt = arguments.target(target_dtype, quant_min, quant_max)
    return _backends.shared(xp).choose_qparams_affine(
        # torchao's op is a custom op: its outputs never carry the input's graph.
        without_graph(x),
        mapping,
        block,
        tgt,
        arguments.eps_value(eps),
        arguments.scale_dtype_name(scale_dtype),
        arguments.zero_point_dtype_name(zero_point_dtype),
        arguments.boolean(keepdim, "keepdim"),
    )


def choose_qparams_affine_with_min_max(
    min_val: Any,
    max_val: Any,
    mapping_type: Any,
    block_size: Sequence[int],
    target_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    eps: float | None = None,
    scale_dtype: Any = None,
    zero_point_dtype: Any = None,
) -> tuple[Any, Any]:
    """``(scale, zero_point)`` of given per-block ``min_val``/``max_val``
    (arrays of one float dtype and shape), as torchao's function of that name.

    ``block_size`` is ignored, as in torchao. The zero point is int32 for
    ASYMMETRIC and, with ``zero_point_dtype=None`` (the default here), a float
    of ``min_val``'s dtype for the symmetric mappings.
    """
    del block_size
    xp = _namespace(min_val, "min_val")
    _namespace(max_val, "max_val", xp)
    _float_input(min_val, core.FLOAT_NAMES)
    if min_val.dtype != max_val.dtype or tuple(min_val.shape) != tuple(max_val.shape):
        msg = (
            f"min_val ({min_val.dtype}, {tuple(min_val.shape)}) and max_val "
            f"({max_val.dtype}, {tuple(max_val.shape)}) must have one dtype and shape"
        )
        raise ValueError(msg)
    mapping = arguments.mapping_type(mapping_type)
    tgt = arguments.target(target_dtype, quant_min, quant_max)
    scale, zp, name = core.qparams_from_minmax(
        min_val, max_val, mapping, tgt, arguments.eps_value(eps), xp=xp
    )
    return core.finish(
        scale,
        zp,
        name,
        mapping,
        arguments.scale_dtype_name(scale_dtype),
        arguments.zero_point_dtype_name(zero_point_dtype),
        xp=xp,
    )


def quantize_affine(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
) -> Any:
    """``clamp(round(x * (1.0 / scale)) + zero_point)`` per block, as torchao's
    ``quantize_affine``, in the dtype that torch promotes ``x`` and ``scale`` to.

    ``x`` float16, bfloat16 or float32; ``scale`` and ``zero_point`` arrays
    with one value per block (any shape of that size). The result has the
    target's storage dtype: int8/uint8/int16/int32, int8 for int1..int7, uint8
    for uint1..uint7, the float8 dtype for float8 targets (values rounded to
    integers first, as torchao does). A None zero point is refused (torchao
    fails on it too), and so is a range that the clamp's float dtype cannot
    hold (int32 bounds with float16 operands: ValueError, torch's RuntimeError).
    """
    xp = _namespace(x, "x")
    _float_input(x, ("float16", "bfloat16", "float32"))
    _namespace(scale, "scale", xp)
    if zero_point is None:
        msg = "zero_point is None: torchao's quantize_affine needs one (use zeros)"
        raise TypeError(msg)
    _namespace(zero_point, "zero_point", xp)
    block = _block(block_size, x.ndim)
    tgt = arguments.target(output_dtype, quant_min, quant_max)
    clamp = core.quantize_dtype(x.dtype, scale.dtype, zero_point.dtype)
    for bound, what in ((tgt.quant_min, "quant_min"), (tgt.quant_max, "quant_max")):
        arguments.check_bound(bound, clamp, what)
    return _backends.shared(xp).quantize_affine(x, block, scale, zero_point, tgt)


def dequantize_affine(
    q: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    input_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    *,
    output_dtype: Any = "float32",
) -> Any:
    """``(q.to(out) - zero_point.to(out)) * scale`` per block, cast to
    ``output_dtype`` (float32, float16 or bfloat16), as torchao's
    ``dequantize_affine``. ``q`` must have ``input_dtype``'s storage dtype
    (any dtype for uint1..uint7, as torchao); ``zero_point`` may be None."""
    xp = _namespace(q, "q")
    _namespace(scale, "scale", xp)
    if zero_point is not None:
        _namespace(zero_point, "zero_point", xp)
    tgt = arguments.target(input_dtype, quant_min, quant_max)
    have = core.dtype_name(q.dtype)
    if have != tgt.storage and tgt.name not in _SUB_BYTE_UINTS:
        msg = f"q has dtype {q.dtype}; input_dtype {tgt.name} is held in {tgt.storage}"
        raise TypeError(msg)
    out = core.name_of(output_dtype, "output_dtype")
    if out not in ("float32", "float16", "bfloat16"):
        msg = f"output_dtype must be float32, float16 or bfloat16, got {output_dtype!r}"
        raise ValueError(msg)
    block = _block(block_size, q.ndim)
    return core.dequantize(q, block, scale, zero_point, out, xp=xp)


def _float8(value: Any, what: str) -> str:
    name = core.name_of(value, what)
    if name not in core.FLOAT8_MAX:
        msg = f"{what} must be one of {tuple(core.FLOAT8_MAX)}, got {value!r}"
        raise ValueError(msg)
    return name


def choose_scale_float8(
    x: Any,
    block_size: Sequence[int],
    float8_dtype: Any = "float8_e4m3fn",
    scale_dtype: Any = "float32",
    hp_value_lb: float | None = None,
    hp_value_ub: float | None = None,
) -> Any:
    """torchao's float8 scale (``_choose_scale_float8``): ``amax(|x|) / max`` per
    block (``block_size == x.shape``: tensorwise; ``(1, ..., 1, K)``: rowwise),
    the float8 dtype's largest value ``max``, computed in ``x``'s dtype and
    returned as float32 of shape ``x.shape // block_size``. ``hp_value_lb`` and
    ``hp_value_ub`` clamp the amax first. ``scale_dtype="float8_e8m0fnu"`` rounds
    each scale to a power of two (``exp2(round(log2(scale)))``), as torchao;
    it is the only other value torchao takes.
    """
    xp = _namespace(x, "x")
    _float_input(x, core.FLOAT_NAMES)
    block = _block(block_size, x.ndim)
    name = _float8(float8_dtype, "float8_dtype")
    sname = core.name_of(scale_dtype, "scale_dtype")
    if sname not in ("float32", "float8_e8m0fnu"):
        msg = f"scale_dtype must be float32 or float8_e8m0fnu, got {scale_dtype!r}"
        raise ValueError(msg)
    bounds = [arguments.eps_value(v) for v in (hp_value_lb, hp_value_ub)]
    for bound, what in zip(bounds, ("hp_value_lb", "hp_value_ub"), strict=True):
        if bound is not None:
            arguments.check_bound(bound, core.dtype_name(x.dtype), what)
    nan_safe = _backends.shared(xp).reductions_drop_nan
    return core.choose_scale_float8(
        x, block, name, sname != "float32", bounds[0], bounds[1], xp=xp, nan_safe=nan_safe
    )


def quantize_affine_float8(x: Any, scale: Any, float8_dtype: Any = "float8_e4m3fn") -> Any:
    """torchao's ``_quantize_affine_float8``: ``x.to(float32) / scale`` (a scale
    per block, broadcast or expanded over its block), clamped to the float8
    range, cast to ``float8_dtype`` (where the backend has it: torch, JAX, and
    NumPy/Dask with ml_dtypes)."""
    xp = _namespace(x, "x")
    _float_input(x, core.FLOAT_NAMES)
    _namespace(scale, "scale", xp)
    name = _float8(float8_dtype, "float8_dtype")
    return core.quantize_float8(x, scale, name, xp=xp)


def dequantize_affine_float8(q: Any, scale: Any, output_dtype: Any = "float32") -> Any:
    """torchao's ``_dequantize_affine_float8``: ``q.to(float32) * scale``, cast to
    ``output_dtype``."""
    xp = _namespace(q, "q")
    _namespace(scale, "scale", xp)
    out = core.name_of(output_dtype, "output_dtype")
    if out not in core.FLOAT_NAMES:
        msg = f"output_dtype must be one of {core.FLOAT_NAMES}, got {output_dtype!r}"
        raise ValueError(msg)
    return core.dequantize_float8(q, scale, out, xp=xp)
