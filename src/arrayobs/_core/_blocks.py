"""torchao's granularities and blocks: the block shape a granularity gives, the
view that reduces each block, and the min and max of every block."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from arrayobs._core._minmax import quiet


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


def integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int, got {value!r}"
        raise TypeError(msg)
    return int(value)


def _axis(axis: Any, ndim: int, what: str) -> int:
    index = integer(axis, what)
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
        given = tuple(integer(b, "PerBlock block_size entry") for b in g.block_size)
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
    size = integer(g.group_size, "PerGroup group_size")
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
    block = tuple(integer(b, "block_size entry") for b in block_size)
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


def blocks(v: Any, shape: tuple[int, ...], what: str, xp: ModuleType) -> Any:
    """``v`` (one value per block) viewed as ``shape``; ValueError if the sizes differ."""
    if math.prod(v.shape) != math.prod(shape):
        msg = f"{what} of shape {tuple(v.shape)} does not fit the blocks (shape {shape})"
        raise ValueError(msg)
    return xp.reshape(v, shape)


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
