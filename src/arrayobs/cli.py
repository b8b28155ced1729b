"""The ``arrayobs`` command line.

``arrayobs demo`` observes a few seeded batches with an observer on a chosen
backend and prints the state and qparams, next to torch.ao's when torch is
installed, with a bit-for-bit verdict.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs._compat import to_host

_OBSERVERS = {"minmax": MinMaxObserver, "moving-average": MovingAverageMinMaxObserver}
_LIBRARIES = {
    "numpy": "numpy",
    "torch": "torch",
    "jax": "jax.numpy",
    "dask": "dask.array",
    "array_api_strict": "array_api_strict",
    "cupy": "cupy",
}


def _batches(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.standard_normal(1000) * rng.uniform(0.5, 3) + rng.uniform(-1, 1)).astype(np.float32)
        for _ in range(count)
    ]


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"dtype": args.dtype, "qscheme": args.qscheme}
    if args.quant_min is not None:
        kw["quant_min"] = args.quant_min
    if args.quant_max is not None:
        kw["quant_max"] = args.quant_max
    if args.observer == "moving-average":
        kw["averaging_constant"] = args.averaging_constant
    return kw


def _torch_reference(args: argparse.Namespace, batches: list[np.ndarray]) -> tuple[Any, ...] | None:
    try:
        torch = importlib.import_module("torch")
        tobs = importlib.import_module("torch.ao.quantization.observer")
    except ImportError:
        return None
    kw = _kwargs(args)
    kw["dtype"], kw["qscheme"] = getattr(torch, args.dtype), getattr(torch, args.qscheme)
    ref = getattr(tobs, _OBSERVERS[args.observer].__name__)(**kw)
    for b in batches:
        ref(torch.from_numpy(b))
    scale, zp = ref.calculate_qparams()
    return (float(ref.min_val), float(ref.max_val), scale.numpy(), zp.numpy())


def _print_qparams(who: str, scale: np.ndarray, zero_point: np.ndarray) -> None:
    print(
        f"  {who}: scale={float(scale[0])!r} ({scale.dtype}) "
        f"zero_point={int(zero_point[0])} ({zero_point.dtype})"
    )


def _demo(args: argparse.Namespace) -> int:
    try:
        lib = importlib.import_module(_LIBRARIES[args.backend])
    except ImportError as exc:
        print(f"arrayobs: backend {args.backend} is not installed ({exc})", file=sys.stderr)
        return 2
    try:
        obs = _OBSERVERS[args.observer](**_kwargs(args), xp=lib)
    except (TypeError, ValueError, NotImplementedError) as exc:
        print(f"arrayobs: {exc}", file=sys.stderr)
        return 2
    batches = _batches(args.seed, args.batches)
    for b in batches:
        obs(lib.asarray(b))
    scale, zp = obs.calculate_qparams()
    ours = (float(to_host(obs.min_val)), float(to_host(obs.max_val)), to_host(scale), to_host(zp))
    print(f"{obs!r} on {args.backend}, {len(batches)} batches of 1000 (seed {args.seed})")
    _print_qparams("arrayobs", ours[2], ours[3])
    ref = _torch_reference(args, batches)
    if ref is None:
        print("  torch.ao: not installed; `pip install torch==2.13.0` to compare")
        return 0
    _print_qparams("torch.ao", ref[2], ref[3])
    same = (
        ours[0] == ref[0]
        and ours[1] == ref[1]
        and ours[2].tobytes() == ref[2].tobytes()
        and ours[3].tolist() == ref[3].tolist()
    )
    verdict = "identical" if same else "DIFFERENT"
    if same and ours[3].dtype != ref[3].dtype:
        verdict += f" (zero point held as {ours[3].dtype}: this backend has no {ref[3].dtype})"
    print(f"  min_val, max_val, scale and zero_point bit for bit: {verdict}")
    return 0 if same else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arrayobs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="observe seeded batches and print qparams (vs torch.ao if installed)"
    )
    demo.add_argument("--backend", choices=sorted(_LIBRARIES), default="numpy")
    demo.add_argument("--observer", choices=sorted(_OBSERVERS), default="moving-average")
    demo.add_argument("--dtype", default="quint8")
    demo.add_argument("--qscheme", default="per_tensor_affine")
    demo.add_argument("--quant-min", type=int, default=None)
    demo.add_argument("--quant-max", type=int, default=None)
    demo.add_argument("--averaging-constant", type=float, default=0.01)
    demo.add_argument("--batches", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo" and args.batches < 1:
        print("arrayobs: --batches must be at least 1", file=sys.stderr)
        return 2
    code: int = args.run(args)
    return code
