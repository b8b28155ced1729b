"""Scale and zero point of a (min, max) state, as torch 2.13.0 computes them.

Pure Array API code that names no backend and reads nothing back. The zero
point's float-to-int32 cast behaves as on x86 (NaN and out-of-range values
become ``-2**31``) on every backend.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

from arrayobs._compat import device_of, has_dtype
from arrayobs._config import QuantConfig
from arrayobs._core._minmax import MinMaxState, first_max, first_min, is_fresh, namespace, quiet

INT32_MIN = -(2**31)


class QParams(NamedTuple):
    """``scale`` (float32) and ``zero_point`` (int32 affine, int64 symmetric,
    float32 for per_channel_affine_float_qparams)."""

    scale: Any
    zero_point: Any


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
    as_int = xp.where(in_range, as_int, xp.full_like(as_int, INT32_MIN))
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


@quiet
def calculate_qparams(
    state: MinMaxState, config: QuantConfig, *, xp: ModuleType | None = None
) -> QParams:
    """Scale and zero point of ``state`` under ``config``; reads nothing back.

    A never-observed state (or channel) gives scale 1.0 and zero point 0, as
    torch; the observer classes also warn and use int64 for that zero point, as
    torch does, which a data-independent function cannot. A state with
    ``min_val > max_val`` (torch raises) is not checked here.

    Raises ValueError for an affine range beyond int32 (the zero point's
    dtype; torch raises too), and for a symmetric zero point beyond int32 where
    the backend has no int64 (see ``QuantConfig.check_zero_point``).

    per_channel_affine_float_qparams, as torch: ``scale = (max - min) /
    (quant_max - quant_min)``, replaced by 1 where not above eps, and a float
    zero point ``-min / scale`` (from min_val and max_val themselves, not
    their extensions to include 0).

    Returns
    -------
    QParams
        Both of shape (1,) for a 0-d state, (C,) for a state of shape (C,).
    """
    xp = namespace(state, xp)
    mn, mx = state
    zero = xp.zeros_like(mn)
    min_neg = first_min(mn, zero, xp)
    max_pos = first_max(mx, zero, xp)
    eps = xp.full_like(mn, config.eps)
    qrange = float(config.quant_max - config.quant_min)
    zp_dtype = zero_point_dtype(config, xp=xp, device=device_of(mn))
    if not config.zero_point_fits_int32:
        config.check_zero_point(int64=zp_dtype == xp.int64)
    if config.symmetric:
        max_pos = first_max(-min_neg, max_pos, xp)
        scale = first_max(max_pos / _divisor(qrange / 2, mn, xp), eps, xp)
        zero_point = xp.full_like(mn, config.symmetric_zero_point(), dtype=zp_dtype)
    elif config.float_qparams:
        scale = (mx - mn) / _divisor(qrange, mn, xp)
        scale = xp.where(scale > eps, scale, xp.ones_like(scale))
        zero_point = -mn / scale
    else:
        scale = first_max((max_pos - min_neg) / _divisor(qrange, mn, xp), eps, xp)
        zero_point = _affine_zero_point(min_neg, scale, config, xp)
    fresh = is_fresh(state, xp=xp)
    scale = xp.where(fresh, xp.ones_like(scale), scale)
    zero_point = xp.where(fresh, xp.zeros_like(zero_point), zero_point)
    if scale.ndim == 0:
        scale = xp.reshape(scale, (1,))
        zero_point = xp.reshape(zero_point, (1,))
    return QParams(scale, zero_point)
