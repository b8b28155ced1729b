"""Calibrators beyond torch.ao: ONNX Runtime's and ModelOpt's, bit for bit.

``arrayobs.calib`` holds the calibration rules of two other references, each
in a submodule named after it, with the reference's own class and method
names, on every array library arrayobs supports:

- :mod:`arrayobs.calib.ort`: ONNX Runtime 1.31.1's
  ``onnxruntime.quantization.calibrate`` (``HistogramCollector`` for the
  entropy, percentile and distribution methods, ``MinMaxCalibrater``,
  ``compute_scale_zp``);
- :mod:`arrayobs.calib.modelopt`: NVIDIA ModelOpt 0.47.0's
  ``modelopt.torch.quantization.calib`` (``MaxCalibrator``,
  ``HistogramCalibrator`` for the entropy, mse and percentile methods,
  ``MseCalibrator``).

Each class stands on arrayobs's stateful shell (forward returns its input;
state_dict, deepcopy, pickle, threads, errors that leave the state as it
was), over a pure functional core (``<family>_init`` / ``_update`` /
``_result``) whose updates run under ``jax.jit`` and lazily on Dask with
fixed shapes. ``channel_axis`` adds per-channel calibration: channel ``i`` is,
bit for bit, the per-tensor reference run on ``np.take(x, i, axis)``.
"""
