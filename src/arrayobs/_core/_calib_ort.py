"""ONNX Runtime 1.31.1's MinMax calibration rule and its ``compute_scale_zp``, bit for bit.

``MinMaxCalibrater`` (``onnxruntime.quantization.calibrate``) adds a
ReduceMin and a ReduceMax to each tensor, runs every batch a data reader
yields, and per ``collect_data`` call reduces the per-batch values with NumPy
(``nanmin``/``nanmax``, or ``nanmean`` with ``moving_average``), makes them
symmetric if asked, then merges them into the running range (Python
``min``/``max``, or a float32 exponential moving average). The functional
core below is that rule on fixed shapes: ``minmax_update`` is one
``collect_data`` call (its batches a list, or one array for one batch), with
no host read and no Python ``if`` on values, so it runs under ``jax.jit`` and
lazily on Dask.

Where the reference's bits depend on its kernels rather than on the numbers
(arrayobs picks one rule and documents it):

- a batch holding a NaN: ORT's ReduceMin/ReduceMax return NaN when the NaN is
  the batch's first element and otherwise a value that depends on where its
  vectorized kernel meets the NaN. Here such a batch's minimum and maximum are
  NaN (as ORT gives for a leading NaN), so the call's ``nanmin``/``nanmean``
  leaves the batch out;
- a zero extreme with zeros of both signs: ORT's kernel keeps the sign of the
  first zero it meets in its lane order (the first in the batch, except for
  some sign patterns); here the first zero in the batch. NumPy's ``nanmin``
  over 9 or more batches of one value each picks a zero's sign by SIMD lane;
  here the first batch's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from arrayobs._compat import backend_name, device_of, has_dtype, namespace_of, to_host
from arrayobs._core._minmax import quiet


class OrtMinMaxState(NamedTuple):
    """ORT's running range of one tensor: ``lowest``/``highest`` of shape
    (1,) per tensor or (C,) per channel, in the data's float dtype, and
    ``seen`` (0-d bool): whether any ``collect_data`` call has given data."""

    lowest: Any
    highest: Any
    seen: Any


def minmax_init(
    *, xp: ModuleType, device: Any = None, channels: int | None = None, dtype: Any = None
) -> OrtMinMaxState:
    """An empty state: no data collected yet.

    ``channels``: the size of the channel axis (per channel), else per tensor.
    ``dtype``: the data's dtype (float32 or float16; default float32).
    """
    try:
        # argmin/argmax (the first occurrence: the sign of a zero) return the default
        # index dtype, which a device may lack (array-api-strict's no_x64: int64).
        xp.argmin(xp.zeros((1,), dtype=xp.float32, device=device))
    except (TypeError, ValueError) as exc:
        msg = (
            "ORT's MinMax rule takes the first extreme through argmin/argmax indices; "
            f"{backend_name(xp)} has no index dtype on device {device!r} ({exc})"
        )
        raise TypeError(msg) from exc
    dt = xp.float32 if dtype is None else dtype
    shape = (1,) if channels is None else (int(channels),)
    zeros = xp.zeros(shape, dtype=dt, device=device)
    return OrtMinMaxState(zeros, zeros, xp.asarray(False, device=device))


def _pick(flat: Any, index: Any, k: int, xp: ModuleType) -> Any:
    # The element at ``index`` of each row, its sign kept (a sum would turn -0.0 into 0.0).
    device = device_of(flat)
    chosen = xp.arange(k, dtype=index.dtype, device=device)[None, :] == index[:, None]
    floor = xp.asarray(-xp.inf, dtype=flat.dtype, device=device)
    return xp.max(xp.where(chosen, flat, floor), axis=1)


def batch_extremes(x: Any, channel_axis: int | None, *, xp: ModuleType) -> tuple[Any, Any]:
    """ORT's ReduceMin/ReduceMax of one batch: shape (1,), or (C,) along ``channel_axis``.

    The first occurrence of the extreme (the sign of a zero); NaN if the batch
    (channel) holds a NaN; +inf/-inf for an empty one, as ORT's kernels give.
    """
    if channel_axis is None:
        flat = xp.reshape(x, (1, -1))
    else:
        flat = xp.reshape(xp.moveaxis(x, channel_axis, 0), (x.shape[channel_axis], -1))
    rows, k = flat.shape
    if k == 0:
        full = functools.partial(xp.full, (rows,), dtype=x.dtype, device=device_of(x))
        return full(xp.inf), full(-xp.inf)
    nan = xp.any(xp.isnan(flat), axis=1)
    lo = _pick(flat, xp.argmin(flat, axis=1), k, xp)
    hi = _pick(flat, xp.argmax(flat, axis=1), k, xp)
    nan_value = xp.asarray(xp.nan, dtype=x.dtype, device=device_of(x))
    return xp.where(nan, nan_value, lo), xp.where(nan, nan_value, hi)


def _fold_nan(values: Sequence[Any], better: Any, xp: ModuleType) -> Any:
    """``np.nanmin``/``np.nanmax`` over the stacked rows: the first row's value
    on a tie, NaN rows skipped, NaN if all are."""
    acc = values[0]
    for v in values[1:]:
        acc = xp.where(xp.isnan(acc) | better(v, acc), v, acc)
    return acc


def _pairwise(values: Sequence[Any], xp: ModuleType) -> Any:
    """NumPy's pairwise sum of a contiguous run, one element per row of ``values``."""
    n = len(values)
    if n < 8:
        acc = -xp.zeros_like(values[0])
        for v in values:
            acc = acc + v
        return acc
    if n <= 128:
        tail = n - n % 8
        lanes = list(values[:8])
        for i in range(8, tail, 8):
            lanes = [lanes[j] + values[i + j] for j in range(8)]
        acc = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
            (lanes[4] + lanes[5]) + (lanes[6] + lanes[7])
        )
        for v in values[tail:]:
            acc = acc + v
        return acc
    half = n // 2
    half -= half % 8
    return _pairwise(values[:half], xp) + _pairwise(values[half:], xp)


def _nanmean(values: Sequence[Any], xp: ModuleType) -> Any:
    """``np.nanmean`` over axis 0 of the stacked rows, in NumPy's order: a sum of
    one-element rows is pairwise, of wider rows row by row; the float32 sum over
    the count is divided in float64 and rounded once."""
    dt = values[0].dtype
    zeroed = [xp.where(xp.isnan(v), xp.zeros_like(v), v) for v in values]
    if values[0].shape[0] == 1:
        # NumPy's pairwise loop accumulates float16 in float32, rounding once at the end.
        acc = xp.float32 if str(dt).rsplit(".", 1)[-1] == "float16" else dt
        run = _pairwise([xp.astype(v, acc) for v in zeroed], xp)
        total = xp.astype(xp.zeros_like(run) + run, dt)
    else:
        total = xp.zeros_like(values[0])
        for v in zeroed:
            total = total + v
    count = functools.reduce(
        lambda a, b: a + b, [xp.astype(~xp.isnan(v), xp.int32) for v in values]
    )
    # Without float64 (JAX without x64) divide in float32: the same result, as a
    # float64 quotient of two float32 values rounds to the float32 quotient.
    wide = xp.float64 if has_dtype(xp, device_of(total), "float64") else xp.float32
    return xp.astype(xp.astype(total, wide) / xp.astype(count, wide), dt)


@quiet
def minmax_update(
    state: OrtMinMaxState,
    x: Any,
    *,
    symmetric: bool = False,
    moving_average: bool = False,
    averaging_constant: float = 0.01,
    max_intermediate_outputs: int | None = None,
    channel_axis: int | None = None,
) -> OrtMinMaxState:
    """One ORT ``collect_data`` call: ``x`` is its batches (a list or tuple of
    arrays) or one array (one batch).

    Each batch is reduced as ORT's ReduceMin/ReduceMax (:func:`batch_extremes`);
    the call's values are ``nanmin``/``nanmax`` over batches (``nanmean`` with
    ``moving_average``), then ``(-m, m)`` with ``m = nanmax(|lo|, |hi|)`` if
    ``symmetric``; merged into the state by Python ``min``/``max`` semantics
    (a NaN new value never replaces, a NaN old value is never replaced) or
    ``old + f32(c) * (new - old)`` in the data's dtype. With
    ``max_intermediate_outputs=k`` ORT discards each full group of k batches:
    only the last ``len(batches) % k`` count. A call with no batch left
    changes nothing. Pure: runs under ``jax.jit`` (``x`` traced, the keyword
    arguments static) and lazily on Dask.
    """
    batches = list(x) if isinstance(x, (list, tuple)) else [x]
    if max_intermediate_outputs is not None:
        batches = batches[len(batches) - len(batches) % max_intermediate_outputs :]
    if not batches:
        return state
    xp = namespace_of(state.lowest)
    ext = [batch_extremes(xp.astype(b, state.lowest.dtype), channel_axis, xp=xp) for b in batches]
    lows, highs = [e[0] for e in ext], [e[1] for e in ext]
    if moving_average:
        lo, hi = _nanmean(lows, xp), _nanmean(highs, xp)
    else:
        lo, hi = _fold_nan(lows, xp.less, xp), _fold_nan(highs, xp.greater, xp)
    if symmetric:
        m = _fold_nan([xp.abs(lo), xp.abs(hi)], xp.greater, xp)
        lo, hi = -m, m
    if moving_average:
        c = xp.asarray(averaging_constant, dtype=lo.dtype, device=device_of(lo))
        merged_lo = state.lowest + c * (lo - state.lowest)
        merged_hi = state.highest + c * (hi - state.highest)
    else:
        merged_lo = xp.where(lo < state.lowest, lo, state.lowest)
        merged_hi = xp.where(hi > state.highest, hi, state.highest)
    return OrtMinMaxState(
        xp.where(state.seen, merged_lo, lo),
        xp.where(state.seen, merged_hi, hi),
        xp.ones_like(state.seen),
    )


def minmax_result(state: OrtMinMaxState) -> tuple[np.ndarray, np.ndarray]:
    """``(lowest, highest)`` as ORT's ``compute_data()`` holds them for the tensor
    (host NumPy, shape (1,) or (C,)).

    Raises ValueError("No data is collected.") before any data, as ORT's first
    ``collect_data`` does.
    """
    if not bool(to_host(state.seen)):
        msg = "No data is collected."
        raise ValueError(msg)
    with np.errstate(all="ignore"):  # a lazy Dask state computes here: an all-NaN call's 0/0
        return host(state.lowest), host(state.highest)


def host(value: Any) -> np.ndarray:
    """A NumPy copy of ``value`` in its own dtype (``to_host`` widens torch's float16)."""
    return to_host(value).astype(np.dtype(str(value.dtype).rsplit(".", 1)[-1]))


def compute_scale_zp(
    rmin: Any,
    rmax: Any,
    qmin: Any,
    qmax: Any,
    symmetric: bool = False,
    min_real_range: float | None = None,
) -> list[np.ndarray]:
    """``onnxruntime.quantization.quant_utils.compute_scale_zp``, bit for bit.

    ``rmin``/``rmax``: NumPy float arrays or scalars of one dtype (the ORT
    range's, float32 or float16); ``qmin``/``qmax``: NumPy integer arrays or
    scalars (as ``get_qmin_qmax_for_qType`` returns: int8 (-128, 127), uint8
    (0, 255), symmetric int8 (-127, 127), ...). Returns ORT's
    ``[zero_point, scale]``: ``scale = (rmax - rmin) / (qmax - qmin)`` in
    float64 after widening the range to hold 0 (and to ``min_real_range``,
    and to ``±max(|rmin|, |rmax|)`` if ``symmetric``), zero point rounded
    half to even with the float64 scale, then the scale cast to the range's
    dtype; a scale below the dtype's ``tiny`` gives scale 1 and zero point 0
    (0-d arrays, as ORT). Arrays of more than one element (arrayobs
    extension, e.g. per channel) give each element ORT's result for it.

    Raises
    ------
    ValueError
        ``qmin > 0`` or ``qmax < 0`` (as ORT).
    AssertionError
        ``qmin > qmax``, or a NaN range (as ORT).
    TypeError
        ``rmin``/``rmax`` not NumPy floats of one dtype, or ``qmin``/``qmax``
        not NumPy integers (ORT fails with AttributeError on Python numbers).

    Examples
    --------
    >>> import numpy as np
    >>> zp, scale = compute_scale_zp(np.array([-1.0], np.float32), np.array([3.0], np.float32),
    ...                              np.array(0, np.uint8), np.array(255, np.uint8))
    >>> int(zp[0]), float(scale[0])
    (64, 0.01568627543747425)
    """
    for name, v, kind in (
        ("rmin", rmin, "f"),
        ("rmax", rmax, "f"),
        ("qmin", qmin, "iu"),
        ("qmax", qmax, "iu"),
    ):
        if not isinstance(v, (np.ndarray, np.generic)) or v.dtype.kind not in kind:
            what = "float" if kind == "f" else "integer"
            msg = f"{name} must be a NumPy {what} array or scalar (as ORT passes it), got {v!r}"
            raise TypeError(msg)
    if rmin.dtype != rmax.dtype:
        msg = f"rmin and rmax must have one dtype, got {rmin.dtype} and {rmax.dtype}"
        raise TypeError(msg)
    if np.any(qmin > 0) or np.any(qmax < 0):
        msg = (
            "qmin and qmax must meet requirement: qmin <= 0 <= qmax while "
            f"qmin:{qmin}, qmmax:{qmax}"
        )
        raise ValueError(msg)
    lo = np.minimum(rmin, np.array(0, dtype=rmin.dtype))
    hi = np.maximum(rmax, np.array(0, dtype=rmax.dtype))
    if min_real_range is not None:
        wider = lo + np.asarray(min_real_range, dtype=lo.dtype)
        hi = np.where(wider > hi, wider, hi)
    if symmetric:
        absmax = np.maximum(np.abs(lo), np.abs(hi))
        lo, hi = -absmax, +absmax
    if np.any(qmin > qmax):
        msg = f"qmin={qmin} > qmax={qmax}"
        raise AssertionError(msg)
    span = np.array(hi, dtype=np.float64) - np.array(lo, dtype=np.float64)
    scale = np.array(span / (np.array(qmax, dtype=np.float64) - np.array(qmin, dtype=np.float64)))
    if not np.all(scale >= 0):
        msg = f"scale issue: a NaN or negative range ({rmin!r}, {rmax!r})"
        raise AssertionError(msg)
    small = scale < np.finfo(hi.dtype).tiny
    if scale.size == 1 and bool(small.all()):
        return [np.array(0, dtype=qmin.dtype), np.array(1.0, dtype=hi.dtype)]
    safe = np.where(small, 1.0, scale)
    if symmetric:
        rounded = np.round((qmin + qmax) / np.array(2.0, dtype=np.float64))
        zero_point = np.array(rounded, dtype=qmin.dtype)
        if scale.size > 1:  # ORT's is 0-d here: one per element for several ranges
            zero_point = np.where(small, np.zeros_like(zero_point), zero_point)
    else:
        zero_point = np.array(np.round(qmin - np.where(small, 0, lo) / safe), dtype=qmin.dtype)
        zero_point = np.where(small, np.zeros_like(zero_point), zero_point)
    out_scale = np.where(small, 1.0, scale).astype(hi.dtype)
    return [np.asarray(zero_point, dtype=qmin.dtype), np.asarray(out_scale)]
