"""The histogram's batch range: what torch's forward reads of a batch before
its ``histc``, as pure steps on host floats.

One process and a process group take the same path: each shard's range is
summarised as five floats whose maxima (one collective, exact) summarise the
whole batch (:func:`shard_summary`), and :func:`batch_range` reads the range
to bin over from them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

from arrayobs._core._histogram import histc_range

INF_WARNING = "torch.inf detected in input tensor, ignoring input"


def finite_range(x: Any, *, xp: ModuleType) -> tuple[float, float]:
    """(min, max) of the finite values of ``x``; (inf, -inf) if there are none."""
    keep = xp.isfinite(x)
    lo = float(xp.min(xp.where(keep, x, xp.full_like(x, math.inf))))
    hi = float(xp.max(xp.where(keep, x, xp.full_like(x, -math.inf))))
    return lo, hi


def shard_summary(
    raw: tuple[float, float] | None,
    finite_of: Callable[[], tuple[float, float]],
    *,
    raise_nan: bool,
) -> tuple[list[float], bool]:
    """``[nan, -lo, hi, -finite_lo, finite_hi]`` of a shard whose (min, max) is
    ``raw`` (None: empty), and whether all its values are finite.

    Maxima of these over shards summarise their union exactly. ``finite_of``
    runs only where a value is infinite. ``raise_nan``: raise now, with the
    shard's own range, as torch's histc does (one process).
    """
    inf = math.inf
    if raw is None:
        return [0.0, -inf, -inf, -inf, -inf], True
    nan = math.isnan(raw[0]) or math.isnan(raw[1])
    if nan and raise_nan:
        histc_range(*raw)  # raises, as torch's histc does
    finite = not nan and -inf < raw[0] and raw[1] < inf
    if nan:
        raw = (inf, -inf)
    fin = raw if finite or nan else finite_of()
    return [float(nan), -raw[0], raw[1], -fin[0], fin[1]], finite


def batch_range(summary: list[float], *, stacklevel: int) -> tuple[float, float] | None:
    """The range torch's forward bins a batch over, from its :func:`shard_summary`:
    NaN raises (torch's histc does), infinite values are dropped with torch's
    warning; None where nothing is left (an empty batch, or no finite value)."""
    any_nan, raw_lo, raw_hi, fin_lo, fin_hi = summary
    if any_nan:
        histc_range(math.nan, math.nan)  # raises on every rank, as torch's histc does
    if -raw_lo > raw_hi:
        return None  # every shard empty: as torch, nothing changes
    if -raw_lo == -math.inf or raw_hi == math.inf:
        warnings.warn(INF_WARNING, stacklevel=stacklevel)  # counted from here
    if -fin_lo > fin_hi:
        return None
    return -fin_lo, fin_hi
