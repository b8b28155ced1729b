"""The calibrators' CPU-dispatch-dependent steps against the live references, on
this machine's dispatch and, in a child process, unpinned (docs/exactness.md,
"CPU dispatch"): SciPy's ``rel_entr`` (libm's logs, which NumPy's AVX512 loops
are not) and ``torch.arange``'s vector width (ModelOpt's grown edges)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arrayobs._core import _calib_modelopt_search as search
from arrayobs._core._calib_modelopt import arange_values

special = pytest.importorskip("scipy.special", reason="reference not installed: SciPy")

_ROOT = Path(__file__).resolve().parents[1]


def bits(a: Any) -> tuple[str, bytes]:
    a = np.asarray(a)
    return str(a.dtype), a.tobytes()


def _pairs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ratios near 1 (the log1p branch), spread ratios (log), extreme ones (the
    two-log branch) and the special values (0, negative, inf, NaN)."""
    rng = np.random.default_rng(seed)
    y = rng.random(60_000) * 3
    x = np.concatenate(
        [
            y[:20_000] * rng.uniform(0.5, 2.0, 20_000),
            rng.random(20_000) * 3,
            10.0 ** rng.uniform(-300, 300, 20_000),
        ]
    )
    y[40_000:] = 10.0 ** rng.uniform(-300, 300, 20_000)
    x[::97], y[::89], x[::83], y[::79] = 0.0, 0.0, np.nan, -1.0
    x[::73], y[::71], y[::67] = np.inf, np.inf, np.nan
    return x, y


@pytest.mark.parametrize("libm", [False, True], ids=["dispatch", "libm"])
def test_rel_entr_is_scipys(libm: bool, monkeypatch: Any) -> None:
    """Bit for bit SciPy's ``special.rel_entr`` on every branch, with the logs
    this machine picks and with libm's (``math``) forced."""
    if libm:
        monkeypatch.setattr(search, "numpy_logs_are_libm", lambda: False)
    for seed in range(3):
        x, y = _pairs(seed)
        assert bits(search.rel_entr(x, y)) == bits(special.rel_entr(x, y))
    assert bits(search.rel_entr(np.float64(0.3), np.float64(0.4))) == bits(
        special.rel_entr(0.3, 0.4)
    )


def test_entropy_kl_values_on_libm_are_modelopts(monkeypatch: Any) -> None:
    """Every candidate's KL value (ModelOpt's ``entropy``, SciPy's) with the libm
    route forced, on any machine."""
    pytest.importorskip("torch", reason="torch runs ModelOpt, the reference")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ModelOpt's torch.jit.script
        ref_hist = pytest.importorskip(
            "modelopt.torch.quantization.calib.histogram",
            reason="reference not installed: ModelOpt 0.47.0",
        )
    recorded: list[float] = []
    original = ref_hist.entropy

    def record(p: Any, q: Any, *a: Any, **k: Any) -> Any:
        recorded.append(original(p, q, *a, **k))
        return recorded[-1]

    monkeypatch.setattr(ref_hist, "entropy", record)
    monkeypatch.setattr(search, "numpy_logs_are_libm", lambda: False)
    rng = np.random.default_rng(5)
    counts, edges = np.histogram(np.abs(rng.standard_normal(50_000)), bins=300)
    hist, edges = counts.astype(np.int32), edges.astype(np.float32)
    theirs = ref_hist._compute_amax_entropy(hist.copy(), edges, 4, False, stride=3, start_bin=16)
    assert bits(search.amax_entropy(hist, edges, 4, False, 3, 16)) == bits(theirs.numpy())
    ours = search.entropy_divergences(hist, 4, False, 3, 16)
    assert bits(ours) == bits(np.array(recorded, dtype=np.float64))


def test_numpy_logs_are_libm_is_right() -> None:
    """True only where NumPy's float64 log and log1p are libm's (``math``) on
    random values; False whenever a NumPy AVX512 target is on."""
    rng = np.random.default_rng(2)
    v = np.concatenate([rng.random(100_000) * 4, 10.0 ** rng.uniform(-300, 300, 100_000)])
    w = rng.uniform(-0.5, 1.0, 100_000)
    libm_log = np.fromiter(map(math.log, v.tolist()), np.float64, count=v.size)
    libm_log1p = np.fromiter(map(math.log1p, w.tolist()), np.float64, count=w.size)
    if search.numpy_logs_are_libm():
        assert bits(np.log(v)) == bits(libm_log)
        assert bits(np.log1p(w)) == bits(libm_log1p)


def test_default_lanes_reproduce_torch_arange() -> None:
    """``torch.arange``'s float32 values (ModelOpt's grown edges) with the lanes
    arrayobs picks once torch is imported, for widths and lengths where 8 and 16
    lanes differ."""
    torch = pytest.importorskip("torch")
    from arrayobs.calib import modelopt as mo

    rng = np.random.default_rng(3)
    for _ in range(60):
        width = np.float32(rng.uniform(1e-4, 0.1))
        length = int(rng.integers(33, 3000))
        end = (length - 0.5) * float(width)
        got = torch.arange(0.0, end, float(width), dtype=torch.float32, device="cpu")
        k = np.arange(got.numel(), dtype=np.int64)
        ours = arange_values(k, width, np.asarray(got.numel()), mo.default_lanes(), xp=np)
        assert bits(np.asarray(ours, dtype=np.float32)) == bits(got.numpy())


_CHILD = """
import math, numpy as np, torch
from scipy import special
from arrayobs._core import _calib_modelopt_search as search
from arrayobs._core._calib_modelopt import arange_values
from arrayobs.calib import modelopt as mo
rng = np.random.default_rng(0)
y = rng.random(100_000) * 3
x = y * rng.uniform(0.4, 2.5, 100_000)
assert search.rel_entr(x, y).tobytes() == special.rel_entr(x, y).tobytes(), "rel_entr"
w = np.float32(0.0123)
t = torch.arange(0.0, 2999.5 * float(w), float(w), dtype=torch.float32).numpy()
k = np.arange(t.size, dtype=np.int64)
ours = np.asarray(arange_values(k, w, np.asarray(t.size), mo.default_lanes(), xp=np), np.float32)
assert ours.tobytes() == t.tobytes(), "arange"
"""


def test_unpinned_dispatch_in_a_child() -> None:
    """The same two checks with the CPU's own dispatch (the test sessions pin
    torch and NumPy to AVX2; a user's process does not)."""
    pytest.importorskip("torch")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_compare_on_the_cpus_own_numpy_dispatch_in_a_child() -> None:
    """`arrayobs compare --cases calibrators` unpinned: the stored numbers are AVX2
    NumPy's; on an AVX512 CPU the two ORT distribution p3 cases count as deviations
    (and only there), never as mismatches, and the exit code is 0."""
    from arrayobs._compat import numpy_avx512
    from arrayobs._conformance import _calib_runner as runner
    from arrayobs._conformance._calib_corpus import cases

    flagged = [c for c in cases() if runner.dispatch_dependent(c)]
    assert [(c.family, "p3" in c.name.split()) for c in flagged] == [("ort-histogram", True)] * 2
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "src"), env.get("PYTHONPATH", "")])
    code = "import sys, arrayobs.cli as c; sys.exit(c.main(sys.argv[1:]))"
    args = ["compare", "--backend", "numpy", "--cases", "calibrators", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], check=False, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    import json

    (result,) = json.loads(done.stdout)["calib_results"]
    assert result["mismatches"] == 0
    here = json.loads(
        subprocess.run(
            [sys.executable, "-c", code, *args],
            check=True,
            env={**env, "NPY_DISABLE_CPU_FEATURES": os.environ.get("NPY_DISABLE_CPU_FEATURES", "")},
            capture_output=True,
            text=True,
        ).stdout
    )["calib_results"][0]
    # the child without the pin sees 2 more deviations exactly when NumPy's AVX512 is on
    child_avx512 = subprocess.run(
        [sys.executable, "-c", "from arrayobs._compat import numpy_avx512; print(numpy_avx512())"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip() not in ("()", "")
    extra = 2 if child_avx512 and not numpy_avx512() else 0
    assert result["deviations"] == here["deviations"] + extra
