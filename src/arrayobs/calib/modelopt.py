"""NVIDIA ModelOpt 0.47.0's calibrators (``modelopt.torch.quantization.calib``), bit for bit.

Classes (the reference's names and methods, on arrayobs's stateful shell):
:class:`MaxCalibrator`, :class:`HistogramCalibrator` and :class:`MseCalibrator`
(``tensor_quant`` is ModelOpt's ``_tensor_quant``, the fixed quantizer to give
it). The functional core (pure, fixed shapes, runs under ``jax.jit`` and lazily
on Dask): ``max_init`` / ``max_update`` / ``max_result``, ``histogram_init`` /
``histogram_update`` / ``histogram_result`` and ``mse_init`` / ``mse_update`` /
``mse_result`` (its losses summed in ATen's order). The searches run on the host, once,
in NumPy (:mod:`arrayobs._core._calib_modelopt_search`).
"""

from __future__ import annotations

from arrayobs._core._calib_modelopt import HistState, MaxState, MseState, tensor_quant
from arrayobs._core._calib_nphist import AbsState
from arrayobs._observers._modelopt import HistogramCalibrator, MaxCalibrator, MseCalibrator
from arrayobs._observers._modelopt_core import (
    default_lanes,
    histogram_host,
    histogram_init,
    histogram_result,
    histogram_update,
    max_init,
    max_result,
    max_update,
    mse_init,
    mse_result,
    mse_update,
)

__all__ = [
    "AbsState",
    "HistState",
    "HistogramCalibrator",
    "MaxCalibrator",
    "MaxState",
    "MseCalibrator",
    "MseState",
    "default_lanes",
    "histogram_host",
    "histogram_init",
    "histogram_result",
    "histogram_update",
    "max_init",
    "max_result",
    "max_update",
    "mse_init",
    "mse_result",
    "mse_update",
    "tensor_quant",
]
