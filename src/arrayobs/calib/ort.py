"""ONNX Runtime 1.31.1's calibrators (``onnxruntime.quantization.calibrate``), bit for bit.

The classes hold the references' names and methods for one tensor; the
functional core (``minmax_init`` / ``minmax_update`` / ``minmax_result``)
is pure, with fixed shapes, and runs under ``jax.jit`` and lazily on Dask.
"""

from arrayobs._core._calib_ort import (
    OrtMinMaxState,
    compute_scale_zp,
    minmax_init,
    minmax_result,
    minmax_update,
)
from arrayobs._observers._ort_minmax import MinMaxCalibrater

__all__ = [
    "MinMaxCalibrater",
    "OrtMinMaxState",
    "compute_scale_zp",
    "minmax_init",
    "minmax_result",
    "minmax_update",
]
