"""The running (min, max) state, its update rules, and the generic batch reduction.

Pure Array API code that names no backend: every backend module builds on it,
and every fast path is tested against it bit for bit. No Python ``if`` looks
at an array's values and nothing is read back, so the same code runs eagerly,
under ``jax.jit`` and on lazy Dask arrays.

The arithmetic reproduces torch 2.13.0's ``torch.ao.quantization`` observers:
float32 throughout, Python-float constants rounded to float32, and
``torch.min``/``torch.max`` returning their first argument on a tie.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np

from arrayobs._compat import array_namespace, device_of, is_observable_dtype, torch_compiling

_F = TypeVar("_F", bound=Callable[..., Any])


def quiet(fn: _F) -> _F:
    """``fn`` with NumPy's floating-point warnings off.

    inf - inf, 0 * inf and float32 overflow give NaN/inf silently in torch.ao;
    NumPy (and so array-api-strict and Dask's NumPy chunks) would warn. The
    results are the same either way. A Dask result computed later, outside
    these functions, can still warn: compute it under ``np.errstate``.
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if torch_compiling():
            # Dynamo cannot trace np.errstate (a graph break under fullgraph=True),
            # and a torch graph raises no NumPy warnings anyway.
            return fn(*args, **kwargs)
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


class MinMaxState(NamedTuple):
    """Running statistics: two float32 arrays, 0-d per tensor, shape (C,) per channel."""

    min_val: Any
    max_val: Any


def namespace(state: MinMaxState, xp: ModuleType | None) -> ModuleType:
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


def crossed(state: MinMaxState, *, xp: ModuleType) -> Any:
    """0-d boolean array: where torch's ``calculate_qparams`` raises.

    Some ``min_val > max_val``; a 0-d (+inf, -inf) is the never-observed state
    (torch warns there instead), while per channel every crossed value counts.
    """
    bad = state.min_val > state.max_val
    if state.min_val.ndim == 0:
        bad = bad & ~is_fresh(state)
    return xp.any(bad)


def first_min(a: Any, b: Any, xp: ModuleType) -> Any:
    """``torch.min(a, b)`` elementwise: NaN propagates, ``a`` wins a tie (-0.0 vs 0.0 keeps a)."""
    return xp.where(xp.isnan(b) | (b < a), b, a)


def first_max(a: Any, b: Any, xp: ModuleType) -> Any:
    """``torch.max(a, b)`` elementwise: NaN propagates, ``a`` wins a tie."""
    return xp.where(xp.isnan(b) | (b > a), b, a)


# -- one batch -------------------------------------------------------------------
def require_observable(xp: ModuleType, dtype: Any) -> None:
    """Raise TypeError unless arrays of ``dtype`` can be observed (real or bool)."""
    if not is_observable_dtype(xp, dtype):
        msg = f"observed arrays must have a real or bool dtype, got {dtype}"
        raise TypeError(msg)


def other_axes(ndim: int, ch_axis: int | None) -> tuple[int, ...]:
    """The axes a reduction runs over: all but ``ch_axis`` (all of them for None)."""
    return tuple(i for i in range(ndim) if i != ch_axis)


def to_float32(v: Any, xp: ModuleType) -> Any:
    return v if v.dtype == xp.float32 else xp.astype(v, xp.float32)


@quiet
def aminmax(x: Any, *, xp: ModuleType, ch_axis: int | None = None) -> tuple[Any, Any]:
    """(min, max) of a non-empty real array as float32 arrays: ``xp.min`` and
    ``xp.max`` in the input's dtype, then a cast of the two results.

    0-d, or of shape (C,) with ``ch_axis`` (a non-negative axis of ``x``).
    Equal to reducing ``astype(x, float32)``, because rounding to float32 is
    monotonic; NaN propagates where the backend's reductions propagate it.
    """
    if x.dtype == xp.bool:
        # min/max of bool is outside the standard; 0/1 is what a float32 cast gives.
        x = xp.astype(x, xp.uint8)
    if ch_axis is None:
        return to_float32(xp.min(x), xp), to_float32(xp.max(x), xp)
    if x.ndim == 1:
        # One element per channel: the values themselves (copies, never the input).
        return xp.astype(x, xp.float32, copy=True), xp.astype(x, xp.float32, copy=True)
    axes = other_axes(x.ndim, ch_axis)
    return to_float32(xp.min(x, axis=axes), xp), to_float32(xp.max(x, axis=axes), xp)


# -- the update rules --------------------------------------------------------------
@quiet
def minmax_combine(
    state: MinMaxState, cur_min: Any, cur_max: Any, *, xp: ModuleType | None = None
) -> MinMaxState:
    """Fold one batch's (min, max) into a min-max state, as torch's ``torch.min``/``max``."""
    xp = namespace(state, xp)
    return MinMaxState(first_min(cur_min, state.min_val, xp), first_max(cur_max, state.max_val, xp))


def merge_minmax(
    first: MinMaxState, second: MinMaxState, *, xp: ModuleType | None = None
) -> MinMaxState:
    """The min-max state of observing ``first``'s batches, then ``second``'s.

    Element-wise min of the mins and max of the maxes (NaN propagates; of two
    equal values, ``second``'s is kept, as torch keeps the newer batch's), so
    shards observed independently combine exactly, in any grouping: merging is
    associative and a fresh state is its identity. A moving average has no such
    merge: its state depends on the order of every batch, not only on the two
    final states; synchronise each batch's (min, max) instead (see docs/guide/scale-out.md).
    """
    return minmax_combine(first, second.min_val, second.max_val, xp=xp)


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


@quiet
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
    xp = namespace(state, xp)
    c = xp.asarray(averaging_constant, dtype=xp.float32, device=device_of(state.min_val))
    if fresh is not None:
        if fresh:
            return MinMaxState(cur_min, cur_max)
        return MinMaxState(
            _moving_average(state.min_val, cur_min, c, xp),
            _moving_average(state.max_val, cur_max, c, xp),
        )
    fresh_at = is_fresh(state, xp=xp)
    # A fresh state holds infinities; average zeros there instead, then discard them.
    m_min = xp.where(fresh_at, xp.zeros_like(state.min_val), state.min_val)
    m_max = xp.where(fresh_at, xp.zeros_like(state.max_val), state.max_val)
    return MinMaxState(
        xp.where(fresh_at, cur_min, _moving_average(m_min, cur_min, c, xp)),
        xp.where(fresh_at, cur_max, _moving_average(m_max, cur_max, c, xp)),
    )


@dataclasses.dataclass(frozen=True)
class RunningMinMax:
    """torch's ``MinMaxObserver`` update: the running elementwise min and max.

    A rule is what a backend applies after reducing a batch:
    ``combine(state, cur_min, cur_max, xp=, fresh=)``. ``fresh`` says whether
    the state is the never-observed one: True (the batch becomes the state,
    which may be a per-channel observer's empty (0,) one), False, or None for
    "decide per element by value" (torch's per-tensor rule, so always exact
    for a 0-d state; see :func:`moving_average_combine`). Rules are hashable,
    so compiled updates can be cached per rule.
    """

    #: A running min and max never cross; torch's check before qparams cannot fire.
    can_cross: ClassVar[bool] = False
    #: Whether an observed state stays observed (never (+inf, -inf) again).
    stays_observed: ClassVar[bool] = True

    def combine(
        self,
        state: MinMaxState,
        cur_min: Any,
        cur_max: Any,
        *,
        xp: ModuleType,
        fresh: bool | None = None,
    ) -> MinMaxState:
        if fresh:
            return MinMaxState(cur_min, cur_max)
        return minmax_combine(state, cur_min, cur_max, xp=xp)


@dataclasses.dataclass(frozen=True)
class MovingAverage:
    """torch's ``MovingAverageMinMaxObserver`` update: ``m + c * (cur - m)`` in float32."""

    averaging_constant: float
    #: The constant as torch multiplies with it: rounded to float32.
    c32: np.float32 = dataclasses.field(init=False, repr=False, compare=False)
    #: With 0 <= c <= 1 an observed state never returns to (+inf, -inf): that
    #: would need a batch whose min lies above its max.
    stays_observed: bool = dataclasses.field(init=False, repr=False, compare=False)
    can_cross: ClassVar[bool] = True

    def __post_init__(self) -> None:
        with np.errstate(over="ignore"):
            c32 = np.float32(self.averaging_constant)
        object.__setattr__(self, "c32", c32)
        object.__setattr__(self, "stays_observed", bool(0 <= c32 <= 1))

    def combine(
        self,
        state: MinMaxState,
        cur_min: Any,
        cur_max: Any,
        *,
        xp: ModuleType,
        fresh: bool | None = None,
    ) -> MinMaxState:
        return moving_average_combine(
            state, cur_min, cur_max, self.averaging_constant, xp=xp, fresh=fresh
        )


Rule = RunningMinMax | MovingAverage
