"""torch.ao's own observers behind ``arrayobs compare --target``'s protocol (the example in
docs/conformance.md): ``arrayobs compare --target tests.torchao_target:make`` (and
``--cases histogram``: HistogramObserver, whose forward warns of infinities itself)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.ao.quantization import observer


class TorchAO:
    def __init__(self, name: str, **kwargs: Any) -> None:
        kwargs["dtype"] = getattr(torch, kwargs["dtype"])
        kwargs["qscheme"] = getattr(torch, kwargs["qscheme"])
        self.obs = getattr(observer, name)(**kwargs)

    def forward(self, x: np.ndarray) -> None:
        self.obs(torch.from_numpy(x) if x.ndim else torch.tensor(x))

    def calculate_qparams(self) -> tuple[np.ndarray, np.ndarray]:
        scale, zero_point = self.obs.calculate_qparams()
        return scale.numpy(), zero_point.numpy()

    @property
    def min_val(self) -> np.ndarray:
        return self.obs.min_val.clone().numpy()  # a copy: torch resizes the buffer later

    @property
    def max_val(self) -> np.ndarray:
        return self.obs.max_val.clone().numpy()

    @property
    def histogram(self) -> np.ndarray:  # HistogramObserver's counts
        return self.obs.histogram.clone().numpy()


make = TorchAO


def minmax_only(name: str, **kwargs: Any) -> TorchAO:
    """A factory without HistogramObserver: the protocol's NotImplementedError skips its cases."""
    if name == "HistogramObserver":
        raise NotImplementedError(name)
    return TorchAO(name, **kwargs)
