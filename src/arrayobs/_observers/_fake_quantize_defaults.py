"""torch.ao's default fake-quantize factories and the ``enable_*``/``disable_*``
switches for ``Module.apply``, under torch's names.

Each factory is the class torch 2.13.0 names, with the same ``with_args``
arguments (``torch/ao/quantization/fake_quantize.py``); dtypes and qschemes are
spelled as strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arrayobs._observers._fake_quantize import (
    FakeQuantize,
    FakeQuantizeBase,
    FixedQParamsFakeQuantize,
    FusedMovingAvgObsFakeQuantize,
)
from arrayobs._observers._per_channel import MovingAveragePerChannelMinMaxObserver
from arrayobs._observers._per_tensor import MovingAverageMinMaxObserver
from arrayobs._observers._simple import (
    default_fixed_qparams_range_0to1_observer,
    default_fixed_qparams_range_neg1to1_observer,
)

__all__ = [
    "default_affine_fixed_qparams_fake_quant",
    "default_fake_quant",
    "default_fixed_qparams_range_0to1_fake_quant",
    "default_fixed_qparams_range_neg1to1_fake_quant",
    "default_fused_act_fake_quant",
    "default_fused_per_channel_wt_fake_quant",
    "default_fused_wt_fake_quant",
    "default_per_channel_weight_fake_quant",
    "default_symmetric_fixed_qparams_fake_quant",
    "default_weight_fake_quant",
    "disable_fake_quant",
    "disable_observer",
    "enable_fake_quant",
    "enable_observer",
    "fused_per_channel_wt_fake_quant_range_neg_127_to_127",
    "fused_wt_fake_quant_range_neg_127_to_127",
]


def _apply(method: str) -> Callable[[Any], None]:
    def switch(mod: Any) -> None:
        if isinstance(mod, FakeQuantizeBase):
            getattr(mod, method)()

    switch.__name__ = method
    switch.__doc__ = f"``mod.{method}()`` if ``mod`` is a fake-quantize module (for ``apply``)."
    return switch


enable_fake_quant = _apply("enable_fake_quant")
disable_fake_quant = _apply("disable_fake_quant")
enable_observer = _apply("enable_observer")
disable_observer = _apply("disable_observer")

#: torch.ao's ``default_fake_quant``: activations, quint8 (0, 255), reduce_range.
default_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver,
    quant_min=0,
    quant_max=255,
    dtype="quint8",
    qscheme="per_tensor_affine",
    reduce_range=True,
)
#: torch.ao's ``default_weight_fake_quant``: qint8 (-128, 127), symmetric.
default_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver,
    quant_min=-128,
    quant_max=127,
    dtype="qint8",
    qscheme="per_tensor_symmetric",
    reduce_range=False,
)
#: torch.ao's ``default_per_channel_weight_fake_quant``: qint8, symmetric, ch_axis 0.
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver,
    quant_min=-128,
    quant_max=127,
    dtype="qint8",
    qscheme="per_channel_symmetric",
    reduce_range=False,
    ch_axis=0,
)

#: torch.ao's ``default_fused_act_fake_quant``: quint8 (0, 255), per tensor affine.
default_fused_act_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype="quint8"
)
#: torch.ao's ``default_fused_wt_fake_quant``: qint8 (-128, 127), per tensor symmetric.
default_fused_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver,
    quant_min=-128,
    quant_max=127,
    dtype="qint8",
    qscheme="per_tensor_symmetric",
)
#: torch.ao's ``default_fused_per_channel_wt_fake_quant``: qint8, per channel symmetric.
default_fused_per_channel_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver,
    quant_min=-128,
    quant_max=127,
    dtype="qint8",
    qscheme="per_channel_symmetric",
)
#: torch.ao's ``fused_wt_fake_quant_range_neg_127_to_127``.
fused_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver,
    quant_min=-127,
    quant_max=127,
    dtype="qint8",
    qscheme="per_tensor_symmetric",
    eps=2**-12,
)
#: torch.ao's ``fused_per_channel_wt_fake_quant_range_neg_127_to_127``.
fused_per_channel_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver,
    quant_min=-127,
    quant_max=127,
    dtype="qint8",
    qscheme="per_channel_symmetric",
    eps=2**-12,
)

#: torch.ao's ``default_fixed_qparams_range_neg1to1_fake_quant`` (tanh outputs).
default_fixed_qparams_range_neg1to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_neg1to1_observer
)
#: torch.ao's ``default_fixed_qparams_range_0to1_fake_quant`` (sigmoid outputs).
default_fixed_qparams_range_0to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_0to1_observer
)
default_symmetric_fixed_qparams_fake_quant = default_fixed_qparams_range_neg1to1_fake_quant
default_affine_fixed_qparams_fake_quant = default_fixed_qparams_range_0to1_fake_quant
