"""ONNX Runtime 1.31.1's calibrators (``onnxruntime.quantization.calibrate``), bit for bit.

``HistogramCollector`` collects ORT's histograms for one tensor (the
``entropy``, ``percentile`` and ``distribution`` methods); ``histogram_init``,
``histogram_update`` and ``histogram_result`` are its pure functional core
(fixed shapes: a static ``capacity`` with a sticky ``overflow`` flag; runs
under ``jax.jit`` and lazily on Dask).
"""

from arrayobs._observers._ort_histogram import (
    HistogramCollector,
    histogram_init,
    histogram_result,
    histogram_update,
)

__all__ = ["HistogramCollector", "histogram_init", "histogram_result", "histogram_update"]
