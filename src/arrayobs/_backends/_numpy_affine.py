"""NumPy: torchao's per-block choose and quantize, on every core, a cache-sized slab at a time.

The generic ``quantize`` makes a full-size array of every step (product, round,
sum, bounds, clip, NaN test, the integer cast's masks): about ten passes over
memory on one core. Here the float32 steps run in place on slabs of rows that
stay in L2, one run of slabs per core, each ufunc the generic step's own
arithmetic (float32 products and sums are correctly rounded, ``rint`` is the
generic ``round``), and the cast writes into the output. The per-block operands
(``1.0 / scale``, the zero point as float32) come from the generic code.

``block_minmax`` takes the block min and max from a per-channel reduction (the
NumPy backend's: threaded, 16-bit floats as integer keys) where the blocks are
runs of the last axis; the generic arithmetic takes it from there. The NumPy
backend passes in its reduction and its thread pool (this module imports none).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from arrayobs import _core
from arrayobs._core import _affine as core

_CHOOSE_DTYPES = frozenset({"float32", "float16", "bfloat16"})
_STORAGE = frozenset({"uint8", "int8", "int16"})
_ZERO_POINTS = frozenset({"uint8", "int8", "int16", "int32", "float32"})
# Bytes of one slab of the float32 scratch: half of a 2 MiB L2, as the NumPy reductions.
SLAB_BYTES = 1 << 20
# (the per-channel reduction: x, axis -> float32 (min, max)); (a map over parts).
Reduce = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
Map = Callable[[Callable[[Any], None], Iterable[Any]], Iterable[None]]


def block_minmax(
    x: Any, block_size: tuple[int, ...], keepdim: bool, reduce: Reduce
) -> tuple[Any, Any] | None:
    """:func:`arrayobs._core._affine.block_minmax` where each block is a run of
    the last axis of a non-empty float32/float16/bfloat16 array, by ``reduce``
    (per channel, NaN propagating, exact float32 results); None elsewhere."""
    if type(x) is not np.ndarray or x.dtype.name not in _CHOOSE_DTYPES or x.size == 0:
        return None
    view, axes = core.reduction_params(block_size, x.shape)
    if axes != (len(view) - 1,):
        return None
    lo, hi = reduce(x.reshape(-1, view[-1]), 0)
    kept = (*view[:-1], 1) if keepdim else view[:-1]
    # float32 holds every float16 and bfloat16 value: the cast back is exact.
    return lo.reshape(kept).astype(x.dtype), hi.reshape(kept).astype(x.dtype)


def quantize(
    x: Any,
    block_size: tuple[int, ...],
    scale: Any,
    zero_point: Any,
    tgt: core.Target,
    workers: int = 1,
    parallel: Map = map,
) -> Any:
    """torchao's ``quantize_affine`` of a non-empty float32 array with a float32
    scale, an integer or float32 zero point and an 8- or 16-bit target, bit for bit
    as :func:`arrayobs._core._affine.quantize`; None where it does not apply.
    The slabs run in ``workers`` parts through ``parallel`` (a thread pool's map)."""
    if not _applies(x, scale, zero_point, tgt):
        return None
    view, axes = core.reduction_params(block_size, x.shape)
    per_block = core.reduced_shape(view, axes)
    with np.errstate(all="ignore"):
        inv = np.float32(1.0) / core.blocks(scale, per_block, "scale", np)
        zp = core.blocks(zero_point, per_block, "zero_point", np).astype(np.float32)
    v = x.reshape(view)
    out = np.empty(view, np.dtype(tgt.storage))
    lo, hi = np.float32(tgt.quant_min), np.float32(tgt.quant_max)
    rows = max(1, SLAB_BYTES // max(1, 4 * math.prod(view[1:])))
    slabs = [(i, min(i + rows, view[0])) for i in range(0, view[0], rows)]
    step = math.ceil(len(slabs) / max(1, workers))

    def run(part: list[tuple[int, int]]) -> None:
        _slabs(v, inv, zp, lo, hi, out, part, rows)

    list(parallel(run, [slabs[i : i + step] for i in range(0, len(slabs), step)]))
    return out.reshape(x.shape)


def _applies(x: Any, scale: Any, zero_point: Any, tgt: core.Target) -> bool:
    arrays = (x, scale, zero_point)
    return (
        all(type(a) is np.ndarray for a in arrays)
        and x.dtype == np.float32
        and scale.dtype == np.float32
        and zero_point.dtype.name in _ZERO_POINTS
        and tgt.storage in _STORAGE
        and x.size > 0
    )


@_core.quiet  # per thread: NumPy's error state does not follow a call into the pool
def _slabs(
    v: np.ndarray,
    inv: np.ndarray,
    zp: np.ndarray,
    lo: np.float32,
    hi: np.float32,
    out: np.ndarray,
    part: list[tuple[int, int]],
    rows: int,
) -> None:
    """The slabs ``part`` (row ranges of ``v``) quantized into ``out``."""
    buf = np.empty((rows, *v.shape[1:]), np.float32)
    nan = np.empty(buf.shape, np.bool_)
    for start, stop in part:
        b, m = buf[: stop - start], nan[: stop - start]
        np.multiply(v[start:stop], _rows(inv, start, stop), out=b)
        np.rint(b, out=b)
        np.add(b, _rows(zp, start, stop), out=b)
        np.clip(b, lo, hi, out=b)
        # The generic cast takes NaN to -2**31, whose low 8 and 16 bits are 0.
        np.isnan(b, out=m)
        if m.any():
            b[m] = 0
        np.copyto(out[start:stop], b, casting="unsafe")


def _rows(per_block: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a per-block operand, or all of it where it broadcasts."""
    return per_block if per_block.shape[0] == 1 else per_block[start:stop]
