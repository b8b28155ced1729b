"""One backend fixture for every test, fed by arrayobs.testing.BACKENDS.

Environment knobs (nox sets them; unset, every test runs and a missing reference skips):

- ``ARRAYOBS_TEST_SCOPE=backend`` keeps only the tests that take the ``backend``
  fixture (``tests-<backend>``); ``ARRAYOBS_TEST_SCOPE=common`` keeps only the others,
  the tests whose result does not depend on ARRAYOBS_BACKENDS (``tests-common`` runs
  them once, with every CPU backend installed). A test that exercises one library on
  its own (``pytest.importorskip("jax")`` inside) takes no ``backend`` and so runs in
  tests-common.
- ``ARRAYOBS_REQUIRE_REFERENCES=1`` (``tests-calib``) turns a skip whose reason starts
  with ``"reference not installed"`` (``REFERENCE_MISSING``) into a failure. A test that
  needs a live reference besides torch skips with that prefix when it is absent, e.g.
  ``pytest.importorskip("onnxruntime", reason="reference not installed: onnxruntime")``,
  so a developer without it skips and CI, which installs it, cannot skip silently.
- ``NPY_DISABLE_CPU_FEATURES=<NumPy's AVX512 targets>`` pins NumPy to its AVX2 kernels,
  as the stored reference numbers were made (nox sets it; docs/exactness.md, "CPU
  dispatch"). The header says what this run uses.
"""

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
# The skip reason that ARRAYOBS_REQUIRE_REFERENCES=1 turns into a failure.
REFERENCE_MISSING = "reference not installed"
_SCOPES = ("backend", "common")


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


def pytest_report_header(config: pytest.Config) -> str:
    """NumPy's CPU dispatch: with its AVX512 kernels on, two stored calibrator rows
    differ from the live references (and arrayobs, which follows them)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as features
    numpy_avx512 = any(on for name, on in features.items() if name in ("X86_V4", "AVX512_SKX"))
    return (
        f"NumPy's AVX512 kernels: {'on' if numpy_avx512 else 'off'} (nox turns them off: "
        "the stored reference numbers are AVX2's)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """ARRAYOBS_TEST_SCOPE: the tests that take the ``backend`` fixture, or the others."""
    scope = os.environ.get("ARRAYOBS_TEST_SCOPE", "")
    if not scope:
        return
    if scope not in _SCOPES:
        msg = f"ARRAYOBS_TEST_SCOPE is {scope!r}; allowed: {', '.join(_SCOPES)} or unset"
        raise pytest.UsageError(msg)
    keep, drop = [], []
    for item in items:
        takes_backend = "backend" in getattr(item, "fixturenames", ())
        (keep if takes_backend == (scope == "backend") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _reference_missing(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under ARRAYOBS_REQUIRE_REFERENCES=1, a REFERENCE_MISSING skip becomes a failure."""
    if os.environ.get("ARRAYOBS_REQUIRE_REFERENCES") != "1" or not report.skipped:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(REFERENCE_MISSING):
        report.outcome = "failed"
        report.longrepr = f"ARRAYOBS_REQUIRE_REFERENCES=1, but: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _reference_missing(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    _reference_missing(report)
    return report
