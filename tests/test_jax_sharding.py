"""A JAX array sharded over 4 (forced host) devices, observed three ways, equals torch.ao.

Eagerly through the classes, under ``jax.jit`` of the functional core, and in
``shard_map`` with :func:`arrayobs.functional.pminmax`: after every batch,
state and qparams bit for bit as torch.ao's in one process on the unsharded
batch, a NaN on one shard included, and no collective of the jitted update
carries more than one value per device (the data is never gathered).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.jax_sharded_worker import DEVICES, HISTOGRAM_BINS, KINDS, batches, channel_batches

MODES = ("eager", "jit", "shard_map")


@pytest.fixture(scope="module")
def sharded_results(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("jax_sharded") / "results.npz"
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "tests.jax_sharded_worker", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def _reference(torch: Any, c: float | None) -> list[list[np.ndarray]]:
    from torch.ao.quantization import observer as tobs

    ref = tobs.MinMaxObserver() if c is None else tobs.MovingAverageMinMaxObserver(c)
    out = []
    for b in batches():
        ref(torch.from_numpy(b))
        scale, zero_point = ref.calculate_qparams()
        # Copies: torch.ao updates its buffers in place.
        out.append(
            [
                ref.min_val.reshape(-1).numpy().copy(),
                ref.max_val.reshape(-1).numpy().copy(),
                scale.numpy(),
                zero_point.numpy(),
            ]
        )
    return out


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if want.dtype.kind == "f":
        g, w = got.astype(np.float32), want.astype(np.float32)
        return bool(np.all((g.view(np.int32) == w.view(np.int32)) | (np.isnan(g) & np.isnan(w))))
    return bool(np.array_equal(got.astype(np.int64), want.astype(np.int64)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_sharded_equals_torch_on_the_whole_batch(
    sharded_results: Any, torch_ref: Any, kind: str, mode: str
) -> None:
    for step, want in enumerate(_reference(torch_ref, KINDS[kind])):
        fields = ("min_val", "max_val", "scale", "zero_point")
        for j, (w, what) in enumerate(zip(want, fields, strict=True)):
            got = sharded_results[f"{kind}_{mode}_{step}_{j}"]
            assert _same(got, w), f"{kind} {mode} batch {step}: {what} {got} vs torch.ao {w}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_jitted_update_gathers_no_data(sharded_results: Any, kind: str) -> None:
    for step in range(len(batches())):
        sizes = sharded_results[f"{kind}_collectives_{step}"]
        assert sizes.max() <= DEVICES, f"batch {step}: collectives of {sizes.tolist()} elements"


@pytest.mark.parametrize("layout", ["rows", "channels"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_sharded_per_channel_equals_torch(
    sharded_results: Any, torch_ref: Any, kind: str, layout: str
) -> None:
    from torch.ao.quantization import observer as tobs

    c = KINDS[kind]
    ref = (
        tobs.PerChannelMinMaxObserver(ch_axis=1)
        if c is None
        else tobs.MovingAveragePerChannelMinMaxObserver(c, ch_axis=1)
    )
    for step, b in enumerate(channel_batches()):
        ref(torch_ref.from_numpy(b))
        want = [ref.min_val.numpy().copy(), ref.max_val.numpy().copy()]
        want += [v.numpy() for v in ref.calculate_qparams()]
        for j, w in enumerate(want):
            got = sharded_results[f"pc_{kind}_{layout}_{step}_{j}"]
            assert _same(got, w), f"{kind} {layout} batch {step} field {j}: {got} vs {w}"


@pytest.mark.parametrize("bins", HISTOGRAM_BINS)
def test_sharded_histogram_equals_torch(sharded_results: Any, torch_ref: Any, bins: int) -> None:
    """HistogramObserver on the sharded batches: histogram, range and qparams after
    every batch as torch.ao's on the whole batch; the NaN batch refused by both (and
    the functional core under jax.jit the same, up to the NaN batch it marks)."""
    import warnings

    from torch.ao.quantization import HistogramObserver as TorchHistogram

    ref = TorchHistogram(bins=bins)
    for step, b in enumerate(batches()):
        try:
            ref(torch_ref.from_numpy(b))
            refused = 0
        except RuntimeError:
            refused = 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scale, zero_point = ref.calculate_qparams()
        want = [np.array([refused]), ref.histogram.numpy().copy(), ref.min_val.numpy().copy()]
        want += [ref.max_val.numpy().copy(), scale.numpy(), zero_point.numpy()]
        for j, w in enumerate(want):
            got = sharded_results[f"hist{bins}_{step}_{j}"]
            assert _same(got, w), f"bins {bins}, batch {step}, field {j}: {got} vs {w}"
        # The functional core under jax.jit: torch's numbers up to the NaN batch,
        # which marks its range NaN.
        jit = [sharded_results[f"histjit{bins}_{step}_{j}"] for j in range(3)]
        if refused:
            assert np.isnan(jit[1]).all() and np.isnan(jit[2]).all(), f"bins {bins}"
            break
        jit += [sharded_results[f"histjit{bins}_{step}_{j}"] for j in (3, 4)]
        for j, (got, w) in enumerate(zip(jit, want[1:], strict=True)):
            assert _same(got, w), f"jit: bins {bins}, batch {step}, field {j}: {got} vs {w}"
