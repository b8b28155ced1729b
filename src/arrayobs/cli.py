"""The ``arrayobs`` command line.

- ``arrayobs compare``: the conformance corpus on every installed backend,
  checked against the stored torch 2.13.0 reference numbers.
- ``arrayobs observe FILE...``: qparams of arrays saved as .npy/.npz
  (per channel with ``--ch-axis N``).
- ``arrayobs calibrate FILE... --method ...``: ORT's, ModelOpt's and torch.ao's
  calibration methods side by side on the same activations (``_cli_calibrate``).
- ``arrayobs demo``: seeded batches on one backend, next to torch.ao's numbers
  when torch is installed.
- ``arrayobs reference export DIR``: the corpus and torch's numbers as plain
  files (.npy and a manifest.json), for implementations outside arrayobs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
    __version__,
    _cli_calibrate,
    _cli_compare,
)
from arrayobs._cli_files import json_safe, load_batches
from arrayobs._compat import to_host
from arrayobs._conformance._records import TORCH_VERSION, TORCHAO_VERSION

_OBSERVERS = {"minmax": MinMaxObserver, "moving-average": MovingAverageMinMaxObserver}
_PER_CHANNEL = {
    "minmax": PerChannelMinMaxObserver,
    "moving-average": MovingAveragePerChannelMinMaxObserver,
}
_LIBRARIES = {
    "numpy": "numpy",
    "torch": "torch",
    "jax": "jax.numpy",
    "dask": "dask.array",
    "array_api_strict": "array_api_strict",
    "cupy": "cupy",
}
_ERRORS = (TypeError, ValueError, NotImplementedError)


def _fail(msg: object) -> int:
    print(f"arrayobs: {' '.join(str(msg).split())}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line on stderr and exit status 2 (not usage + error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_observer_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--observer", choices=sorted(_OBSERVERS), default="moving-average")
    p.add_argument("--dtype", default="quint8")
    p.add_argument(
        "--qscheme", default=None, help="default: per_tensor_affine, or per_channel_affine"
    )
    p.add_argument("--reduce-range", action="store_true")
    p.add_argument("--quant-min", type=int, default=None)
    p.add_argument("--quant-max", type=int, default=None)
    p.add_argument("--eps", type=float, default=None)
    p.add_argument("--averaging-constant", type=float, default=0.01)


def _per_channel(args: argparse.Namespace) -> bool:
    return getattr(args, "ch_axis", None) is not None


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    default = "per_channel_affine" if _per_channel(args) else "per_tensor_affine"
    kw: dict[str, Any] = {
        "dtype": args.dtype,
        "qscheme": args.qscheme or default,
        "reduce_range": args.reduce_range,
    }
    if _per_channel(args):
        kw["ch_axis"] = args.ch_axis
    for name in ("quant_min", "quant_max", "eps"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.observer == "moving-average":
        kw["averaging_constant"] = args.averaging_constant
    return kw


def _make_observer(args: argparse.Namespace, xp: Any = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        classes = _PER_CHANNEL if _per_channel(args) else _OBSERVERS
        return classes[args.observer](**_kwargs(args), xp=xp)


def _result(obs: Any) -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scale, zp = obs.calculate_qparams()
    scale_h, zp_h = to_host(scale), to_host(zp)
    lo, hi = to_host(obs.min_val), to_host(obs.max_val)
    if isinstance(obs, PerChannelMinMaxObserver):
        # One value per channel (lists; the zero point a float for float_qparams).
        values: dict[str, Any] = {
            "min_val": lo.tolist(),
            "max_val": hi.tolist(),
            "scale": scale_h.tolist(),
            "zero_point": zp_h.tolist(),
        }
    else:
        values = {
            "min_val": float(lo),
            "max_val": float(hi),
            "scale": float(scale_h[0]),
            "zero_point": int(zp_h[0]),
        }
    return {
        "observer": type(obs).__name__,
        **values,
        "scale_dtype": str(scale_h.dtype),
        "zero_point_dtype": str(zp_h.dtype),
        "warnings": [str(w.message) for w in caught],
    }


def _print_result(who: str, r: dict[str, Any]) -> None:
    print(
        f"  {who}: scale={r['scale']!r} ({r['scale_dtype']}) "
        f"zero_point={r['zero_point']} ({r['zero_point_dtype']})"
    )


# -- observe -----------------------------------------------------------------------
def _observe(args: argparse.Namespace) -> int:
    try:
        obs = _make_observer(args)
        batches = load_batches(args.files)
        for name, batch in batches:
            try:
                obs(batch)
            except _ERRORS as exc:
                raise type(exc)(f"{name}: {exc}") from exc
        result = _result(obs)
    except _ERRORS as exc:
        return _fail(exc)
    result["batches"] = [name for name, _ in batches]
    if args.json:
        print(json.dumps(json_safe(result), indent=2, allow_nan=False))
    else:
        print(f"{obs!r} over {len(batches)} batches")
        _print_result("arrayobs", result)
        for w in result["warnings"]:
            print(f"  warning: {w}")
    return 0


# -- demo --------------------------------------------------------------------------
def _same_value(a: Any, b: Any, *, bits: bool = False) -> bool:
    """Equal (bit for bit with ``bits``), a NaN matching any NaN."""
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        if math.isnan(a) and math.isnan(b):
            return True
        if bits:
            return bool(np.float32(a).tobytes() == np.float32(b).tobytes())
    return bool(a == b)


def _demo_batches(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(1000) * rng.uniform(0.5, 3) + rng.uniform(-1, 1)).astype(np.float32)
        for _ in range(count)
    ]


def _torch_result(args: argparse.Namespace, batches: list[np.ndarray]) -> dict[str, Any] | None:
    try:
        torch = importlib.import_module("torch")
        tobs = importlib.import_module("torch.ao.quantization.observer")
    except ImportError:
        return None
    kw = _kwargs(args)
    kw["dtype"], kw["qscheme"] = getattr(torch, args.dtype), getattr(torch, kw["qscheme"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = getattr(tobs, _OBSERVERS[args.observer].__name__)(**kw)
    for b in batches:
        ref(torch.from_numpy(b))
    return _result(ref)


def _demo(args: argparse.Namespace) -> int:
    if args.batches < 1:
        return _fail("--batches must be at least 1")
    if args.seed < 0:
        return _fail(f"--seed must be 0 or more (NumPy's seeds), got {args.seed}")
    try:
        lib = importlib.import_module(_LIBRARIES[args.backend])
    except ImportError as exc:
        return _fail(f"backend {args.backend} is not installed ({exc})")
    try:
        obs = _make_observer(args, xp=lib)
    except _ERRORS as exc:
        return _fail(exc)
    batches = _demo_batches(args.seed, args.batches)
    try:
        for b in batches:
            obs(lib.asarray(b))
        ours = _result(obs)
    except _ERRORS as exc:
        return _fail(exc)
    print(f"{obs!r} on {args.backend}, {len(batches)} batches of 1000 (seed {args.seed})")
    _print_result("arrayobs", ours)
    try:
        ref = _torch_result(args, batches)
    except (*_ERRORS, AssertionError, RuntimeError) as exc:
        print(f"  torch.ao: raised {type(exc).__name__}: {' '.join(str(exc).split())}")
        return 1
    if ref is None:
        print("  torch.ao: not installed; `pip install torch==2.13.0` to compare")
        return 0
    _print_result("torch.ao", ref)
    # NaN matches NaN: torch's NaN bits depend on the CPU it runs on (docs/exactness.md).
    same = all(_same_value(ours[f], ref[f]) for f in ("min_val", "max_val", "zero_point"))
    same = same and _same_value(np.float32(ours["scale"]), np.float32(ref["scale"]), bits=True)
    verdict = "identical" if same else "DIFFERENT"
    if same and ours["zero_point_dtype"] != ref["zero_point_dtype"]:
        verdict += f" (zero point held as {ours['zero_point_dtype']}: no int64 on this backend)"
    print(f"  min_val, max_val, scale and zero_point bit for bit: {verdict}")
    return 0 if same else 1


# -- reference export ------------------------------------------------------------------
def _remove_partial(root: Path, existed: bool) -> None:
    if not root.is_dir():
        return
    if not existed:
        shutil.rmtree(root, ignore_errors=True)
        return
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _export(args: argparse.Namespace) -> int:
    from arrayobs._conformance._export import export

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        return _fail(f"{root} is a file; reference export writes into a new or empty directory")
    existed = root.exists()
    try:
        manifest = export(root, args.cases)
    except ValueError as exc:
        return _fail(exc)
    except OSError as exc:
        # A partial export (no manifest) is worse than none: remove what was written,
        # which is everything in it (export refuses a directory that is not empty).
        _remove_partial(root, existed)
        reason = exc.strerror or exc
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"reference export to {root} failed: {reason}{where}; nothing was left there")
    size = sum((Path(args.dir) / rel).stat().st_size for rel in manifest["files"])
    size += (Path(args.dir) / "manifest.json").stat().st_size
    print(
        f"wrote {args.dir}: {len(manifest['observer_cases'])} observer cases, "
        f"{len(manifest['fake_quant_cases'])} fake-quantize cases, "
        f"{len(manifest['affine_cases'])} affine cases, "
        f"{len(manifest['histogram_cases'])} histogram cases, "
        f"{len(manifest['calibrators_cases'])} calibrator cases, "
        f"{len(manifest['files']) + 1} files, {size / 1e6:.1f} MB "
        f"(torch {manifest['reference']['torch']}, corpus version {manifest['corpus_version']})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="arrayobs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=(
            f"arrayobs {__version__} (reference: torch {TORCH_VERSION}, torchao {TORCHAO_VERSION})"
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _cli_compare.add_parser(sub)
    _cli_calibrate.add_parser(sub)
    observe = sub.add_parser("observe", help="qparams of arrays saved as .npy/.npz (each a batch)")
    observe.add_argument("files", nargs="+", metavar="FILE")
    _add_observer_options(observe)
    observe.add_argument(
        "--ch-axis",
        type=int,
        default=None,
        metavar="N",
        help="per-channel observer, channels along axis N (negative from the end)",
    )
    observe.add_argument("--json", action="store_true")
    observe.set_defaults(run=_observe)
    demo = sub.add_parser("demo", help="seeded batches on one backend, vs torch.ao if installed")
    demo.add_argument("--backend", choices=sorted(_LIBRARIES), default="numpy")
    _add_observer_options(demo)
    demo.add_argument("--batches", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    reference = sub.add_parser("reference", help="the torch reference numbers as plain files")
    ref_sub = reference.add_subparsers(dest="reference_command", required=True)
    export = ref_sub.add_parser(
        "export", help="write the corpus's inputs and expected numbers (.npy + manifest.json)"
    )
    export.add_argument("dir", metavar="DIR", help="a new or empty directory")
    export.add_argument(
        "--cases",
        choices=(
            "all",
            "per-tensor",
            "per-channel",
            "fake-quant",
            "affine",
            "histogram",
            "calibrators",
        ),
        default="all",
        help=(
            "the whole corpus (default) or one section (affine: torchao 0.18.0's numbers; "
            "histogram: HistogramObserver, torch 2.13.0's histogram, state and qparams after "
            "every batch; calibrators: ONNX Runtime 1.31.1's and ModelOpt 0.47.0's "
            "calibrators, their state and results after every call)"
        ),
    )
    export.set_defaults(run=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in ("observe", "calibrate"):
        # Files after an option (`observe a.npy --ch-axis 0 b.npy`) are files too.
        files = [a for a in extra if not a.startswith("-")]
        args.files += files
        extra = [a for a in extra if a.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "compare" and args.quick < 0:
        parser.error(f"argument --quick: must be 0 (every case) or more, got {args.quick}")
    code: int = args.run(args)
    return code
