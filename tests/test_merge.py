"""Merging min-max observers of shards: exact, whatever the grouping, and refused for averages."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs import functional as F
from arrayobs._compat import to_host
from arrayobs.testing import assert_observers_match


def _shards(seed: int) -> list[list[np.ndarray]]:
    """Three shards of batches: a NaN in the second when ``seed`` is odd, an empty batch last."""
    rng = np.random.default_rng(seed)
    shards = []
    for s in range(3):
        batches = []
        for _ in range(int(rng.integers(1, 4))):
            b = rng.standard_normal(int(rng.integers(1, 60))) * 10.0 ** rng.uniform(-2, 3)
            batches.append(b.astype(np.float32))
        if s == 1 and seed % 2:
            batches[-1][0] = np.nan
        if s == 2:
            batches.append(np.zeros(0, np.float32))
        shards.append(batches)
    return shards


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grouping", ["left", "right"])
def test_merged_shards_equal_one_observer_on_every_batch(
    backend: Any, torch_ref: Any, seed: int, grouping: str
) -> None:
    from torch.ao.quantization import observer as tobs

    kw = {"dtype": "qint8", "qscheme": "per_tensor_symmetric"}
    shards = _shards(seed)
    parts = []
    for batches in shards:
        obs = MinMaxObserver(**kw, xp=backend.xp, device=backend.device)
        for b in batches:
            obs(backend.from_numpy(b))
        parts.append(obs)
    a, b, c = parts
    if grouping == "left":  # (a + b) + c
        a.merge(b)
        a.merge(c)
        merged = a
    else:  # a + (b + c)
        b.merge(c)
        a.merge(b)
        merged = a
    ref = tobs.MinMaxObserver(dtype=torch_ref.qint8, qscheme=torch_ref.per_tensor_symmetric)
    for batches in shards:
        for batch in batches:
            ref(torch_ref.from_numpy(batch))
    where = f"[{backend.name} seed {seed} {grouping}]"
    assert_observers_match(merged, ref, xp=backend.xp, device=backend.device, where=where)


def test_fresh_is_the_identity(backend: Any) -> None:
    obs = MinMaxObserver(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(np.asarray([-1.5, 2.0], np.float32)))
    before = [to_host(v).tobytes() for v in obs.state]
    obs.merge(MinMaxObserver(xp=backend.xp, device=backend.device))
    assert [to_host(v).tobytes() for v in obs.state] == before
    fresh = MinMaxObserver(xp=backend.xp, device=backend.device)
    fresh.merge(obs)
    assert [to_host(v).tobytes() for v in fresh.state] == before
    unbound = MinMaxObserver()
    unbound.merge(obs)
    assert unbound.xp is obs.xp and unbound.device == obs.device
    assert [to_host(v).tobytes() for v in unbound.state] == before


def test_functional_merge_keeps_the_second_of_equal_values() -> None:
    first = F.MinMaxState(np.asarray(0.0, np.float32), np.asarray(-0.0, np.float32))
    second = F.MinMaxState(np.asarray(-0.0, np.float32), np.asarray(0.0, np.float32))
    merged = F.merge_minmax(first, second)
    assert np.signbit(merged.min_val) and not np.signbit(merged.max_val)
    nan = F.MinMaxState(np.asarray(np.nan, np.float32), np.asarray(np.nan, np.float32))
    assert all(np.isnan(v) for v in F.merge_minmax(first, nan))
    assert all(np.isnan(v) for v in F.merge_minmax(nan, first))


def test_moving_averages_refuse_to_merge() -> None:
    a, b = MovingAverageMinMaxObserver(), MovingAverageMinMaxObserver()
    a(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="cannot be merged after the fact"):
        a.merge(b)
    with pytest.raises(TypeError, match="takes a MinMaxObserver"):
        MinMaxObserver().merge(a)
    assert float(a.min_val) == 1.0


def test_mismatched_merges_change_nothing() -> None:
    a = MinMaxObserver()
    a(np.asarray([1.0, 2.0], np.float32))
    other_config = MinMaxObserver(dtype="qint8")
    other_config(np.asarray([-5.0], np.float32))
    with pytest.raises(ValueError, match="different configurations"):
        a.merge(other_config)
    strict = pytest.importorskip("array_api_strict")
    other_library = MinMaxObserver()
    other_library(strict.asarray([-5.0]))
    with pytest.raises(ValueError, match="cannot merge an observer"):
        a.merge(other_library)
    assert (float(a.min_val), float(a.max_val)) == (1.0, 2.0)
