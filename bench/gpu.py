"""The GPU's read-bandwidth floor (``cupy.max`` and ``torch.sum`` on the device) and its
theoretical bandwidth."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable

from bench.cases import ITEMSIZE, Record, Settings, Unavailable
from bench.timing import measured

GPU_FLOORS = ("floor_gpu_cupy_max", "floor_gpu_torch_sum")


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
