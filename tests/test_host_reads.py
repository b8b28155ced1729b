"""Host reads (GPU syncs), counted with torch's profiler as aten::_local_scalar_dense."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)


def _reads(fn: Callable[[], Any]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_local_scalar_dense")


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("cls", [MinMaxObserver, MovingAverageMinMaxObserver])
def test_forward_reads_nothing_back(backend: Any, torch_ref: Any, cls: Any, fast: bool) -> None:
    if backend.library != "torch":
        pytest.skip("counted with torch's profiler")
    from torch.ao.quantization import observer as tobs

    x = torch_ref.randn(1000, device=backend.device)
    obs = cls(xp=backend.xp, device=backend.device, fast=fast)
    # On the CPU, where there is no device to wait for, the fast path reads the
    # four 0-d values of an update (state and batch) as host scalars; on a device,
    # and on the generic path, nothing is read.
    on_device = not (fast and backend.device.type == "cpu")
    assert _reads(lambda: obs(x)) == 0  # the first update, from a fresh state
    assert _reads(lambda: obs(x)) == (0 if on_device else 4)
    # A moving average on a device reads one boolean, to refuse a crossed state
    # as torch does, unless told not to; a running min and max cannot cross. On
    # the CPU the fast path reads the state where it is, in host memory.
    assert _reads(obs.calculate_qparams) == (cls is MovingAverageMinMaxObserver and on_device)
    assert _reads(lambda: obs.calculate_qparams(check=False)) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(tobs, cls.__name__)().to(backend.device)
    ref(x)
    assert _reads(ref.calculate_qparams) >= 2
    if cls is MovingAverageMinMaxObserver:
        assert _reads(lambda: ref(x)) == 1


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("cls", [PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver])
def test_per_channel_forward_reads_nothing_back(
    backend: Any, torch_ref: Any, cls: Any, fast: bool
) -> None:
    if backend.library != "torch":
        pytest.skip("counted with torch's profiler")
    from torch.ao.quantization import observer as tobs

    x = torch_ref.randn(16, 3, 8, 8, device=backend.device)
    obs = cls(ch_axis=1, xp=backend.xp, device=backend.device, fast=fast)
    # The first batch (the state takes its shape) and the ones after it.
    assert _reads(lambda: obs(x)) == 0
    assert _reads(lambda: obs(x)) == 0
    # Only the moving average checks for crossed channels, with one read.
    assert _reads(obs.calculate_qparams) == (cls is MovingAveragePerChannelMinMaxObserver)
    assert _reads(lambda: obs.calculate_qparams(check=False)) == 0
    ref = getattr(tobs, cls.__name__)(ch_axis=1).to(backend.device)
    ref(x)
    assert _reads(ref.calculate_qparams) >= 1
