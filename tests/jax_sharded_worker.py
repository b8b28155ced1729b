"""Run in a subprocess by test_jax_sharding.py: observe batches sharded over 4 forced host devices.

``python -m tests.jax_sharded_worker OUT.npz`` writes, for each mode (the eager
classes, ``jax.jit`` of the functional core, ``shard_map`` with
``F.pminmax``) and observer kind, the state and qparams after every batch, and
the largest number of elements any cross-device collective of the jitted
update carries; then HistogramObserver's state and qparams (eager, and the
functional core under ``jax.jit``).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import numpy as np

DEVICES = 4
KINDS = {"minmax": None, "ma": 0.01}
HISTOGRAM_BINS = (7, 2048)


def batches() -> list[np.ndarray]:
    """1-d and 2-d batches whose first axis splits evenly over 4 devices; NaN on one shard."""
    rng = np.random.default_rng(44)
    out = [
        (rng.standard_normal(size) * scale).astype(np.float32)
        for size, scale in ((4000, 1.0), (400, 100.0), (40000, 0.01))
    ]
    out.append((rng.standard_normal((8, 50)) * 3).astype(np.float32))
    nan = rng.standard_normal(4000).astype(np.float32)
    nan[2999] = np.nan  # on the fourth device's shard
    out.append(nan)
    out.append(rng.standard_normal(400).astype(np.float32))
    return out


def channel_batches() -> list[np.ndarray]:
    """(8, 8) batches for per-channel observers (ch_axis 1); NaN in one channel."""
    rng = np.random.default_rng(45)
    out = [(rng.standard_normal((8, 8)) * s).astype(np.float32) for s in (1.0, 5.0, 0.1)]
    out[1][6, 2] = np.nan
    return out


def _collective_sizes(hlo: str) -> list[int]:
    sizes = []
    for line in hlo.splitlines():
        if re.search(r"= \S+ (all-gather|all-reduce|all-to-all|collective-permute)", line):
            shape = re.search(r"= \w+\[([\d,]*)\]", line)
            dims = [int(d) for d in shape.group(1).split(",") if d] if shape else []
            sizes.append(int(np.prod(dims)) if dims else 1)
    return sizes


def main(out: str) -> None:
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    try:
        from jax import shard_map
    except ImportError:  # older JAX
        from jax.experimental.shard_map import shard_map

    from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
    from arrayobs import functional as F

    assert len(jax.devices()) == DEVICES, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("i",))

    def sharded(b: np.ndarray) -> Any:
        spec = P("i") if b.ndim == 1 else P("i", None)
        return jax.device_put(jnp.asarray(b), NamedSharding(mesh, spec))

    records: dict[str, np.ndarray] = {}
    cfg = F.quant_config()
    for kind, c in KINDS.items():
        update = (
            F.minmax_update if c is None else lambda s, x, c=c: F.moving_average_update(s, x, c)
        )
        combine = (
            F.minmax_combine
            if c is None
            else (lambda s, lo, hi, c=c: F.moving_average_combine(s, lo, hi, c))
        )

        def mapped(state: Any, shard: Any, combine: Any = combine) -> Any:
            lo, hi = F.pminmax(*F.batch_minmax(shard), "i")
            return combine(state, lo, hi)

        modes = {
            "eager": MinMaxObserver() if c is None else MovingAverageMinMaxObserver(c),
            "jit": jax.jit(update),
        }
        states = {"jit": F.init_state(xp=jnp), "shard_map": F.init_state(xp=jnp)}
        qparams = jax.jit(lambda s: F.calculate_qparams(s, cfg))
        for step, b in enumerate(batches()):
            x = sharded(b)
            spec = P("i") if b.ndim == 1 else P("i", None)
            smap = jax.jit(shard_map(mapped, mesh=mesh, in_specs=(P(), spec), out_specs=P()))
            modes["eager"](x)
            states["jit"] = modes["jit"](states["jit"], x)
            states["shard_map"] = smap(states["shard_map"], x)
            results = {
                "eager": (*modes["eager"].state, *modes["eager"].calculate_qparams()),
                "jit": (*states["jit"], *qparams(states["jit"])),
                "shard_map": (*states["shard_map"], *qparams(states["shard_map"])),
            }
            for mode, values in results.items():
                for j, v in enumerate(values):
                    records[f"{kind}_{mode}_{step}_{j}"] = np.asarray(v).reshape(-1)
            hlo = modes["jit"].lower(states["jit"], x).compile().as_text()
            records[f"{kind}_collectives_{step}"] = np.asarray(_collective_sizes(hlo) or [0])
    # Per channel: (8, 8) batches sharded by rows or by channels, ch_axis 1.
    from arrayobs import MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver

    for kind, c in KINDS.items():
        for layout, spec in (("rows", P("i", None)), ("channels", P(None, "i"))):
            obs = PerChannelMinMaxObserver(ch_axis=1)
            if c is not None:
                obs = MovingAveragePerChannelMinMaxObserver(c, ch_axis=1)
            for step, b in enumerate(channel_batches()):
                obs(jax.device_put(jnp.asarray(b), NamedSharding(mesh, spec)))
                values = (*obs.state, *obs.calculate_qparams())
                for j, v in enumerate(values):
                    records[f"pc_{kind}_{layout}_{step}_{j}"] = np.asarray(v).reshape(-1)
    # HistogramObserver, eagerly on the sharded batches (the NaN one refused).
    from arrayobs import HistogramObserver

    for bins in HISTOGRAM_BINS:
        hobs = HistogramObserver(bins=bins)
        for step, b in enumerate(batches()):
            try:
                hobs(sharded(b))
                refused = 0
            except ValueError:
                refused = 1
            values = (refused, hobs.histogram, hobs.min_val, hobs.max_val)
            for j, v in enumerate((*values, *hobs.calculate_qparams())):
                records[f"hist{bins}_{step}_{j}"] = np.asarray(v).reshape(-1)
        # The functional core under jax.jit on the same sharded batches (the NaN one
        # marks the state; the test compares the batches before it).
        hist_update = jax.jit(F.histogram_update)
        state = F.histogram_init(bins, xp=jnp)
        for step, b in enumerate(batches()):
            state = hist_update(state, sharded(b))
            for j, v in enumerate(state):
                records[f"histjit{bins}_{step}_{j}"] = np.asarray(v).reshape(-1)
            if not np.isnan(float(state.min_val)):
                for j, v in enumerate(F.histogram_qparams(state, cfg), start=3):
                    records[f"histjit{bins}_{step}_{j}"] = np.asarray(v).reshape(-1)
    np.savez(out, **records)


if __name__ == "__main__":
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={DEVICES}")
    main(sys.argv[1])
