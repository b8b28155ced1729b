"""The measuring loops: every case, backend and variant back to back (per tensor, per call
and per channel), logged to stderr as they finish."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from bench.cases import (
    ITEMSIZE,
    OTHER_DTYPES,
    PC_CASES,
    PC_FAST_OFF_KINDS,
    PC_FULL,
    PC_OBSERVERS,
    PC_QUICK,
    PC_QUICK_CASES,
    PER_CALL_N,
    PER_CALL_OPS,
    VARIANTS,
    ChannelRecord,
    Loaded,
    Record,
    Settings,
    Unavailable,
    _op_call,
    _torch_sync,
    agrees,
    channel_agrees,
    channel_array,
    channel_reference,
    host_array,
    naive_call,
    observer_call,
    to_backend,
    torch_ao_call,
    torch_tensor,
)
from bench.gpu import gpu_floor
from bench.timing import _affinity, cpu_floor, measured


# -- per tensor ------------------------------------------------------------------------------
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


# -- per-call overhead -----------------------------------------------------------------------
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


# -- per-channel -----------------------------------------------------------------------------
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
