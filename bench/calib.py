"""Calibrators against their references, side by side: ONNX Runtime 1.31.1's
``HistogramCollector`` and ModelOpt 0.47.0's ``HistogramCalibrator``, ``MaxCalibrator`` and
``MseCalibrator``, and arrayobs.calib's classes of the same names where it imports.

Rows, each timed in interleaved rounds (every variant once per round, so a noisy minute
of a shared machine falls on all of them), medians:

- collection of 1e7 float32 values (``--quick``: 1e6), in the steady state (the
  calibrator has seen the same batch once, so the range does not grow): ORT's value
  path (``entropy``) and abs path (``percentile``, symmetric), 2048 bins; ModelOpt's
  histogram with ``torch_hist`` True and False (2048 bins), ``MaxCalibrator``, and
  ``MseCalibrator`` (39 candidates, ``_tensor_quant(x, amax, 8, False)``; 1e6 values);
- the search on a 2048-bin histogram of 1e6 normal values: ORT ``entropy`` (128
  quantized bins), ``percentile``, ``distribution``; ModelOpt ``compute_amax``
  ``entropy``, ``mse``, ``percentile`` (torch_hist=True).

Variants: ``ORT`` or ``ModelOpt`` (the reference, on host NumPy or one torch CPU
thread), then ``numpy``, ``torch`` and ``jax`` (arrayobs, eager, on that library's
array), only when ``arrayobs.calib`` imports. ``ref/this`` is the reference's median
over the variant's; ``agrees`` says whether the variant's histogram or result equals the
reference's bit for bit. A search slower than a second is timed once a round, its first
call being the first round.

    python -m bench.calib            # 1e7 collection, 3 rounds
    python -m bench.calib --quick    # 1e6 collection, 2 rounds

Writes ``bench/results/calib.json`` and ``calib.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BINS = 2048
SEARCH_SAMPLES = 10**6
MSE_SAMPLES = 10**6
Maker = Callable[[], Any]  # builds a calibrator (fed nothing yet)


def _quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with stdout swallowed (ORT prints progress lines on every call)."""

    def run() -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()

    return run


def rounds(calls: dict[str, Callable[[], object]], repeats: int, target_s: float) -> dict[str, Any]:
    """``bench.timing.interleaved``; a call over a second is timed once a round, its
    first call being the first round."""
    from bench.timing import interleaved

    return interleaved(calls, repeats, target_s, once_over_s=1.0)


LIBRARIES = ["numpy", "torch", "jax"]  # --libraries narrows it


def _libraries() -> dict[str, Callable[[np.ndarray], Any]]:
    """arrayobs's variants (those of LIBRARIES) and how each gets its array ({} without
    arrayobs.calib)."""
    try:
        importlib.import_module("arrayobs.calib.ort")
        importlib.import_module("arrayobs.calib.modelopt")
    except ImportError as exc:
        print(
            f"calib: arrayobs.calib does not import ({exc}): reference rows only", file=sys.stderr
        )
        return {}
    import torch

    out: dict[str, Callable[[np.ndarray], Any]] = {"numpy": lambda a: a, "torch": torch.from_numpy}
    if "jax" in LIBRARIES:
        try:
            import jax.numpy as jnp
        except ImportError:
            print("calib: jax is not installed, no jax rows", file=sys.stderr)
        else:
            out["jax"] = jnp.asarray
    return {k: v for k, v in out.items() if k in LIBRARIES}


def _host(v: Any) -> Any:
    from arrayobs._conformance._calib_runner import _host as host

    return host(v)


def _agrees(got: Any, want: Any) -> bool:
    from arrayobs._conformance._calib_runner import _same

    if isinstance(want, tuple):
        return isinstance(got, tuple) and all(
            _same(_host(g), _host(w)) for g, w in zip(got, want, strict=False)
        )
    return _same(_host(got), _host(want))


# -- the calibrators ---------------------------------------------------------------------------
def _ort_maker(method: str, symmetric: bool) -> tuple[Maker, Callable[[str], Maker]]:
    cal = importlib.import_module("onnxruntime.quantization.calibrate")

    def ref() -> Any:
        return _OrtRef(cal.HistogramCollector(method, symmetric, BINS, 128, 99.999, "same"))

    def ours(lib: str) -> Maker:
        ort = importlib.import_module("arrayobs.calib.ort")
        return lambda: ort.HistogramCollector(method, symmetric, BINS, 128, 99.999)

    return ref, ours


class _OrtRef:
    """ORT's collector for one tensor, in the contract's shape."""

    def __init__(self, collector: Any) -> None:
        self.c = collector

    def collect(self, arrays: list[Any]) -> None:
        self.c.collect({"x": arrays})

    @property
    def histogram(self) -> tuple[Any, ...]:
        return tuple(self.c.histogram_dict["x"])

    def compute_collection_result(self) -> Any:
        return self.c.compute_collection_result()["x"]


def _modelopt_maker(name: str, **kw: Any) -> tuple[Maker, Callable[[str], Maker]]:
    calib = importlib.import_module("modelopt.torch.quantization.calib")
    if name == "MseCalibrator":
        import torch

        tq = importlib.import_module("modelopt.torch.quantization.tensor_quant")
        ref_kw = {
            **kw,
            "amax": torch.tensor(3.0),
            "quant_func": lambda x, a: tq._tensor_quant(x, a, 8, False),
        }
    else:
        ref_kw = kw

    def ours(lib: str) -> Maker:
        mo = importlib.import_module("arrayobs.calib.modelopt")
        if name != "MseCalibrator":
            return lambda: getattr(mo, name)(**kw)
        from arrayobs._conformance._calib_runner import tensor_quant_8
        from arrayobs.testing import BACKENDS

        xp, _ = next(b for b in BACKENDS if b.name == lib).load()
        amax = xp.asarray(np.float32(3.0))
        return lambda: mo.MseCalibrator(amax, quant_func=tensor_quant_8(xp), **kw)

    return (lambda: getattr(calib, name)(**ref_kw)), ours


def _state(obj: Any, name: str) -> Any:
    """What ``agrees`` compares after collection."""
    if name == "HistogramCalibrator":  # ModelOpt's private fields, arrayobs's public ones
        if hasattr(obj, "_calib_hist"):
            return (obj._calib_hist, obj._calib_bin_edges)
        return (obj.calib_hist, obj.calib_bin_edges)
    if name == "HistogramCollector":
        return obj.histogram
    return obj.compute_amax()


def _fed(
    ref_make: Maker,
    ours: Callable[[str], Maker],
    libs: dict[str, Callable[[np.ndarray], Any]],
    x: np.ndarray,
    ort: bool,
    times: int,
) -> dict[str, Callable[[], Any]]:
    """A fresh calibrator per variant, fed ``x`` ``times`` times: its collect (quiet),
    with the calibrator as the callable's ``calibrator``."""
    import torch

    made = {"reference": (ref_make(), x if ort else torch.from_numpy(x))}
    made |= {lib: (ours(lib)(), convert(x)) for lib, convert in libs.items()}
    calls = {}
    for variant, (obj, arr) in made.items():
        call = (lambda o=obj, a=arr: o.collect([a])) if ort else (lambda o=obj, a=arr: o.collect(a))
        for _ in range(times):
            _quiet(call)()
        calls[variant] = _quiet(call)
        calls[variant].calibrator = obj  # type: ignore[attr-defined]
    return calls


def collection_rows(n: int, repeats: int, target_s: float) -> list[dict[str, Any]]:

    host = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    libs = _libraries()
    cases: list[tuple[str, str, tuple[Maker, Callable[[str], Maker]], int]] = [
        (
            "ORT HistogramCollector value (entropy)",
            "HistogramCollector",
            _ort_maker("entropy", False),
            n,
        ),
        (
            "ORT HistogramCollector abs (percentile, symmetric)",
            "HistogramCollector",
            _ort_maker("percentile", True),
            n,
        ),
        (
            "ModelOpt HistogramCalibrator torch_hist=True",
            "HistogramCalibrator",
            _modelopt_maker("HistogramCalibrator", torch_hist=True),
            n,
        ),
        (
            "ModelOpt HistogramCalibrator torch_hist=False",
            "HistogramCalibrator",
            _modelopt_maker("HistogramCalibrator", torch_hist=False),
            n,
        ),
        ("ModelOpt MaxCalibrator", "MaxCalibrator", _modelopt_maker("MaxCalibrator"), n),
        (
            "ModelOpt MseCalibrator (39 candidates)",
            "MseCalibrator",
            _modelopt_maker("MseCalibrator"),
            min(n, MSE_SAMPLES),
        ),
    ]
    rows = []
    for label, name, (ref_make, ours), size in cases:
        x = host[:size]
        ort = name == "HistogramCollector"

        # timed: the range is set (one collect), so every timed call is a steady one
        timed = rounds(_fed(ref_make, ours, libs, x, ort, 1), repeats, target_s)
        # the timed calibrators saw different numbers of calls: compare fresh ones, fed twice
        again = _fed(ref_make, ours, libs, x, ort, 2)
        checked = {v: _state(c.calibrator, name) for v, c in again.items()}  # type: ignore[attr-defined]
        rows += _rows(f"collect {size:.0e} {label}", timed, checked, checked["reference"])
    return rows


def search_rows(repeats: int, target_s: float) -> list[dict[str, Any]]:
    import torch

    host = np.random.default_rng(1).standard_normal(SEARCH_SAMPLES, dtype=np.float32)
    libs = _libraries()
    rows = []
    for method in ("entropy", "percentile", "distribution"):
        ref_make, ours = _ort_maker(method, False)
        made = {"reference": ref_make(), **{lib: ours(lib)() for lib in libs}}
        for variant, obj in made.items():
            arr = host if variant == "reference" else libs[variant](host)
            _quiet(lambda o=obj, a=arr: o.collect([a]))()
        calls = {v: _quiet(o.compute_collection_result) for v, o in made.items()}
        timed = rounds(calls, repeats, target_s)
        results = {v: _quiet(o.compute_collection_result)() for v, o in made.items()}
        results = {v: _ort_numbers(r) for v, r in results.items()}
        rows += _rows(f"search {BINS} bins ORT {method}", timed, results, results["reference"])
    ref_make, ours = _modelopt_maker("HistogramCalibrator", torch_hist=True)
    made = {"reference": ref_make(), **{lib: ours(lib)() for lib in libs}}
    for variant, obj in made.items():
        obj.collect(torch.from_numpy(host) if variant == "reference" else libs[variant](host))
    for method, kw in (("entropy", {}), ("mse", {}), ("percentile", {"percentile": 99.99})):
        calls = {v: (lambda o=o, m=method, k=kw: o.compute_amax(m, **k)) for v, o in made.items()}
        timed = rounds(calls, repeats, target_s)
        results = {v: o.compute_amax(method, **kw) for v, o in made.items()}
        rows += _rows(f"search {BINS} bins ModelOpt {method}", timed, results, results["reference"])
    return rows


def _ort_numbers(result: Any) -> tuple[Any, ...]:
    if hasattr(result, "avg"):
        return (result.avg, result.std, result.lowest, result.highest)
    return (result[0], result[1])


def _rows(case: str, timed: dict[str, Any], got: dict[str, Any], want: Any) -> list[dict[str, Any]]:
    from bench import sidebyside

    return sidebyside.rows(case, timed, "reference", lambda v: _agrees(got[v], want))


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from bench import sidebyside

    notes = [
        f"{meta['date']}; `{meta['command']}`; {meta['machine']}; load average "
        f"{meta.get('load', '?')}; torch threads {meta['torch_threads']}; median of "
        f"{meta['rounds']} interleaved rounds",
        "`reference`: ORT (host NumPy) or ModelOpt (torch on the CPU); `ref/this`: how many "
        "times faster than the reference in the same run; `agrees`: the histogram or result "
        "equals the reference's bit for bit",
    ]
    title = "Calibrators against ONNX Runtime 1.31.1 and ModelOpt 0.47.0"
    return sidebyside.markdown(title, notes, rows, "ref/this")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1e6 collection, 2 rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--libraries",
        default=",".join(LIBRARIES),
        help="arrayobs's variants (JAX runs the generic path op by op: seconds a call at 1e7)",
    )
    args = parser.parse_args(argv)
    LIBRARIES[:] = args.libraries.split(",")
    repeats, target_s = (2, 0.05) if args.quick else (3, 0.2)
    import torch

    torch.set_num_threads(1)  # ModelOpt's reference as the design notes timed it
    n = 10**6 if args.quick else 10**7
    rows = collection_rows(n, repeats, target_s) + search_rows(repeats, target_s)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.calib", *(sys.argv[1:] if argv is None else argv)]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "rounds": repeats,
        "load": " / ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calib.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / "calib.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
