"""torch's ``HistogramObserver``: a running float32 histogram and an L2 search."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from types import ModuleType
from typing import Any, cast

import numpy as np

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs._compat import without_graph
from arrayobs._config import FLOAT32_EPS, boolean
from arrayobs._core import _hist_range as hist_range
from arrayobs._core import _histogram as hist
from arrayobs._core._dtypes import FLOAT_NAMES
from arrayobs._observers import _state_dict
from arrayobs._observers._base import Observer, unobserved_qparams


class HistogramObserver(Observer):
    """A running histogram of every array observed, and the qparams an L2
    search over it implies.

    The same arguments, state (``histogram``, ``min_val``, ``max_val``),
    qparams and state_dict as ``torch.ao.quantization.HistogramObserver`` in
    torch 2.13.0, bit for bit on the CPU (docs/exactness.md):
    each batch is binned by torch's ``histc`` over the union of the ranges, the
    old histogram re-binned into it as torch re-bins it, and
    :meth:`calculate_qparams` runs torch's search, its walk over candidate
    ranges and their errors, a block of candidates at a time, on the host.

    Parameters
    ----------
    bins : int
        Number of float32 bins.
    dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs, eps
        As :class:`MinMaxObserver` (per-tensor qschemes only).
    is_dynamic : bool
        Refused, as torch refuses it (NotImplementedError).
    xp, device, fast
        As :class:`MinMaxObserver`.
    process_group : torch.distributed.ProcessGroup, optional
        Every rank observes its shard of each batch (maybe empty; all ranks
        call forward in step) and gets the state one process would have after
        the whole batch, bit for bit: one collective for the batch's range
        (float64 maxima, exact), each rank's histc over it, one collective
        summing the counts (float64, exact; each rank's count per bin must
        stay below 2**24, as in one process). torch tensors only.

    Notes
    -----
    forward reads the batch's min and max back (torch branches on them too);
    calculate_qparams reads the state back once and runs the whole search on
    the host (torch reads once per step of its walk).
    Input must be floating (float16, bfloat16, float32, float64); a NaN
    raises ValueError (torch's histc raises RuntimeError) and changes nothing.
    Infinite values are dropped with torch's warning. Under ``jax.jit``, or
    lazily on Dask, use the functional core instead
    (:func:`arrayobs.functional.histogram_update` and ``histogram_qparams``:
    the same numbers, nothing read back under ``jax.jit``).

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import HistogramObserver
    >>> obs = HistogramObserver(bins=256)
    >>> _ = obs(np.linspace(-1.0, 3.0, 1000, dtype=np.float32))
    >>> scale, zero_point = obs.calculate_qparams()
    >>> float(scale[0]), int(zero_point[0])
    (0.015625, 64)
    """

    # torch raises the symmetric quint8 reduce_range refusal only in its MinMax observers.
    _scope: Mapping[str, bool] = {"histogram": True}

    def __init__(
        self,
        bins: int = 2048,
        dtype: Any = "quint8",
        qscheme: Any = "per_tensor_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        factory_kwargs: Mapping[str, Any] | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        self.bins = arguments.checked_bins(bins)
        if boolean(is_dynamic, "is_dynamic"):
            msg = "HistogramObserver doesn't support dynamic quantization (as in torch)"
            raise NotImplementedError(msg)
        super().__init__(
            dtype,
            qscheme,
            reduce_range,
            quant_min,
            quant_max,
            factory_kwargs,
            eps,
            is_dynamic,
            xp=xp,
            device=device,
            fast=fast,
            process_group=process_group,
        )
        self.dst_nbins = hist.dst_nbins(self.dtype)
        self.upsample_rate = hist.UPSAMPLE

    _state_type = hist.HistogramState

    def _fresh_state(self, xp: ModuleType, device: Any) -> Any:
        return hist.init_histogram(self.bins, xp=xp, device=device)

    @property
    def _hstate(self) -> hist.HistogramState:
        return cast(hist.HistogramState, self._state)

    @property
    def histogram(self) -> Any:
        """The counts: float32, shape (bins,), in the observer's namespace."""
        return self._hstate.histogram

    # -- observing -------------------------------------------------------------
    def forward(self, x_orig: Any) -> Any:
        """Update the histogram with ``x_orig`` and return it; see the class's notes.

        An empty batch changes nothing; on error the observer is unchanged;
        each call's update is atomic, as :meth:`MinMaxObserver.forward`.
        """
        return self._forward_binding(x_orig)

    __call__ = forward

    def _step(self, x: Any, *, locked: bool) -> None:
        backend, device = self._bind_input(x)
        if self._group is None and not arguments.require_size(backend.size(x)):
            return  # as torch: an empty batch changes nothing and is not checked
        if locked:
            self._observe(backend, device, x)
            return
        with self._lock:
            self._observe(backend, device, x)

    def _observe(self, backend: _backends.Backend, device: Any, x: Any) -> None:
        """torch's forward (the lock is held); raises before changing anything."""
        x = without_graph(x)  # reading the range back must not warn about autograd, as torch's
        xp = backend.xp
        name = str(x.dtype).rsplit(".", 1)[-1]
        if name not in FLOAT_NAMES:
            msg = (
                f"HistogramObserver observes float16, bfloat16, float32 or float64 arrays, "
                f"got {x.dtype} (torch's histc raises NotImplementedError)"
            )
            raise TypeError(msg)
        state = backend.to_work(self._state_for(xp, device))
        cur = (float(state.min_val), float(state.max_val))
        # The steady state (the batch inside the state's range) in one pass, where the
        # backend has one; otherwise, or where the range moves, torch's forward.
        batch = None if self._group is not None else backend.steady_histc(x, self.bins, *cur)
        if batch is not None:
            new = hist.HistogramState(state.histogram + batch, state.min_val, state.max_val)
        else:
            found = self._range(backend, x, device)
            if found is None:
                return
            lo, hi, finite = found
            count = functools.partial(backend.histc, finite=finite)
            if self._group is not None:
                count = functools.partial(_summed, count, backend, self._group)
            new = hist.update(state, x, lo, hi, xp=backend.work_xp, count=count, cur=cur)
        self._xp, self._device, self._seen_type = xp, device, type(x)
        self._backend = backend
        self._set_state(cast(Any, backend.from_work(new)), observed=True)

    def _range(
        self, backend: _backends.Backend, x: Any, device: Any
    ) -> tuple[float, float, bool] | None:
        """torch's range of the batch before its histc (:mod:`arrayobs._core._hist_range`),
        and whether this shard's values are all finite. With a process group, the
        whole group's batch, every rank's shard (maybe empty) summarised in one
        collective (float64 maxima, exact), so each rank then bins its shard over
        the same range and one more collective sums the counts."""
        raw = backend.value_range(x) if backend.size(x) else None
        summary, finite = hist_range.shard_summary(
            raw,
            lambda: hist_range.finite_range(x, xp=backend.xp),
            raise_nan=self._group is None,
        )
        if self._group is not None:
            summary = backend.allreduce_max(summary, device, self._group)
        found = hist_range.batch_range(summary, stacklevel=7)
        return None if found is None else (*found, finite)

    # -- qparams ---------------------------------------------------------------
    def calculate_qparams(self, *, check: bool = True) -> tuple[Any, Any]:
        """``(scale, zero_point)`` of torch's L2 search, each of shape (1,).

        Before any observation this warns, as torch does, and returns scale
        [1.0] with an int64 zero point [0]. ``check`` is accepted for the
        common signature; the search's range is never crossed.
        """
        with self._lock:
            backend, config, device = self._backend, self._config, self._device
            state, observed = self._hstate, self._observed
        xp = backend.xp
        if not observed:
            return unobserved_qparams(xp, device)
        return _backends.searched_qparams(state, config, backend, device)

    def merge(self, other: Observer) -> None:
        """Fold in the histogram of ``other`` (same class, bins, configuration,
        namespace and device): both re-binned into the union of their ranges
        as torch's forward re-bins, then added in float32.

        Exact (the float32 sum of the counts, in either order) where both
        ranges already are the union, e.g. observers that saw the same first
        batch, or whose ranges were synchronised. Otherwise each re-binning
        spreads counts over the new bins as torch's forward does when a batch
        widens the range: a sound histogram, but not the one a single observer
        of every batch would hold (that one depends on the order the ranges
        grew in). For results equal to one process's, observe with
        ``process_group=`` instead.
        """
        super().merge(other)

    def _layout(self) -> Any:
        return self.bins

    def _merged(self, other: Any, xp: ModuleType) -> Any:
        if not self._observed:
            return other
        backend = self._backend
        mine, theirs = backend.to_work(self._hstate), backend.to_work(other)
        return backend.from_work(hist.merge(mine, theirs, xp=backend.work_xp))

    # -- state_dict --------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """``{"eps", "histogram", "min_val", "max_val"}``, torch's keys and order."""
        xp = self._backend.xp
        state = self._hstate
        out: OrderedDict[str, Any] = OrderedDict(
            eps=self.eps,
            histogram=xp.asarray(state.histogram, copy=True),
            min_val=xp.asarray(state.min_val, copy=True),
            max_val=xp.asarray(state.max_val, copy=True),
        )
        out._metadata = {"": {"version": _state_dict.VERSION}}  # type: ignore[attr-defined]
        return out

    def _loaded(self, given: Mapping[str, Any], key: str) -> np.ndarray:
        """The histogram: ``bins`` values (torch refuses other sizes at
        calculate_qparams; here at load)."""
        if key != "histogram":
            return super()._loaded(given, key)
        counts = _state_dict.host_array(given, key)
        if counts.shape != (self.bins,):
            msg = f"state_dict['histogram'] must have shape ({self.bins},), got {counts.shape}"
            raise ValueError(msg)
        return counts

    def extra_repr(self) -> str:
        return f"bins={self.bins}, {super().extra_repr()}"


def _summed(count: Any, backend: _backends.Backend, group: Any, x: Any, *args: Any) -> Any:
    """``count(x, *args)`` (a shard's histc) summed over the process group."""
    return backend.allreduce_counts(count(x, *args), group)
