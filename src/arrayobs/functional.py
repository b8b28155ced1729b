"""The pure functional core of arrayobs: state in, state out.

Every function here takes arrays and returns new arrays; nothing is mutated,
no Python ``if`` looks at an array's values and nothing is read back to the
host. So the same code runs eagerly on any Array API backend, under
``jax.jit``, and on lazy Dask arrays. The observer classes are a thin facade
over these functions.

An update is ``batch_minmax`` (one reduction over the batch) followed by
``minmax_combine`` or ``moving_average_combine`` (a few scalar operations);
``minmax_update`` and ``moving_average_update`` do both. The split lets the
batch's (min, max) be reduced elsewhere (across devices, say) and folded in.

The arithmetic reproduces torch 2.13.0's ``torch.ao.quantization`` observers
bit for bit: float32 throughout, Python-float constants rounded to float32,
``torch.min``/``torch.max`` returning their first argument on a tie of equal
values, and the zero point's float-to-int32 cast behaving as on x86 (NaN and
out-of-range values become ``-2**31``).

Examples
--------
A moving-average observer as two pure functions under ``jax.jit``:

>>> import jax, jax.numpy as jnp
>>> from arrayobs import functional as F
>>> cfg = F.quant_config("quint8", "per_tensor_affine")
>>> update = jax.jit(lambda s, x: F.moving_average_update(s, x, 0.01))
>>> qparams = jax.jit(lambda s: F.calculate_qparams(s, cfg))
>>> state = F.init_state(xp=jnp)
>>> for batch in (jnp.linspace(-1.0, 3.0, 101), jnp.linspace(-2.0, 2.0, 11)):
...     state = update(state, batch)
>>> scale, zero_point = qparams(state)
>>> float(scale[0]), int(zero_point[0])
(0.01568627543747425, 64)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import numpy as np

from arrayobs._compat import (
    array_namespace,
    device_of,
    has_dtype,
    is_observable_dtype,
    size,
    torch_compiling,
)
from arrayobs._config import QuantConfig, quant_config
from arrayobs._reduce import aminmax, channel_axis

__all__ = [
    "MinMaxState",
    "QParams",
    "QuantConfig",
    "batch_minmax",
    "calculate_qparams",
    "init_state",
    "is_fresh",
    "merge_minmax",
    "minmax_combine",
    "minmax_update",
    "moving_average_combine",
    "moving_average_update",
    "pminmax",
    "quant_config",
]

_INT32_MIN = -(2**31)
_F = TypeVar("_F", bound=Callable[..., Any])


# inf - inf, 0 * inf and float32 overflow give NaN/inf silently in torch.ao;
# NumPy (and so array-api-strict and Dask's NumPy chunks) would warn. Results are
# the same either way. A Dask result computed later, outside these functions,
# can still warn: compute it under np.errstate to silence that.
def _quiet(fn: _F) -> _F:
    @functools.wraps(fn)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        if torch_compiling():
            # Dynamo cannot trace np.errstate (a graph break under fullgraph=True),
            # and a torch graph raises no NumPy warnings anyway.
            return fn(*args, **kwargs)
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return quiet  # type: ignore[return-value]


class MinMaxState(NamedTuple):
    """Running statistics: two float32 arrays, 0-d per tensor, shape (C,) per channel."""

    min_val: Any
    max_val: Any


class QParams(NamedTuple):
    """``scale`` (float32) and ``zero_point`` (int32 affine, int64 symmetric,
    float32 for per_channel_affine_float_qparams)."""

    scale: Any
    zero_point: Any


def _ns(state: MinMaxState, xp: ModuleType | None) -> ModuleType:
    return array_namespace(state.min_val) if xp is None else xp


def init_state(*, xp: ModuleType, device: Any = None, channels: int | None = None) -> MinMaxState:
    """A never-observed state: ``min_val = +inf``, ``max_val = -inf``, float32.

    0-d, or of shape ``(channels,)`` for per-channel observation. The channel
    count is fixed up front, so per-channel updates keep their shapes (as
    ``jax.jit`` needs); torch's per-channel observers instead start from
    shape (0,), which the observer classes reproduce.
    """
    shape = () if channels is None else (channels,)
    return MinMaxState(
        xp.full(shape, float("inf"), dtype=xp.float32, device=device),
        xp.full(shape, float("-inf"), dtype=xp.float32, device=device),
    )


def is_fresh(state: MinMaxState, *, xp: ModuleType | None = None) -> Any:
    """Boolean array: the state is exactly the never-observed (+inf, -inf) pair.

    Plain comparisons, so ``xp`` (accepted like every public function's) is not needed.
    """
    return (state.min_val == float("inf")) & (state.max_val == float("-inf"))


def _first_min(a: Any, b: Any, xp: ModuleType) -> Any:
    """``torch.min(a, b)`` elementwise: NaN propagates, ``a`` wins a tie (-0.0 vs 0.0 keeps a)."""
    return xp.where(xp.isnan(b) | (b < a), b, a)


def _first_max(a: Any, b: Any, xp: ModuleType) -> Any:
    """``torch.max(a, b)`` elementwise: NaN propagates, ``a`` wins a tie."""
    return xp.where(xp.isnan(b) | (b > a), b, a)


def require_observable(xp: ModuleType, dtype: Any) -> None:
    """Raise TypeError unless arrays of ``dtype`` can be observed (real or bool)."""
    if not is_observable_dtype(xp, dtype):
        msg = f"observed arrays must have a real or bool dtype, got {dtype}"
        raise TypeError(msg)


@_quiet
def batch_minmax(
    x: Any, *, ch_axis: int | None = None, xp: ModuleType | None = None, fast: bool = True
) -> tuple[Any, Any] | None:
    """(min, max) of one batch as float32 arrays, or None for an empty batch.

    0-d, or with ``ch_axis`` of shape (C,): each channel along ``ch_axis``
    (negative counts from the end, as torch) reduced over every other axis.
    The same numbers as reducing ``astype(x, float32)``: rounding to float32 is
    monotonic, so the reduction runs in the input's own dtype. NaN propagates.
    ``fast=False`` turns the backend's fast path off (the numbers are the same;
    of two zeros of different sign, either may be returned).

    Raises
    ------
    TypeError
        For a dtype that is not real or bool.
    ValueError
        If ``x`` has no axis ``ch_axis`` (checked before the empty case), or
        unknown size (Dask).
    """
    xp = array_namespace(x) if xp is None else xp
    require_observable(xp, x.dtype)
    n = size(x)
    if n is None:
        msg = (
            "cannot observe an array of unknown size (a Dask array with unknown "
            "chunk sizes); call x.compute_chunk_sizes() first"
        )
        raise ValueError(msg)
    ch = None if ch_axis is None else channel_axis(ch_axis, x.ndim)
    if n == 0:
        return None
    return aminmax(x, xp=xp, fast=fast, ch_axis=ch)


def _check_channels(state: MinMaxState, cur: tuple[Any, Any], ch_axis: int | None) -> None:
    """The batch's (min, max) must have the state's shape (shapes are static, even under jit)."""
    want, got = tuple(state.min_val.shape), tuple(cur[0].shape)
    if want != got:
        if ch_axis is None:
            msg = f"a per-tensor update needs a 0-d state, got shape {want}; pass ch_axis"
        elif len(want) != 1:
            msg = f"a per-channel update needs a state of shape (C,), got {want}"
        else:
            msg = (
                f"the batch has {got[0]} channels along ch_axis {ch_axis}; the state has {want[0]}"
            )
        raise ValueError(msg)


@_quiet
def minmax_combine(
    state: MinMaxState, cur_min: Any, cur_max: Any, *, xp: ModuleType | None = None
) -> MinMaxState:
    """Fold one batch's (min, max) into a min-max state, as torch's ``torch.min``/``max``."""
    xp = _ns(state, xp)
    return MinMaxState(
        _first_min(cur_min, state.min_val, xp), _first_max(cur_max, state.max_val, xp)
    )


def merge_minmax(
    first: MinMaxState, second: MinMaxState, *, xp: ModuleType | None = None
) -> MinMaxState:
    """The min-max state of observing ``first``'s batches, then ``second``'s.

    Element-wise min of the mins and max of the maxes (NaN propagates; of two
    equal values, ``second``'s is kept, as torch keeps the newer batch's), so
    shards observed independently combine exactly, in any grouping: merging is
    associative and a fresh state is its identity. A moving average has no such
    merge: its state depends on the order of every batch, not only on the two
    final states; synchronise each batch's (min, max) instead (see the README's
    "Scaling out").
    """
    return minmax_combine(first, second.min_val, second.max_val, xp=xp)


def pminmax(cur_min: Any, cur_max: Any, axis_name: Any) -> tuple[Any, Any]:
    """Inside JAX's ``shard_map`` (or ``pmap``): every shard's (min, max) combined.

    The pattern for a batch sharded over a mesh axis ``"i"``::

        lo, hi = F.pminmax(*F.batch_minmax(shard), "i")
        state = F.minmax_combine(state, lo, hi)

    Unlike ``lax.pmin``/``lax.pmax``, which drop a NaN on the CPU, a NaN on
    any shard propagates, as in one process. One collective. (An empty shard:
    pass ``(inf, -inf)``, the identity.)
    """
    from arrayobs._fastpaths import _jax

    return _jax.pminmax(cur_min, cur_max, axis_name)


def _moving_average(m: Any, cur: Any, c: Any, xp: ModuleType) -> Any:
    """``m + c * (cur - m)`` as three separately rounded float32 operations."""
    d = cur - m
    p = c * d
    # An identity select between the product and the sum (c * NaN is NaN) stops
    # compilers contracting them into one fused multiply-add, which rounds once
    # instead of twice: XLA's CPU backend does so under jax.jit (thousands of
    # last-bit differences per 200k updates without this; none with it), and
    # optimization_barrier, reduce_precision and cond do not prevent it.
    p = xp.where(d == d, p, d)  # noqa: PLR0124
    return m + p


@_quiet
def moving_average_combine(
    state: MinMaxState,
    cur_min: Any,
    cur_max: Any,
    averaging_constant: float,
    *,
    xp: ModuleType | None = None,
    fresh: bool | None = None,
) -> MinMaxState:
    """Fold one batch's (min, max) into a moving-average state.

    A fresh state takes the batch's values; any other moves by
    ``m + c * (cur - m)``. ``fresh=None`` (torch's per-tensor rule): fresh
    where both values are +inf and -inf, chosen per element with ``where``.
    A bool says it for the whole state: torch's per-channel observers take
    the first batch because their state is empty, and average every later one,
    even from infinities (the observer classes know which batch is first).
    """
    xp = _ns(state, xp)
    c = xp.asarray(averaging_constant, dtype=xp.float32, device=device_of(state.min_val))
    if fresh is not None:
        if fresh:
            return MinMaxState(cur_min, cur_max)
        return MinMaxState(
            _moving_average(state.min_val, cur_min, c, xp),
            _moving_average(state.max_val, cur_max, c, xp),
        )
    fresh = is_fresh(state, xp=xp)
    # A fresh state holds infinities; average zeros there instead, then discard them.
    m_min = xp.where(fresh, xp.zeros_like(state.min_val), state.min_val)
    m_max = xp.where(fresh, xp.zeros_like(state.max_val), state.max_val)
    return MinMaxState(
        xp.where(fresh, cur_min, _moving_average(m_min, cur_min, c, xp)),
        xp.where(fresh, cur_max, _moving_average(m_max, cur_max, c, xp)),
    )


@_quiet
def minmax_update(
    state: MinMaxState,
    x: Any,
    *,
    ch_axis: int | None = None,
    xp: ModuleType | None = None,
    fast: bool = True,
) -> MinMaxState:
    """``MinMaxObserver.forward``: the running elementwise min and max.

    With ``ch_axis``, ``PerChannelMinMaxObserver.forward`` on a state of
    shape (C,) (see :func:`init_state`). An empty ``x`` returns ``state``
    unchanged; NaN in a batch stays for good.
    """
    xp = _ns(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return minmax_combine(state, *cur, xp=xp)


@_quiet
def moving_average_update(
    state: MinMaxState,
    x: Any,
    averaging_constant: float,
    *,
    ch_axis: int | None = None,
    xp: ModuleType | None = None,
    fast: bool = True,
) -> MinMaxState:
    """``MovingAverageMinMaxObserver.forward`` (with ``ch_axis``: the per-channel one).

    A fresh state (both +inf and -inf) takes the batch's min and max; any other
    state moves by ``m + c * (cur - m)`` (not ``(1 - c) * m + c * cur`` as
    torch's docs say). The choice is a ``where``, so nothing is read back.
    Per channel, from :func:`init_state` with ``channels``, this gives torch's
    numbers: the first batch finds every channel fresh, and no channel of an
    observed state is (+inf, -inf) again for ``0 <= averaging_constant <= 1``.
    """
    xp = _ns(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return moving_average_combine(state, *cur, averaging_constant, xp=xp)


def widest_int(xp: ModuleType, device: Any) -> Any:
    """int64, or int32 where the backend has no int64 (JAX without x64)."""
    return xp.int64 if has_dtype(xp, device, "int64") else xp.int32


def zero_point_dtype(config: QuantConfig, *, xp: ModuleType, device: Any) -> Any:
    """The reference's zero-point dtype: int32 for affine, int64 for symmetric,
    float32 for per_channel_affine_float_qparams."""
    if config.float_qparams:
        return xp.float32
    return widest_int(xp, device) if config.symmetric else xp.int32


def _affine_zero_point(min_neg: Any, scale: Any, config: QuantConfig, xp: ModuleType) -> Any:
    r = xp.round(min_neg / scale)
    # The reference casts with C's float->int32 conversion, which on x86 yields
    # -2**31 for NaN and out-of-range values; every backend gets that rule here
    # explicitly (JAX would saturate, NumPy would warn).
    in_range = (r >= -(2.0**31)) & (r < 2.0**31)
    as_int = xp.astype(xp.where(in_range, r, xp.zeros_like(r)), xp.int32)
    as_int = xp.where(in_range, as_int, xp.full_like(as_int, _INT32_MIN))
    # int32 arithmetic wraps around exactly as torch's does.
    zero_point = config.quant_min - as_int
    return xp.clip(zero_point, config.quant_min, config.quant_max)


def _divisor(value: float, like: Any, xp: ModuleType) -> Any:
    """``value`` as a float32 array shaped like ``like``, opaque to constant folding.

    XLA rewrites a division by a constant (or a broadcast scalar) as a
    multiplication by its reciprocal, which differs in the last bit for about
    70% of float32 inputs. A select on the data keeps the division a division;
    where ``like`` is NaN the quotient is NaN whatever the divisor.
    """
    return xp.where(xp.isnan(like), xp.full_like(like, xp.nan), xp.full_like(like, value))


@_quiet
def calculate_qparams(
    state: MinMaxState, config: QuantConfig, *, xp: ModuleType | None = None
) -> QParams:
    """Scale and zero point of ``state`` under ``config``; reads nothing back.

    A never-observed state (or channel) gives scale 1.0 and zero point 0, as
    torch; the observer classes also warn and use int64 for that zero point, as
    torch does, which a data-independent function cannot. A state with
    ``min_val > max_val`` (torch raises) is not checked here.

    per_channel_affine_float_qparams, as torch: ``scale = (max - min) /
    (quant_max - quant_min)``, replaced by 1 where not above eps, and a float
    zero point ``-min / scale`` (from min_val and max_val themselves, not
    their extensions to include 0).

    Returns
    -------
    QParams
        Both of shape (1,) for a 0-d state, (C,) for a state of shape (C,).
    """
    xp = _ns(state, xp)
    mn, mx = state
    zero = xp.zeros_like(mn)
    min_neg = _first_min(mn, zero, xp)
    max_pos = _first_max(mx, zero, xp)
    eps = xp.full_like(mn, config.eps)
    qrange = float(config.quant_max - config.quant_min)
    zp_dtype = zero_point_dtype(config, xp=xp, device=device_of(mn))
    if config.symmetric:
        max_pos = _first_max(-min_neg, max_pos, xp)
        scale = _first_max(max_pos / _divisor(qrange / 2, mn, xp), eps, xp)
        zero_point = xp.full_like(mn, config.symmetric_zero_point(), dtype=zp_dtype)
    elif config.float_qparams:
        scale = (mx - mn) / _divisor(qrange, mn, xp)
        scale = xp.where(scale > eps, scale, xp.ones_like(scale))
        zero_point = -mn / scale
    else:
        scale = _first_max((max_pos - min_neg) / _divisor(qrange, mn, xp), eps, xp)
        zero_point = _affine_zero_point(min_neg, scale, config, xp)
    fresh = is_fresh(state, xp=xp)
    scale = xp.where(fresh, xp.ones_like(scale), scale)
    zero_point = xp.where(fresh, xp.zeros_like(zero_point), zero_point)
    if scale.ndim == 0:
        scale = xp.reshape(scale, (1,))
        zero_point = xp.reshape(zero_point, (1,))
    return QParams(scale, zero_point)
