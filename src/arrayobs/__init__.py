"""arrayobs: PyTorch's quantization observers on every Array API backend.

MinMaxObserver, MovingAverageMinMaxObserver and their per-channel
counterparts (PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver)
give the same state and
quantization parameters as ``torch.ao.quantization`` in torch 2.13.0, bit for
bit, on NumPy, CuPy, PyTorch, JAX, array-api-strict and Dask. The pure
functional core is :mod:`arrayobs.functional`.
"""

from arrayobs import functional
from arrayobs._config import QuantConfig, quant_config
from arrayobs._observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)

__all__ = [
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "PerChannelMinMaxObserver",
    "QuantConfig",
    "functional",
    "quant_config",
]
__version__ = "0.1.0"
