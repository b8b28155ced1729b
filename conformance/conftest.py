"""Conformance fixtures: one target per backend and mode, from arrayobs.testing.BACKENDS."""

from __future__ import annotations

import os
from typing import Any

import pytest
from tests.conftest import _load as load_backend
from tests.conftest import backend, torch_ref  # noqa: F401  (shared fixtures)

from arrayobs import _conformance as C
from arrayobs.testing import selected_backends

_BACKENDS, _ = selected_backends()
# Besides the eager classes: the functional core under jax.jit, and lazily on Dask.
_EXTRA_MODES = {"jax": "jit", "jax:gpu": "jit", "dask": "lazy"}
_PARAMS = [(b, "eager") for b in _BACKENDS] + [
    (b, _EXTRA_MODES[b.name]) for b in _BACKENDS if b.name in _EXTRA_MODES
]


@pytest.fixture(params=_PARAMS, ids=[f"{b.name}-{m}" for b, m in _PARAMS])
def target(request: pytest.FixtureRequest) -> C.Target:
    b, mode = request.param
    loaded = load_backend(b)  # fails or skips as the unit tests do
    return C.Target(b.name, loaded.xp, loaded.device, mode)


@pytest.fixture(scope="session")
def reference() -> tuple[Any, dict[str, Any]]:
    return C.load()


@pytest.fixture
def live_check() -> None:
    """Skip a check of the stored numbers against live torch (or torchao) outside the
    torch session: nox runs it once, in conformance-torch; the other sessions check
    their targets against the same stored numbers."""
    chosen = os.environ.get("ARRAYOBS_BACKENDS", "")
    if chosen and "torch" not in {name.split(":")[0] for name in chosen.split(",")}:
        pytest.skip("the stored reference is checked against live torch in the torch session")


def sample(cases: list[Any], every: int) -> list[Any]:
    """Every ``every``-th case, plus the first case of each value of each field the
    others miss: every family, dtype, shape and setting still runs. ``every`` 1 (or
    ARRAYOBS_CONFORMANCE_FULL=1, the conformance-full sessions) keeps them all."""
    if every <= 1 or os.environ.get("ARRAYOBS_CONFORMANCE_FULL") == "1":
        return cases
    seen: set[tuple[str, Any]] = set()
    out = []
    for i, case in enumerate(cases):
        keys = {(f, repr(v)) for f, v in vars(case).items() if f not in ("id", "seed")}
        if i % every == 0 or keys - seen:
            out.append(case)
            seen |= keys
    return out
