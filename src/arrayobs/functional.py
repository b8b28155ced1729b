"""The pure functional core of arrayobs: state in, state out.

Every function here takes arrays and returns new arrays; nothing is mutated,
no Python ``if`` looks at an array's values and nothing is read back to the
host. So the same code runs eagerly on any Array API backend, under
``jax.jit``, and on lazy Dask arrays. The observer classes are built on the
same rules (``arrayobs._core``) and backends (``arrayobs._backends``).

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

from types import ModuleType
from typing import Any

from arrayobs import _backends
from arrayobs._compat import array_namespace, size
from arrayobs._config import QuantConfig, quant_config
from arrayobs._core import (
    MinMaxState,
    QParams,
    calculate_qparams,
    channel_axis,
    init_state,
    is_fresh,
    merge_minmax,
    minmax_combine,
    moving_average_combine,
    namespace,
    quiet,
    require_size,
)

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


@quiet
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
        For a dtype that is not real or bool, or a NumPy masked array.
    ValueError
        If ``x`` has no axis ``ch_axis`` (checked before the empty case), or
        unknown size (Dask).
    """
    backend = _backends.shared(array_namespace(x) if xp is None else xp, fast)
    backend.check_input(x)
    n = require_size(size(x))
    ch = None if ch_axis is None else channel_axis(ch_axis, x.ndim)
    if n == 0:
        return None
    return backend.aminmax(x, ch)


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


def pminmax(cur_min: Any, cur_max: Any, axis_name: Any) -> tuple[Any, Any]:
    """Inside JAX's ``shard_map`` (or ``pmap``): every shard's (min, max) combined.

    The pattern for a batch sharded over a mesh axis ``"i"``::

        lo, hi = F.pminmax(*F.batch_minmax(shard), "i")
        state = F.minmax_combine(state, lo, hi)

    Unlike ``lax.pmin``/``lax.pmax``, which drop a NaN on the CPU, a NaN on
    any shard propagates, as in one process. One collective. (An empty shard:
    pass ``(inf, -inf)``, the identity.)
    """
    from arrayobs._backends import _jax

    return _jax.pminmax(cur_min, cur_max, axis_name)


@quiet
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
    xp = namespace(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return minmax_combine(state, *cur, xp=xp)


@quiet
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
    xp = namespace(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return moving_average_combine(state, *cur, averaging_constant, xp=xp)
