"""Hypothesis: random configurations and batch sequences against live torch, every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrayobs.testing import assert_observers_match, assert_state_match
from tests.test_reference import KINDS, RANGES, make_pair

CONFIGS = [(dtype, qrange) for dtype, ranges in sorted(RANGES.items()) for qrange in ranges]


def _batches(allow_subnormal: bool) -> st.SearchStrategy[list[list[float]]]:
    value = st.floats(
        width=32, allow_nan=True, allow_infinity=True, allow_subnormal=allow_subnormal
    )
    # Lengths from a small set, so JAX compiles each shape once.
    batch = st.sampled_from([0, 1, 3, 8]).flatmap(lambda n: st.lists(value, min_size=n, max_size=n))
    return st.lists(batch, min_size=1, max_size=6)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_sequences_match_torch(backend: Any, torch_ref: Any, data: st.DataObject) -> None:
    torch = torch_ref
    kind = data.draw(st.sampled_from(sorted(KINDS)))
    dtype, qrange = data.draw(st.sampled_from(CONFIGS))
    qscheme = data.draw(st.sampled_from(["per_tensor_affine", "per_tensor_symmetric"]))
    kw: dict[str, Any] = {"dtype": dtype, "qscheme": qscheme}
    if qrange is not None:
        kw["quant_min"], kw["quant_max"] = qrange
    # JAX on CPU flushes subnormals: a documented deviation (test_special_values).
    batches = data.draw(_batches(allow_subnormal=backend.library != "jax"))
    ours, ref, _, _ = make_pair(torch, kind, backend, **kw)
    for step, values in enumerate(batches):
        t = torch.tensor(np.asarray(values, dtype=np.float32))
        ours(backend.from_torch(t))
        ref(t)
        where = f"[{backend.name} {kind} {kw} batch {step} {values}]"
        # Before the first non-empty batch both warn on qparams (test_observer_api).
        check = assert_observers_match if ours._observed else assert_state_match
        check(ours, ref, xp=backend.xp, device=backend.device, where=where)
