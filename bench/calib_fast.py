"""Collection of 1e7 float32 values: live ORT 1.31.1 ``HistogramCollector.collect`` (value
and abs paths, 2048 bins), ModelOpt 0.47.0 ``HistogramCalibrator`` (``torch_hist`` True and
False) and ``MaxCalibrator`` against arrayobs's host fast path (the classes on NumPy and CPU
torch input; ModelOpt's NumPy rule through ``arrayobs._backends._calib_fast.modelopt_update``),
beside the read floor (``np.sum``, one pass over the batch). Each variant: a first collect
and a growing second one (the batch times 1.7), in interleaved rounds, medians; each
arrayobs row's ratio is its reference's median over its own.

    PYTHONPATH=src python -m bench.calib_fast [N] [ROUNDS]
    ARRAYOBS_NUMBA=0 PYTHONPATH=src python -m bench.calib_fast   # without the kernels
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

Timer = Callable[[], tuple[float, ...]]


def variants(a: np.ndarray, b: np.ndarray) -> dict[str, Timer]:
    import torch
    from onnxruntime.quantization import calibrate as cal

    from arrayobs._backends import _calib_fast as fast
    from arrayobs._core import _calib_nphist as nphist
    from arrayobs.calib import modelopt as mo
    from arrayobs.calib import ort

    def two(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[float, ...]:
        """Wall seconds of each call, then the process's CPU seconds of each (every
        thread's: the work, which a loaded machine's waits do not inflate)."""
        c0, t0 = time.process_time(), time.perf_counter()
        first()
        c1, t1 = time.process_time(), time.perf_counter()
        second()
        return t1 - t0, time.perf_counter() - t1, c1 - c0, time.process_time() - c1

    def ref(method: str, symmetric: bool) -> Timer:
        def run() -> tuple[float, ...]:
            c = cal.HistogramCollector(method, symmetric, 2048, 128, 99.999, "same")
            with contextlib.redirect_stdout(io.StringIO()):
                return two(lambda: c.collect({"t": [a]}), lambda: c.collect({"t": [b]}))

        return run

    def ours(method: str, symmetric: bool, wrap: Callable[[np.ndarray], Any]) -> Timer:
        def run() -> tuple[float, ...]:
            c = ort.HistogramCollector(method, symmetric, 2048, 128, 99.999)
            x, y = wrap(a), wrap(b)
            return two(lambda: c.collect([x]), lambda: c.collect([y]))

        return run

    def modelopt(make: Callable[[], Any], wrap: Callable[[np.ndarray], Any]) -> Timer:
        def run() -> tuple[float, ...]:
            c = make()
            x, y = wrap(a), wrap(b)
            return two(lambda: c.collect(x), lambda: c.collect(y))

        return run

    def floor() -> tuple[float, ...]:
        return two(lambda: np.sum(a), lambda: np.sum(b))

    def hist(torch_hist: bool, module: Any = None) -> Callable[[], Any]:
        return lambda: (module or mo).HistogramCalibrator(num_bins=2048, torch_hist=torch_hist)

    def modelopt_ours() -> tuple[float, ...]:
        box = [nphist.modelopt_init(2048, xp=fast._np())]
        x, y = a.reshape(1, -1), b.reshape(1, -1)
        return two(
            lambda: box.append(fast.modelopt_update(box[-1], x)),
            lambda: box.append(fast.modelopt_update(box[-1], y)),
        )

    from modelopt.torch.quantization import calib as mo_ref

    return {
        "floor: np.sum, one pass": floor,
        "ORT value (entropy)": ref("entropy", False),
        "arrayobs value, numpy": ours("entropy", False, np.asarray),
        "arrayobs value, torch": ours("entropy", False, torch.from_numpy),
        "ORT abs (percentile, symmetric)": ref("percentile", True),
        "arrayobs abs, numpy": ours("percentile", True, np.asarray),
        "arrayobs abs, torch": ours("percentile", True, torch.from_numpy),
        "ModelOpt torch_hist=False": modelopt(hist(False, mo_ref), torch.from_numpy),
        "arrayobs modelopt_update, numpy": modelopt_ours,
        "arrayobs torch_hist=False, numpy": modelopt(hist(False), np.asarray),
        "ModelOpt torch_hist=True": modelopt(hist(True, mo_ref), torch.from_numpy),
        "arrayobs torch_hist=True, numpy": modelopt(hist(True), np.asarray),
        "arrayobs torch_hist=True, torch": modelopt(hist(True), torch.from_numpy),
        "ModelOpt MaxCalibrator": modelopt(mo_ref.MaxCalibrator, torch.from_numpy),
        "arrayobs MaxCalibrator, numpy": modelopt(mo.MaxCalibrator, np.asarray),
        "arrayobs MaxCalibrator, torch": modelopt(mo.MaxCalibrator, torch.from_numpy),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10**7
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    warnings.simplefilter("ignore")
    a = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    b = a * np.float32(1.7)
    calls = variants(a, b)
    for run in calls.values():  # warm: numba loads its cached kernels
        run()
    times: dict[str, list[tuple[float, ...]]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, run in calls.items():
            times[k].append(run())
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"n={n}, {rounds} rounds, load average {load}; ms: wall first / growing second,")
    print("then CPU (all threads) first / second; ratios: the reference's over the row's")
    ref: list[float] = []
    for k, ts in times.items():
        med = [statistics.median(t[i] for t in ts) * 1e3 for i in range(4)]
        if not k.startswith("arrayobs"):
            ref, ratio = med, ""
        else:
            ratio = "  ratio " + " / ".join(f"{r / m:4.1f}x" for r, m in zip(ref, med, strict=True))
        print(f"{k:34s} " + " / ".join(f"{m:7.1f}" for m in med) + ratio)


if __name__ == "__main__":
    main()
