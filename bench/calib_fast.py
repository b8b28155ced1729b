"""Collection of 1e7 float32 values: live ORT 1.31.1 ``HistogramCollector.collect`` (value
and abs paths, 2048 bins) and ModelOpt 0.47.0 ``HistogramCalibrator(torch_hist=False)``
against arrayobs's host fast path (the class on NumPy and CPU torch input; ModelOpt's rule
through ``arrayobs._backends._calib_fast.modelopt_update``). Each variant: a first collect and
a growing second one (the batch times 1.7), in interleaved rounds, medians.

    PYTHONPATH=src python -m bench.calib_fast [N] [ROUNDS]
    ARRAYOBS_NUMBA=0 PYTHONPATH=src python -m bench.calib_fast   # without the kernels
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

Timer = Callable[[], tuple[float, float]]


def variants(a: np.ndarray, b: np.ndarray) -> dict[str, Timer]:
    import torch
    from modelopt.torch.quantization.calib import HistogramCalibrator
    from onnxruntime.quantization import calibrate as cal

    from arrayobs._backends import _calib_fast as fast
    from arrayobs._core import _calib_nphist as nphist
    from arrayobs.calib import ort

    def two(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[float, float]:
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        return t1 - t0, time.perf_counter() - t1

    def ref(method: str, symmetric: bool) -> Timer:
        def run() -> tuple[float, float]:
            c = cal.HistogramCollector(method, symmetric, 2048, 128, 99.999, "same")
            with contextlib.redirect_stdout(io.StringIO()):
                return two(lambda: c.collect({"t": [a]}), lambda: c.collect({"t": [b]}))

        return run

    def ours(method: str, symmetric: bool, wrap: Callable[[np.ndarray], Any]) -> Timer:
        def run() -> tuple[float, float]:
            c = ort.HistogramCollector(method, symmetric, 2048, 128, 99.999)
            x, y = wrap(a), wrap(b)
            return two(lambda: c.collect([x]), lambda: c.collect([y]))

        return run

    def modelopt() -> tuple[float, float]:
        c = HistogramCalibrator(num_bins=2048, torch_hist=False)
        x, y = torch.from_numpy(a), torch.from_numpy(b)
        return two(lambda: c.collect(x), lambda: c.collect(y))

    def modelopt_ours() -> tuple[float, float]:
        box = [nphist.modelopt_init(2048, xp=fast._np())]
        x, y = a.reshape(1, -1), b.reshape(1, -1)
        return two(
            lambda: box.append(fast.modelopt_update(box[-1], x)),
            lambda: box.append(fast.modelopt_update(box[-1], y)),
        )

    return {
        "ORT value (entropy)": ref("entropy", False),
        "arrayobs value, numpy": ours("entropy", False, np.asarray),
        "arrayobs value, torch": ours("entropy", False, torch.from_numpy),
        "ORT abs (percentile, symmetric)": ref("percentile", True),
        "arrayobs abs, numpy": ours("percentile", True, np.asarray),
        "arrayobs abs, torch": ours("percentile", True, torch.from_numpy),
        "ModelOpt torch_hist=False": modelopt,
        "arrayobs modelopt_update, numpy": modelopt_ours,
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
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in calls}
    for _ in range(rounds):
        for k, run in calls.items():
            times[k].append(run())
    for k, ts in times.items():
        first = statistics.median(t[0] for t in ts) * 1e3
        second = statistics.median(t[1] for t in ts) * 1e3
        print(f"{k:34s} first {first:8.1f} ms   growing second {second:8.1f} ms")


if __name__ == "__main__":
    main()
