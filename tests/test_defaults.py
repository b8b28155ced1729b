"""torch.ao's default observer factories, by name, against torch's own factories."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import arrayobs
from arrayobs._compat import to_host

# Every default observer factory of torch.ao.quantization.observer that arrayobs covers.
NAMES = [
    "default_observer",
    "default_weight_observer",
    "weight_observer_range_neg_127_to_127",
    "default_histogram_observer",
    "default_per_channel_weight_observer",
    "per_channel_weight_observer_range_neg_127_to_127",
    "default_float_qparams_observer",
    "default_float_qparams_observer_4bit",
    "default_dynamic_quant_observer",
    "default_placeholder_observer",
    "default_debug_observer",
    "default_reuse_input_observer",
    "default_fixed_qparams_range_neg1to1_observer",
    "default_fixed_qparams_range_0to1_observer",
    "default_symmetric_fixed_qparams_observer",
    "default_affine_fixed_qparams_observer",
]
COMPUTING = NAMES[:8]
ATTRIBUTES = (
    "dtype",
    "qscheme",
    "quant_min",
    "quant_max",
    "reduce_range",
    "ch_axis",
    "is_dynamic",
    "averaging_constant",
    "bins",
    "upsample_rate",
)


def _name(obj: Any) -> Any:
    """A torch dtype or qscheme as arrayobs names it; anything else as it is."""
    return str(obj).removeprefix("torch.") if type(obj).__module__ == "torch" else obj


def _eps(value: Any) -> float:
    """``eps``, a Python float or a one-element array (torch keeps a buffer)."""
    if isinstance(value, float):
        return value
    if type(value).__module__ == "torch":
        value = value.numpy()
    return float(np.asarray(to_host(value)).reshape(-1)[0])


def _config(obs: Any) -> dict[str, Any]:
    found = {k: _name(getattr(obs, k)) for k in ATTRIBUTES if hasattr(obs, k)}
    if hasattr(obs, "eps"):
        found["eps"] = _eps(obs.eps)
    return {"class": type(obs).__name__, **found}


@pytest.mark.parametrize("name", NAMES)
def test_default_factory_configures_as_torch(torch_ref: Any, name: str) -> None:
    from torch.ao.quantization import observer

    assert name in arrayobs.__all__
    ours = getattr(arrayobs, name)()
    ref = getattr(observer, name)()
    assert _config(ours) == _config(ref)


@pytest.mark.parametrize("name", COMPUTING)
def test_default_factory_qparams_match_torch(backend: Any, torch_ref: Any, name: str) -> None:
    from torch.ao.quantization import observer

    if "histogram" in name and backend.name == "array_api_strict:no_x64":
        pytest.skip("histc counts with searchsorted, whose int64 index no_x64 lacks")
    ours = getattr(arrayobs, name)(xp=backend.xp, device=backend.device)
    ref = getattr(observer, name)()
    gen = torch_ref.Generator().manual_seed(7)
    for _ in range(3):
        batch = torch_ref.randn(4, 16, generator=gen) * 3 + 0.5
        ours(backend.from_torch(batch))
        ref(batch)
    for got, torch_value in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        host = np.asarray(to_host(got))
        want = torch_value
        if _name(want.dtype) == "int64" and not backend.has("int64"):
            # JAX without x64 has no int64: the zero point is int32 (documented).
            want = want.to(torch_ref.int32)
        assert host.dtype.name == _name(want.dtype)
        assert host.shape == tuple(want.shape)
        assert host.tobytes() == want.numpy().tobytes()
