"""Data-parallel observation with torch.distributed (gloo, local processes).

Each rank observes its shard of every global batch with ``process_group=``;
after every step, every rank's state and qparams must equal, bit for bit,
torch.ao's in one process observing the concatenated batch. Shards are uneven
and sometimes empty (one rank, or all), and a NaN on one rank must propagate.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import arrayobs
from arrayobs import MinMaxObserver, PerChannelMinMaxObserver

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)
if os.environ.get("ARRAYOBS_BACKENDS") and "torch" not in os.environ["ARRAYOBS_BACKENDS"]:
    pytest.skip("torch is not among ARRAYOBS_BACKENDS", allow_module_level=True)

STEPS = 8
# (observer, averaging constant or None, qscheme)
CASES = [
    ("minmax", None, "per_tensor_affine"),
    ("minmax", None, "per_tensor_symmetric"),
    ("ma", 0.01, "per_tensor_affine"),
    ("ma", 1 / 3, "per_tensor_symmetric"),
]


# Per channel, ch_axis 1 of (rows, 3) batches sharded by rows: (observer, constant, qscheme).
PC_CASES = [
    ("minmax", None, "per_channel_affine"),
    ("ma", 0.5, "per_channel_symmetric"),
    ("ma", 0.01, "per_channel_affine_float_qparams"),
]


def _global_channel_batches(seed: int) -> list[np.ndarray]:
    """Step 0 and 3 empty everywhere (step 0: before any channel count is known)."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(STEPS):
        n = 0 if step in (0, 3) else int(rng.integers(1, 60))
        b = (rng.standard_normal((n, 3)) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
        if step == 5 and seed % 2:
            b[n // 2, 1] = np.nan  # one channel, on one rank
        out.append(b)
    return out


def _record_pc(obs: Any) -> list[np.ndarray]:
    # qparams first: a rank that saw only empty shards learns there whether the
    # group observed anything (its state then has torch's shape).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scale, zero_point = obs.calculate_qparams()
    # Clones: a NumPy view of torch.ao's per-channel buffer would stop it resizing.
    return [
        obs.min_val.clone().numpy().view(np.int32),
        obs.max_val.clone().numpy().view(np.int32),
        scale.clone().numpy().view(np.int32),
        zero_point.clone().numpy(),
    ]


def _global_batches(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for step in range(STEPS):
        n = 0 if step == 2 else int(rng.integers(1, 400))  # step 2: every shard empty
        b = (rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2)).astype(np.float32)
        if step == 6 and seed % 2:
            b[n // 3] = np.nan  # lands on one rank only
        out.append(b)
    return out


def _shards(batch: np.ndarray, world: int, step: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1000 + step)
    cuts = np.sort(rng.integers(0, batch.size + 1, world - 1))
    if step == 4:
        cuts[:] = 0  # rank 0 empty, the others too but the last
    return np.split(batch, cuts)


def _observer(module: Any, per_channel: bool, c: float | None, qscheme: Any, **kw: Any) -> Any:
    """arrayobs's observer class (``module`` arrayobs) or torch.ao's of that kind."""
    name = f"{'' if c is None else 'MovingAverage'}{'PerChannel' if per_channel else ''}"
    args = () if c is None else (c,)
    if per_channel:
        kw["ch_axis"] = 1
    return getattr(module, f"{name}MinMaxObserver")(*args, qscheme=qscheme, **kw)


def _observe_all(make: Any, feed: Any, seed: int) -> dict[str, np.ndarray]:
    """Every case's records after every step; ``make(per_channel, c, qscheme)`` builds
    the observer, ``feed(batch, step)`` gives what it observes of the global batch."""
    records = {}
    for prefix, cases, global_batches, record in SUITES:
        for i, (_, c, qscheme) in enumerate(cases):
            obs = make(bool(prefix), c, qscheme)
            for step, batch in enumerate(global_batches(seed + i)):
                obs(torch.from_numpy(feed(batch, step)))
                for j, a in enumerate(record(obs)):
                    records[f"{prefix}{i}_{step}_{j}"] = a
    return records


def _record(obs: Any) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # never observed yet: torch warns too
        scale, zero_point = obs.calculate_qparams()
    return [
        np.asarray(obs.min_val.reshape(1).numpy()).view(np.int32).copy(),
        np.asarray(obs.max_val.reshape(1).numpy()).view(np.int32).copy(),
        scale.numpy().view(np.int32).copy(),
        zero_point.numpy().astype(np.int64),
    ]


# (key prefix, cases, global batches, record of an observer after a step)
SUITES = [
    ("", CASES, _global_batches, _record),
    ("pc", PC_CASES, _global_channel_batches, _record_pc),
]


def _join(rank: int, world: int, port: int, seconds: float) -> Any:
    dist = torch.distributed
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=seconds),
    )
    return dist


def _worker(rank: int, world: int, port: int, out: str, seed: int) -> None:
    dist = _join(rank, world, port, 60)
    try:
        group = dist.group.WORLD
        records = _observe_all(
            lambda pc, c, q: _observer(arrayobs, pc, c, q, xp=torch, process_group=group),
            lambda batch, step: _shards(batch, world, step)[rank],
            seed,
        )
        np.savez(Path(out) / f"rank{rank}.npz", **records)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reference(seed: int) -> dict[str, np.ndarray]:
    from torch.ao.quantization import observer as tobs

    return _observe_all(
        lambda pc, c, q: _observer(tobs, pc, c, getattr(torch, q)),
        lambda batch, step: batch,
        seed,
    )


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if got.dtype in (np.int32, np.float32):  # float bits, or floats: NaN matches NaN
        g, w = got.view(np.float32), want.view(np.float32)
        return bool(np.all((g.view(np.int32) == w.view(np.int32)) | (np.isnan(g) & np.isnan(w))))
    return bool(np.array_equal(got, want))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_match_one_process_on_the_whole_batch(
    torch_ref: Any, tmp_path: Path, world: int
) -> None:
    seed = world
    torch.multiprocessing.start_processes(
        _worker,
        args=(world, _free_port(), str(tmp_path), seed),
        nprocs=world,
        start_method="spawn",
    )
    want = _reference(seed)
    for rank in range(world):
        got = np.load(tmp_path / f"rank{rank}.npz")
        for key, w in want.items():
            case, step, field = key.split("_")
            what = ("min_val", "max_val", "scale", "zero_point")[int(field)]
            cases = PC_CASES if case.startswith("pc") else CASES
            name = cases[int(case.removeprefix("pc"))]
            assert _same(got[key], w), (
                f"rank {rank}/{world}, case {name}, step {step}: {what} "
                f"{got[key]} vs torch.ao on the whole batch {w}"
            )


def _lonely_worker(rank: int, world: int, port: int, out: str) -> None:
    dist = _join(rank, world, port, 5)
    if rank == 1:
        os._exit(0)  # a rank that dies without observing
    obs = MinMaxObserver(xp=torch, process_group=dist.group.WORLD)
    start = time.monotonic()
    try:
        obs(torch.ones(3))
        outcome = "no error"
    except Exception as exc:  # what gloo raises is gloo's choice
        outcome = f"{type(exc).__name__}: {exc}"
    Path(out, "outcome.txt").write_text(f"{time.monotonic() - start:.1f}\n{outcome}")
    Path(out, "state.txt").write_text(str(float(obs.min_val)))
    # A process group whose peer is gone may abort in gloo's destructors; skip them.
    os._exit(0)


def test_a_missing_rank_is_an_error_not_a_hang(tmp_path: Path) -> None:
    ctx = torch.multiprocessing.start_processes(
        _lonely_worker,
        args=(2, _free_port(), str(tmp_path)),
        nprocs=2,
        start_method="spawn",
        join=False,
    )
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=5):
        assert time.monotonic() < deadline, "the surviving rank hung"
    seconds, outcome = (tmp_path / "outcome.txt").read_text().split("\n", 1)
    assert outcome != "no error"
    assert float(seconds) < 60, outcome
    assert (tmp_path / "state.txt").read_text() == "inf", "a failed forward changed the state"


def test_process_group_needs_torch() -> None:
    import torch.distributed as dist

    # A process group object that was never joined: enough to be checked, never used.
    group = dist.ProcessGroup(dist.HashStore(), 0, 1)
    with pytest.raises(TypeError, match="process_group needs torch"):
        MinMaxObserver(xp=np, process_group=group)
    obs = MinMaxObserver(process_group=group)
    with pytest.raises(TypeError, match="process_group needs torch"):
        obs(np.ones(3, np.float32))
    assert obs.xp is None


@pytest.mark.parametrize("group", [object(), "gloo", 0])
def test_process_group_is_checked_at_construction(group: Any) -> None:
    """Not a process group: refused when the observer is made, not at its first forward."""
    for cls in (MinMaxObserver, PerChannelMinMaxObserver):
        with pytest.raises(TypeError, match=r"must be a torch\.distributed\.ProcessGroup"):
            cls(process_group=group)


# -- HistogramObserver ---------------------------------------------------------------------
def _histogram_batches(seed: int) -> list[np.ndarray]:
    """Growing, shrinking and shifting ranges; an empty step, one with inf on one
    rank, one with a NaN (every rank must refuse it and keep its state)."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(STEPS):
        n = 0 if step == 2 else int(rng.integers(1, 3000))
        b = (rng.standard_normal(n) * 10.0 ** rng.uniform(-1, 1) + rng.uniform(-2, 2)).astype(
            np.float32
        )
        if step == 4:
            b[n // 5] = np.inf
        if step == 6:
            b[n // 3] = np.nan
        out.append(b)
    return out


def _histogram_record(obs: Any, step: int, batch: Any) -> list[np.ndarray]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.inf detected: one rank warns as torch
            obs(batch)
        refused = 0
    except (ValueError, RuntimeError):  # NaN: arrayobs ValueError, torch's histc RuntimeError
        refused = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scale, zero_point = obs.calculate_qparams()
    return [
        np.array([refused]),
        obs.histogram.numpy().view(np.int32).copy(),
        np.array([obs.min_val.item(), obs.max_val.item()], np.float32).view(np.int32),
        scale.numpy().view(np.int32).copy(),
        zero_point.numpy().astype(np.int64),
    ]


def _histogram_all(make: Any, feed: Any, seed: int) -> dict[str, np.ndarray]:
    records = {}
    for bins in (7, 2048):
        obs = make(bins)
        for step, batch in enumerate(_histogram_batches(seed + bins)):
            shard = torch.from_numpy(feed(batch, step))
            for j, a in enumerate(_histogram_record(obs, step, shard)):
                records[f"{bins}_{step}_{j}"] = a
    return records


def _histogram_worker(rank: int, world: int, port: int, out: str, seed: int) -> None:
    dist = _join(rank, world, port, 60)
    try:
        records = _histogram_all(
            lambda bins: arrayobs.HistogramObserver(bins, xp=torch, process_group=dist.group.WORLD),
            lambda batch, step: _shards(batch, world, step)[rank],
            seed,
        )
        np.savez(Path(out) / f"rank{rank}.npz", **records)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 3])
def test_histogram_ranks_match_one_process(torch_ref: Any, tmp_path: Path, world: int) -> None:
    """Every rank's histogram, range and qparams after every step equal torch.ao's
    in one process on the whole batch; a NaN on one rank is refused on all."""
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    torch.multiprocessing.start_processes(
        _histogram_worker,
        args=(world, _free_port(), str(tmp_path), world),
        nprocs=world,
        start_method="spawn",
    )
    want = _histogram_all(TorchHistogram, lambda batch, step: batch, world)
    assert want["7_6_0"][0] == 1, "the NaN step must be refused by torch too"
    for rank in range(world):
        got = np.load(tmp_path / f"rank{rank}.npz")
        for key, w in want.items():
            assert np.array_equal(got[key], w), f"rank {rank}/{world}, {key}: {got[key]} vs {w}"
