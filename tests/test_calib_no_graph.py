"""The calibrators keep no autograd graph: fed ``requires_grad`` tensors, nothing in
their state requires grad or has a ``grad_fn`` (as the observers)."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="reference not installed: torch 2.13.0")

from arrayobs.calib import modelopt, ort  # noqa: E402


def _quant(x: Any, amax: Any) -> Any:
    import array_api_compat.torch as xp

    return modelopt.tensor_quant(x, amax, xp=xp)


def _calibrators() -> list[Any]:
    return [
        ort.HistogramCollector("entropy", False, 128, 128, 99.9),
        ort.HistogramCollector("percentile", True, 128, 128, 99.9),
        ort.MinMaxCalibrater(),
        ort.MinMaxCalibrater(moving_average=True),
        modelopt.MaxCalibrator(),
        modelopt.HistogramCalibrator(num_bins=256),
        modelopt.HistogramCalibrator(num_bins=256, torch_hist=False),
        # an initial amax that requires grad too: the reference runs under no_grad
        modelopt.MseCalibrator(torch.tensor(3.0).requires_grad_(), quant_func=_quant),
    ]


@pytest.mark.parametrize("index", range(len(_calibrators())))
def test_state_keeps_no_graph(index: int) -> None:
    calibrator = _calibrators()[index]
    for seed in range(2):
        x = torch.randn(500, 3, generator=torch.Generator().manual_seed(seed)) * (seed + 1)
        assert calibrator(x.requires_grad_()) is x
    for name, value in calibrator.state_dict().items():
        assert not getattr(value, "requires_grad", False), name
        assert getattr(value, "grad_fn", None) is None, name
