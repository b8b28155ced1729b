"""forward with ``process_group=``: 2 gloo processes against 1 process, 1e7 float32 per rank.

``python bench/distributed.py [--n 10000000] [--out bench/results/distributed.json]``

Each rank observes its own 1e7-element batch with one all-reduce per forward;
the single process observes the same 1e7 elements without a group, with
torch's default threads (each rank gets one). Medians of
rank 0's forward over repeats, after a warm-up; the ratio is the cost of the
collective (and of two processes sharing the cores).
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from arrayobs import MinMaxObserver

REPEATS = 21


def _time_forward(obs: Any, x: Any, barrier: bool) -> float:
    for _ in range(3):
        obs(x)
    times = []
    for _ in range(REPEATS):
        if barrier:
            dist.barrier()
        t0 = time.perf_counter()
        obs(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rank(rank: int, world: int, port: int, n: int, out: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    torch.set_num_threads(1)  # two ranks on two cores, a thread each
    x = torch.randn(n, generator=torch.Generator().manual_seed(rank))
    seconds = _time_forward(MinMaxObserver(xp=torch, process_group=dist.group.WORLD), x, True)
    if rank == 0:
        Path(out).write_text(json.dumps(seconds))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10**7)
    parser.add_argument("--out", default="bench/results/distributed.json")
    args = parser.parse_args()
    single = _time_forward(MinMaxObserver(xp=torch), torch.randn(args.n), False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scratch = Path(args.out).with_suffix(".rank0")
    torch.multiprocessing.start_processes(
        _rank, args=(2, port, args.n, str(scratch)), nprocs=2, start_method="spawn"
    )
    two = json.loads(scratch.read_text())
    scratch.unlink()
    result = {
        "n_per_rank": args.n,
        "torch_threads": torch.get_num_threads(),
        "one_process_ms": single * 1e3,
        "two_gloo_ranks_ms": two * 1e3,
        "ratio": two / single,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
