"""torch-shaped observer classes: configuration + state + thin methods.

The rules live in :mod:`arrayobs._core` and each library's way of running
them in :mod:`arrayobs._backends`; these classes validate input at the
boundary, hold the state, bind to a backend once, and mirror the API of
``torch.ao.quantization.observer``.
"""

from arrayobs._observers._per_channel import (
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs._observers._per_tensor import MinMaxObserver, MovingAverageMinMaxObserver

__all__ = [
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "PerChannelMinMaxObserver",
]
