"""Throughput and per-call overhead of arrayobs observers, against the alternatives.

What is measured
----------------
For every selected backend (numpy, torch, jax, dask on the CPU; cupy, torch:cuda and
jax:gpu when an NVIDIA GPU is present, skipped with the reason otherwise) and every case
(float32 at 1e2, 1e4, 1e6, 1e7 and 1e8 elements; float16, bfloat16, float64 and int8 at
1e7), the time of one call of:

``arrayobs``
    ``MinMaxObserver(xp=ns, device=dev)(x)``, the fast path.
``fast_off``
    The same observer with ``fast=False``: the generic Array API path.
``naive``
    ``xp.min(x)`` and ``xp.max(x)`` through the Array API namespace; on JAX
    ``jax.jit(lambda x: (x.min(), x.max()))``, on Dask ``dask.compute(x.min(), x.max())``.
``torch_ao``
    ``torch.ao.quantization.observer.MinMaxObserver`` on the same values as a torch tensor:
    the backend's own tensor for torch, a DLPack view for GPU backends, and
    ``torch.from_numpy`` of the host copy (CPU) otherwise.

and, once per case and device, a read-bandwidth floor on the same number of bytes:

``floor_all_cores`` / ``floor_one_core`` (CPU)
    ``np.maximum.reduce`` over the buffer's uint64 view (uint8 when the size is not a
    multiple of 8), split into one contiguous part per core in a thread pool, and over the
    whole view on one thread. The floor column of the tables is the faster of the two.
``floor_gpu_cupy_max`` / ``floor_gpu_torch_sum`` (GPU)
    ``cupy.max`` of a uint64 buffer and ``torch.sum`` of an int64 buffer on the device;
    the floor column is the faster one. The device's theoretical bandwidth
    (``2 * memory clock * bus width / 8``) is recorded when it can be queried.

Separately, the per-call overhead on 100 float32 elements: ``forward`` and
``calculate_qparams`` (default, and ``check=False``) of ``MinMaxObserver`` and
``MovingAverageMinMaxObserver`` on each selected backend, each next to torch.ao's
equivalent (on the CPU, or CUDA for GPU backends).

Per-channel section
-------------------
``PerChannelMinMaxObserver(ch_axis=...)(x)`` on three shapes: weight-like (4096, 4096)
with ``ch_axis=0`` (4096 channels of 4096), activation-like channels-last (2441, 4096)
with ``ch_axis=-1`` (about 1e7 elements) and NCHW (8, 64, 128, 152) with ``ch_axis=1``
(about 1e7), each in float32, float16, bfloat16 and float64; per shape and dtype,
back to back: torch.ao's ``PerChannelMinMaxObserver`` forward on a torch tensor of the same
values (once per device: CPU next to CPU backends, CUDA next to GPU backends), then
arrayobs on each backend (``fast=False`` too on NumPy and torch). Dask arrays are split
into 4 chunks along axis 0. ``MovingAveragePerChannelMinMaxObserver`` is timed the same way
on float32. The ratio reported is torch.ao's median over arrayobs's. ``--quick`` keeps the
first two shapes, with fewer repeats.

How
---
Data are drawn once per size, ``numpy.random.default_rng(0).standard_normal`` in float32,
then converted (int8: ``clip(rint(32 x))``; bfloat16 on NumPy and Dask: ``ml_dtypes`` when
it imports). Dask arrays have chunks of 1e6 elements. Every callable is warmed up (which
compiles JAX functions), its device synchronised before the clock stops; ``timeit`` runs
it in repeats of enough calls to last ``target`` seconds (one call for big arrays), and the
median over repeats (at least 5) is reported with the minimum. All variants of one case
run back to back, so their ratios come from the same minute of a noisy machine. After
timing, the observers' min and max are checked against torch.ao's.

Running
-------
From the repository root::

    python bench/run.py                       # everything, up to 1e8 elements
    python bench/run.py --quick               # sizes up to 1e7, fewer repeats
    python bench/run.py --backends numpy,torch --out /tmp/bench
    python bench/run.py --per-channel-only    # the per-channel section alone

writes ``results.json`` (machine, versions, command line and every measurement),
``results.md`` (tables) and, when matplotlib imports, ``throughput.png`` to ``--out``
(default ``bench/results``). ``--sections`` (or ``--per-channel-only``) runs only some
sections; the others are kept from the files already in ``--out``: the per-tensor part is
the top level of ``results.json`` and of ``results.md``, the per-channel part is
``results.json["per_channel"]`` and the block of ``results.md`` between the
``<!-- per-channel -->`` markers. ``throughput.png`` (per-tensor float32) is only
rewritten when the per-tensor section runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import functools
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs._compat import to_host
from arrayobs.testing import BACKENDS, BackendUnavailable, supports_dtype

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BACKENDS = ("numpy", "torch", "jax", "dask", "cupy", "torch:cuda", "jax:gpu")
OTHER_DTYPES = ("float16", "bfloat16", "float64", "int8")
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
VARIANTS = ("arrayobs", "fast_off", "naive", "torch_ao")
OBSERVER_VARIANTS = ("arrayobs", "fast_off")
CPU_FLOORS = ("floor_all_cores", "floor_one_core")
GPU_FLOORS = ("floor_gpu_cupy_max", "floor_gpu_torch_sum")
DASK_CHUNK = 10**6
PER_CALL_N = 100
SECTIONS = ("per-tensor", "per-channel")
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
PC_BEGIN, PC_END = "<!-- per-channel: begin -->", "<!-- per-channel: end -->"


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


# -- timing ----------------------------------------------------------------------------------
def time_call(fn: Callable[[], object], repeats: int, target_s: float) -> Timing:
    """Warm ``fn`` up, then time it with ``timeit`` in repeats lasting about ``target_s``."""
    fn()
    fn()
    timer = timeit.Timer(fn)
    once = timer.timeit(1)
    number = max(1, min(10**6, math.ceil(target_s / max(once, 1e-9))))
    per_call = [t / number for t in timer.repeat(repeats, number)]
    return Timing(statistics.median(per_call), min(per_call), repeats, number)


def measured(record: Record, fn: Callable[[], Callable[[], object]], settings: Settings) -> Record:
    """Fill ``record`` by building and timing a callable; failures become its status."""
    try:
        timing = time_call(fn(), settings.repeats, settings.target_s)
    except Unavailable as exc:
        return dataclasses.replace(record, status="n/a", note=str(exc))
    except TypeError as exc:
        status = "unsupported" if record.variant in OBSERVER_VARIANTS else "error"
        return dataclasses.replace(record, status=status, note=f"TypeError: {exc}")
    except Exception as exc:  # any library's failure is a result, not a crash
        return dataclasses.replace(record, status="error", note=f"{type(exc).__name__}: {exc}")
    return dataclasses.replace(record, status="ok", **dataclasses.asdict(timing))


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


def measure_backend(
    be: Loaded, dtype: str, base: np.ndarray, host: np.ndarray | None, settings: Settings
) -> list[Record]:
    """All variants for one backend and case, back to back."""
    from torch.ao.quantization.observer import MinMaxObserver as TorchMinMax

    blank = [Record(be.name, dtype, base.size, v, "n/a") for v in VARIANTS]
    try:
        x = to_backend(be, dtype, base, host)
    except Unavailable as exc:
        return [dataclasses.replace(r, note=str(exc)) for r in blank]
    observers = {
        "arrayobs": MinMaxObserver(xp=be.xp, device=be.device),
        "fast_off": MinMaxObserver(xp=be.xp, device=be.device, fast=False),
    }
    builders: dict[str, Callable[[], Callable[[], object]]] = {
        name: functools.partial(observer_call, be, obs, x) for name, obs in observers.items()
    }
    builders["naive"] = functools.partial(naive_call, be, x)
    ref: Any = None
    try:
        ref, ref_call = torch_ao_call(torch_tensor(be, x, dtype, base, host), TorchMinMax)
        builders["torch_ao"] = lambda: ref_call
    except Unavailable as exc:
        builders["torch_ao"] = functools.partial(_raise, Unavailable(str(exc)))
    records = [measured(r, builders[r.variant], settings) for r in blank]
    for r in records:
        if ref is not None and r.variant in observers and r.status == "ok":
            r.agrees_with_torch_ao = agrees(observers[r.variant], ref)
    return records


def _raise(exc: Exception) -> Any:
    raise exc


# -- bandwidth floors ------------------------------------------------------------------------
def words(buf: np.ndarray) -> np.ndarray:
    """A 1-d uint64 view of ``buf``'s bytes (uint8 when not a multiple of 8)."""
    raw = buf.reshape(-1).view(np.uint8)
    return raw.view(np.uint64) if raw.size % 8 == 0 else raw


def cpu_floor(
    buf: np.ndarray, dtype: str, n: int, pool: Any, workers: int, settings: Settings
) -> list[Record]:
    """Streaming reads of ``buf`` (the case's bytes): a part per core in ``pool``, and one."""
    view = words(buf)
    parts = np.array_split(view, workers)
    calls = {
        "floor_all_cores": lambda: list(pool.map(np.maximum.reduce, parts)),
        "floor_one_core": lambda: np.maximum.reduce(view),
    }
    return [
        measured(Record("cpu", dtype, n, name, "n/a"), functools.partial(_same, call), settings)
        for name, call in calls.items()
    ]


def _same(value: Any) -> Any:
    return value


def gpu_floor(dtype: str, n: int, settings: Settings) -> list[Record]:
    """Device reads of the case's bytes: ``cupy.max`` (uint64) and ``torch.sum`` (int64)."""
    records = []
    nbytes = n * ITEMSIZE[dtype]
    for name, make in zip(GPU_FLOORS, (_cupy_read, _torch_read), strict=True):
        record = Record("gpu", dtype, n, name, "n/a")
        records.append(measured(record, functools.partial(make, nbytes), settings))
        gc.collect()
    return records


def _cupy_read(nbytes: int) -> Callable[[], object]:
    try:
        import cupy
    except ImportError as exc:
        raise Unavailable(f"cupy does not import ({exc})") from exc
    buf = cupy.zeros(nbytes // 8, cupy.uint64) if nbytes % 8 == 0 else cupy.zeros(nbytes, "u1")
    device = cupy.cuda.Device()

    def call() -> None:
        cupy.max(buf)
        device.synchronize()

    return call


def _torch_read(nbytes: int) -> Callable[[], object]:
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("this torch has no CUDA")
    dtype, count = (torch.int64, nbytes // 8) if nbytes % 8 == 0 else (torch.uint8, nbytes)
    buf = torch.zeros(count, dtype=dtype, device="cuda")

    def call() -> None:
        torch.sum(buf)
        torch.cuda.synchronize()

    return call


def gpu_theoretical_gbs() -> float | None:
    """``2 * memory clock * bus width / 8`` of GPU 0 in GB/s, where it can be queried."""
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        clock_khz, bus_bits = props["memoryClockRate"], props["memoryBusWidth"]
    except Exception:
        try:
            import torch

            props = torch.cuda.get_device_properties(0)
            clock_khz, bus_bits = props.memory_clock_rate, props.memory_bus_width
        except Exception:
            return None
    return float(2 * clock_khz * 1e3 * bus_bits / 8 / 1e9)


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


def per_call(be: Loaded, settings: Settings) -> list[Record]:
    """Overhead on 100 float32 elements, arrayobs next to torch.ao, op by op."""
    from torch.ao.quantization import observer as ao

    base = np.random.default_rng(0).standard_normal(PER_CALL_N, dtype=np.float32)
    x = to_backend(be, "float32", base, base)
    t: Any = None
    try:
        t = torch_tensor(be, x, "float32", base, base)
    except Unavailable as exc:
        reason = str(exc)
    ours = {c.__name__: c for c in (MinMaxObserver, MovingAverageMinMaxObserver)}
    timing = dataclasses.replace(
        settings, repeats=settings.per_call_repeats, target_s=settings.per_call_target_s
    )
    records = []
    for cls_name, op in PER_CALL_OPS:
        variant = f"{cls_name}.{op}"
        obs = ours[cls_name](xp=be.xp, device=be.device)
        record = Record(be.name, "float32", PER_CALL_N, variant, "n/a")
        ours_call = functools.partial(_op_call, obs, op, x, be.sync, has_check=True)
        records.append(measured(record, ours_call, timing))
        ref_record = dataclasses.replace(record, variant=f"torch_ao:{variant}")
        if t is None:
            records.append(dataclasses.replace(ref_record, note=reason))
            continue
        ref = getattr(ao, cls_name)().to(t.device)
        sync = _torch_sync(t)
        ref_call = functools.partial(_op_call, ref, op, t, sync, has_check=False)
        records.append(measured(ref_record, ref_call, timing))
    return records


def _torch_sync(t: Any) -> Callable[..., None]:
    import torch

    if t.device.type == "cuda":
        return lambda *_: torch.cuda.synchronize()
    return lambda *_: None


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


def measure_channel_case(
    backends: list[Loaded],
    observer: str,
    case: tuple[str, tuple[int, ...], int],
    dtype: str,
    base: np.ndarray,
    host: np.ndarray | None,
    settings: Settings,
) -> list[ChannelRecord]:
    """torch.ao (once per device), then every backend's variants, back to back."""
    from torch.ao.quantization import observer as ao

    name, shape, ch_axis = case
    ours_cls = {
        c.__name__: c for c in (PerChannelMinMaxObserver, MovingAveragePerChannelMinMaxObserver)
    }
    blank = ChannelRecord(
        "", dtype, base.size, "", "n/a", case=name, shape=shape, ch_axis=ch_axis, observer=observer
    )
    records: list[ChannelRecord] = []
    refs: dict[str, Any] = {}
    for device in sorted({"cuda" if be.gpu else "cpu" for be in backends}):
        record = dataclasses.replace(blank, backend=f"torch.ao:{device}", variant="torch_ao")

        def build(device: str = device) -> Callable[[], object]:
            t = channel_reference(device, dtype, base, host)
            ref = getattr(ao, observer)(ch_axis=ch_axis).to(t.device)
            refs[device] = ref
            sync = _torch_sync(t)

            def call() -> None:
                ref(t)
                sync()

            return call

        records.append(measured(record, build, settings))
        gc.collect()
    for be in backends:
        variants = ("arrayobs", "fast_off") if be.kind in PC_FAST_OFF_KINDS else ("arrayobs",)
        try:
            x = channel_array(be, dtype, base, host)
        except Unavailable as exc:
            records += [
                dataclasses.replace(blank, backend=be.name, variant=v, note=str(exc))
                for v in variants
            ]
            continue
        for variant in variants:
            obs = ours_cls[observer](
                ch_axis=ch_axis, xp=be.xp, device=be.device, fast=variant == "arrayobs"
            )
            record = dataclasses.replace(blank, backend=be.name, variant=variant)
            record = measured(record, functools.partial(observer_call, be, obs, x), settings)
            ref = refs.get("cuda" if be.gpu else "cpu")
            if record.status == "ok" and ref is not None:
                record.agrees_with_torch_ao = channel_agrees(obs, ref)
            records.append(record)
        del x
        gc.collect()
    return records


def log_channel(record: ChannelRecord) -> None:
    if record.status == "ok" and record.median_s is not None:
        shown = f"{record.median_s * 1e3:10.4f} ms"
        if record.agrees_with_torch_ao is False:
            shown += "  (differs from torch.ao!)"
    else:
        shown = f"{record.status}: {record.note[:70]}"
    shape = "x".join(map(str, record.shape))
    where = (
        f"{record.observer.removesuffix('MinMaxObserver'):<20} {shape:>15} {record.ch_axis:>2}"
        f" {record.dtype:>8} {record.backend:>14} {record.variant:<9}"
    )
    print(where, shown, file=sys.stderr, flush=True)


def run_per_channel(backends: list[Loaded], quick: bool) -> list[ChannelRecord]:
    """Every per-channel case, observer and dtype; arrays freed between cases."""
    settings = PC_QUICK if quick else PC_FULL
    records: list[ChannelRecord] = []
    for case in PC_CASES[:PC_QUICK_CASES] if quick else PC_CASES:
        base = np.random.default_rng(0).standard_normal(case[1], dtype=np.float32)
        for observer, dtypes in PC_OBSERVERS.items():
            for dtype in dtypes:
                host = host_array(base, dtype)
                found = measure_channel_case(backends, observer, case, dtype, base, host, settings)
                for record in found:
                    log_channel(record)
                records += found
                del host
                gc.collect()
        del base
    return records


# -- machine ---------------------------------------------------------------------------------
VERSIONED = (
    *("numpy", "torch", "jax", "jaxlib", "dask", "cupy"),
    *("array_api_compat", "array_api_strict", "ml_dtypes", "matplotlib", "arrayobs"),
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _command(*args: str, cwd: Path | None = None) -> str | None:
    """The stripped output of a command, or None when it is missing or fails."""
    if shutil.which(args[0]) is None:
        return None
    try:
        done = subprocess.run(
            args, check=False, capture_output=True, text=True, timeout=30, cwd=cwd
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    """Installed versions, found through distributions (nothing is imported)."""
    dists = importlib.metadata.packages_distributions()
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        candidates = [*dists.get(name, []), name]
        out[name] = None
        for dist in candidates:
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def machine(gpu_in_use: bool) -> dict[str, Any]:
    """Where and with what this run ran."""
    status = _command("git", "status", "--porcelain", cwd=ROOT)
    gpu = _command("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_usable": len(_affinity()),
        "ram_gib": _ram_gib(),
        "gpu": gpu,
        "gpu_theoretical_gbs": gpu_theoretical_gbs() if gpu_in_use else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": _versions(),
        "git_commit": _command("git", "rev-parse", "HEAD", cwd=ROOT),
        "git_dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
    }


def _loadavg() -> float | None:
    """The 1-minute load average (other processes on a shared machine show up here)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (Linux ``/proc/stat``), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


# -- the run ---------------------------------------------------------------------------------
def cases(settings: Settings) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(n, dtypes at n), smallest n first; the data of one n is drawn once."""
    for n in sorted({*settings.float32_sizes, settings.other_n}):
        dtypes = ("float32",) if n in settings.float32_sizes else ()
        yield n, dtypes + (OTHER_DTYPES if n == settings.other_n else ())


def log(record: Record) -> None:
    if record.status == "ok" and record.median_s is not None:
        shown = f"{record.median_s * 1e3:10.4f} ms"
    else:
        shown = f"{record.status}: {record.note[:70]}"
    where = f"{record.backend:>11} {record.dtype:>8} {record.n:>10.0e} {record.variant:<50}"
    print(where, shown, file=sys.stderr, flush=True)


def run_sizes(backends: list[Loaded], settings: Settings) -> list[Record]:
    """Every case: the floors, then each backend's variants; arrays freed between cases."""
    workers = len(_affinity())
    use_cpu = any(not b.gpu for b in backends)
    use_gpu = any(b.gpu for b in backends)
    records: list[Record] = []
    with concurrent.futures.ThreadPoolExecutor(workers, "bench-floor") as pool:
        for n, dtypes in cases(settings):
            base = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
            for dtype in dtypes:
                host = host_array(base, dtype)
                nbytes = n * ITEMSIZE[dtype]
                found = []
                if use_cpu:
                    buf = host if host is not None else base.view(np.uint8)[:nbytes]
                    found += cpu_floor(buf, dtype, n, pool, workers, settings)
                if use_gpu:
                    found += gpu_floor(dtype, n, settings)
                for be in backends:
                    found += measure_backend(be, dtype, base, host, settings)
                    gc.collect()
                for record in found:
                    log(record)
                records += found
                del host
                gc.collect()
            del base
    return records


def run_per_call(backends: list[Loaded], settings: Settings) -> list[Record]:
    records: list[Record] = []
    for be in backends:
        for record in per_call(be, settings):
            log(record)
            records.append(record)
    return records


# -- results ---------------------------------------------------------------------------------
def json_data(meta: dict[str, Any], records: list[Record], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": meta,
        **extra,
        "measurements": [{**dataclasses.asdict(r), "nbytes": r.nbytes} for r in records],
    }


def _fmt(seconds: float | None, scale: float) -> str:
    if seconds is None:
        return "-"
    value = seconds * scale
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _ratio(num: float | None, den: float | None, percent: bool = False) -> str:
    if num is None or den is None or den == 0:
        return "-"
    return f"{100 * num / den:.0f}%" if percent else f"{num / den:.2f}x"


class Table:
    """Records indexed by (backend, dtype, n, variant), with footnotes for the missing."""

    def __init__(
        self, records: list[Record], key: Callable[[Any], tuple[Any, ...]] | None = None
    ) -> None:
        key = key or (lambda r: (r.backend, r.dtype, r.n, r.variant))
        self.by_key = {key(r): r for r in records}
        self.notes: dict[str, int] = {}

    def seconds(self, key: tuple[Any, ...]) -> float | None:
        r = self.by_key.get(key)
        return r.median_s if r is not None and r.status == "ok" else None

    def cell(self, key: tuple[Any, ...], scale: float) -> str:
        r = self.by_key.get(key)
        if r is None:
            return "-"
        if r.status == "ok":
            flag = "" if r.agrees_with_torch_ao in (None, True) else " (≠torch.ao!)"
            return _fmt(r.median_s, scale) + flag
        text = f"{r.status}: {r.note}"
        number = self.notes.setdefault(text, len(self.notes) + 1)
        return f"{r.status} [{number}]"

    def floor(self, device: str, dtype: str, n: int) -> float | None:
        """The faster read floor of ``device`` on the bytes of case (dtype, n)."""
        names = GPU_FLOORS if device == "gpu" else CPU_FLOORS
        found = [self.seconds((device, dtype, n, v)) for v in names]
        return min((s for s in found if s is not None), default=None)


def backend_table(table: Table, backend: str, gpu: bool, rows: list[tuple[str, int]]) -> str:
    head = (
        "| dtype | n | arrayobs ms | fast off ms | naive ms | torch.ao ms | floor ms "
        "| arrayobs GB/s | naive/arrayobs | torch.ao/arrayobs | floor/arrayobs |"
    )
    lines = [head, "|" + "---|" * 11]
    for dtype, n in rows:
        keys = {v: (backend, dtype, n, v) for v in VARIANTS}
        ours = table.seconds(keys["arrayobs"])
        floor = table.floor("gpu" if gpu else "cpu", dtype, n)
        gbs = "-" if ours is None else f"{n * ITEMSIZE[dtype] / ours / 1e9:.3g}"
        cells = [table.cell(keys[v], 1e3) for v in VARIANTS]
        ratios = [
            _ratio(table.seconds(keys["naive"]), ours),
            _ratio(table.seconds(keys["torch_ao"]), ours),
            _ratio(floor, ours, percent=True),
        ]
        row = [dtype, f"{n:.0e}", *cells, _fmt(floor, 1e3), gbs, *ratios]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_call_table(table: Table, backends: list[str]) -> str:
    lines = [
        "| backend | observer | op | arrayobs µs (median) | arrayobs µs (min) "
        "| torch.ao µs (median) | torch.ao µs (min) | torch.ao/arrayobs |",
        "|" + "---|" * 8,
    ]
    for backend in backends:
        for cls_name, op in PER_CALL_OPS:
            variant = f"{cls_name}.{op}"
            ours = table.by_key.get((backend, "float32", PER_CALL_N, variant))
            ref = table.by_key.get((backend, "float32", PER_CALL_N, f"torch_ao:{variant}"))
            if ours is None:
                continue
            cells = [
                table.cell((backend, "float32", PER_CALL_N, variant), 1e6),
                _fmt(ours.min_s, 1e6),
                table.cell((backend, "float32", PER_CALL_N, f"torch_ao:{variant}"), 1e6),
                _fmt(ref.min_s if ref else None, 1e6),
                _ratio(ref.median_s if ref else None, ours.median_s),
            ]
            lines.append(f"| {backend} | {cls_name} | {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_tensor_markdown(
    meta: dict[str, Any],
    records: list[Record],
    backends: list[Loaded],
    skipped: dict[str, str],
) -> str:
    table = Table(records)
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    gbs = meta["gpu_theoretical_gbs"]
    theoretical = f" (theoretical {gbs:.0f} GB/s)" if gbs else ""
    out = [
        "# arrayobs benchmark",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`",
        f"- CPU: {meta['cpu']}, {meta['cores_usable']} usable cores, {meta['ram_gib']} GiB RAM",
        f"- GPU: {meta['gpu'] or 'none'}{theoretical}",
        f"- torch intra-op threads: {meta['torch_threads']}",
        f"- versions: {versions}; git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else ""),
        "",
        "Median time per call over repeats. Ratios above 1x (or floor/arrayobs near 100%)"
        " favour arrayobs; floor/arrayobs is the fraction of the measured read bandwidth"
        " that arrayobs reaches.",
    ]
    rows = sorted(
        {(r.dtype, r.n) for r in records if r.variant in VARIANTS},
        key=lambda k: (k[0] != "float32", k[1], k[0]),
    )
    for be in backends:
        out += ["", f"## {be.name} ({be.device})", "", backend_table(table, be.name, be.gpu, rows)]
    for name, why in skipped.items():
        out += ["", f"## {name}: skipped", "", why]
    out += [
        "",
        f"## Per-call overhead ({PER_CALL_N} float32 elements)",
        "",
        "torch.ao runs on the CPU next to CPU backends and on CUDA next to GPU backends; it has"
        " no `check` argument, so both calculate_qparams rows time its one calculate_qparams.",
        "",
        per_call_table(table, [b.name for b in backends]),
    ]
    if table.notes:
        out += ["", "## Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    return "\n".join(out) + "\n"


def _channel_key(r: Any) -> tuple[Any, ...]:
    return (r.observer, r.case, r.dtype, r.backend, r.variant)


def channel_markdown(
    meta: dict[str, Any], records: list[ChannelRecord], extra: dict[str, Any]
) -> str:
    """The per-channel block of ``results.md``, between the ``PC_BEGIN``/``PC_END`` markers."""
    table = Table(list(records), key=_channel_key)
    settings = extra["settings"]
    out = [
        PC_BEGIN,
        "## Per-channel observers",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`; {extra['elapsed_s']} s",
        f"- git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else "")
        + f"; torch intra-op threads: {meta['torch_threads']}",
        f"- median over {settings['repeats']} repeats of calls lasting about"
        f" {settings['target_s']} s each (one call where a call takes longer); 1-minute load"
        " average before and after the section (this process included): "
        + " and ".join(str(v) for v in extra["loadavg_1min_before_after"])
        + f"; CPU time of other processes during the section: {extra['other_processes_cpu_s']} s",
        "",
        "One forward (`obs(x)`) of an observer that has already seen `x`. torch.ao runs on a"
        " torch CPU tensor of the same values, timed once per shape and dtype right before the"
        " backends. Ratios are torch.ao's median over arrayobs's: above 1x favours arrayobs."
        " `fast off` is `fast=False` (the generic Array API path). Dask: 4 chunks along axis 0.",
    ]
    backends = list(dict.fromkeys(r.backend for r in records if r.variant != "torch_ao"))
    cases = [c for c in PC_CASES if any(r.case == c[0] for r in records)]
    shortfalls: dict[str, list[str]] = {"1x": [], "10x": []}
    compared: dict[str, int] = {"1x": 0, "10x": 0}
    for observer, dtypes in PC_OBSERVERS.items():
        out += [
            "",
            f"### {observer}",
            "",
            "| shape | ch_axis | n | dtype | backend | arrayobs ms | fast off ms | torch.ao ms "
            "| torch.ao/arrayobs | torch.ao/fast off |",
            "|" + "---|" * 10,
        ]
        for name, shape, ch_axis in cases:
            for dtype in dtypes:
                for backend in backends:
                    keys = {
                        v: (observer, name, dtype, backend, v) for v in ("arrayobs", "fast_off")
                    }
                    if not any(k in table.by_key for k in keys.values()):
                        continue
                    device = "cuda" if backend == "cupy" or ":" in backend else "cpu"
                    ref_key = (observer, name, dtype, f"torch.ao:{device}", "torch_ao")
                    ref, ours = table.seconds(ref_key), table.seconds(keys["arrayobs"])
                    n = math.prod(shape)
                    row = [
                        "x".join(map(str, shape)),
                        str(ch_axis),
                        f"{n:.3g}",
                        dtype,
                        backend,
                        table.cell(keys["arrayobs"], 1e3),
                        table.cell(keys["fast_off"], 1e3),
                        table.cell(ref_key, 1e3),
                        _ratio(ref, ours),
                        _ratio(ref, table.seconds(keys["fast_off"])),
                    ]
                    out.append("| " + " | ".join(row) + " |")
                    if ref is None or ours is None:
                        continue
                    where = f"{observer} {row[0]} {dtype} {backend}: {ref / ours:.2f}x"
                    compared["1x"] += 1
                    if ref < ours:
                        shortfalls["1x"].append(where)
                    if dtype != "float32" and observer == PerChannelMinMaxObserver.__name__:
                        compared["10x"] += 1
                        if ref < 10 * ours:
                            shortfalls["10x"].append(where)
    out += ["", "### Targets (arrayobs with the default fast=True)", ""]
    for target, what in (
        ("1x", "torch.ao/arrayobs >= 1x on every row"),
        ("10x", "torch.ao/arrayobs >= 10x for float16, bfloat16 and float64 (every shape)"),
    ):
        missed = shortfalls[target]
        verdict = "met" if not missed else f"unmet on {len(missed)}"
        out.append(f"- {what}: {verdict} of {compared[target]} rows measured")
        out += [f"  - {m}" for m in missed]
    if table.notes:
        out += ["", "### Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    out.append(PC_END)
    return "\n".join(out) + "\n"


def split_markdown(text: str) -> tuple[str, str]:
    """``results.md`` as (the per-tensor text, the per-channel block or "")."""
    start = text.find(PC_BEGIN)
    if start < 0:
        return text, ""
    stop = text.find(PC_END, start)
    stop = len(text) if stop < 0 else stop + len(PC_END)
    return text[:start] + text[stop:], text[start:stop]


def merge_markdown(path: Path, per_tensor: str | None, per_channel: str | None) -> None:
    """Write ``path`` with the sections given; those that are None are kept from the file."""
    old_head, old_block = split_markdown(path.read_text() if path.exists() else "")
    head = per_tensor if per_tensor is not None else old_head
    block = per_channel if per_channel is not None else old_block
    text = head.rstrip("\n") or "# arrayobs benchmark"
    if block:
        text += "\n\n" + block.rstrip("\n")
    path.write_text(text + "\n")


def merge_json(
    path: Path, per_tensor: dict[str, Any] | None, per_channel: dict[str, Any] | None
) -> None:
    """Write ``path`` with the sections given; those that are None are kept from the file:
    the per-tensor run is the top level, the per-channel one ``["per_channel"]``."""
    old: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data = (
        per_tensor
        if per_tensor is not None
        else {k: v for k, v in old.items() if k != "per_channel"}
    )
    channel = per_channel if per_channel is not None else old.get("per_channel")
    if channel is not None:
        data = {**data, "per_channel": channel}
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_plot(path: Path, records: list[Record], backends: list[Loaded]) -> bool:
    """GB/s of float32 input against n, one line per backend and variant; False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = dict(zip(VARIANTS, ("-", "--", ":", "-."), strict=True))
    # torch.ao sees the same host tensor next to every CPU backend: one line per device.
    ao_shown = {next((b.name for b in backends if b.gpu == gpu), "") for gpu in (False, True)}
    for i, be in enumerate(backends):
        for variant in VARIANTS:
            if variant == "torch_ao" and be.name not in ao_shown:
                continue
            points = sorted(
                (r.n, r.nbytes / r.median_s / 1e9)
                for r in records
                if (r.backend, r.dtype, r.variant) == (be.name, "float32", variant)
                and r.status == "ok"
                and r.median_s
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ao = variant == "torch_ao"
                label = (
                    f"torch.ao ({'cuda' if be.gpu else 'cpu'})" if ao else f"{be.name} {variant}"
                )
                color = "gray" if ao else f"C{i}"
                ax.plot(xs, ys, styles[variant], color=color, marker="o", ms=3, label=label)
    table = Table(records)
    sizes = sorted({r.n for r in records if r.dtype == "float32" and r.variant in VARIANTS})
    for device, line in (("cpu", "-"), ("gpu", "--")):
        floors = [(n, table.floor(device, "float32", n)) for n in sizes]
        points = [(n, 4 * n / s / 1e9) for n, s in floors if s]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, line, color="black", linewidth=2, label=f"{device} read floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (float32 elements)")
    ax.set_ylabel("GB/s of input read")
    ax.set_title("MinMax observe throughput, float32")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    known = [b.name for b in BACKENDS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 1e7, fewer repeats")
    parser.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        help=f"comma-separated, from {', '.join(known)} (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch.set_num_threads before measuring (default: torch's)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {', '.join(SECTIONS)} (default: %(default)s); the results"
        " of the others are kept from --out",
    )
    parser.add_argument(
        "--per-channel-only",
        action="store_true",
        help="the per-channel section alone (as --sections per-channel)",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in known]
    if unknown:
        parser.error(f"unknown backends {unknown}; known: {known}")
    sections = "per-channel" if args.per_channel_only else args.sections
    args.sections = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        parser.error(f"unknown or no sections {unknown}; known: {list(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # JAX on a GPU would otherwise take 75% of its memory, away from CuPy and torch.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    settings = QUICK if args.quick else FULL
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    backends, skipped = load_backends(args.backends)
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    common = {
        "quick": args.quick,
        "backends": {b.name: str(b.device) for b in backends},
        "skipped": skipped,
    }
    start = timeit.default_timer()
    records: list[Record] = []
    if "per-tensor" in args.sections:
        records = run_sizes(backends, settings) + run_per_call(backends, settings)
    middle = timeit.default_timer()
    channel_records: list[ChannelRecord] = []
    load_before, busy_before, own_before = _loadavg(), _cpu_busy_s(), time.process_time()
    if "per-channel" in args.sections:
        channel_records = run_per_channel(backends, args.quick)
    load_after, busy_after, own_after = _loadavg(), _cpu_busy_s(), time.process_time()
    others = None
    if busy_before is not None and busy_after is not None:
        others = round(max(0.0, busy_after - busy_before - (own_after - own_before)), 1)
    end = timeit.default_timer()
    meta = machine(any(b.gpu for b in backends))
    meta["torch_threads"] = torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    tensor_json = tensor_md = channel_json = channel_md = None
    if "per-tensor" in args.sections:
        extra = {
            "settings": dataclasses.asdict(settings),
            "elapsed_s": round(middle - start, 1),
            **common,
        }
        tensor_json = json_data(meta, records, extra)
        tensor_md = per_tensor_markdown(meta, records, backends, skipped)
        if not write_plot(args.out / "throughput.png", records, backends):
            print("matplotlib does not import: no throughput.png", file=sys.stderr)
    if "per-channel" in args.sections:
        pc_settings = PC_QUICK if args.quick else PC_FULL
        extra = {
            "settings": {"repeats": pc_settings.repeats, "target_s": pc_settings.target_s},
            "elapsed_s": round(end - middle, 1),
            "loadavg_1min_before_after": [load_before, load_after],
            "other_processes_cpu_s": others,
            **common,
        }
        channel_json = json_data(meta, channel_records, extra)
        channel_md = channel_markdown(meta, channel_records, extra)
    merge_json(args.out / "results.json", tensor_json, channel_json)
    merge_markdown(args.out / "results.md", tensor_md, channel_md)
    print(f"wrote {args.out} in {end - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
