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


def _chunk_axis(block: np.ndarray, ch_axis: int) -> tuple[np.ndarray, np.ndarray] | None:
    # One thread per chunk: Dask runs the chunks in parallel (a pool inside each
    # task cost 2 ms per forward at 1e7 float32 in 4 chunks).
    return None if block.size == 0 else _numpy.aminmax_axis(block, ch_axis, threads=False)


def _merge_axis(
    columns: list[list[tuple[np.ndarray, np.ndarray] | None]],
) -> tuple[np.ndarray, np.ndarray]:
    """Per channel chunk, the chunks' vectors combined; then the channel chunks in order."""
    los, his = [], []
    for column in columns:
        found = [p for p in column if p is not None]
        los.append(np.minimum.reduce(np.stack([p[0] for p in found])))
        his.append(np.maximum.reduce(np.stack([p[1] for p in found])))
    return np.concatenate(los), np.concatenate(his)


def aminmax_axis(x: Any, ch_axis: int) -> tuple[Any, Any]:
    """Per-channel (min, max) of a non-empty Dask array with NumPy chunks, as
    lazy (C,) float32 arrays: one task per chunk, then one that merges the
    vectors of each run of channels."""
    import dask.array as da

    blocks = x.to_delayed()  # type: ignore[attr-defined]
    columns: list[list[Any]] = [[] for _ in range(blocks.shape[ch_axis])]
    for index in np.ndindex(*blocks.shape):
        task = dask.delayed(_chunk_axis)(blocks[index], ch_axis)  # type: ignore[attr-defined]
        columns[index[ch_axis]].append(task)
    merged = dask.delayed(_merge_axis, nout=2)(columns)  # type: ignore[attr-defined]
    c = x.shape[ch_axis]
    return (
        da.from_delayed(merged[0], (c,), dtype=np.float32),  # type: ignore[no-untyped-call]
        da.from_delayed(merged[1], (c,), dtype=np.float32),  # type: ignore[no-untyped-call]
    )
