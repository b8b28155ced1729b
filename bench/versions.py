"""Two source trees of arrayobs side by side: per-call overhead and large inputs, head/base.

What is measured
----------------
The same rows on each tree (``--base`` and ``--head``, each a directory holding the
``arrayobs`` package, e.g. a git worktree's ``src``), through the public API only:

small (``--rows small``)
    On 100 float32 elements, ``obs(x)`` (``forward``) and ``obs.calculate_qparams()`` of
    ``MinMaxObserver`` and ``MovingAverageMinMaxObserver(averaging_constant=0.01)``, built
    with ``xp=`` numpy, torch (CPU), ``jax.numpy``, ``dask.array`` (one chunk) and
    array_api_strict; and ``PerChannelMinMaxObserver(ch_axis=0)`` forward on an (8, 16)
    float32 array, numpy and torch. Median time of one call, in µs.
large (``--rows large``)
    Forward of ``MinMaxObserver`` and ``MovingAverageMinMaxObserver`` on 1e8 float32
    elements (400 MB), numpy and torch (``torch.from_numpy`` of the same buffer); forward
    of ``MinMaxObserver`` on 1e7 elements, jax and dask (chunks of 1e6, as in
    ``bench/run.py``). Median time of one call, in ms.

A backend that does not import gives rows marked n/a; a row that raises is marked error.
After its timing each row's observer state (``min_val``, ``max_val``, per channel for the
per-channel row) is recorded, and the table says whether every run of both trees ended
with the same state: a sanity check that both trees compute the same thing.

How
---
The parent process runs nothing but workers: each round starts one worker per tree
(``sys.executable`` running this file with ``--worker``, ``PYTHONPATH`` set to the tree,
every other variable, ``OPENBLAS_*`` included, inherited), base then head in even rounds,
head then base in odd ones, so that a noisy minute on a shared machine hits both trees
and neither always runs first. A worker checks that ``arrayobs`` imports from its tree,
then measures every row once and prints one line of JSON. Data are
``numpy.random.default_rng(0).standard_normal`` in float32, drawn once per worker.

Small rows are called 300 times first (JAX compiles on the first call), then ``timeit``
runs them in 7 repeats of enough calls to last about 0.1 s each; the worker's value is the
median per-call time over the repeats. Large rows are called twice, then timed one call at
a time, 11 times; the worker's value is the median. JAX results are waited for
(``jax.block_until_ready``) inside the timed call; the Dask fast path computes eagerly.

The report is the median over rounds per tree, the ratio head/base of those medians
(below 1: head is faster) and the range of the per-round ratios (each round's head over
the same round's base), as a markdown table on stdout, and with ``--json`` every
per-round value, the states, the load average and the trees' commits.

Running
-------
From the repository root, with the commit before a change checked out elsewhere (e.g.
``git worktree add /tmp/base HEAD``)::

    python bench/versions.py --base /tmp/base/src --head src
    python bench/versions.py --base /tmp/base/src --head src --rounds 5 --json out.json
    python bench/versions.py --base /tmp/base/src --head src --rows small

``--rounds`` (default 3) sets the number of rounds, ``--rows`` (small, large or all, the
default) the rows. On a 2-core machine a round of small rows takes about a minute (both
trees), a round of large rows well under a minute; the default run, under 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# python bench/versions.py puts bench/ first on sys.path, where its modules (distributed.py,
# timing.py, ...) would shadow top-level packages of the same names (dask imports
# `distributed` when it can); nothing here imports from bench/, so take it off.
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != HERE]

ROW_SETS = ("small", "large", "all")
VERSIONS = ("base", "head")
SMALL_N = 100
SMALL_WARMUP = 300
SMALL_REPEATS = 7
SMALL_TARGET_S = 0.1
LARGE_WARMUP = 2
LARGE_CALLS = 11  # a call on 1e8 elements takes some 30 ms here: 5 were too few
BIG_N = 10**8  # numpy and torch
MID_N = 10**7  # jax and dask
DASK_CHUNK = 10**6
PC_SHAPE = (8, 16)
BACKENDS = ("numpy", "torch", "jax", "dask", "array_api_strict")


# -- worker ----------------------------------------------------------------------------------
def _namespaces() -> tuple[dict[str, Any], dict[str, str]]:
    """The namespace module (``xp=``) of each backend that imports, and why the others don't."""
    import importlib

    modules = {
        "numpy": "numpy",
        "torch": "torch",
        "jax": "jax.numpy",
        "dask": "dask.array",
        "array_api_strict": "array_api_strict",
    }
    loaded: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for name, module in modules.items():
        try:
            loaded[name] = importlib.import_module(module)
        except Exception as exc:  # an absent or broken backend is a result, not a crash
            missing[name] = f"{type(exc).__name__}: {exc}"
    return loaded, missing


def _sync(kind: str) -> Callable[..., None]:
    if kind == "jax":
        import jax

        return lambda *arrays: jax.block_until_ready(arrays)
    return lambda *arrays: None


def _as_backend(kind: str, xp: Any, host: Any, chunks: int) -> Any:
    if kind == "torch":
        return xp.from_numpy(host)
    if kind == "dask":
        return xp.from_array(host, chunks=chunks)
    return xp.asarray(host)


def _state(obs: Any) -> list[float]:
    """``min_val`` and ``max_val`` as floats (one per channel for per-channel observers)."""
    import numpy as np

    out: list[float] = []
    for value in (obs.min_val, obs.max_val):
        if getattr(value, "ndim", 0) == 0:
            out.append(float(value))
        else:
            out.extend(float(v) for v in np.asarray(value).reshape(-1))
    return out


def _time_small(fn: Callable[[], object]) -> float:
    """Median per-call time of ``fn`` in µs, after ``SMALL_WARMUP`` calls."""
    for _ in range(SMALL_WARMUP):
        fn()
    timer = timeit.Timer(fn)
    once = timer.timeit(10) / 10
    number = max(1, math.ceil(SMALL_TARGET_S / max(once, 1e-9)))
    per_call = [t / number for t in timer.repeat(SMALL_REPEATS, number)]
    return statistics.median(per_call) * 1e6


def _time_large(fn: Callable[[], object]) -> float:
    """Median time of ``LARGE_CALLS`` single calls of ``fn`` in ms, after a warm-up."""
    for _ in range(LARGE_WARMUP):
        fn()
    times = []
    for _ in range(LARGE_CALLS):
        start = timeit.default_timer()
        fn()
        times.append(timeit.default_timer() - start)
    return statistics.median(times) * 1e3


def _forward(obs: Any, x: Any, sync: Callable[..., None]) -> Callable[[], object]:
    def call() -> None:
        obs(x)
        sync(obs.min_val, obs.max_val)

    return call


def _qparams(obs: Any, x: Any, sync: Callable[..., None]) -> Callable[[], object]:
    obs(x)  # calculate_qparams needs an observation
    sync(obs.min_val, obs.max_val)
    return lambda: sync(*obs.calculate_qparams())


def _row_specs(rows: str) -> list[dict[str, Any]]:
    """Every row: name, unit, backend, observer class name, keyword arguments, op, shape."""
    minmax = ("MinMaxObserver", {})
    moving = ("MovingAverageMinMaxObserver", {"averaging_constant": 0.01})
    specs: list[dict[str, Any]] = []
    if rows in ("small", "all"):
        for kind in BACKENDS:
            for cls, kwargs in (minmax, moving):
                for op in ("forward", "calculate_qparams"):
                    specs.append(
                        {
                            "name": f"{cls} {op} {kind} n=1e2",
                            "unit": "µs",
                            "kind": kind,
                            "cls": cls,
                            "kwargs": kwargs,
                            "op": op,
                            "shape": (SMALL_N,),
                        }
                    )
        for kind in ("numpy", "torch"):
            specs.append(
                {
                    "name": f"PerChannelMinMaxObserver(ch_axis=0) forward {kind} (8, 16)",
                    "unit": "µs",
                    "kind": kind,
                    "cls": "PerChannelMinMaxObserver",
                    "kwargs": {"ch_axis": 0},
                    "op": "forward",
                    "shape": PC_SHAPE,
                }
            )
    if rows in ("large", "all"):
        for kind in ("numpy", "torch"):
            for cls, kwargs in (minmax, moving):
                specs.append(
                    {
                        "name": f"{cls} forward {kind} n=1e8",
                        "unit": "ms",
                        "kind": kind,
                        "cls": cls,
                        "kwargs": kwargs,
                        "op": "forward",
                        "shape": (BIG_N,),
                    }
                )
        for kind in ("jax", "dask"):
            specs.append(
                {
                    "name": f"MinMaxObserver forward {kind} n=1e7",
                    "unit": "ms",
                    "kind": kind,
                    "cls": "MinMaxObserver",
                    "kwargs": {},
                    "op": "forward",
                    "shape": (MID_N,),
                }
            )
    return specs


def worker(rows: str) -> int:
    """Measure every row once in this process; print one line of JSON."""
    import numpy as np

    import arrayobs

    namespaces, missing = _namespaces()
    specs = _row_specs(rows)
    rng = np.random.default_rng(0)
    small = rng.standard_normal(SMALL_N, dtype=np.float32)
    per_channel = np.random.default_rng(0).standard_normal(PC_SHAPE, dtype=np.float32)
    big = None
    if any(s["unit"] == "ms" for s in specs):
        big = np.random.default_rng(0).standard_normal(BIG_N, dtype=np.float32)
    results: dict[str, Any] = {}
    for spec in specs:
        kind, shape = spec["kind"], spec["shape"]
        x = None
        if kind not in namespaces:
            results[spec["name"]] = {"status": "n/a", "note": missing[kind]}
            continue
        try:
            xp = namespaces[kind]
            if shape == PC_SHAPE:
                host = per_channel
            elif shape == (SMALL_N,):
                host = small
            else:
                assert big is not None
                host = big[: shape[0]]
            chunks = DASK_CHUNK if host.size > DASK_CHUNK else host.size
            x = _as_backend(kind, xp, host, chunks)
            obs = getattr(arrayobs, spec["cls"])(xp=xp, **spec["kwargs"])
            sync = _sync(kind)
            make = _forward if spec["op"] == "forward" else _qparams
            fn = make(obs, x, sync)
            timer = _time_small if spec["unit"] == "µs" else _time_large
            value = timer(fn)
            results[spec["name"]] = {"status": "ok", "value": value, "state": _state(obs)}
        except Exception as exc:  # a row that fails is a result, not a crash
            results[spec["name"]] = {"status": "error", "note": f"{type(exc).__name__}: {exc}"}
        del x  # free the backend's copy before the next row
    extra: dict[str, Any] = {}
    if "torch" in namespaces:
        extra["torch_threads"] = namespaces["torch"].get_num_threads()
    out = {"arrayobs_file": arrayobs.__file__, "rows": results, "missing": missing, **extra}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


# -- parent ----------------------------------------------------------------------------------
def run_worker(tree: Path, rows: str) -> dict[str, Any]:
    """One worker on ``tree``: its JSON, after checking it imported arrayobs from there."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--rows", rows]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr)
        msg = f"worker on {tree} failed (exit status {proc.returncode})"
        raise RuntimeError(msg)
    data: dict[str, Any] = json.loads(lines[-1])
    imported = Path(data["arrayobs_file"]).resolve()
    if not imported.is_relative_to(tree):
        msg = f"the worker for {tree} imported arrayobs from {imported}"
        raise RuntimeError(msg)
    return data


def _commit(tree: Path) -> str | None:
    """The tree's commit, ``+dirty`` when git shows changes under it; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def summarise(
    per_round: list[dict[str, dict[str, Any]]], units: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per row: per-round values and states per tree, medians, ratio, same state."""
    rows: dict[str, dict[str, Any]] = {}
    for name, unit in units.items():
        row: dict[str, Any] = {"unit": unit, "values": {}, "states": {}, "notes": {}}
        for version in VERSIONS:
            results = [r[version]["rows"][name] for r in per_round]
            ok = [r for r in results if r["status"] == "ok"]
            row["values"][version] = [r["value"] for r in ok]
            row["states"][version] = [r["state"] for r in ok]
            notes = sorted({f"{r['status']}: {r['note']}" for r in results if r["status"] != "ok"})
            if notes:
                row["notes"][version] = notes
            row[version] = statistics.median(row["values"][version]) if ok else None
        base, head = row["base"], row["head"]
        row["ratio"] = head / base if base and head is not None else None
        pairs = [
            (r["head"]["rows"][name], r["base"]["rows"][name])
            for r in per_round
            if r["head"]["rows"][name]["status"] == r["base"]["rows"][name]["status"] == "ok"
        ]
        row["round_ratios"] = [h["value"] / b["value"] for h, b in pairs]
        states = row["states"]["base"] + row["states"]["head"]
        row["same_state"] = bool(row["states"]["base"] and row["states"]["head"]) and all(
            s == states[0] for s in states
        )
        rows[name] = row
    return rows


def _distinct(states: list[list[float]]) -> list[list[float]]:
    return [list(s) for s in dict.fromkeys(tuple(s) for s in states)]


def markdown(rows: dict[str, dict[str, Any]], header: list[str]) -> str:
    lines = [*header, ""]
    lines.append("| row | unit | base | head | head/base | per-round ratios | same state |")
    lines.append("|---|---|---:|---:|---:|---|---|")
    for name, row in rows.items():
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else "n/a"
        rr = row["round_ratios"]
        spread = f"{min(rr):.3f}..{max(rr):.3f}" if rr else "n/a"
        if not (row["states"]["base"] or row["states"]["head"]):
            same = "n/a"
        else:
            same = "yes" if row["same_state"] else "**NO**"
        lines.append(
            f"| {name} | {row['unit']} | {_fmt(row['base'])} | {_fmt(row['head'])} | {ratio}"
            f" | {spread} | {same} |"
        )
    notes = [
        f"- {name}, {version}: {'; '.join(note)}"
        for name, row in rows.items()
        for version, note in row["notes"].items()
    ]
    differ = [
        f"- {name}: base {_distinct(row['states']['base'])},"
        f" head {_distinct(row['states']['head'])}"
        for name, row in rows.items()
        if row["states"]["base"] and row["states"]["head"] and not row["same_state"]
    ]
    if notes:
        lines += ["", "Not measured:", *notes]
    if differ:
        lines += [
            "",
            "States that differ (each distinct [min_val..., max_val...] over rounds):",
            *differ,
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="the tree holding the old arrayobs package")
    parser.add_argument("--head", type=Path, help="the tree holding the new arrayobs package")
    parser.add_argument("--rounds", type=int, default=3, help="default: %(default)s")
    parser.add_argument("--rows", choices=ROW_SETS, default="all", help="default: %(default)s")
    parser.add_argument("--json", type=Path, help="write every measurement there")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker:
        for which in VERSIONS:
            tree = getattr(args, which)
            if tree is None or not (tree / "arrayobs" / "__init__.py").is_file():
                parser.error(f"--{which} must be a directory holding the arrayobs package")
            setattr(args, which, tree.resolve())
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args.rows)
    trees = {"base": args.base, "head": args.head}
    # base first in even rounds, head first in odd ones
    orders = [VERSIONS if i % 2 == 0 else VERSIONS[::-1] for i in range(args.rounds)]
    units = {spec["name"]: spec["unit"] for spec in _row_specs(args.rows)}
    load_before = os.getloadavg()
    start = timeit.default_timer()
    per_round: list[dict[str, dict[str, Any]]] = []
    for i, order in enumerate(orders):
        results: dict[str, dict[str, Any]] = {}
        for version in order:
            t0 = timeit.default_timer()
            results[version] = run_worker(trees[version], args.rows)
            took = timeit.default_timer() - t0
            print(f"round {i + 1}/{args.rounds}: {version} {took:.0f} s", file=sys.stderr)
        per_round.append(results)
    elapsed = timeit.default_timer() - start
    load_after = os.getloadavg()
    rows = summarise(per_round, units)
    commits = {v: _commit(t) for v, t in trees.items()}
    header = [
        f"base: {trees['base']} ({commits['base']}); head: {trees['head']} ({commits['head']})",
        f"{args.rounds} round(s), rows {args.rows}, {elapsed:.0f} s; load average (1 min)"
        f" {load_before[0]:.2f} before, {load_after[0]:.2f} after; torch threads"
        f" {per_round[0]['base'].get('torch_threads', 'n/a')}",
        "Medians over rounds; head/base below 1: head is faster.",
    ]
    print(markdown(rows, header))
    if args.json:
        data = {
            "command": sys.argv,
            "trees": {v: str(t) for v, t in trees.items()},
            "commits": commits,
            "rounds": args.rounds,
            "orders": [list(order) for order in orders],
            "rows_selected": args.rows,
            "elapsed_s": round(elapsed, 1),
            "loadavg_before_after": [list(load_before), list(load_after)],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "missing_backends": {v: per_round[0][v]["missing"] for v in VERSIONS},
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
