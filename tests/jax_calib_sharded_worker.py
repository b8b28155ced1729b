"""Run in a subprocess by test_calib_jax_sharding.py: the calibrators' functional
cores, jitted, on batches sharded over 4 forced host devices and on one device.

``python -m tests.jax_calib_sharded_worker OUT.npz LANES`` writes every state
field after every batch for both placements (``sharded_*`` and ``single_*``),
and the host results of the sharded states (``result_*``) for the test to
compare with the live references on the whole batches.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

DEVICES = 4


def batches() -> list[np.ndarray]:
    """(64, 6) float32 batches (one shape: one compilation per placement) whose
    rows split evenly over 4 devices; growing, shrinking and growing again,
    with a NaN in the second (on one shard)."""
    rng = np.random.default_rng(2604)
    out = [(rng.standard_normal((64, 6)) * s).astype(np.float32) for s in (1.0, 0.25, 6.0)]
    out[1][21, 4] = np.nan
    return out


def _families(lanes: int) -> dict[str, tuple[Any, Any, Any]]:
    """name: (init(device), update(state, x), host result(state) as a list of arrays)."""
    import jax.numpy as jnp

    from arrayobs.calib import modelopt as mo
    from arrayobs.calib import ort

    def ort_hist(method: str, symmetric: bool) -> tuple[Any, Any, Any]:
        return (
            lambda d: ort.histogram_init(method, symmetric, 32, capacity=4096, xp=jnp, device=d),
            ort.histogram_update,
            lambda s: [np.asarray(v) for row in ort.histogram_result(s) for v in row],
        )

    def mo_hist(torch_hist: bool) -> tuple[Any, Any, Any]:
        return (
            lambda d: mo.histogram_init(64, xp=jnp, device=d, capacity=4096, torch_hist=torch_hist),
            lambda s, x: mo.histogram_update(s, x, lanes=lanes),
            lambda s: [np.asarray(v) for v in mo.histogram_host(s, lanes)[0]],
        )

    def ort_minmax(**kw: Any) -> tuple[Any, Any, Any]:
        return (
            lambda d: ort.minmax_init(xp=jnp, device=d),
            # NaN-free: ORT's kernel and arrayobs differ on a NaN that does not lead
            # a batch (a documented deviation)
            lambda s, x: ort.minmax_update(s, jnp.where(jnp.isnan(x), 0.0, x), **kw),
            lambda s: list(ort.minmax_result(s)),
        )

    return {
        "ort_entropy": ort_hist("entropy", False),
        "ort_percentile_symmetric": ort_hist("percentile", True),
        "mo_torch_hist": mo_hist(True),
        "mo_max_axis1": (
            lambda d: mo.max_init((1, 6), xp=jnp, device=d),
            lambda s, x: mo.max_update(s, x, 1),
            lambda s: [np.asarray(mo.max_result(s))],
        ),
        "ort_minmax_moving_average": ort_minmax(moving_average=True, averaging_constant=0.5),
    }


def main(out: str, lanes: int) -> None:
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    assert len(jax.devices()) == DEVICES, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("i",))
    records: dict[str, np.ndarray] = {}
    with jax.enable_x64(True):  # the histograms' int64 counts and float64 edges
        for name, (init, update, result) in _families(lanes).items():
            step = jax.jit(update)
            # the state replicated over the mesh, or on the one device
            states = {"sharded": init(NamedSharding(mesh, P())), "single": init(jax.devices()[0])}
            for k, b in enumerate(batches()):
                placed = {
                    "sharded": jax.device_put(jnp.asarray(b), NamedSharding(mesh, P("i", None))),
                    "single": jax.device_put(jnp.asarray(b), jax.devices()[0]),
                }
                assert len(placed["sharded"].sharding.device_set) == DEVICES
                for where, x in placed.items():
                    states[where] = step(states[where], x)
                    for j, v in enumerate(states[where]):
                        records[f"{where}_{name}_{k}_{j}"] = np.asarray(v)
                try:
                    values = result(states["sharded"])
                    refused = ""
                except Exception as exc:  # the reference's refusal, compared by type
                    values, refused = [], type(exc).__name__
                records[f"result_{name}_{k}_refused"] = np.array(refused)
                for j, v in enumerate(values):
                    records[f"result_{name}_{k}_{j}"] = v
    np.savez(out, **records)


if __name__ == "__main__":
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={DEVICES}")
    main(sys.argv[1], int(sys.argv[2]))
