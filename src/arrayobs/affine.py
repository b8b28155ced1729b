"""torchao's affine quantization, bit for bit, on every Array API backend.

The primitives of ``torchao.quantization.quant_primitives`` (torchao 0.18.0 on
torch 2.13.0) with torchao's names and argument order: choose a scale and zero
point per block (:func:`choose_qparams_affine`), quantize
(:func:`quantize_affine`) and dequantize (:func:`dequantize_affine`); torchao's
float8 scales (:func:`choose_scale_float8`); the granularities and
:func:`get_block_size`; and :class:`AffineQuantizedMinMaxObserver` with a
moving-average variant, :class:`AffineQuantizedFixedQParamObserver` and
:class:`AffineQuantizedMSEObserver`.

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
from arrayobs._compat import backend_name, has_dtype, is_array, namespace_of, without_graph
from arrayobs._core import _affine as core
from arrayobs._core import _affine_domains as domains
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
from arrayobs._observers._affine_extra import (
    AffineQuantizedFixedQParamObserver,
    AffineQuantizedMSEObserver,
)

__all__ = [
    "AffineQuantizedFixedQParamObserver",
    "AffineQuantizedMSEObserver",
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
    "choose_qparams_affine_tinygemm",
    "choose_qparams_affine_with_min_max",
    "choose_scale_float8",
    "dequantize_affine",
    "dequantize_affine_float8",
    "dequantize_affine_no_zero_point",
    "dequantize_affine_tinygemm",
    "fake_quantize_affine",
    "fake_quantize_affine_cachemask",
    "get_block_size",
    "quantize_affine",
    "quantize_affine_float8",
    "quantize_affine_no_zero_point",
    "quantize_affine_tinygemm",
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


def _held(x: Any, xp: ModuleType, **names: str | None) -> None:
    """TypeError where a requested 64-bit dtype does not exist on ``x``'s backend
    (JAX without x64 would hand back a 32-bit array)."""
    for what, name in names.items():
        if name in ("int64", "float64") and not has_dtype(xp, getattr(x, "device", None), name):
            msg = f"{what} {name} is not available in {backend_name(xp)} (enable 64-bit dtypes)"
            raise TypeError(msg)


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
    sname = arguments.scale_dtype_name(scale_dtype)
    zname = arguments.zero_point_dtype_name(zero_point_dtype)
    _held(x, xp, scale_dtype=sname, zero_point_dtype=zname)
    return _backends.shared(xp).choose_qparams_affine(
        # torchao's op is a custom op: its outputs never carry the input's graph.
        without_graph(x),
        mapping,
        block,
        tgt,
        arguments.eps_value(eps),
        sname,
        zname,
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
    sname = arguments.scale_dtype_name(scale_dtype)
    zname = arguments.zero_point_dtype_name(zero_point_dtype)
    _held(min_val, xp, scale_dtype=sname, zero_point_dtype=zname)
    scale, zp, name = core.qparams_from_minmax(
        min_val, max_val, mapping, tgt, arguments.eps_value(eps), xp=xp
    )
    return core.finish(scale, zp, name, mapping, sname, zname, xp=xp)


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
    xp, _, out, block = _dequantize_arguments(
        q, block_size, scale, zero_point, input_dtype, quant_min, quant_max, output_dtype
    )
    return core.dequantize(q, block, scale, zero_point, out, xp=xp)


def _dequantize_arguments(
    q: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    input_dtype: Any,
    quant_min: float | None,
    quant_max: float | None,
    output_dtype: Any,
) -> tuple[ModuleType, core.Target, str, tuple[int, ...]]:
    """torchao's checks shared by the dequantize functions."""
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
    return xp, tgt, out, _block(block_size, q.ndim)


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


# -- torchao's other zero point domains (FLOAT: tinygemm; NONE) -----------------------
def _quantize_arguments(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: Any,
    quant_min: float | None,
    quant_max: float | None,
    clamp: str,
) -> tuple[ModuleType, tuple[int, ...], core.Target]:
    """torchao's checks shared by the quantize functions (``zero_point`` checked
    by the caller); ``clamp``: the float dtype the bounds are converted to."""
    xp = _namespace(x, "x")
    _float_input(x, ("float16", "bfloat16", "float32"))
    _namespace(scale, "scale", xp)
    block = _block(block_size, x.ndim)
    tgt = arguments.target(output_dtype, quant_min, quant_max)
    for bound, what in ((tgt.quant_min, "quant_min"), (tgt.quant_max, "quant_max")):
        arguments.check_bound(bound, clamp, what)
    return xp, block, tgt


def _tinygemm_clamp(x: Any, scale: Any, zero_point: Any) -> str:
    """The float dtype of tinygemm's ``(x - (zero_point - scale * mid)) / scale``."""
    low = core.float_name(scale.dtype, "scale")
    zname = core.dtype_name(zero_point.dtype)
    if zname in core.FLOAT_NAMES:
        low = core.promote(zname, low)
    return core.promote(core.dtype_name(x.dtype), low)


def _needs_zero_point(zero_point: Any, what: str, xp: ModuleType) -> None:
    if zero_point is None:
        msg = f"zero_point is None: torchao's {what} needs one"
        raise TypeError(msg)
    _namespace(zero_point, "zero_point", xp)


def choose_qparams_affine_tinygemm(
    x: Any,
    mapping_type: Any,
    block_size: Sequence[int],
    target_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    eps: float | None = None,
    scale_dtype: Any = None,
    zero_point_dtype: Any = None,
) -> tuple[Any, Any]:
    """``(scale, zero_point)`` in ``ZeroPointDomain.FLOAT`` (tinygemm's layout), as
    torchao's ``_choose_qparams_affine_tinygemm``.

    ASYMMETRIC only. Per block, in ``x``'s dtype: ``scale = max((max - min) /
    (qmax - qmin), eps)`` and ``zero_point = min + scale * mid`` with ``mid =
    (qmax + qmin + 1) / 2``: min and max are not extended to include 0, so zero
    need not be representable. Both default to ``x``'s dtype; the shape is the
    blocks' with reduced axes dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import affine
    >>> w = np.array([[-1.0, 0.5, 2.0, 3.0]], dtype=np.float32)
    >>> scale, zp = affine.choose_qparams_affine_tinygemm(
    ...     w, "ASYMMETRIC", (1, 4), "uint4")
    >>> q = affine.quantize_affine_tinygemm(w, (1, 4), scale, zp, "uint4")
    >>> q.tolist(), float(zp[0])
    ([[0, 6, 11, 15]], 1.133333444595337)
    """
    xp = _namespace(x, "x")
    _float_input(x, core.FLOAT_NAMES)
    if arguments.mapping_type(mapping_type) is not core.MappingType.ASYMMETRIC:
        msg = f"tinygemm's qparams are ASYMMETRIC only, got mapping_type {mapping_type!r}"
        raise ValueError(msg)
    block = _block(block_size, x.ndim)
    tgt = arguments.target(target_dtype, quant_min, quant_max)
    sname = arguments.scale_dtype_name(scale_dtype)
    zname = arguments.zero_point_dtype_name(zero_point_dtype)
    _held(x, xp, scale_dtype=sname, zero_point_dtype=zname)
    nan_safe = _backends.shared(xp).reductions_drop_nan
    return domains.choose_tinygemm(
        without_graph(x), block, tgt, arguments.eps_value(eps), sname, zname,
        xp=xp, nan_safe=nan_safe,
    )  # fmt: skip


def quantize_affine_tinygemm(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
) -> Any:
    """``clamp(round((x - (zero_point - scale * mid)) / scale))`` per block, cast to
    the target's storage dtype, as torchao's ``_quantize_affine_tinygemm``
    (``ZeroPointDomain.FLOAT``; ``mid = (qmax + qmin + 1) / 2``)."""
    xp = _namespace(x, "x")
    _needs_zero_point(zero_point, "_quantize_affine_tinygemm", xp)
    clamp = _tinygemm_clamp(x, scale, zero_point)
    xp, block, tgt = _quantize_arguments(
        x, block_size, scale, zero_point, output_dtype, quant_min, quant_max, clamp
    )
    return domains.quantize_tinygemm(x, block, scale, zero_point, tgt, xp=xp)


def dequantize_affine_tinygemm(
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
    """``(q - mid) * scale + zero_point`` per block, as torchao's
    ``_dequantize_affine_tinygemm``: ``q - mid`` in float32, cast to
    ``output_dtype``, then multiplied and added in place (``zero_point`` may be
    None)."""
    xp, tgt, out, block = _dequantize_arguments(
        q, block_size, scale, zero_point, input_dtype, quant_min, quant_max, output_dtype
    )
    return domains.dequantize_tinygemm(q, block, scale, zero_point, tgt, out, xp=xp)


def quantize_affine_no_zero_point(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    output_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
) -> Any:
    """``clamp(round(x * (1.0 / scale)))`` per block, cast to the target's storage
    dtype, as torchao's ``_quantize_affine_no_zero_point``
    (``ZeroPointDomain.NONE``; ``zero_point`` is ignored, as there)."""
    xp = _namespace(x, "x")
    clamp = core.promote(core.dtype_name(x.dtype), core.float_name(scale.dtype, "scale"))
    xp, block, tgt = _quantize_arguments(
        x, block_size, scale, zero_point, output_dtype, quant_min, quant_max, clamp
    )
    return core.quantize(x, block, scale, None, tgt, xp=xp)


def dequantize_affine_no_zero_point(
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
    """``q.to(out) * scale`` per block, as torchao's
    ``_dequantize_affine_no_zero_point`` (``zero_point`` must be None)."""
    if zero_point is not None:
        msg = "zero_point must be None for dequantize_affine_no_zero_point (ZeroPointDomain.NONE)"
        raise ValueError(msg)
    xp, _, out, block = _dequantize_arguments(
        q, block_size, scale, None, input_dtype, quant_min, quant_max, output_dtype
    )
    return core.dequantize(q, block, scale, None, out, xp=xp)


def _fake(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    quant_dtype: Any,
    quant_min: float | None,
    quant_max: float | None,
    zero_point_domain: Any,
) -> tuple[Any, Any]:
    domain = arguments.zero_point_domain(zero_point_domain)
    xp = _namespace(x, "x")
    if domain is core.ZeroPointDomain.NONE:
        if zero_point is not None:
            msg = "zero_point should be None when zero_point_domain is NONE"
            raise ValueError(msg)
        clamp = core.promote(core.dtype_name(x.dtype), core.float_name(scale.dtype, "scale"))
    else:
        _needs_zero_point(zero_point, f"fake quantize in {domain}", xp)
        if domain is core.ZeroPointDomain.FLOAT:
            clamp = _tinygemm_clamp(x, scale, zero_point)
        else:
            clamp = core.quantize_dtype(x.dtype, scale.dtype, zero_point.dtype)
    xp, block, tgt = _quantize_arguments(
        x, block_size, scale, zero_point, quant_dtype, quant_min, quant_max, clamp
    )
    return domains.fake_quantize(x, block, scale, zero_point, tgt, domain, xp=xp)


def fake_quantize_affine(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    quant_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    zero_point_domain: Any = core.ZeroPointDomain.INT,
) -> Any:
    """Quantize then dequantize ``x`` back to its dtype in one zero point domain,
    as torchao's ``_fake_quantize_affine``: INT (:func:`quantize_affine`),
    FLOAT (:func:`quantize_affine_tinygemm`) or NONE
    (:func:`quantize_affine_no_zero_point`, ``zero_point`` None); the quantized
    values stay in float, so nothing is cast to ``quant_dtype``."""
    return _fake(
        x, block_size, scale, zero_point, quant_dtype, quant_min, quant_max, zero_point_domain
    )[1]


def fake_quantize_affine_cachemask(
    x: Any,
    block_size: Sequence[int],
    scale: Any,
    zero_point: Any,
    quant_dtype: Any,
    quant_min: float | None = None,
    quant_max: float | None = None,
    zero_point_domain: Any = core.ZeroPointDomain.INT,
) -> tuple[Any, Any]:
    """:func:`fake_quantize_affine` and the mask ``quant_min <= q <= quant_max`` of
    the quantized values (False only where they are NaN), as torchao's
    ``_fake_quantize_affine_cachemask``. ``quant_min`` and ``quant_max`` are
    required: torchao compares with the arguments as given (TypeError on None)."""
    if quant_min is None or quant_max is None:
        msg = (
            f"quant_min ({quant_min}) and quant_max ({quant_max}) must both be given: "
            "torchao's mask compares with them as passed (it fails on None too)"
        )
        raise TypeError(msg)
    q, dq = _fake(
        x, block_size, scale, zero_point, quant_dtype, quant_min, quant_max, zero_point_domain
    )
    return dq, (q >= quant_min) & (q <= quant_max)
