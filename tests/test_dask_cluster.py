"""Dask arrays on a dask.distributed LocalCluster of 2 worker processes.

The arrays are generated lazily on the workers and are larger than a worker's
memory limit, so they can be observed only chunk by chunk: each chunk's task
returns its (min, max), and only those pairs travel. The state and qparams
must equal torch.ao's on the same values, computed here in one process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs.testing import assert_observers_match

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

# A worker process idles at about 85 MiB (at 80% of its limit a worker pauses).
WORKER_MEMORY = 300 * 2**20  # bytes per worker
ELEMENTS = 90_000_000  # 360 MB of float32 per batch: more than a worker may hold


@pytest.fixture(scope="module")
def client() -> Any:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit=WORKER_MEMORY,
        dashboard_address=None,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _batch(seed: int) -> Any:
    rng = da.random.default_rng(seed)
    x = rng.standard_normal(ELEMENTS, chunks=2_000_000, dtype=np.float32)
    return x * np.float32(10.0 ** (seed - 1))


@pytest.mark.parametrize("c", [None, 0.25])
def test_cluster_batches_larger_than_a_worker_match_torch(
    client: Any, torch_ref: Any, c: float | None
) -> None:
    from torch.ao.quantization import observer as tobs

    assert ELEMENTS * 4 > WORKER_MEMORY
    xp = pytest.importorskip("array_api_compat.dask.array")
    obs = MinMaxObserver(xp=xp) if c is None else MovingAverageMinMaxObserver(c, xp=xp)
    ref = tobs.MinMaxObserver() if c is None else tobs.MovingAverageMinMaxObserver(c)
    for seed in range(2):
        x = _batch(seed)
        obs(x)  # on the cluster
        # The same values, computed in this process for the reference.
        values = x.compute(scheduler="threads")
        ref(torch_ref.from_numpy(values))
        del values
        assert_observers_match(obs, ref, xp=xp, device=obs.device, where=f"batch {seed}")
    assert client.run(lambda: 1), "the workers survived"
    assert len(client.scheduler_info()["workers"]) == 2
