"""A plausible but wrong observer for ``arrayobs compare --target`` (its test must fail):
NumPy only, with two common mistakes: the moving average is ignored (every observer keeps
the running min and max) and the scale is computed in float64 from float64 values.

Its HistogramObserver (``--cases histogram``) keeps the running range and the right
histogram shape, but counts each batch with ``np.histogram`` in float64 over the new range
without re-binning the old counts, drops infinities without a warning, and takes its
qparams from min/max (no L2 search)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

_RANGES = {"quint8": (0, 255), "qint8": (-128, 127), "uint8": (0, 255), "int8": (-128, 127)}


class Naive:
    def __init__(self, name: str, **kwargs: Any) -> None:
        self.ch_axis = kwargs.get("ch_axis")
        lo, hi = _RANGES.get(kwargs["dtype"], (-(2**31), 2**31 - 1))
        self.qmin, self.qmax = kwargs.get("quant_min", lo), kwargs.get("quant_max", hi)
        self.min_val = np.asarray(np.inf, np.float32)
        self.max_val = np.asarray(-np.inf, np.float32)

    def forward(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        x = x.astype(np.float64)
        if self.ch_axis is None:
            lo, hi = x.min(), x.max()
        else:
            y = np.moveaxis(x, self.ch_axis, 0).reshape(x.shape[self.ch_axis], -1)
            lo, hi = y.min(axis=1), y.max(axis=1)
        with np.errstate(all="ignore"):
            self.min_val = np.minimum(self.min_val, lo).astype(np.float32)
            self.max_val = np.maximum(self.max_val, hi).astype(np.float32)

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        if np.all(np.isinf(self.min_val)):
            warnings.warn("never observed", stacklevel=2)
        lo = np.minimum(self.min_val.astype(np.float64), 0.0)
        hi = np.maximum(self.max_val.astype(np.float64), 0.0)
        with np.errstate(all="ignore"):
            scale = np.maximum((hi - lo) / (self.qmax - self.qmin), 2.0**-23)
            zero_point = np.clip(self.qmin - np.round(lo / scale), self.qmin, self.qmax)
        scale = np.atleast_1d(scale).astype(np.float32)
        return scale, np.atleast_1d(np.nan_to_num(zero_point)).astype(np.int32)


class NaiveHistogram(Naive):
    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.histogram = np.zeros(kwargs["bins"], np.float32)

    def forward(self, x: np.ndarray) -> None:
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        super().forward(x)
        lo, hi = float(self.min_val), float(self.max_val)
        counts, _ = np.histogram(x.astype(np.float64), self.histogram.size, (lo, hi))
        self.histogram = (self.histogram + counts).astype(np.float32)


def make(name: str, **kwargs: Any) -> Naive:
    return NaiveHistogram(name, **kwargs) if name == "HistogramObserver" else Naive(name, **kwargs)
