"""One backend fixture for every test, fed by arrayobs.testing.BACKENDS."""

from __future__ import annotations

import dataclasses
import importlib
import os
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from arrayobs._compat import backend_name
from arrayobs.testing import Backend, BackendUnavailable, selected_backends, supports_dtype

_BACKENDS, _REQUIRED = selected_backends()


@dataclasses.dataclass
class BackendCase:
    """A loaded backend: its namespace, device, and conversions from torch test data."""

    name: str
    xp: ModuleType
    device: Any

    @property
    def library(self) -> str:
        return backend_name(self.xp)

    def has(self, dtype_name: str) -> bool:
        return supports_dtype(self.xp, self.device, dtype_name)

    def from_torch(self, t: Any) -> Any:
        """The values of CPU tensor ``t``, same dtype, as an array of this backend."""
        dtype_name = str(t.dtype).removeprefix("torch.")
        if self.library == "torch":
            return t.to(self.device)
        if dtype_name == "bfloat16":
            host = t.float().numpy()
            return self.xp.astype(self.xp.asarray(host, device=self.device), self.xp.bfloat16)
        host = t.numpy()
        if self.library == "dask":
            # Several chunks, so the reduction runs as a tree.
            da = importlib.import_module("dask.array")
            return da.from_array(host, chunks=max(1, host.size // 3 + 1) if host.ndim == 1 else -1)
        return self.xp.asarray(host, device=self.device)

    def from_numpy(self, a: np.ndarray) -> Any:
        torch = pytest.importorskip("torch")
        return self.from_torch(torch.from_numpy(np.ascontiguousarray(a)))


def _load(backend: Backend) -> BackendCase:
    try:
        xp, device = backend.load()
    except BackendUnavailable as exc:
        if _REQUIRED:
            pytest.fail(f"ARRAYOBS_BACKENDS selects {backend.name}, but: {exc}", pytrace=False)
        pytest.skip(str(exc))
    return BackendCase(backend.name, xp, device)


@pytest.fixture(params=_BACKENDS, ids=[b.name for b in _BACKENDS])
def backend(request: pytest.FixtureRequest) -> BackendCase:
    return _load(request.param)


@pytest.fixture
def torch_ref() -> ModuleType:
    """torch 2.13.0, the reference; required whenever ARRAYOBS_BACKENDS is set (nox, CI).

    ``ARRAYOBS_REFERENCE_TORCH=2.11`` (say) accepts another version, for a GPU
    machine whose CUDA torch is not 2.13.0 (bench/gpu-check.sh); results there
    are against that version's torch.ao, and say so.
    """
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        if _REQUIRED:
            pytest.fail(
                "torch, the reference, is required (ARRAYOBS_BACKENDS is set) but not installed"
            )
        pytest.skip("torch (the reference) is not installed")
    wanted = os.environ.get("ARRAYOBS_REFERENCE_TORCH", "2.13.0")
    if not torch.__version__.startswith(wanted):
        pytest.fail(f"the reference is torch {wanted}, found {torch.__version__}")
    return torch
