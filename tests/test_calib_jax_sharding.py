"""The calibrators' functional cores on a JAX array sharded over 4 (forced host)
devices: under ``jax.jit``, every state field after every batch equals the
single-device update's, bit for bit, and the results equal the live
references (ONNX Runtime 1.31.1, ModelOpt 0.47.0) on the whole batches; a
NaN on one shard included (the worker: tests/jax_calib_sharded_worker.py)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.jax_calib_sharded_worker import DEVICES, batches

FAMILIES = (
    "ort_entropy",
    "ort_percentile_symmetric",
    "mo_torch_hist",
    "mo_max_axis1",
    "ort_minmax_moving_average",
)


@pytest.fixture(scope="module")
def lanes() -> int:
    """torch's vector width, once the references are known to import (before the worker)."""
    pytest.importorskip("torch", reason="torch runs ModelOpt, the reference")
    pytest.importorskip("onnxruntime", reason="reference not installed: onnxruntime 1.31.1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ModelOpt's torch.jit.script
        pytest.importorskip(
            "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
        )
    from arrayobs.calib import modelopt as mo

    return mo.default_lanes()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory, lanes: int) -> Any:
    pytest.importorskip("jax")
    out = tmp_path_factory.mktemp("jax_calib_sharded") / "results.npz"
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "tests.jax_calib_sharded_worker", str(out), str(lanes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def _bits(a: Any) -> tuple[str, tuple[int, ...], bytes]:
    a = np.asarray(a)
    return (a.dtype.str, a.shape, a.tobytes())


def _same_as_one_device(sharded: Any, family: str) -> None:
    for step in range(len(batches())):
        j = 0
        while f"sharded_{family}_{step}_{j}" in sharded:
            got, want = (sharded[f"{where}_{family}_{step}_{j}"] for where in ("sharded", "single"))
            assert _bits(got) == _bits(want), f"{family}, batch {step}, field {j}: {got} vs {want}"
            j += 1
        assert j > 0, family


def _expected(family: str, folder: Path) -> list[tuple[str, list[Any]]]:
    """(refusal type or "", result arrays) of the live reference after each whole batch."""
    torch = pytest.importorskip("torch")
    calibrate = pytest.importorskip(
        "onnxruntime.quantization.calibrate", reason="reference not installed: onnxruntime 1.31.1"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ModelOpt's torch.jit.script
        ref_calib = pytest.importorskip(
            "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
        )
    out = []
    if family.startswith("ort_minmax"):
        from tests.test_calib_ort_minmax import reference

        calls = [[np.nan_to_num(b, nan=0.0)] for b in batches()]
        for k in range(len(calls)):
            lo, hi = reference(
                str(folder), calls[: k + 1], moving_average=True, averaging_constant=0.5
            )
            out.append(("", [lo, hi]))
        return out
    if family.startswith("ort_"):
        method, symmetric = ("entropy", False) if family == "ort_entropy" else ("percentile", True)
        ref = calibrate.HistogramCollector(method, symmetric, 32, 128, 99.9, "same")
    elif family == "mo_torch_hist":
        ref = ref_calib.HistogramCalibrator(num_bins=64)
    else:
        ref = ref_calib.MaxCalibrator(axis=1)
    for b in batches():
        refused = ""
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if family.startswith("ort_"):
                    ref.collect({"t": [b]})
                else:
                    ref.collect(torch.from_numpy(b))
            except Exception as exc:  # the type is what is compared
                refused = type(exc).__name__
        if family.startswith("ort_"):
            values = [np.array(v, copy=True) for v in ref.histogram_dict["t"]]
        elif family == "mo_torch_hist":
            values = [ref._calib_hist.numpy().copy(), ref._calib_bin_edges.numpy().copy()]
        else:
            values = [ref.compute_amax().numpy().copy()]
        out.append((refused, values))
    return out


def test_sharded_equals_one_device_and_the_reference(sharded: Any, tmp_path: Path) -> None:
    """One test for the whole module (pytest-xdist would otherwise run the worker
    once per xdist worker): per family, the states, then the results."""
    for family in FAMILIES:
        _same_as_one_device(sharded, family)
        _same_as_the_reference(sharded, family, tmp_path)


def _same_as_the_reference(sharded: Any, family: str, tmp_path: Path) -> None:
    for step, (refused, values) in enumerate(_expected(family, tmp_path)):
        got_refused = str(sharded[f"result_{family}_{step}_refused"])
        assert got_refused == refused, f"{family}, batch {step}: {got_refused!r} vs {refused!r}"
        if refused:
            # the functional core records a refusal and keeps it (sticky); the reference
            # goes on from its state before, which the classes reproduce
            break
        for j, want in enumerate(values):
            got = sharded[f"result_{family}_{step}_{j}"]
            if j == 0 and family.startswith("ort_"):
                want = np.asarray(want, dtype=got.dtype)  # noqa: PLW2901 - ORT's int64 counts
            assert _bits(got) == _bits(want), f"{family}, batch {step}, field {j}: {got} vs {want}"
