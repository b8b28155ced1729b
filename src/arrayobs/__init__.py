"""arrayobs: torch.ao.quantization's observers and fake quantization, and torchao's affine
primitives, on every Array API backend.

The classes here give the same state, quantization parameters, state_dicts and
warnings as ``torch.ao.quantization`` in torch 2.13.0, bit for bit, on NumPy,
CuPy, PyTorch, JAX, array-api-strict and Dask: the range observers per tensor
(MinMaxObserver, MovingAverageMinMaxObserver) and per channel
(PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver),
HistogramObserver, the simple observers (FixedQParamsObserver,
PlaceholderObserver, NoopObserver, ReuseInputObserver, RecordingObserver), the
fake-quantize modules (FakeQuantize, FusedMovingAvgObsFakeQuantize,
FixedQParamsFakeQuantize) and torch.ao's factories. The pure functional core,
with the quantize, dequantize and fake-quantize ops, is
:mod:`arrayobs.functional`; torchao 0.18.0's affine primitives and observers
are :mod:`arrayobs.affine`.
"""

from arrayobs import affine, functional
from arrayobs._config import QuantConfig, quant_config
from arrayobs._observers import (
    FakeQuantize,
    FakeQuantizeBase,
    FixedQParamsFakeQuantize,
    FixedQParamsObserver,
    FusedMovingAvgObsFakeQuantize,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    NoopObserver,
    PerChannelMinMaxObserver,
    PlaceholderObserver,
    RecordingObserver,
    ReuseInputObserver,
    default_affine_fixed_qparams_fake_quant,
    default_affine_fixed_qparams_observer,
    default_fake_quant,
    default_fixed_qparams_range_0to1_fake_quant,
    default_fixed_qparams_range_0to1_observer,
    default_fixed_qparams_range_neg1to1_fake_quant,
    default_fixed_qparams_range_neg1to1_observer,
    default_fused_act_fake_quant,
    default_fused_per_channel_wt_fake_quant,
    default_fused_wt_fake_quant,
    default_per_channel_weight_fake_quant,
    default_symmetric_fixed_qparams_fake_quant,
    default_symmetric_fixed_qparams_observer,
    default_weight_fake_quant,
    disable_fake_quant,
    disable_observer,
    enable_fake_quant,
    enable_observer,
    fused_per_channel_wt_fake_quant_range_neg_127_to_127,
    fused_wt_fake_quant_range_neg_127_to_127,
)
from arrayobs._observers._affine import (
    AffineQuantizedMinMaxObserver,
    AffineQuantizedMovingAverageMinMaxObserver,
)

__all__ = [
    "AffineQuantizedMinMaxObserver",
    "AffineQuantizedMovingAverageMinMaxObserver",
    "FakeQuantize",
    "FakeQuantizeBase",
    "FixedQParamsFakeQuantize",
    "FixedQParamsObserver",
    "FusedMovingAvgObsFakeQuantize",
    "HistogramObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "NoopObserver",
    "PerChannelMinMaxObserver",
    "PlaceholderObserver",
    "QuantConfig",
    "RecordingObserver",
    "ReuseInputObserver",
    "affine",
    "default_affine_fixed_qparams_fake_quant",
    "default_affine_fixed_qparams_observer",
    "default_fake_quant",
    "default_fixed_qparams_range_0to1_fake_quant",
    "default_fixed_qparams_range_0to1_observer",
    "default_fixed_qparams_range_neg1to1_fake_quant",
    "default_fixed_qparams_range_neg1to1_observer",
    "default_fused_act_fake_quant",
    "default_fused_per_channel_wt_fake_quant",
    "default_fused_wt_fake_quant",
    "default_per_channel_weight_fake_quant",
    "default_symmetric_fixed_qparams_fake_quant",
    "default_symmetric_fixed_qparams_observer",
    "default_weight_fake_quant",
    "disable_fake_quant",
    "disable_observer",
    "enable_fake_quant",
    "enable_observer",
    "functional",
    "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
    "fused_wt_fake_quant_range_neg_127_to_127",
    "quant_config",
]
__version__ = "0.1.0"
