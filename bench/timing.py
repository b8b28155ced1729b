"""Timing a callable (warm-up, ``timeit`` repeats, median and minimum) and the CPU's
read-bandwidth floor on a case's bytes."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.cases import OBSERVER_VARIANTS, Record, Settings, Timing, Unavailable

CPU_FLOORS = ("floor_all_cores", "floor_one_core")


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


def interleaved(
    calls: dict[str, Callable[[], object]],
    repeats: int,
    target_s: float,
    *,
    once_over_s: float | None = None,
) -> dict[str, Timing | Exception]:
    """Time several callables side by side: each warmed up and given a number of calls
    lasting about ``target_s``, then ``repeats`` rounds that each time every callable in
    turn, so that a noisy minute of a shared machine falls on all of them. A callable
    that raises gives its exception instead of a timing. With ``once_over_s``, a
    callable whose first call takes longer is not warmed up further: that call is its
    first round, and each round calls it once."""
    numbers: dict[str, int] = {}
    done: dict[str, Timing | Exception] = {}
    per_call: dict[str, list[float]] = {}
    for name, fn in calls.items():
        try:
            once = timeit.Timer(fn).timeit(1)
            slow = once_over_s is not None and once > once_over_s
            if not slow:
                fn()
                once = timeit.Timer(fn).timeit(1)
        except Exception as exc:  # any library's failure is a result, not a crash
            done[name] = exc
            continue
        numbers[name] = 1 if slow else max(1, min(10**6, math.ceil(target_s / max(once, 1e-9))))
        per_call[name] = [once] if slow else []
    for _ in range(repeats):
        for name, number in numbers.items():
            if len(per_call[name]) < repeats:
                per_call[name].append(timeit.Timer(calls[name]).timeit(number) / number)
    for name, times in per_call.items():
        done[name] = Timing(statistics.median(times), min(times), repeats, numbers[name])
    return {name: done[name] for name in calls}


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


# -- bandwidth floors (CPU) ------------------------------------------------------------------
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


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))
