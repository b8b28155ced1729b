"""The compiled kernels (numba) against the library path, torch.ao and the read floor.

Every row times, side by side in interleaved rounds (medians): the kernels
(``ARRAYOBS_NUMBA`` unset), the library path (``ARRAYOBS_NUMBA=0``, switched
in the process: both variants set the variable around each call, so both pay
for it), torch.ao, and where it applies the one-pass read floor (``torch.sum``
over the same memory). ``agrees``: the kernel's result has the bits of the
library path's (and torch.ao's, for the histogram).

The histogram forward rows time the steady state (every call after the
first sees the same batch, inside the observed range): ``kernels`` is the
fused pass (``Backend.steady_histc``), ``kernels unfused`` the same kernels
in two passes (the batch's (min, max), then its histc), as before the fusion.

    python -m bench.kernels [--quick]
    python -m bench.kernels --plot-only    # kernels.png again from kernels.json

writes bench/results/kernels.json, kernels.md and, where matplotlib imports,
kernels.png (torch.ao's time over each variant's, per case).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BINS = 2048
REPEATS, TARGET_S = 11, 0.2


def switched(on: bool, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with the kernels on or off (the in-process ``ARRAYOBS_NUMBA`` switch)."""
    value = "1" if on else "0"

    def run() -> Any:
        os.environ["ARRAYOBS_NUMBA"] = value
        try:
            return fn()
        finally:
            os.environ["ARRAYOBS_NUMBA"] = "1"

    return run


def _bits(v: Any) -> bytes:
    from arrayobs._compat import to_host

    a = np.asarray(to_host(v), dtype=np.float32)
    return a.tobytes() if not np.isnan(a).any() else np.where(np.isnan(a), 0, a).tobytes() + b"n"


def _rows(
    case: str, calls: dict[str, Callable[[], object]], ref: str, rounds: int = 1
) -> list[dict[str, Any]]:
    """``calls`` timed side by side, ``rounds`` times REPEATS interleaved rounds."""
    from bench.sidebyside import rows
    from bench.timing import interleaved

    found = rows(case, interleaved(calls, REPEATS * rounds, TARGET_S), ref)
    for row in found:
        if "ref_over_this" in row:
            row["ref"] = ref
    return found


# -- HistogramObserver -------------------------------------------------------------------------
def _observers(host: np.ndarray, unfused: bool = False) -> dict[str, tuple[Any, Any, bool | None]]:
    """variant -> (observer, input, kernels on), each having observed ``host`` once.
    ``unfused``: also "kernels unfused" variants, whose steady state takes two passes
    (the batch's (min, max), then its histc) instead of the fused one."""
    import torch
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    from arrayobs import HistogramObserver

    t = torch.from_numpy(host)
    found: dict[str, tuple[Any, Any, bool | None]] = {
        "torch.ao": (TorchHistogram(bins=BINS), t, None)
    }
    kinds = {"kernels": True, **({"kernels unfused": True} if unfused else {}), "library": False}
    for lib, x in (("numpy", host), ("torch", t)):
        for kind, on in kinds.items():
            found[f"{lib} {kind}"] = (HistogramObserver(bins=BINS), x, on)
    for variant, (obs, x, on) in found.items():
        if on is None:
            obs(x)
        else:
            switched(on, lambda o=obs, x=x: o(x))()
        if variant.endswith("unfused"):
            # This observer's backend declines the steady state: the path before the fusion.
            obs._backend.steady_histc = lambda *args: None
    return found


def _qparams_agree(found: dict[str, tuple[Any, Any, bool | None]]) -> dict[str, bool]:
    ref = found["torch.ao"][0]
    theirs = ref.calculate_qparams()
    out = {}
    for variant, (obs, _, on) in found.items():
        if on is None:
            continue
        ours = switched(on, obs.calculate_qparams)()
        out[variant] = (
            _bits(obs.histogram) == _bits(ref.histogram)
            and _bits(ours[0]) == _bits(theirs[0])
            and int(np.asarray(ours[1]).reshape(-1)[0]) == int(theirs[1].reshape(-1)[0])
        )
    return out


def forward_rows(n: int) -> list[dict[str, Any]]:
    import torch

    host = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    found = _observers(host, unfused=True)
    calls: dict[str, Callable[[], object]] = {}
    for variant, (obs, x, on) in found.items():
        calls[variant] = (
            (lambda o=obs, x=x: o(x)) if on is None else switched(on, lambda o=obs, x=x: o(x))
        )
    t = torch.from_numpy(host)
    calls["read floor (torch.sum)"] = lambda: torch.sum(t)
    # Every timed call after the first sees the same batch: the steady state.
    # Three times the rounds: the fused and unfused kernels differ by about one read.
    rows = _rows(f"HistogramObserver forward {n:.0e} float32, steady", calls, "torch.ao", 3)
    # The timed observers saw different numbers of batches: compare fresh ones, after a
    # batch, a wider one (re-binning) and the first again (the steady state).
    checked = _observers(host, unfused=True)
    for obs, x, on in checked.values():
        for batch in (x * 3, x):
            obs(batch) if on is None else switched(on, lambda o=obs, b=batch: o(b))()
    agree = _qparams_agree(checked)
    for r in rows:
        if r["variant"] in agree:
            r["agrees"] = agree[r["variant"]]
    return rows


def qparams_rows(samples: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    normal = rng.standard_normal(samples)
    data = {
        "normal": normal,
        "relu": np.maximum(normal, 0.0),
        "uniform": rng.uniform(-1.0, 3.0, samples),
        "laplace": rng.laplace(size=samples),
        "lognormal": rng.lognormal(size=samples),
    }
    rows = []
    for name, values in data.items():
        found = _observers(values.astype(np.float32))
        calls = {
            v: o.calculate_qparams if on is None else switched(on, o.calculate_qparams)
            for v, (o, _, on) in found.items()
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = _rows(f"calculate_qparams {name}", calls, "torch.ao")
        agree = _qparams_agree(found)
        for r in part:
            if r["variant"] in agree:
                r["agrees"] = agree[r["variant"]]
        rows += part
    return rows


# -- (min, max) --------------------------------------------------------------------------------
def minmax_rows(n: int, dtype: str, lib: str, per_channel: bool = False) -> list[dict[str, Any]]:
    import torch
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

    from arrayobs import _backends
    from arrayobs._compat import resolve_namespace

    host32 = np.random.default_rng(2).standard_normal(n, dtype=np.float32)
    t = torch.from_numpy(host32).to(getattr(torch, dtype))
    shape = (64, 256, n // (64 * 256))
    if per_channel:
        t = t[: int(np.prod(shape))].reshape(shape)
    x = t if lib == "torch" else t.numpy()
    xp = resolve_namespace(torch if lib == "torch" else np)
    backend = _backends.new(xp)
    axis = 1 if per_channel else None
    ref = PerChannelMinMaxObserver(ch_axis=1) if per_channel else MinMaxObserver()
    calls: dict[str, Callable[[], object]] = {
        "kernels": switched(True, lambda: backend.aminmax(x, axis)),
        "library": switched(False, lambda: backend.aminmax(x, axis)),
        "torch.ao observer forward": lambda: ref(t),
    }
    if lib == "numpy" and not per_channel:
        calls["naive min + max"] = lambda: (x.min(), x.max())
    calls["read floor (torch.sum)"] = lambda: torch.sum(t)
    what = "per channel (64, 256, ...) axis 1" if per_channel else "per tensor"
    rows = _rows(f"(min, max) {what} {lib} {dtype} {n:.0e}", calls, "read floor (torch.sum)")
    fast, slow = calls["kernels"](), calls["library"]()
    same = all(_bits(a) == _bits(b) for a, b in zip(fast, slow, strict=True))  # type: ignore[call-overload]
    ao = next(s for s in rows if s["variant"] == "torch.ao observer forward")
    for r in rows:
        if r["variant"] == "kernels":
            r["agrees"] = same
        # On the floor's row: the most any one-pass reduction could gain over torch.ao here.
        timed = "median_ms" in r and "median_ms" in ao
        if timed and r["variant"] in ("kernels", "read floor (torch.sum)"):
            r["torch_ao_over_this"] = ao["median_ms"] / r["median_ms"]
    return rows


# -- compile and import costs ------------------------------------------------------------------
_FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
import arrayobs
t1 = time.perf_counter()
obs = arrayobs.HistogramObserver()
obs(np.linspace(-1, 1, 10**6, dtype=np.float32))
obs(np.linspace(-1, 1, 10**6, dtype=np.float32))  # the steady state's kernel
obs.calculate_qparams()
m = arrayobs.MinMaxObserver(); m(np.ones(10**6, np.float32))
p = arrayobs.PerChannelMinMaxObserver(); p(np.ones((4, 10**5), np.float32))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def first_call_rows() -> list[dict[str, Any]]:
    """``import arrayobs`` and the first two histogram forwards + qparams + (min, max) calls, in
    fresh processes: kernels off, kernels compiled (no cache), kernels from the disk cache."""
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NUMBA_CACHE_DIR": cache}
        for label, extra in (
            ("kernels off (ARRAYOBS_NUMBA=0)", {"ARRAYOBS_NUMBA": "0"}),
            ("kernels, compiled (empty cache)", {"ARRAYOBS_NUMBA": "1"}),
            ("kernels, loaded from the disk cache", {"ARRAYOBS_NUMBA": "1"}),
        ):
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL],
                env={**env, **extra},
                capture_output=True,
                text=True,
                check=True,
            )
            imported, first = (float(v) for v in out.stdout.split())
            rows.append({"case": "import arrayobs", "variant": label, "median_ms": imported * 1e3})
            rows.append(
                {
                    "case": "first calls (2 hist fwd + qparams, min/max)",
                    "variant": label,
                    "median_ms": first * 1e3,
                }
            )
            print(label, imported, first, file=sys.stderr)
    return rows


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.machine()


def _uncommitted() -> str:
    """``git status --porcelain src`` of this checkout: what the figures ran beyond its commit."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return " ".join(out.stdout.split())


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "# Compiled CPU kernels (numba) against the library path and torch.ao",
        "",
        f"- {meta['date']}; `{meta['command']}`; {meta['machine']}; numba {meta['numba']}, "
        f"{meta['numba_threads']} threads; median of {meta['rounds']} interleaved rounds"
        f" ({3 * meta['rounds']} for the histogram forward)",
        f"- load average (1, 5, 15 min) at the start {meta['load_start']}, at the end"
        f" {meta['load_end']}: the figures are under that load",
        "- `ref/this`: the row's reference (torch.ao, or the read floor for (min, max)) over this"
        " row's time, in the same run; for (min, max) kernels also torch.ao's observer forward"
        " over the kernel (on the read floor's row: the most any one-pass reduction could"
        " reach); `agrees`: kernel bits equal the library path's (and torch.ao's for"
        " the histogram rows)",
        "- a shared 2-core machine with other jobs running: expect noise of 10-30% between runs",
        f"- uncommitted changes under src/ when it ran: {meta.get('uncommitted_src') or 'none'}",
        "",
        "| case | variant | median ms | ref/this | torch.ao/kernel | agrees |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = f"{r['median_ms']:.3f}" if "median_ms" in r else r.get("error", "")[:40]
        ratio = f"{r['ref_over_this']:.2f}x" if "ref_over_this" in r else ""
        ao = f"{r['torch_ao_over_this']:.1f}x" if "torch_ao_over_this" in r else ""
        out.append(
            f"| {r['case']} | {r['variant']} | {ms} | {ratio} | {ao} | {r.get('agrees', '')} |"
        )
    return "\n".join(out) + "\n"


def _speedups(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """(label, {kernels / library / read floor: torch.ao's time over its time}) per
    case and library, for the cases with a torch.ao row, in the order run."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if "median_ms" in r:
            by_case.setdefault(r["case"], []).append(r)
    out = []
    for case, found in by_case.items():
        ao = next((r for r in found if r["variant"].startswith("torch.ao")), None)
        if ao is None:
            continue
        libs = sorted({r["variant"].split()[0] for r in found} & {"numpy", "torch"}) or [""]
        for lib in libs:
            bars = {}
            for r in found:
                variant = r["variant"]
                kind = variant.removeprefix(f"{lib} ") if lib else variant
                kind = "read floor" if kind.startswith("read floor") else kind
                if kind in ("kernels", "kernels unfused", "library", "read floor"):
                    bars[kind] = ao["median_ms"] / r["median_ms"]
            short = case.replace("HistogramObserver ", "histogram ").replace(
                " (64, 256, ...) axis 1", ""
            )
            out.append((f"{short} ({lib})" if lib else short, bars))
    return out


def write_plot(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> bool:
    """torch.ao's time over the kernels', the library path's and the read floor's,
    per case (log scale); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = _speedups(rows)
    kinds = (
        ("kernels", "C0"),
        ("kernels unfused", "C2"),
        ("library", "C1"),
        ("read floor", "black"),
    )
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(series) + 1.6))
    height = 0.8 / len(kinds)
    for k, (kind, color) in enumerate(kinds):
        ys = [i + (k - 1.5) * height for i, (_, bars) in enumerate(series) if kind in bars]
        xs = [bars[kind] for _, bars in series if kind in bars]
        ax.barh(ys, xs, height=height, color=color, label=kind)
    ax.axvline(1.0, color="gray", linewidth=1)
    ax.set_yticks(range(len(series)), [label for label, _ in series], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("torch.ao's time / this one's (same run; > 1: faster than torch.ao)")
    load = ", ".join(str(v) for v in meta.get("load_start", []))
    ax.set_title(
        f"Compiled kernels against torch.ao, {meta['date'][:10]}, {meta['machine']}"
        f" (load average {load})",
        fontsize=9,
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    global REPEATS, TARGET_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw kernels.png from kernels.json in --out"
    )
    args = parser.parse_args(argv)
    if args.plot_only:
        done = json.loads((args.out / "kernels.json").read_text())
        if not write_plot(args.out / "kernels.png", done["rows"], done["meta"]):
            print("matplotlib does not import: no kernels.png", file=sys.stderr)
            return 1
        return 0
    if args.quick:
        REPEATS, TARGET_S = 5, 0.05
    import numba
    import torch

    os.environ["ARRAYOBS_NUMBA"] = "1"
    start = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    big = 10**7 if args.quick else 10**8
    rows = first_call_rows()
    rows += forward_rows(10**6 if args.quick else 10**7)
    rows += qparams_rows(10**5 if args.quick else 10**6)
    rows += minmax_rows(big, "float32", "numpy")
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        rows += minmax_rows(10**7, dtype, "torch")
    rows += minmax_rows(10**7, "float32", "numpy", per_channel=True)
    rows += minmax_rows(10**7, "float32", "torch", per_channel=True)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.kernels" + (" --quick" if args.quick else ""),
        "machine": f"{_cpu_model()}, {os.cpu_count()} CPUs",
        "uncommitted_src": _uncommitted(),
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "rounds": REPEATS,
        "load_start": load_start,
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "seconds": round(time.perf_counter() - start),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "kernels-quick" if args.quick else "kernels"
    (args.out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (args.out / f"{name}.md").write_text(markdown(rows, meta))
    if not write_plot(args.out / f"{name}.png", rows, meta):
        print(f"matplotlib does not import: no {name}.png", file=sys.stderr)
    print(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
