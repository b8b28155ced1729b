"""HistogramObserver against torch.ao's, side by side: forward on float32 batches and
calculate_qparams (the L2 search) on 2048-bin histograms of several distributions.

Variants, interleaved round by round (``bench.timing.interleaved``):

``torch.ao``
    ``torch.ao.quantization.HistogramObserver`` on a CPU tensor of the same values.
``numpy``, ``torch``, ``jax``
    ``arrayobs.HistogramObserver`` on that library's array (JAX eager, on the CPU).
``numpy generic``
    The same on NumPy with ``fast=False``: the generic Array API arithmetic.
``jax jit``
    The functional core: ``jax.jit(F.histogram_update)`` (forward) and
    ``F.histogram_qparams`` (the same host search as the class).

forward is timed in the steady state (the batch inside the observed range, so no
re-binning), as a calibration loop spends most of its batches, and once with the
re-binning: a fresh observer's first batch, then one 1000x wider. Each arrayobs
result is compared with torch.ao's bit for bit (histogram and scale bits, zero
point): ``agrees``.

    python -m bench.histogram            # 1e6 and 1e7 elements
    python -m bench.histogram --quick    # 1e6 only, fewer rounds

Writes ``bench/results/histogram.json`` and ``histogram.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10**6, 10**7)
BINS = 2048
SAMPLES = 10**6  # values behind each calculate_qparams histogram


def _distributions(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    normal = rng.standard_normal(n)
    return {
        "normal": normal,
        "relu": np.maximum(normal, 0.0),
        "laplace": rng.laplace(size=n),
        "uniform": rng.uniform(-1.0, 3.0, n),
        "lognormal": rng.lognormal(size=n),
    }


def _libraries() -> dict[str, Callable[[np.ndarray], Any]]:
    import torch

    out: dict[str, Callable[[np.ndarray], Any]] = {
        "numpy": lambda a: a,
        "torch": torch.from_numpy,
    }
    try:
        import jax.numpy as jnp
    except ImportError:
        print("histogram: jax is not installed, no jax rows", file=sys.stderr)
    else:
        out["jax"] = jnp.asarray
    return out


def _observers(
    host: np.ndarray, variants: tuple[str, ...] | None = None
) -> dict[str, tuple[Any, Any]]:
    """variant -> (observer, its input), every one having observed ``host`` once
    (only ``variants``, if given)."""
    import torch
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    from arrayobs import HistogramObserver

    makers: dict[str, Callable[[], tuple[Any, Any]]] = {
        "torch.ao": lambda: (TorchHistogram(bins=BINS), torch.from_numpy(host))
    }
    converts = _libraries()
    for name, convert in converts.items():
        makers[name] = lambda c=convert: (HistogramObserver(bins=BINS), c(host))
    makers["numpy generic"] = lambda: (HistogramObserver(bins=BINS, fast=False), host)
    if "jax" in converts:
        makers["jax jit"] = lambda: (_Functional(), converts["jax"](host))
    found = {v: make() for v, make in makers.items() if variants is None or v in variants}
    for obs, x in found.values():
        obs(x)
    return found


class _Functional:
    """The functional core under ``jax.jit``, held like an observer (state in a field)."""

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        from arrayobs import functional as F

        self._update = jax.jit(F.histogram_update)
        self._config = F.quant_config()
        self.state = F.histogram_init(BINS, xp=jnp)

    def __call__(self, x: Any) -> None:
        self.state = self._update(self.state, x)
        self.state.histogram.block_until_ready()

    @property
    def histogram(self) -> Any:
        return self.state.histogram

    def calculate_qparams(self) -> Any:
        from arrayobs import functional as F

        return F.histogram_qparams(self.state, self._config)


def _bits(v: Any) -> list[int]:
    from arrayobs._compat import to_host

    return np.asarray(to_host(v), dtype=np.float32).reshape(-1).view(np.int32).tolist()


def _agrees(obs: Any, ref: Any) -> bool:
    ours, theirs = obs.calculate_qparams(), ref.calculate_qparams()
    return (
        _bits(obs.histogram) == _bits(ref.histogram)
        and _bits(ours[0]) == _bits(theirs[0])
        and int(np.asarray(ours[1]).reshape(-1)[0]) == int(theirs[1].reshape(-1)[0])
    )


def _rows(
    case: str, observers: dict[str, tuple[Any, Any]], calls: dict[str, Callable[[], object]]
) -> list[dict[str, Any]]:
    """Timings of ``calls``; ``observers`` (each fed the same batches) for ``agrees``."""
    from bench import sidebyside
    from bench.timing import interleaved

    timings = interleaved(calls, REPEATS, TARGET_S)
    ref = observers["torch.ao"][0]
    return sidebyside.rows(case, timings, "torch.ao", lambda v: _agrees(observers[v][0], ref))


def forward_rows(sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        host = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
        timed = _observers(host)
        calls = {v: (lambda o=o, x=x: o(x)) for v, (o, x) in timed.items()}
        # The timed observers saw different numbers of batches: compare fresh ones,
        # after a batch, a wider one (re-binning) and the first again.
        checked = _observers(host)
        for obs, x in checked.values():
            obs(x * 3)
            obs(x)
        rows += _rows(f"forward {n:.0e}", checked, calls)
    return rows


def rebin_rows() -> list[dict[str, Any]]:
    """A fresh observer's first batch (1e5 values in [0, 0.1]), then a batch 1000x
    wider: the old histogram re-binned into the new range (each call anew)."""
    first = (np.random.default_rng(2).random(10**5) * 0.1).astype(np.float32)
    wide = np.array([0.0, 100.0], dtype=np.float32)
    checked = _observers(first)  # fed the first batch: the wide one follows
    widened = {v: x for v, (_, x) in _observers(wide).items()}
    for v, (obs, _) in checked.items():
        obs(widened[v])

    def call(variant: str) -> Callable[[], object]:
        def run() -> None:
            obs, _ = _observers(first, variants=(variant,))[variant]
            obs(widened[variant])

        return run

    return _rows("forward, range 1000x wider", checked, {v: call(v) for v in checked})


def qparams_rows() -> list[dict[str, Any]]:
    rows = []
    for name, values in _distributions(np.random.default_rng(1), SAMPLES).items():
        observers = _observers(values.astype(np.float32))
        calls = {v: o.calculate_qparams for v, (o, _) in observers.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows += _rows(f"calculate_qparams {name}", observers, calls)
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from bench import sidebyside

    notes = [
        f"{meta['date']}; `{meta['command']}`; {meta['machine']}; torch threads "
        f"{meta['torch_threads']}; median of {REPEATS} interleaved rounds",
        "`torch.ao/this`: how many times faster than torch.ao in the same run; `agrees`:"
        " histogram bits, scale bits and zero point equal torch.ao's",
    ]
    return sidebyside.markdown("HistogramObserver against torch.ao", notes, rows, "torch.ao/this")


REPEATS, TARGET_S = 15, 0.2


def main(argv: list[str] | None = None) -> int:
    global REPEATS, TARGET_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1e6 only, fewer rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.quick:
        REPEATS, TARGET_S = 7, 0.1
    import datetime

    import torch

    rows = qparams_rows() + forward_rows(SIZES[:1] if args.quick else SIZES) + rebin_rows()
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.histogram" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "rounds": REPEATS,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "histogram.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / "histogram.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
