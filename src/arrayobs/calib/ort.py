"""ONNX Runtime 1.31.1's calibrators (``onnxruntime.quantization.calibrate``), bit for bit.

The classes hold the reference's names and methods, for one tensor each:

- ``HistogramCollector`` collects ORT's histograms (the ``entropy``,
  ``percentile`` and ``distribution`` methods) and runs their searches;
- ``MinMaxCalibrater`` is ORT's MinMax rule (plain, symmetric, moving average);
- ``compute_scale_zp`` is ORT's ``quant_utils.compute_scale_zp``.

Each class has a pure functional core (``histogram_init`` / ``histogram_update``
/ ``histogram_result``, ``minmax_init`` / ``minmax_update`` / ``minmax_result``)
with fixed shapes (the histogram: a static ``capacity`` with a sticky
``overflow`` flag), which runs under ``jax.jit`` and lazily on Dask.
"""

from arrayobs._core._calib_ort import (
    OrtMinMaxState,
    compute_scale_zp,
    minmax_init,
    minmax_result,
    minmax_update,
)
from arrayobs._observers._ort_histogram import (
    HistogramCollector,
    TensorData,
    histogram_init,
    histogram_result,
    histogram_update,
)
from arrayobs._observers._ort_minmax import MinMaxCalibrater

__all__ = [
    "HistogramCollector",
    "MinMaxCalibrater",
    "OrtMinMaxState",
    "TensorData",
    "compute_scale_zp",
    "histogram_init",
    "histogram_result",
    "histogram_update",
    "minmax_init",
    "minmax_result",
    "minmax_update",
]
