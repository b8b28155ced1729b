"""Dask: each chunk's (min, max) from the NumPy fast path, in one graph and one compute.

HistogramObserver: the batch's range in one compute, then each chunk's histc
on its worker and their sum in a second; the batch is never gathered whole.

``dask.compute(x.min(), x.max())`` builds two reduction trees over the
chunks; here one task per chunk returns both values, and only those pairs
travel to the final task, so a chunk is read once, on its worker.

The observers compute each batch: the (min, max) (and the state, where it is
not known on the host) in one graph and one compute, then the few scalar
operations of the rule on the host, so the state never holds a growing graph.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from arrayobs import _core as core
from arrayobs._backends import _host as host
from arrayobs._backends import _numpy
from arrayobs._backends._generic import Backend
from arrayobs._compat import resolve_namespace
from arrayobs._config import QuantConfig
from arrayobs._core import _histogram as histogram

_NUMPY = resolve_namespace(np)


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


def compute(arrays: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """Dask arrays computed in one graph, as NumPy arrays (FP warnings off, as in the core)."""
    with np.errstate(all="ignore"):
        return tuple(np.asarray(a) for a in dask.compute(*arrays))  # type: ignore[attr-defined, no-untyped-call]


# -- HistogramObserver -------------------------------------------------------------
_EXACT_COUNTS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})


def _chunk_counts(block: np.ndarray, bins: int, lo: float, hi: float, finite: bool) -> Any:
    """One chunk's histc as float64 counts (whole numbers: exact to add)."""
    counts = _numpy.histc(block, bins, lo, hi) if finite else None
    if counts is None:
        counts = histogram.histc(block, bins, lo, hi, xp=_NUMPY)
    return np.asarray(counts, dtype=np.float64)


def _add_all(parts: list[np.ndarray]) -> np.ndarray:
    return np.add.reduce(np.stack(parts), axis=0)  # type: ignore[no-any-return]


def histc(x: Any, bins: int, lo: float, hi: float, finite: bool) -> np.ndarray:
    """histc of a Dask array with NumPy chunks, chunk by chunk: each chunk's
    counts on its worker, summed exactly (float64) in one task; float32 counts
    on the host."""
    blocks = x.to_delayed().ravel()
    parts = [dask.delayed(_chunk_counts)(b, bins, lo, hi, finite) for b in blocks]  # type: ignore[attr-defined]
    (total,) = dask.compute(dask.delayed(_add_all)(parts))  # type: ignore[attr-defined, no-untyped-call]
    return total.astype(np.float32)  # type: ignore[no-any-return]


class DaskBackend(Backend):
    """One compute per batch; the rules on the host, over the state's host values."""

    name = "dask"

    def __init__(self, xp: Any, fast: bool = True) -> None:
        super().__init__(xp, fast)
        # A 0-d state this backend made, and its values as float32 scalars.
        self._known: tuple[core.MinMaxState, tuple[Any, Any]] | None = None

    # A small state's update (the histogram's) runs on the host, in NumPy: this
    # backend's histc counts the lazy batch chunk by chunk and returns host counts.
    work_xp = _NUMPY

    def to_work(self, state: Any) -> Any:
        return type(state)(*(np.asarray(v) for v in compute(tuple(state))))

    def from_work(self, state: Any) -> Any:
        return type(state)(*(self.xp.asarray(np.asarray(v)) for v in state))

    def _host_of(self, state: core.MinMaxState) -> tuple[Any, Any]:
        """A 0-d state's values as float32 scalars: remembered from the update
        that made it, else computed (a compute costs about a millisecond)."""
        known = self._known
        if known is not None and known[0] is state:
            return known[1]
        m, big_m = compute(tuple(state))
        host = (m[()], big_m[()])
        self._known = (state, host)
        return host

    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        if self.fast and ch_axis is not None and numpy_chunks(x):
            return aminmax_axis(x, ch_axis)
        return super().aminmax(x, ch_axis)

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        if self.fast and ch_axis is None and numpy_chunks(x):
            return minmax_scalars(x)  # computed now: float32 scalars on the host
        return self.aminmax(x, ch_axis)  # lazy: computed with the state in fold

    def value_range(self, x: Any) -> tuple[float, float]:
        if self.fast and numpy_chunks(x) and x.dtype == np.float32:
            return tuple(float(v) for v in minmax_scalars(x))  # type: ignore[return-value]
        lo, hi = compute((self.xp.min(x), self.xp.max(x)))  # one graph: x's dtype's values
        return float(lo), float(hi)

    def histc(self, x: Any, bins: int, lo: float, hi: float, *, finite: bool = False) -> Any:
        """Host (NumPy) float32 counts: the HistogramObserver's state is updated
        on the host. float16 and bfloat16 batches are computed whole (their
        counts round per count, in their dtype, as torch's per thread)."""
        if numpy_chunks(x) and x.dtype in _EXACT_COUNTS:
            return histc(x, bins, lo, hi, finite and self.fast)
        (host,) = compute((x,))
        return histogram.histc(host, bins, lo, hi, xp=_NUMPY)

    def materialize(self, *values: Any) -> tuple[Any, ...]:
        # One compute for all of them: they usually share the batch's chunks.
        return tuple(self.xp.asarray(v) for v in compute(values))

    def whole_rows(self, a: Any) -> Any:
        # the cascade slices its rows column by column: with the columns of a
        # row in one chunk, each slice is one task per row chunk, not per chunk
        return a.rechunk({1: -1})

    # The functional histogram update stays lazy: both branches in the graph, one
    # chosen when it computes; the re-binning a host task on the computed state.
    def cond(self, pred: Any, then: Any, otherwise: Any) -> Any:
        return self.xp.where(pred, then(), otherwise())

    def rebin_upsampled(self, counts: Any, assigned: Any) -> Any:
        import dask.array as da
        from dask.delayed import delayed

        task = delayed(histogram.bincount_upsampled)(counts, assigned)
        return da.from_delayed(task, shape=counts.shape, dtype=np.float32)  # type: ignore[no-untyped-call]

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        xp = self.xp
        if isinstance(batch[0], np.floating):
            new = host.combine(rule, *self._host_of(state), *batch)
            new_state = core.MinMaxState(*(xp.asarray(np.asarray(v)) for v in new))
            self._known = (new_state, new)
            return new_state
        # The state and the batch's (min, max) in one compute, the rule on NumPy.
        m, big_m, lo, hi = compute((*state, *batch))
        new = rule.combine(core.MinMaxState(m, big_m), lo, hi, xp=_NUMPY, fresh=fresh)
        return core.MinMaxState(*(xp.asarray(v) for v in new))

    def qparams(
        self, state: core.MinMaxState, config: QuantConfig, check: bool = False
    ) -> tuple[Any, Any] | None:
        if self.fast and state.min_val.ndim == 0:
            pair = host.host_qparams(*self._host_of(state), config, check)
        else:
            # One compute: the check and the qparams on the state's host values.
            values = core.MinMaxState(*compute(tuple(state)))
            crossed = check and bool(core.crossed(values, xp=_NUMPY))
            pair = None if crossed else core.calculate_qparams(values, config, xp=_NUMPY)
        if pair is None:
            return None
        return tuple(self.xp.asarray(v) for v in pair)  # type: ignore[return-value]


BACKEND = DaskBackend
