"""Conformance fixtures: one target per backend and mode, from arrayobs.testing.BACKENDS."""

from __future__ import annotations

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
