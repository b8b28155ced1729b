"""Host-scalar helpers every backend may use: the thread pool, and the
per-tensor rules and qparams on float32 scalars.

Where a state is host memory (NumPy, torch on the CPU, Dask's small
results), the few scalar operations after a reduction (the update, qparams,
torch's check) run on NumPy scalars instead of 0-d arrays, bit for bit as
the generic rules of :mod:`arrayobs._core` (tests/test_fastpaths.py
compares them).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from typing import Any

import numpy as np

from arrayobs import _core as core
from arrayobs._config import QuantConfig

_POOL: concurrent.futures.ThreadPoolExecutor | None = None


@functools.cache
def workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one lazily created pool per process
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(workers(), "arrayobs-minmax")
    return _POOL


# -- the per-tensor rules ------------------------------------------
def _first_min(a: np.float32, b: np.float32) -> np.float32:
    return b if (b != b or b < a) else a  # noqa: PLR0124 - b != b: b is NaN


def _first_max(a: np.float32, b: np.float32) -> np.float32:
    return b if (b != b or b > a) else a  # noqa: PLR0124


def minmax_combine(m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[np.float32, np.float32]:
    """As :func:`arrayobs._core.minmax_combine` on float32 scalars."""
    return _first_min(lo, m), _first_max(hi, big_m)


_SAFE = 1e37  # |values| below this: m + c * (cur - m) cannot overflow for 0 <= c <= 1


def moving_average_combine(
    m: Any, big_m: Any, lo: Any, hi: Any, c: np.float32
) -> tuple[np.float32, np.float32]:
    """As :func:`arrayobs._core.moving_average_combine` on float32 scalars.

    A fresh (+inf, -inf) state takes the batch's values; otherwise each side
    moves by three separately rounded float32 operations.
    """
    if m == math.inf and big_m == -math.inf:
        return lo, hi
    if 0 <= c <= 1 and max(abs(m), abs(big_m), abs(lo), abs(hi)) < _SAFE:
        return m + c * (lo - m), big_m + c * (hi - big_m)
    # Infinities, NaN or a constant outside [0, 1]: inf - inf and overflow are
    # silent in the reference.
    with np.errstate(all="ignore"):
        return m + c * (lo - m), big_m + c * (hi - big_m)


# -- qparams on host scalars ---------------------------------------------------
def _wrap_int32(v: int) -> int:
    return (v - core.INT32_MIN) % 2**32 + core.INT32_MIN


def _qparams_f32(m: Any, big_m: Any, config: QuantConfig) -> tuple[np.float32, int]:
    zero = np.float32(0.0)
    eps = np.float32(config.eps)
    min_neg = _first_min(m, zero)
    max_pos = _first_max(big_m, zero)
    qrange = float(config.quant_max - config.quant_min)
    if config.symmetric:
        max_pos = _first_max(-min_neg, max_pos)
        return _first_max(max_pos / np.float32(qrange / 2), eps), config.symmetric_zero_point()
    scale = _first_max((max_pos - min_neg) / np.float32(qrange), eps)
    r = np.round(min_neg / scale)
    # C's float->int32 cast as on x86: NaN and out-of-range values become -2**31.
    as_int = int(r) if -(2.0**31) <= r < 2.0**31 else core.INT32_MIN
    zero_point = _wrap_int32(config.quant_min - as_int)
    return scale, min(max(zero_point, config.quant_min), config.quant_max)


def qparams(m: Any, big_m: Any, config: QuantConfig) -> tuple[np.float32, int]:
    """As :func:`arrayobs._core.calculate_qparams` on float32 scalars:
    ``(scale, zero_point)`` as a float32 scalar and a Python int."""
    if m == math.inf and big_m == -math.inf:
        return np.float32(1.0), 0
    if max(abs(m), abs(big_m)) < _SAFE and config.eps > 0:
        return _qparams_f32(m, big_m, config)
    # NaN, infinities, overflow or division by a zero scale: silent in the reference.
    with np.errstate(all="ignore"):
        return _qparams_f32(m, big_m, config)


def combine(rule: core.Rule, m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
    """``rule`` on float32 scalars (the per-tensor rule: fresh by value)."""
    if isinstance(rule, core.MovingAverage):
        return moving_average_combine(m, big_m, lo, hi, rule.c32)
    return minmax_combine(m, big_m, lo, hi)


def host_qparams(
    m: Any, big_m: Any, config: QuantConfig, check: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`qparams` as the (1,) arrays the observers return: float32, and
    int64 (symmetric) or int32; with ``check``, None where :func:`crossed`."""
    if check and crossed(m, big_m):
        return None
    scale, zero_point = qparams(m, big_m, config)
    return (
        np.asarray([scale], np.float32),
        np.asarray([zero_point], np.int64 if config.symmetric else np.int32),
    )


def crossed(m: Any, big_m: Any) -> bool:
    """:func:`arrayobs._core.crossed` of a 0-d state, on float32 scalars."""
    return bool(m > big_m and not (m == math.inf and big_m == -math.inf))
