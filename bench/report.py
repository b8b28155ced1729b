"""The results: where and with what the run ran (machine, versions, git), the JSON data,
the markdown tables, merging one section into the files already written, and the plot."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arrayobs import PerChannelMinMaxObserver
from bench.affine import AF_BEGIN, AF_END
from bench.cases import (
    FQ_QPARAMS,
    FQ_VARIANTS,
    ITEMSIZE,
    PC_CASES,
    PC_OBSERVERS,
    PER_CALL_N,
    PER_CALL_OPS,
    VARIANTS,
    ChannelRecord,
    Loaded,
    Record,
)
from bench.gpu import gpu_theoretical_gbs
from bench.tables import Table, _fmt, _ratio
from bench.timing import _affinity

ROOT = Path(__file__).resolve().parents[1]
PC_BEGIN, PC_END = "<!-- per-channel: begin -->", "<!-- per-channel: end -->"
FQ_BEGIN, FQ_END = "<!-- fake-quantize: begin -->", "<!-- fake-quantize: end -->"
# The sections after the per-tensor one: (results.json key, results.md markers).
BLOCKS = {
    "per_channel": (PC_BEGIN, PC_END),
    "fake_quantize": (FQ_BEGIN, FQ_END),
    "affine": (AF_BEGIN, AF_END),
}

# -- machine ---------------------------------------------------------------------------------
VERSIONED = (
    *("numpy", "torch", "jax", "jaxlib", "dask", "cupy"),
    *("array_api_compat", "array_api_strict", "ml_dtypes", "matplotlib", "arrayobs"),
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _command(*args: str, cwd: Path | None = None) -> str | None:
    """The stripped output of a command, or None when it is missing or fails."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(
            args, check=False, capture_output=True, text=True, timeout=30, cwd=cwd
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    """Installed versions, found through distributions (nothing is imported)."""
    dists = importlib.metadata.packages_distributions()
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        candidates = [*dists.get(name, []), name]
        out[name] = None
        for dist in candidates:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def machine(gpu_in_use: bool) -> dict[str, Any]:
    """Where and with what this run ran."""
    status = _command("git", "status", "--porcelain", cwd=ROOT)
    gpu = _command("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_usable": len(_affinity()),
        "ram_gib": _ram_gib(),
        "gpu": gpu,
        "gpu_theoretical_gbs": gpu_theoretical_gbs() if gpu_in_use else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": _versions(),
        "git_commit": _command("git", "rev-parse", "HEAD", cwd=ROOT),
        "git_dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
    }


def _loadavg() -> float | None:
    """The 1-minute load average (other processes on a shared machine show up here)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (Linux ``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None


# -- results ---------------------------------------------------------------------------------
def json_data(
    meta: dict[str, Any], records: Sequence[Record], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "machine": meta,
        **extra,
        "measurements": [{**dataclasses.asdict(r), "nbytes": r.nbytes} for r in records],
    }


def backend_table(table: Table, backend: str, gpu: bool, rows: list[tuple[str, int]]) -> str:
    head = (
        "| dtype | n | arrayobs ms | fast off ms | naive ms | torch.ao ms | floor ms "
        "| arrayobs GB/s | naive/arrayobs | torch.ao/arrayobs | floor/arrayobs |"
    )
    lines = [head, "|" + "---|" * 11]
    for dtype, n in rows:
        keys = {v: (backend, dtype, n, v) for v in VARIANTS}
        ours = table.seconds(keys["arrayobs"])
        floor = table.floor("gpu" if gpu else "cpu", dtype, n)
        gbs = "-" if ours is None else f"{n * ITEMSIZE[dtype] / ours / 1e9:.3g}"
        cells = [table.cell(keys[v], 1e3) for v in VARIANTS]
        ratios = [
            _ratio(table.seconds(keys["naive"]), ours),
            _ratio(table.seconds(keys["torch_ao"]), ours),
            _ratio(floor, ours, percent=True),
        ]
        row = [dtype, f"{n:.0e}", *cells, _fmt(floor, 1e3), gbs, *ratios]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_call_table(table: Table, backends: list[str]) -> str:
    lines = [
        "| backend | observer | op | arrayobs µs (median) | arrayobs µs (min) "
        "| torch.ao µs (median) | torch.ao µs (min) | torch.ao/arrayobs |",
        "|" + "---|" * 8,
    ]
    for backend in backends:
        for cls_name, op in PER_CALL_OPS:
            variant = f"{cls_name}.{op}"
            ours = table.by_key.get((backend, "float32", PER_CALL_N, variant))
            ref = table.by_key.get((backend, "float32", PER_CALL_N, f"torch_ao:{variant}"))
            if ours is None:
                continue
            cells = [
                table.cell((backend, "float32", PER_CALL_N, variant), 1e6),
                _fmt(ours.min_s, 1e6),
                table.cell((backend, "float32", PER_CALL_N, f"torch_ao:{variant}"), 1e6),
                _fmt(ref.min_s if ref else None, 1e6),
                _ratio(ref.median_s if ref else None, ours.median_s),
            ]
            lines.append(f"| {backend} | {cls_name} | {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_tensor_markdown(
    meta: dict[str, Any],
    records: list[Record],
    backends: list[Loaded],
    skipped: dict[str, str],
) -> str:
    table = Table(records)
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    gbs = meta["gpu_theoretical_gbs"]
    theoretical = f" (theoretical {gbs:.0f} GB/s)" if gbs else ""
    out = [
        "# arrayobs benchmark",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`",
        f"- CPU: {meta['cpu']}, {meta['cores_usable']} usable cores, {meta['ram_gib']} GiB RAM",
        f"- GPU: {meta['gpu'] or 'none'}{theoretical}",
        f"- torch intra-op threads: {meta['torch_threads']}",
        f"- versions: {versions}; git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else ""),
        "",
        "Median time per call over repeats. Ratios above 1x (or floor/arrayobs near 100%)"
        " favour arrayobs; floor/arrayobs is the fraction of the measured read bandwidth"
        " that arrayobs reaches.",
    ]
    rows = sorted(
        {(r.dtype, r.n) for r in records if r.variant in VARIANTS},
        key=lambda k: (k[0] != "float32", k[1], k[0]),
    )
    for be in backends:
        out += ["", f"## {be.name} ({be.device})", "", backend_table(table, be.name, be.gpu, rows)]
    for name, why in skipped.items():
        out += ["", f"## {name}: skipped", "", why]
    out += [
        "",
        f"## Per-call overhead ({PER_CALL_N} float32 elements)",
        "",
        "torch.ao runs on the CPU next to CPU backends and on CUDA next to GPU backends; it has"
        " no `check` argument, so both calculate_qparams rows time its one calculate_qparams.",
        "",
        per_call_table(table, [b.name for b in backends]),
    ]
    if table.notes:
        out += ["", "## Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    return "\n".join(out) + "\n"


def _channel_key(r: Any) -> tuple[Any, ...]:
    return (r.observer, r.case, r.dtype, r.backend, r.variant)


def channel_markdown(
    meta: dict[str, Any], records: list[ChannelRecord], extra: dict[str, Any]
) -> str:
    """The per-channel block of ``results.md``, between the ``PC_BEGIN``/``PC_END`` markers."""
    table = Table(list(records), key=_channel_key)
    settings = extra["settings"]
    out = [
        PC_BEGIN,
        "## Per-channel observers",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`; {extra['elapsed_s']} s",
        f"- git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else "")
        + f"; torch intra-op threads: {meta['torch_threads']}",
        f"- median over {settings['repeats']} repeats of calls lasting about"
        f" {settings['target_s']} s each (one call where a call takes longer); 1-minute load"
        " average before and after the section (this process included): "
        + " and ".join(str(v) for v in extra["loadavg_1min_before_after"])
        + f"; CPU time of other processes during the section: {extra['other_processes_cpu_s']} s",
        "",
        "One forward (`obs(x)`) of an observer that has already seen `x`. torch.ao runs on a"
        " torch CPU tensor of the same values, timed once per shape and dtype right before the"
        " backends. Ratios are torch.ao's median over arrayobs's: above 1x favours arrayobs."
        " `fast off` is `fast=False` (the generic Array API path). Dask: 4 chunks along axis 0.",
    ]
    backends = list(dict.fromkeys(r.backend for r in records if r.variant != "torch_ao"))
    cases = [c for c in PC_CASES if any(r.case == c[0] for r in records)]
    shortfalls: dict[str, list[str]] = {"1x": [], "10x": []}
    compared: dict[str, int] = {"1x": 0, "10x": 0}
    for observer, dtypes in PC_OBSERVERS.items():
        out += [
            "",
            f"### {observer}",
            "",
            "| shape | ch_axis | n | dtype | backend | arrayobs ms | fast off ms | torch.ao ms "
            "| torch.ao/arrayobs | torch.ao/fast off |",
            "|" + "---|" * 10,
        ]
        for name, shape, ch_axis in cases:
            for dtype in dtypes:
                for backend in backends:
                    keys = {
                        v: (observer, name, dtype, backend, v) for v in ("arrayobs", "fast_off")
                    }
                    if not any(k in table.by_key for k in keys.values()):
                        continue
                    device = "cuda" if backend == "cupy" or ":" in backend else "cpu"
                    ref_key = (observer, name, dtype, f"torch.ao:{device}", "torch_ao")
                    ref, ours = table.seconds(ref_key), table.seconds(keys["arrayobs"])
                    n = math.prod(shape)
                    row = [
                        "x".join(map(str, shape)),
                        str(ch_axis),
                        f"{n:.3g}",
                        dtype,
                        backend,
                        table.cell(keys["arrayobs"], 1e3),
                        table.cell(keys["fast_off"], 1e3),
                        table.cell(ref_key, 1e3),
                        _ratio(ref, ours),
                        _ratio(ref, table.seconds(keys["fast_off"])),
                    ]
                    out.append("| " + " | ".join(row) + " |")
                    if ref is None or ours is None:
                        continue
                    where = f"{observer} {row[0]} {dtype} {backend}: {ref / ours:.2f}x"
                    compared["1x"] += 1
                    if ref < ours:
                        shortfalls["1x"].append(where)
                    if dtype != "float32" and observer == PerChannelMinMaxObserver.__name__:
                        compared["10x"] += 1
                        if ref < 10 * ours:
                            shortfalls["10x"].append(where)
    out += ["", "### Targets (arrayobs with the default fast=True)", ""]
    for target, what in (
        ("1x", "torch.ao/arrayobs >= 1x on every row"),
        ("10x", "torch.ao/arrayobs >= 10x for float16, bfloat16 and float64 (every shape)"),
    ):
        missed = shortfalls[target]
        verdict = "met" if not missed else f"unmet on {len(missed)}"
        out.append(f"- {what}: {verdict} of {compared[target]} rows measured")
        out += [f"  - {m}" for m in missed]
    if table.notes:
        out += ["", "### Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    out.append(PC_END)
    return "\n".join(out) + "\n"


def fake_quant_markdown(meta: dict[str, Any], records: list[Record], extra: dict[str, Any]) -> str:
    """The fake-quantize block of ``results.md``, between the ``FQ_BEGIN``/``FQ_END`` markers."""
    table = Table(records)
    settings = extra["settings"]
    scale, zero_point, qmin, qmax = FQ_QPARAMS
    out = [
        FQ_BEGIN,
        "## fake_quantize_per_tensor_affine (float32)",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`; {extra['elapsed_s']} s",
        f"- git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else "")
        + f"; torch intra-op threads: {meta['torch_threads']}",
        f"- median over {settings['repeats']} rounds, the variants of a case interleaved"
        f" round by round, each round calls lasting about {settings['target_s']} s (one"
        " call where a call takes longer)",
        "",
        f"`F.fake_quantize_per_tensor_affine(x, {scale}, {zero_point}, {qmin}, {qmax})` (JAX:"
        " jitted); `fast off`: `fast=False`; `torch op`: `torch.fake_quantize_per_tensor_affine`"
        " on the same tensor; `copy`: a read and a write of the same bytes into a new array"
        " (`x.copy()`, `torch.clone`, JAX: `jit(jnp.negative)`); `copyto`: `np.copyto` into an"
        " array allocated once. Ratios are arrayobs's time over the other's: 1x is as fast,"
        " 2x twice as slow. `agrees`: arrayobs's output has the bits of torch's op.",
        "",
        "| backend | n | arrayobs ms | fast off ms | torch op ms | copy ms | copyto ms "
        "| arrayobs/copy | arrayobs/copyto | arrayobs/torch op | agrees |",
        "|" + "---|" * 11,
    ]
    backends = list(dict.fromkeys(r.backend for r in records))
    for backend in backends:
        for n in sorted({r.n for r in records if r.backend == backend}):
            keys = {v: (backend, "float32", n, v) for v in FQ_VARIANTS}
            ours = table.seconds(keys["arrayobs"])
            found = table.by_key.get(keys["arrayobs"])
            agrees = found.agrees_with_torch_ao if found is not None else None
            row = [
                backend,
                f"{n:.0e}",
                *(table.cell(keys[v], 1e3) for v in FQ_VARIANTS),
                *(_ratio(ours, table.seconds(keys[v])) for v in ("floor_copy", "floor_copyto")),
                _ratio(ours, table.seconds(keys["torch_op"])),
                "-" if agrees is None else ("yes" if agrees else "NO"),
            ]
            out.append("| " + " | ".join(row) + " |")
    if table.notes:
        out += ["", "### Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    out.append(FQ_END)
    return "\n".join(out) + "\n"


def split_markdown(text: str) -> tuple[str, dict[str, str]]:
    """``results.md`` as (the per-tensor text, each later section's block by its key in
    :data:`BLOCKS`; "" where absent)."""
    blocks = {}
    for key, (begin, end) in BLOCKS.items():
        start = text.find(begin)
        if start < 0:
            blocks[key] = ""
            continue
        stop = text.find(end, start)
        stop = len(text) if stop < 0 else stop + len(end)
        text, blocks[key] = text[:start] + text[stop:], text[start:stop]
    return text, blocks


def merge_markdown(path: Path, per_tensor: str | None, blocks: dict[str, str | None]) -> None:
    """Write ``path`` with the sections given; those that are None are kept from the file."""
    old_head, old_blocks = split_markdown(path.read_text() if path.exists() else "")
    head = per_tensor if per_tensor is not None else old_head
    text = head.rstrip("\n") or "# arrayobs benchmark"
    for key in BLOCKS:
        block = blocks.get(key)
        block = block if block is not None else old_blocks[key]
        if block:
            text += "\n\n" + block.rstrip("\n")
    path.write_text(text + "\n")


def merge_json(
    path: Path, per_tensor: dict[str, Any] | None, blocks: dict[str, dict[str, Any] | None]
) -> None:
    """Write ``path`` with the sections given; those that are None are kept from the file:
    the per-tensor run is the top level, each later section its key of :data:`BLOCKS`."""
    old: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data = (
        per_tensor if per_tensor is not None else {k: v for k, v in old.items() if k not in BLOCKS}
    )
    for key in BLOCKS:
        block = blocks.get(key)
        block = block if block is not None else old.get(key)
        if block is not None:
            data = {**data, key: block}
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_plot(path: Path, records: list[Record], backends: list[Loaded]) -> bool:
    """GB/s of float32 input against n, one line per backend and variant; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = dict(zip(VARIANTS, ("-", "--", ":", "-."), strict=True))
    # torch.ao sees the same host tensor next to every CPU backend: one line per device.
    ao_shown = {next((b.name for b in backends if b.gpu == gpu), "") for gpu in (False, True)}
    for i, be in enumerate(backends):
        for variant in VARIANTS:
            if variant == "torch_ao" and be.name not in ao_shown:
                continue
            points = sorted(
                (r.n, r.nbytes / r.median_s / 1e9)
                for r in records
                if (r.backend, r.dtype, r.variant) == (be.name, "float32", variant)
                and r.status == "ok"
                and r.median_s
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ao = variant == "torch_ao"
                label = (
                    f"torch.ao ({'cuda' if be.gpu else 'cpu'})" if ao else f"{be.name} {variant}"
                )
                color = "gray" if ao else f"C{i}"
                ax.plot(xs, ys, styles[variant], color=color, marker="o", ms=3, label=label)
    table = Table(records)
    sizes = sorted({r.n for r in records if r.dtype == "float32" and r.variant in VARIANTS})
    for device, line in (("cpu", "-"), ("gpu", "--")):
        floors = [(n, table.floor(device, "float32", n)) for n in sizes]
        points = [(n, 4 * n / s / 1e9) for n, s in floors if s]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, line, color="black", linewidth=2, label=f"{device} read floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (float32 elements)")
    ax.set_ylabel("GB/s of input read")
    ax.set_title("MinMax observe throughput, float32")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
