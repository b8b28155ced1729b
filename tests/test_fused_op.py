"""``functional.fused_moving_avg_obs_fake_quant`` against ``torch.fused_moving_avg_obs_fake_quant``.

torch's op mutates its four state tensors in place and returns the output;
arrayobs's returns the output and the new state, so each step here runs both
and compares the output and all four state arrays, byte for byte.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arrayobs import functional as F
from arrayobs._compat import array_namespace, to_host

# (observer_on, fake_quant_on) per step: the op's two switches, in every combination.
SWITCHES = [(1, 1), (1, 1), (0, 1), (1, 0), (0, 0), (1, 1)]


def _bytes(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    host = np.asarray(to_host(a))
    return host.dtype.name, host.shape, host.tobytes()


def _torch_bytes(t: Any) -> tuple[str, tuple[int, ...], bytes]:
    host = t.detach().numpy()
    return host.dtype.name, host.shape, host.tobytes()


def _needs_float64(backend: Any) -> None:
    # JAX without x64 runs the double steps under a local jax.enable_x64.
    if not backend.has("float64") and backend.library != "jax":
        pytest.skip("the fused qparams take double steps: float32 only is documented inexact")


@pytest.mark.parametrize(
    ("qmin", "qmax", "symmetric"), [(0, 255, False), (-128, 127, True), (0, 127, False)]
)
@pytest.mark.parametrize("per_row", [False, True])
def test_matches_torch_step_by_step(
    backend: Any, torch_ref: Any, qmin: int, qmax: int, symmetric: bool, per_row: bool
) -> None:
    _needs_float64(backend)
    torch = torch_ref
    xp = backend.xp
    gen = torch.Generator().manual_seed(qmax + per_row)
    channels = 3 if per_row else 1
    ref = [
        torch.full((channels,), float("inf")),
        torch.full((channels,), float("-inf")),
        torch.ones(channels),
        torch.zeros(channels, dtype=torch.int32),
    ]
    ours = [backend.from_torch(t.clone()) for t in ref]
    for step, (obs_on, fq_on) in enumerate(SWITCHES):
        x = torch.randn(channels, 17, generator=gen) * (step + 1) - step * 0.25
        on = (torch.tensor([obs_on]), torch.tensor([fq_on]))
        want = torch.fused_moving_avg_obs_fake_quant(
            x, *on, *ref, 0.01, qmin, qmax, 0, per_row, symmetric
        )
        got, *ours = F.fused_moving_avg_obs_fake_quant(
            backend.from_torch(x),
            backend.from_torch(on[0]),
            backend.from_torch(on[1]),
            *ours,
            0.01,
            qmin,
            qmax,
            0,
            per_row,
            symmetric,
        )
        assert array_namespace(got) is xp
        assert _bytes(got) == _torch_bytes(want), f"output, step {step}"
        names = ("running_min", "running_max", "scale", "zero_point")
        for name, g, w in zip(names, ours, ref, strict=True):
            assert _bytes(g) == _torch_bytes(w), f"{name}, step {step}"


def test_python_switches_and_the_inputs_untouched(torch_ref: Any) -> None:
    x = np.linspace(-1.0, 2.0, 12, dtype=np.float32)
    state = (
        np.full(1, np.inf, np.float32),
        np.full(1, -np.inf, np.float32),
        np.ones(1, np.float32),
        np.zeros(1, np.int32),
    )
    before = [s.copy() for s in state]
    out, lo, hi, scale, zp = F.fused_moving_avg_obs_fake_quant(
        x, True, True, *state, 0.01, 0, 255, 0
    )
    for s, b in zip(state, before, strict=True):
        assert s.tobytes() == b.tobytes()
    torch = torch_ref
    ref = [torch.from_numpy(b.copy()) for b in before]
    on = torch.tensor([1])
    want = torch.fused_moving_avg_obs_fake_quant(torch.from_numpy(x), on, on, *ref, 0.01, 0, 255, 0)
    assert out.tobytes() == want.numpy().tobytes()
    for g, w in zip((lo, hi, scale, zp), ref, strict=True):
        assert g.tobytes() == w.numpy().tobytes()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"ch_axis": 1, "per_row_fake_quant": True}, "axis 0"),
        ({"input": np.zeros((2, 3), np.float64)}, "float32"),
        ({"running_min": np.zeros(2, np.float32)}, "running_min"),
        ({"zero_point": np.zeros(1, np.int16)}, "zero_point"),
        ({"quant_min": 5, "quant_max": 4}, "quant_min"),
    ],
)
def test_refusals_name_the_argument(change: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {
        "input": np.zeros((2, 3), np.float32),
        "observer_on": 1,
        "fake_quant_on": 1,
        "running_min": np.full(1, np.inf, np.float32),
        "running_max": np.full(1, -np.inf, np.float32),
        "scale": np.ones(1, np.float32),
        "zero_point": np.zeros(1, np.int32),
        "averaging_const": 0.01,
        "quant_min": 0,
        "quant_max": 255,
        "ch_axis": 0,
    }
    args.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        F.fused_moving_avg_obs_fake_quant(**args)


def test_under_jax_jit_with_array_switches(torch_ref: Any) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    step = jax.jit(
        lambda x, on, *state: F.fused_moving_avg_obs_fake_quant(x, on, on, *state, 0.01, 0, 255, 0)
    )
    torch = torch_ref
    ref = [torch.full((1,), float("inf")), torch.full((1,), float("-inf"))]
    ref += [torch.ones(1), torch.zeros(1, dtype=torch.int32)]
    ours = [jnp.asarray(t.numpy()) for t in ref]
    gen = torch.Generator().manual_seed(3)
    for flag in (1, 0, 1):
        x = torch.randn(40, generator=gen) * 2
        on = torch.tensor([flag])
        want = torch.fused_moving_avg_obs_fake_quant(x, on, on, *ref, 0.01, 0, 255, 0)
        got, *ours = step(jnp.asarray(x.numpy()), jnp.asarray([flag]), *ours)
        assert np.asarray(got).tobytes() == want.numpy().tobytes()
        for g, w in zip(ours, ref, strict=True):
            assert np.asarray(g).tobytes() == w.numpy().tobytes()
