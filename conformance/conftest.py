"""Conformance fixtures: one target per backend and mode, from arrayobs.testing.BACKENDS."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.conftest import backend, torch_ref  # noqa: F401  (shared fixtures)

from arrayobs import _conformance as C
from arrayobs.testing import BackendUnavailable, selected_backends

_BACKENDS, _REQUIRED = selected_backends()
# Besides the eager classes: the functional core under jax.jit, and lazily on Dask.
_EXTRA_MODES = {"jax": "jit", "jax:gpu": "jit", "dask": "lazy"}
_PARAMS = [(b, "eager") for b in _BACKENDS] + [
    (b, _EXTRA_MODES[b.name]) for b in _BACKENDS if b.name in _EXTRA_MODES
]


@pytest.fixture(params=_PARAMS, ids=[f"{b.name}-{m}" for b, m in _PARAMS])
def target(request: pytest.FixtureRequest) -> C.Target:
    b, mode = request.param
    try:
        xp, device = b.load()
    except BackendUnavailable as exc:
        if _REQUIRED:
            pytest.fail(f"ARRAYOBS_BACKENDS selects {b.name}, but: {exc}", pytrace=False)
        pytest.skip(str(exc))
    return dataclasses.replace(C.Target(b.name, xp, device), mode=mode)


@pytest.fixture(scope="session")
def reference() -> tuple[Any, dict[str, Any]]:
    return C.load()
