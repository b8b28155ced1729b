"""Per-call overhead of ``forward`` on 100 float32 elements, side by side in one process.

``MinMaxObserver`` and ``MovingAverageMinMaxObserver``: torch.ao's on a CPU tensor, then
arrayobs's bound to torch (the same tensor) and to NumPy (the same values), timed in
interleaved rounds (``bench.timing.interleaved``) so that a noisy minute of a shared
machine falls on every variant. A variant agrees when its ``min_val`` and ``max_val``
after the timing have the bits of torch.ao's (every variant saw the same batches).

    python -m bench.percall [--rounds 15] [--out bench/results/percall.md]
"""

from __future__ import annotations

import argparse
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.sidebyside import markdown, rows
from bench.timing import interleaved

N = 100
CLASSES = ("MinMaxObserver", "MovingAverageMinMaxObserver")


def _bits(v: Any) -> bytes:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float32).tobytes()


def measure(rounds: int) -> list[dict[str, Any]]:
    import torch
    from torch.ao.quantization import observer as ao

    import arrayobs

    base = np.random.default_rng(0).standard_normal(N, dtype=np.float32)
    t = torch.from_numpy(base.copy())
    found = []
    for name in CLASSES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            observers = {
                "torch.ao": (getattr(ao, name)(), t),
                "arrayobs torch": (getattr(arrayobs, name)(xp=torch), t),
                "arrayobs numpy": (getattr(arrayobs, name)(xp=np), base),
            }
        calls: dict[str, Callable[[], object]] = {
            variant: (lambda o=o, x=x: o(x)) for variant, (o, x) in observers.items()
        }
        timings = interleaved(calls, rounds, 0.05)
        want = [_bits(getattr(observers["torch.ao"][0], k)) for k in ("min_val", "max_val")]

        def agrees(variant: str, observers: Any = observers, want: Any = want) -> bool:
            obs = observers[variant][0]
            return [_bits(getattr(obs, k)) for k in ("min_val", "max_val")] == want

        found += rows(f"{name}.forward, {N} float32", timings, "torch.ao", agrees)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    found = measure(args.rounds)
    notes = [
        f"`python -m bench.percall --rounds {args.rounds}`; load average "
        + ", ".join(f"{v:.1f}" for v in os.getloadavg()),
        "medians of interleaved rounds; torch.ao over variant: above 1x favours arrayobs",
    ]
    text = markdown("Per-call forward, 100 float32 elements", notes, found, "torch.ao / this")
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
