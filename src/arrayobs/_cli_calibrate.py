"""``arrayobs calibrate FILE... --method ...``: several calibration methods on the same
activations, side by side: each method's range and qparams, as text or ``--json``, and
with ``--plot out.png`` the histogram with each method's clipping range (needs
matplotlib).

Every file (.npy, or each array of an .npz) is one batch, fed in order: one
``collect`` (ORT: one ``collect_data`` call) or ``forward`` per batch. The methods and
the classes behind them, with their references' defaults:

- ``torch-histogram``: ``arrayobs.HistogramObserver()`` (torch.ao's; quint8, per tensor
  affine); its range is the quantized grid's ends, ``(qmin - zp) * scale`` to
  ``(qmax - zp) * scale``;
- ``ort-entropy``, ``ort-percentile``, ``ort-distribution``: ``arrayobs.calib.ort``'s
  ``HistogramCollector`` with ORT's calibraters' defaults (entropy: 128 bins, 128
  quantized bins; percentile: 2048 bins, 99.999, not symmetric; distribution: 2048
  bins, since the calibrater's own default of 128 is refused by its search), the range
  from ``compute_collection_result()`` and qparams from ``compute_scale_zp`` for uint8
  (ORT's default activation type);
- ``modelopt-entropy``, ``modelopt-mse``, ``modelopt-percentile``:
  ``arrayobs.calib.modelopt.HistogramCalibrator()`` (2048 bins, torch_hist=True) and
  ``compute_amax(method)`` (percentile 99.99); ``modelopt-max``: ``MaxCalibrator()``.
  The range is ``(-amax, amax)``; the qparams ModelOpt's int8 narrow range: ``scale =
  f32(127 / amax)`` (a multiplier: ``q = round(x * scale)``), zero point 0.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._cli_files import json_safe, load_batches

METHODS = (
    "torch-histogram",
    "ort-entropy",
    "ort-percentile",
    "ort-distribution",
    "modelopt-entropy",
    "modelopt-mse",
    "modelopt-percentile",
    "modelopt-max",
)
_ORT = {  # method: HistogramCollector's (method, symmetric, num_bins, num_quantized_bins, pct)
    "ort-entropy": ("entropy", False, 128, 128, 99.999),
    "ort-percentile": ("percentile", False, 2048, 128, 99.999),
    "ort-distribution": ("distribution", False, 2048, 128, 99.999),
}
_MODELOPT = {
    "modelopt-entropy": {},
    "modelopt-mse": {},
    "modelopt-percentile": {"percentile": 99.99},
}


def calib_modules() -> tuple[ModuleType, ModuleType]:
    """``arrayobs.calib.ort`` and ``arrayobs.calib.modelopt`` (tests stand in here)."""
    return (
        importlib.import_module("arrayobs.calib.ort"),
        importlib.import_module("arrayobs.calib.modelopt"),
    )


def parse_methods(text: str) -> list[str]:
    """The comma-separated ``--method`` list, checked (duplicates dropped, order kept)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        msg = f"unknown method {bad or text!r}; choose from {', '.join(METHODS)}"
        raise ValueError(msg)
    return list(dict.fromkeys(names))


def _f(v: Any) -> float:
    return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def _torch_histogram(batches: list[np.ndarray]) -> dict[str, Any]:
    from arrayobs import HistogramObserver

    obs = HistogramObserver()
    for b in batches:
        obs(b)
    scale, zp = obs.calculate_qparams()
    s, z = _f(scale), int(np.asarray(zp).reshape(-1)[0])
    qmin, qmax = 0, 255
    lo, hi = (qmin - z) * np.float32(s), (qmax - z) * np.float32(s)
    return {
        "library": "torch.ao 2.13.0 (arrayobs.HistogramObserver)",
        "range": [float(lo), float(hi)],
        "qparams": {"scale": s, "zero_point": z, "dtype": "quint8"},
    }


def _ort(method: str, batches: list[np.ndarray], ort: ModuleType) -> dict[str, Any]:
    name, symmetric, bins, quantized, pct = _ORT[method]
    collector = ort.HistogramCollector(name, symmetric, bins, quantized, pct)
    for b in batches:
        collector.collect([b])
    result = collector.compute_collection_result()
    if hasattr(result, "lowest"):
        lo, hi = np.asarray(result.lowest), np.asarray(result.highest)
    else:
        lo, hi = np.asarray(result[0]), np.asarray(result[1])
    qmin, qmax = np.array(0, np.uint8), np.array(255, np.uint8)
    zp, scale = ort.compute_scale_zp(
        np.asarray(lo, np.float32), np.asarray(hi, np.float32), qmin, qmax, False
    )
    return {
        "library": "ONNX Runtime 1.31.1 (arrayobs.calib.ort.HistogramCollector)",
        "range": [_f(lo), _f(hi)],
        "qparams": {"scale": _f(scale), "zero_point": int(np.asarray(zp)), "dtype": "uint8"},
    }


def _modelopt(method: str, batches: list[np.ndarray], modelopt: ModuleType) -> dict[str, Any]:
    if method == "modelopt-max":
        cal = modelopt.MaxCalibrator()
        who = "MaxCalibrator"
    else:
        cal = modelopt.HistogramCalibrator()
        who = "HistogramCalibrator"
    for b in batches:
        cal.collect(b)
    if method == "modelopt-max":
        amax = cal.compute_amax()
    else:
        amax = cal.compute_amax(method.removeprefix("modelopt-"), **_MODELOPT[method])
    if amax is None:
        msg = f"{method}: ModelOpt returned no amax (no data collected)"
        raise ValueError(msg)
    a = np.float32(_f(amax))
    with np.errstate(divide="ignore"):
        scale = float(np.float32(127) / a)
    return {
        "library": f"ModelOpt 0.47.0 (arrayobs.calib.modelopt.{who})",
        "range": [-float(a), float(a)],
        "qparams": {"scale": scale, "zero_point": 0, "dtype": "int8 (narrow, multiplier)"},
    }


def calibrate(methods: list[str], batches: list[np.ndarray]) -> list[dict[str, Any]]:
    """Each method's result on ``batches`` (host arrays, one batch each)."""
    ort, modelopt = (
        calib_modules() if any(m != "torch-histogram" for m in methods) else (None, None)
    )
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # HistogramObserver's reduce_range note
        for m in methods:
            if m == "torch-histogram":
                result = _torch_histogram(batches)
            elif m in _ORT:
                assert ort is not None
                result = _ort(m, batches, ort)
            else:
                assert modelopt is not None
                result = _modelopt(m, batches, modelopt)
            out.append({"method": m, **result})
    return out


def text(results: list[dict[str, Any]], n_batches: int, n_values: int) -> str:
    head = ("method", "range lo", "range hi", "scale", "zero point", "library")
    body = [
        (
            r["method"],
            f"{r['range'][0]:.9g}",
            f"{r['range'][1]:.9g}",
            f"{r['qparams']['scale']:.9g}",
            f"{r['qparams']['zero_point']} ({r['qparams']['dtype']})",
            r["library"],
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = [f"{n_batches} batches, {n_values} values"]
    for row in (head, *body):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(path: str, batches: list[np.ndarray], results: list[dict[str, Any]]) -> None:
    """The values' histogram (256 bins) with each method's range as a pair of lines."""
    try:
        import matplotlib
    except ImportError as exc:
        msg = "--plot needs matplotlib (pip install matplotlib)"
        raise ValueError(msg) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.concatenate([np.asarray(b, np.float64).reshape(-1) for b in batches])
    values = values[np.isfinite(values)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.hist(values, bins=256, color="0.6", log=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(results):
        c = colors[i % len(colors)]
        lo, hi = r["range"]
        ax.axvline(lo, color=c, linestyle="--", linewidth=1, label=r["method"])
        ax.axvline(hi, color=c, linestyle="--", linewidth=1)
    ax.set_xlabel("value")
    ax.set_ylabel("count (log)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        methods = parse_methods(args.method)
        loaded = load_batches(args.files)
        batches = [np.asarray(b) for _, b in loaded]
        results = calibrate(methods, batches)
        if args.plot:
            plot(args.plot, batches, results)
    except ImportError as exc:
        print(f"arrayobs: the calibrators need arrayobs.calib ({exc})", file=sys.stderr)
        return 2
    except (TypeError, ValueError, NotImplementedError, RuntimeError, AssertionError) as exc:
        print(f"arrayobs: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    n_values = sum(int(b.size) for b in batches)
    if args.json:
        report = {
            "batches": [name for name, _ in loaded],
            "values": n_values,
            "methods": results,
            "plot": args.plot,
        }
        print(json.dumps(json_safe(report), indent=2, allow_nan=False))
    else:
        print(text(results, len(batches), n_values))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "calibrate", help="calibration methods of torch.ao, ORT and ModelOpt on .npy activations"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".npy or .npz, each array a batch")
    p.add_argument(
        "--method",
        default="torch-histogram,ort-entropy,ort-percentile,modelopt-entropy,modelopt-max",
        help=f"comma-separated, from: {', '.join(METHODS)}",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", metavar="OUT.png", default=None, help="draw the histogram and ranges")
    p.set_defaults(run=run)
