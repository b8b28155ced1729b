"""Dask: each chunk's (min, max) from the NumPy fast path, in one graph and one compute.

``dask.compute(x.min(), x.max())`` builds two reduction trees over the
chunks; here one task per chunk returns both values, and only those pairs
travel to the final task, so a chunk is read once, on its worker.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from arrayobs._fastpaths import _numpy


def numpy_chunks(x: Any) -> bool:
    """Whether ``x``'s chunks are NumPy arrays (not CuPy or others)."""
    return isinstance(getattr(x, "_meta", None), np.ndarray)


def _chunk(block: np.ndarray) -> tuple[np.float32, np.float32] | None:
    return None if block.size == 0 else _numpy.minmax_scalars(block)


def _merge(pairs: list[tuple[np.float32, np.float32] | None]) -> tuple[np.float32, np.float32]:
    found = [p for p in pairs if p is not None]
    # minimum/maximum.reduce propagate NaN, as the generic path.
    return (
        np.minimum.reduce(np.asarray([p[0] for p in found], np.float32)),
        np.maximum.reduce(np.asarray([p[1] for p in found], np.float32)),
    )


def minmax_scalars(x: Any) -> tuple[np.float32, np.float32]:
    """(min, max) of a non-empty Dask array with NumPy chunks, computed now."""
    pairs = [dask.delayed(_chunk)(b) for b in x.to_delayed().ravel()]  # type: ignore[attr-defined]
    (result,) = dask.compute(dask.delayed(_merge)(pairs))  # type: ignore[attr-defined, no-untyped-call]
    return result  # type: ignore[no-any-return]
