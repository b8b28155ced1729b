"""The cases of the benchmark: settings and records, backends, input arrays per backend
and dtype, and the callables under test (arrayobs, the naive reductions, torch.ao), per
tensor, per call and per channel. See ``bench/run.py`` for what is measured and how.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver
from arrayobs._compat import to_host
from arrayobs.testing import BACKENDS, BackendUnavailable, supports_dtype

OTHER_DTYPES = ("float16", "bfloat16", "float64", "int8")
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
VARIANTS = ("arrayobs", "fast_off", "naive", "torch_ao")
OBSERVER_VARIANTS = ("arrayobs", "fast_off")
DASK_CHUNK = 10**6
PER_CALL_N = 100
# (name, shape, ch_axis); --quick keeps the first PC_QUICK_CASES.
PC_CASES: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("weight", (4096, 4096), 0),
    ("activation", (2441, 4096), -1),
    ("nchw", (8, 64, 128, 152), 1),
)
PC_QUICK_CASES = 2
PC_DTYPES = ("float32", "float16", "bfloat16", "float64")
PC_OBSERVERS = {
    PerChannelMinMaxObserver.__name__: PC_DTYPES,
    MovingAveragePerChannelMinMaxObserver.__name__: ("float32",),
}
PC_VARIANTS = ("arrayobs", "fast_off", "torch_ao")
PC_FAST_OFF_KINDS = ("numpy", "torch")  # fast=False is timed on these backends only
PC_DASK_PARTS = 4  # dask chunks along axis 0
# The fake-quantize section: (scale, zero_point, quant_min, quant_max), sizes, variants.
FQ_QPARAMS = (0.0235, 128, 0, 255)
FQ_SIZES = (10**2, 10**6, 10**8)
FQ_QUICK_SIZES = (10**2, 10**6)
FQ_VARIANTS = ("arrayobs", "fast_off", "torch_op", "floor_copy", "floor_copyto")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes and timing effort of one run."""

    float32_sizes: tuple[int, ...]
    other_n: int
    repeats: int
    target_s: float
    per_call_repeats: int
    per_call_target_s: float


FULL = Settings((10**2, 10**4, 10**6, 10**7, 10**8), 10**7, 7, 0.25, 7, 0.2)
QUICK = Settings((10**2, 10**4, 10**6, 10**7), 10**7, 5, 0.05, 5, 0.05)
# The per-channel section: only repeats and target_s are used.
PC_FULL = dataclasses.replace(FULL, repeats=7, target_s=0.15)
PC_QUICK = dataclasses.replace(QUICK, repeats=5, target_s=0.03)
# The fake-quantize section: only repeats and target_s are used (rounds interleaved).
FQ_FULL = dataclasses.replace(FULL, repeats=7, target_s=0.1)
FQ_QUICK = dataclasses.replace(QUICK, repeats=5, target_s=0.03)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call: median and minimum over ``repeats`` repeats of ``number`` calls."""

    median_s: float
    min_s: float
    repeats: int
    number: int


@dataclasses.dataclass
class Record:
    """One measurement (or the reason there is none) in ``results.json``."""

    backend: str
    dtype: str
    n: int
    variant: str
    status: str  # ok, n/a, unsupported, error
    median_s: float | None = None
    min_s: float | None = None
    repeats: int = 0
    number: int = 0
    note: str = ""
    agrees_with_torch_ao: bool | None = None

    @property
    def nbytes(self) -> int:
        return self.n * ITEMSIZE.get(self.dtype, 4)


@dataclasses.dataclass
class ChannelRecord(Record):
    """One per-channel measurement; ``backend`` is ``torch.ao:cpu`` (or ``:cuda``) for the
    reference, whose variant is ``torch_ao``."""

    case: str = ""
    shape: tuple[int, ...] = ()
    ch_axis: int = 0
    observer: str = ""


class Unavailable(Exception):
    """This variant cannot run on this backend and dtype; the message says why."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A backend ready to use: its library, Array API namespace and device."""

    name: str
    lib: ModuleType
    xp: ModuleType
    device: Any

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]

    @property
    def gpu(self) -> bool:
        return self.kind == "cupy" or ":" in self.name

    def sync(self, *arrays: Any) -> None:
        """Wait for the device to finish the work producing ``arrays``."""
        if self.kind == "jax":
            import jax

            jax.block_until_ready(arrays)  # type: ignore[no-untyped-call]
        elif self.kind == "cupy":
            self.lib.cuda.Device().synchronize()
        elif self.name == "torch:cuda":
            self.lib.cuda.synchronize()


# -- backends and data ---------------------------------------------------------------------
def load_backends(names: Iterable[str]) -> tuple[list[Loaded], dict[str, str]]:
    """The backends that load, and the reason for each that does not."""
    known = {b.name: b for b in BACKENDS}
    loaded, skipped = [], {}
    for name in names:
        backend = known[name]
        try:
            xp, device = backend.load()
        except BackendUnavailable as exc:
            skipped[name] = str(exc)
            continue
        loaded.append(Loaded(name, importlib.import_module(backend.module), xp, device))
    return loaded, skipped


def ml_dtypes_bfloat16() -> Any | None:
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def host_array(base: np.ndarray, dtype: str) -> np.ndarray | None:
    """``base`` (float32) as a NumPy array of ``dtype``; None for bfloat16 without ml_dtypes."""
    if dtype == "float32":
        return base
    if dtype == "int8":
        scaled: np.ndarray = np.clip(np.rint(base * 32), -128, 127)
        return scaled.astype(np.int8)
    if dtype == "bfloat16":
        bf16 = ml_dtypes_bfloat16()
        return None if bf16 is None else base.astype(bf16)
    return base.astype(dtype)


def dtype_missing(be: Loaded, dtype: str, host: np.ndarray | None) -> str | None:
    """Why ``be`` cannot hold ``dtype``, or None when it can."""
    if dtype == "bfloat16" and be.kind in ("numpy", "dask"):
        return None if host is not None else "NumPy has no bfloat16 and ml_dtypes is missing"
    if supports_dtype(be.xp, be.device, dtype):
        return None
    if be.kind == "jax" and dtype == "float64":
        return "JAX has no float64 without jax_enable_x64 (off here)"
    return f"{be.name} has no {dtype}"


def to_backend(be: Loaded, dtype: str, base: np.ndarray, host: np.ndarray | None) -> Any:
    """The case's values as an array of ``be`` on its device."""
    missing = dtype_missing(be, dtype, host)
    if missing:
        raise Unavailable(missing)
    if be.kind == "torch":
        torch = be.lib
        if dtype == "bfloat16":
            return torch.from_numpy(base).to(device=be.device, dtype=torch.bfloat16)
        return torch.from_numpy(host).to(be.device)
    if be.kind == "jax":
        import jax

        x = jax.device_put(base if host is None else host, be.device)
        return x if host is not None else x.astype(dtype)
    assert host is not None  # only bfloat16 lacks a host copy, and only torch and JAX hold it
    if be.kind == "dask":
        return be.lib.from_array(host, chunks=min(host.size, DASK_CHUNK))
    if be.kind == "cupy":
        with be.lib.cuda.Device(be.device.id):
            return be.lib.asarray(host)
    if be.kind == "numpy":
        return host
    return be.xp.asarray(host, device=be.device)


def torch_tensor(be: Loaded, x: Any, dtype: str, base: np.ndarray, host: Any) -> Any:
    """The values torch.ao observes: ``x`` itself, a DLPack view (GPU) or a host copy."""
    import torch

    if be.kind == "torch":
        return x
    if be.gpu:
        if not torch.cuda.is_available():
            raise Unavailable("this torch has no CUDA")
        return torch.utils.dlpack.from_dlpack(x)
    if dtype == "bfloat16":
        return torch.from_numpy(base).to(torch.bfloat16)
    return torch.from_numpy(host)


# -- the variants ----------------------------------------------------------------------------
def observer_call(be: Loaded, obs: Any, x: Any) -> Callable[[], object]:
    def call() -> None:
        obs(x)
        be.sync(obs.min_val, obs.max_val)

    return call


def naive_call(be: Loaded, x: Any) -> Callable[[], object]:
    if be.kind == "jax":
        import jax

        both = jax.jit(lambda a: (a.min(), a.max()))
        return lambda: be.sync(*both(x))
    if be.kind == "dask":
        import dask

        return lambda: dask.compute(x.min(), x.max())  # type: ignore[attr-defined, no-untyped-call]
    xp = be.xp

    def call() -> None:
        be.sync(xp.min(x), xp.max(x))

    return call


def torch_ao_call(t: Any, observer: type) -> tuple[Any, Callable[[], object]]:

    ref = observer().to(t.device)
    sync = _torch_sync(t)

    def call() -> None:
        ref(t)
        sync()

    return ref, call


def agrees(obs: Any, ref: Any) -> bool:
    """Whether the observer's (min, max) equal torch.ao's (NaN equal to NaN)."""
    for name in ("min_val", "max_val"):
        got = float(to_host(getattr(obs, name)))
        want = float(getattr(ref, name).detach().cpu())
        if not (got == want or (math.isnan(got) and math.isnan(want))):
            return False
    return True


def _torch_sync(t: Any) -> Callable[..., None]:
    import torch

    if t.device.type == "cuda":
        return lambda *_: torch.cuda.synchronize()
    return lambda *_: None


# -- per-call overhead -----------------------------------------------------------------------
PER_CALL_OPS = (
    ("MinMaxObserver", "forward"),
    ("MinMaxObserver", "calculate_qparams"),
    ("MinMaxObserver", "calculate_qparams(check=False)"),
    ("MovingAverageMinMaxObserver", "forward"),
    ("MovingAverageMinMaxObserver", "calculate_qparams"),
    ("MovingAverageMinMaxObserver", "calculate_qparams(check=False)"),
)


def _op_call(
    obs: Any, op: str, x: Any, sync: Callable[..., None], *, has_check: bool
) -> Callable[[], object]:
    """One op of ``obs`` on ``x``; ``has_check``: calculate_qparams takes ``check``."""
    obs(x)  # calculate_qparams needs an observation
    kwargs = {"check": op == "calculate_qparams"} if has_check else {}

    def forward() -> None:
        obs(x)
        sync(obs.min_val, obs.max_val)

    def qparams() -> None:
        sync(*obs.calculate_qparams(**kwargs))

    return forward if op == "forward" else qparams


# -- per-channel -----------------------------------------------------------------------------
def channel_array(be: Loaded, dtype: str, base: np.ndarray, host: np.ndarray | None) -> Any:
    """The case's values (shape ``base.shape``) as an array of ``be``; Dask in
    ``PC_DASK_PARTS`` chunks along axis 0."""
    if be.kind == "dask":
        missing = dtype_missing(be, dtype, host)
        if missing:
            raise Unavailable(missing)
        assert host is not None
        rows = max(1, math.ceil(host.shape[0] / PC_DASK_PARTS))
        return be.lib.from_array(host, chunks=(rows, *host.shape[1:]))
    return to_backend(be, dtype, base, host)


def channel_reference(device: str, dtype: str, base: np.ndarray, host: Any) -> Any:
    """The case's values as a torch tensor on ``device`` (``cpu`` or ``cuda``)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("this torch has no CUDA")
    if dtype == "bfloat16":
        return torch.from_numpy(base).to(device=device, dtype=torch.bfloat16)
    return torch.from_numpy(host).to(device)


def channel_agrees(obs: Any, ref: Any) -> bool:
    """Whether the observer's per-channel min, max, scale and zero point equal torch.ao's."""
    ours = [obs.min_val, obs.max_val, *obs.calculate_qparams()]
    theirs = [ref.min_val, ref.max_val, *ref.calculate_qparams()]
    for got, want in zip(ours, theirs, strict=True):
        a, b = to_host(got), want.detach().cpu().numpy()
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            return False
    return True
