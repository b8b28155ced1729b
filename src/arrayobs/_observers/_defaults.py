"""torch.ao's default observer factories that compute qparams, under torch's names.

Each is the class torch 2.13.0 names, with the same ``with_args`` arguments
(``torch/ao/quantization/observer.py``); dtypes and qschemes are spelled as
strings. The factories that compute nothing (placeholder, debug, dynamic,
reuse-input, fixed qparams) live beside their classes in ``_simple``.
"""

from __future__ import annotations

from arrayobs._observers._histogram import HistogramObserver
from arrayobs._observers._per_channel import PerChannelMinMaxObserver
from arrayobs._observers._per_tensor import MinMaxObserver

# torch restricts activations to (0, 127) here: the reduced range of its old
# x86 kernels, kept for debugging.
default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
default_weight_observer = MinMaxObserver.with_args(dtype="qint8", qscheme="per_tensor_symmetric")
weight_observer_range_neg_127_to_127 = MinMaxObserver.with_args(
    dtype="qint8", qscheme="per_tensor_symmetric", quant_min=-127, quant_max=127, eps=2**-12
)
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype="qint8", qscheme="per_channel_symmetric"
)
per_channel_weight_observer_range_neg_127_to_127 = PerChannelMinMaxObserver.with_args(
    dtype="qint8", qscheme="per_channel_symmetric", quant_min=-127, quant_max=127, eps=2**-12
)
default_float_qparams_observer = PerChannelMinMaxObserver.with_args(
    dtype="quint8", qscheme="per_channel_affine_float_qparams", ch_axis=0
)
default_float_qparams_observer_4bit = PerChannelMinMaxObserver.with_args(
    dtype="quint4x2", qscheme="per_channel_affine_float_qparams", ch_axis=0
)
