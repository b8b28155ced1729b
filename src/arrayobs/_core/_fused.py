"""``torch.fused_moving_avg_obs_fake_quant``'s own rules (FusedMovingAvgObsFakeQuantize).

The fused op does not call the observers' code. Its running min and max move
by ``r + c * (cur - r)`` in float32, but the first-batch rule is per value:
any running value that is infinite takes the batch's. Its qparams come from
FBGEMM's ``ChooseQuantizationParams`` (torch's CPU build; symmetric schemes
pass ``preserve_sparsity``), whose arithmetic is not ``calculate_qparams``'s:

1. symmetric, with ``min < 0 < max``: both widened to ``max_scale * (-(span // 2 + 1))``
   and ``max_scale * (span // 2)``, ``max_scale = max(|min / sqmin|, |max / sqmax|)``
   (float divisions), rounded to float32;
2. ``min = min(min, 0)``, ``max = max(max, 0)``;
3. ``scale = float32((double(max) - min) / span)``, ``span = quant_max - quant_min``
   in int32 (it wraps for the full int32 range, as in torch);
4. a zero or reciprocal-infinite scale becomes 0.1;
5. (CPU only) a scale below 6.1e-5 becomes 6.1e-5, the range widened to match;
6. the zero point is the one of ``quant_min - min / scale`` and
   ``quant_max - max / scale`` with the smaller error ``|q| + |v / scale|``, in
   double (symmetric with ``min < 0 < max``: ``(quant_min + quant_max) / 2``),
   then clamped, or rounded half to even.

Everything is elementwise, so the same code serves per tensor (0-d) and per
row (shape (C,)); nothing is read back from a device.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._core._fakequant import wide_float
from arrayobs._core._keys import INT32_MIN
from arrayobs._core._minmax import MinMaxState, quiet
from arrayobs._core._qparams import _divisor

SMALL_SCALE = np.float32(6.1e-5)


def _int32(v: int) -> int:
    """``v`` wrapped to int32, as C's int arithmetic on x86 leaves it."""
    return (v + 2**31) % 2**32 - 2**31


def _c_div(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@quiet
def moving_average(running: Any, cur: Any, c: float, *, xp: ModuleType, device: Any = None) -> Any:
    """``isinf(r) ? cur : r + c * (cur - r)`` in float32 (``c`` narrowed to float32)."""
    cf = xp.asarray(np.float32(c), dtype=xp.float32, device=device)
    first = xp.isinf(running)
    # An infinite running value is replaced before the arithmetic, not only after:
    # inf - inf would warn where it is evaluated (lazily, on Dask: outside any errstate).
    finite = xp.where(first, xp.zeros_like(running), running)
    moved = finite + cf * (cur - finite)
    return xp.where(first, cur, moved)


def _std_min(a: Any, b: Any, xp: ModuleType) -> Any:
    """``std::min(a, b)``: ``b < a ? b : a`` (a NaN ``a`` stays)."""
    return xp.where(b < a, b, a)


def _std_max(a: Any, b: Any, xp: ModuleType) -> Any:
    """``std::max(a, b)``: ``a < b ? b : a``."""
    return xp.where(a < b, b, a)


@quiet
def qparams(
    lo: Any,
    hi: Any,
    quant_min: int,
    quant_max: int,
    symmetric: bool,
    *,
    xp: ModuleType,
    device: Any = None,
    small_scale_cutoff: bool = True,
) -> tuple[Any, Any]:
    """FBGEMM's ``ChooseQuantizationParams`` of float32 ``lo``/``hi``:
    ``(scale float32, zero_point int32)``, elementwise."""
    f32 = xp.float32
    w = wide_float(xp, device)
    span = _int32(quant_max - quant_min)
    zero = xp.zeros_like(lo)
    if symmetric:
        sqmin = -(_c_div(span, 2) + 1)
        sqmax = _c_div(span, 2)
        both = (lo < 0) & (hi > 0)
        # Divisions by data-shaped divisors: XLA turns a division by a broadcast
        # constant into a multiplication by its reciprocal (see _qparams._divisor).
        a = xp.abs(lo / _divisor(float(sqmin), lo, xp))
        b = xp.abs(hi / _divisor(float(sqmax), hi, xp))
        max_scale = xp.astype(_std_max(a, b, xp), w)
        lo = xp.where(both, xp.astype(max_scale * sqmin, f32), lo)
        hi = xp.where(both, xp.astype(max_scale * sqmax, f32), hi)
    lo = _std_min(lo, zero, xp)
    hi = _std_max(hi, zero, xp)
    width = xp.astype(hi, w) - xp.astype(lo, w)
    scale = xp.astype(width / _divisor(float(span), width, xp), f32)
    one = xp.asarray(1.0, dtype=f32, device=device)
    bad = (scale == 0) | xp.isinf(one / scale)
    scale = xp.where(bad, xp.asarray(np.float32(0.1), dtype=f32, device=device), scale)
    if small_scale_cutoff:
        small = scale < xp.asarray(SMALL_SCALE, dtype=f32, device=device)
        amp = xp.asarray(SMALL_SCALE, dtype=f32, device=device) / scale
        widened = xp.asarray(np.float32(SMALL_SCALE * np.float32(span)), dtype=f32, device=device)
        new_lo = xp.where(lo == 0, lo, xp.where(hi == 0, -widened, lo * amp))
        new_hi = xp.where(lo == 0, widened, xp.where(hi == 0, hi, hi * amp))
        lo = xp.where(small, new_lo, lo)
        hi = xp.where(small, new_hi, hi)
        scale = xp.where(small, xp.asarray(SMALL_SCALE, dtype=f32, device=device), scale)
    s = xp.astype(scale, w)
    lw, hw = xp.astype(lo, w), xp.astype(hi, w)
    zmin = quant_min - lw / s
    zmax = quant_max - hw / s
    emin = abs(quant_min) + xp.abs(lw / s)
    emax = abs(quant_max) + xp.abs(hw / s)
    init = xp.where(emin < emax, zmin, zmax)
    if symmetric:
        middle = xp.asarray(_int32(quant_min + quant_max) / 2, dtype=w, device=device)
        init = xp.where((lo < 0) & (hi > 0), middle, init)
    qlo = xp.asarray(float(quant_min), dtype=w, device=device)
    qhi = xp.asarray(float(quant_max), dtype=w, device=device)
    nudged = xp.where(init < qlo, qlo, xp.where(init > qhi, qhi, xp.round(init)))
    ok = (nudged >= -(2.0**31)) & (nudged < 2.0**31)
    as_int = xp.astype(xp.where(ok, nudged, xp.zeros_like(nudged)), xp.int32)
    zero_point = xp.where(ok, as_int, xp.full_like(as_int, INT32_MIN))
    return scale, zero_point


def with_channels(state: MinMaxState, n: int, *, xp: ModuleType, device: Any) -> MinMaxState:
    """A per-channel state for a batch of ``n`` channels: the never-observed
    (0,) one becomes ``n`` times (+inf, -inf); another count raises."""
    have = state.min_val.shape[0]
    if have == 0:
        return MinMaxState(
            xp.full((n,), xp.inf, dtype=xp.float32, device=device),
            xp.full((n,), -xp.inf, dtype=xp.float32, device=device),
        )
    if have != n:
        msg = f"the input has {n} channels; the state has {have}"
        raise ValueError(msg)
    return state


def observe(
    state: MinMaxState, lo: Any, hi: Any, c: float, *, xp: ModuleType, device: Any = None
) -> MinMaxState:
    """The fused op's update of a state by a batch's (min, max): each side
    moves by :func:`moving_average` (or takes the batch's value where infinite)."""
    return MinMaxState(
        moving_average(state.min_val, lo, c, xp=xp, device=device),
        moving_average(state.max_val, hi, c, xp=xp, device=device),
    )


def _select(flag: Any, new: Any, old: Any, xp: ModuleType) -> Any:
    """``new`` where the switch is on: a Python bool decides now; an array stays a
    ``where``, so nothing is read back from a device."""
    if isinstance(flag, bool):
        return new if flag else old
    return xp.where(flag, new, old)


def step(
    running_min: Any,
    running_max: Any,
    scale: Any,
    zero_point: Any,
    batch: tuple[Any, Any],
    observing: Any,
    fake_quant: Any,
    averaging_const: float,
    quant_min: int,
    quant_max: int,
    symmetric: bool,
    *,
    xp: ModuleType,
    device: Any = None,
) -> tuple[Any, Any, Any, Any]:
    """One state step of ``torch.fused_moving_avg_obs_fake_quant``: the running
    (min, max) moved towards the batch's where ``observing`` is on, then the
    qparams of the running values where ``fake_quant`` is on (``scale`` and
    ``zero_point`` keep their shapes and dtypes; both switches are Python bools
    or boolean arrays)."""
    moved = observe(
        MinMaxState(running_min, running_max), *batch, averaging_const, xp=xp, device=device
    )
    running_min = _select(observing, moved.min_val, running_min, xp)
    running_max = _select(observing, moved.max_val, running_max, xp)
    s, z = qparams(running_min, running_max, quant_min, quant_max, symmetric, xp=xp, device=device)
    s = xp.reshape(s, scale.shape)
    z = xp.reshape(xp.astype(z, zero_point.dtype), zero_point.shape)
    return (
        running_min,
        running_max,
        _select(fake_quant, s, scale, xp),
        _select(fake_quant, z, zero_point, xp),
    )
