"""ONNX Runtime 1.31.1's ``HistogramCollector`` for one tensor, and its functional core."""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Mapping
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from arrayobs import _backends
from arrayobs._backends import _calib_fast
from arrayobs._compat import (
    array_namespace,
    backend_name,
    device_of,
    has_dtype,
    is_array,
    resolve_namespace,
    to_host,
)
from arrayobs._core import _calib_nphist as nphist
from arrayobs._observers._arguments import process_group_for, refuse_pickling_group
from arrayobs._observers._shell import Bound
from arrayobs._observers._state_dict import IncompatibleKeys, check_keys

METHODS = ("entropy", "percentile", "distribution")
State = nphist.ValueState | nphist.AbsState


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _absolute(method: str, symmetric: bool) -> bool:
    """Whether ORT collects magnitudes (``collect_absolute_value``) for these settings."""
    if method not in METHODS:
        msg = (
            f"Only 'entropy', 'percentile' or 'distribution' methods are supported, got {method!r}"
        )
        raise ValueError(msg)
    return method == "percentile" and bool(symmetric)


# -- the functional core ----------------------------------------------------------
def histogram_init(
    method: str = "entropy",
    symmetric: bool = False,
    num_bins: int = 128,
    *,
    channels: int | None = None,
    capacity: int | None = None,
    xp: Any,
    device: Any = None,
) -> State:
    """The never-collected state of ORT's histogram for ``method``/``symmetric``.

    ``collect_value`` (entropy, distribution, asymmetric percentile) gives a
    :class:`~arrayobs._core._calib_nphist.ValueState`, ``collect_absolute_value``
    (symmetric percentile) an :class:`~arrayobs._core._calib_nphist.AbsState`.
    ``channels``: rows of a per-channel state (None: per tensor). ``capacity``:
    the static number of bins the state holds (default ``16 * num_bins``); a
    jitted update that needs more sets ``overflow`` and
    :func:`histogram_result` refuses, naming the bins needed. Needs float64
    and int64 on ``device`` (JAX enables them locally).
    """
    num_bins = _positive(num_bins, "num_bins")
    cap = nphist.default_capacity(num_bins) if capacity is None else _positive(capacity, "capacity")
    if cap < num_bins:
        msg = f"capacity ({cap}) must be at least num_bins ({num_bins})"
        raise ValueError(msg)
    if channels is not None:
        channels = _positive(channels, "channels")
    xp = resolve_namespace(xp)
    init = nphist.abs_init if _absolute(method, symmetric) else nphist.value_init
    with _backends.shared(xp).float64_scope():
        if not (has_dtype(xp, device, "float64") and has_dtype(xp, device, "int64")):
            msg = (
                f"HistogramCollector's state holds float64 edges and int64 counts; "
                f"{backend_name(xp)} has no float64 or int64 on device {device!r}"
            )
            raise TypeError(msg)
        return init(num_bins, channels=channels, capacity=cap, xp=xp, device=device)


def _check_dtype(x: Any, absolute: bool, xp: ModuleType) -> None:
    if x.dtype == xp.float32:
        return
    if absolute and x.dtype == xp.float64:
        # ORT's own refusal (collect_absolute_value asserts).
        msg = "only float32 or float16 is supported, every constant must be explicitly typed"
        raise AssertionError(msg)
    msg = (
        f"HistogramCollector collects float32 arrays, got {x.dtype} (ORT also takes float16, "
        "and float64 on the value path: arrayobs does not)"
    )
    raise TypeError(msg)


def histogram_update(
    state: State, x: Any, *, channel_axis: int | None = None, xp: Any = None
) -> State:
    """One ORT ``collect({name: [x]})`` for one tensor (pure: runs under ``jax.jit``
    and lazily on Dask). Several batches of one ``collect`` call: pass their
    concatenation (``np.asarray(list).flatten()`` is what ORT bins).

    ``channel_axis``: the state's rows are ``np.take(x, i, axis=channel_axis)``.
    A refusal of the reference (a NaN-only or infinite batch, an empty later
    batch on the symmetric path) sets the state's sticky ``error`` and leaves it
    as it was; :func:`histogram_result` raises it.

    Under ``jax.jit``, call the jitted function inside ``jax.enable_x64(True)``
    (the state holds int64 counts and float64 edges, which a jitted call made
    without x64 would cut to 32 bits on entry); eagerly JAX needs nothing.
    """
    xp = array_namespace(state.counts) if xp is None else resolve_namespace(xp)
    absolute = isinstance(state, nphist.AbsState)
    _check_dtype(x, absolute, xp)
    rows = nphist.rows(x, channel_axis, xp=xp)
    if rows.shape[0] != state.counts.shape[0]:
        msg = (
            f"x has {rows.shape[0]} channels along axis {channel_axis}; "
            f"the state has {state.counts.shape[0]}"
        )
        raise ValueError(msg)
    return _step(state, rows, xp)


def _step(state: State, rows: Any, xp: ModuleType, started: bool | None = None) -> State:
    # host arrays (NumPy, CPU torch): the same state in a few passes, where it applies
    fast = (
        _calib_fast.ort_abs_update(state, rows)
        if isinstance(state, nphist.AbsState)
        else _calib_fast.value_update(state, rows)
    )
    if fast is not None:
        return fast  # type: ignore[no-any-return]
    with _backends.shared(xp).float64_scope():
        if isinstance(state, nphist.AbsState):
            return nphist.ort_abs_update(state, rows, xp=xp, started=started)
        return nphist.value_update(state, rows, xp=xp)


def histogram_result(state: State) -> list[tuple[Any, ...]]:
    """ORT's per-tensor histogram tuple for each row, host NumPy (one row per
    tensor): ``(hist, hist_edges, min, max, threshold)`` on the value path,
    ``(hist, hist_edges, min, max)`` on the symmetric percentile path, as in
    ORT's ``histogram_dict``. Raises the reference's refusal recorded in the
    state, or OverflowError naming the capacity needed."""
    if isinstance(state, nphist.AbsState):
        return nphist.abs_result(state, cast_back=True)
    return nphist.value_result(state)


# -- the searches (helper H3's module, imported when first needed) ---------------------
class TensorData(NamedTuple):
    """ORT's ``TensorData`` of the distribution method, field for field."""

    avg: Any
    std: Any
    hist: Any
    hist_edges: Any
    lowest: Any
    highest: Any

    @property
    def range_value(self) -> tuple[Any, Any]:
        return (self.lowest, self.highest)

    @property
    def avg_std(self) -> tuple[Any, Any]:
        return (self.avg, self.std)


def entropy_threshold(histogram: tuple[Any, ...], num_quantized_bins: int) -> Any:
    return _search().entropy_threshold(histogram, num_quantized_bins)


def percentile_thresholds(histogram: tuple[Any, ...], percentile: float, symmetric: bool) -> Any:
    return _search().percentile_thresholds(histogram, percentile, symmetric)


def distribution(histogram: tuple[Any, ...], num_bins: int, scenario: str) -> Any:
    return _search().distribution(histogram, num_bins, scenario)


def _search() -> ModuleType:
    return importlib.import_module("arrayobs._core._calib_ort_search")


# -- the class ---------------------------------------------------------------------
class HistogramCollector(Bound):
    """ONNX Runtime 1.31.1's ``HistogramCollector`` for one tensor, bit for bit.

    The histogram after every :meth:`collect` (counts, edges and their dtype,
    min, max, threshold) is the one ORT's
    ``HistogramCollector(method, symmetric, num_bins, num_quantized_bins,
    percentile, scenario)`` holds after ``collect({name: arrays})``: NumPy's
    histogram and ``arange`` rules reproduced exactly
    (:mod:`arrayobs._core._calib_nphist`), on any supported array library.

    Parameters
    ----------
    method, symmetric, num_bins, num_quantized_bins, percentile, scenario
        As ORT. ``method`` outside entropy/percentile/distribution raises
        ValueError here (ORT raises it at collect).
    channel_axis : int, optional
        arrayobs's per-channel extension: channel ``i`` is, bit for bit, ORT run
        on ``np.take(x, i, axis=channel_axis)`` of every array (one ORT collect
        per :meth:`collect`); results are per channel lists.
    capacity : int, optional
        The bins the state holds before it re-pads (default ``16 * num_bins``).
        The class re-pads exactly when the range grows past it, so it never
        refuses; the functional core keeps it fixed.
    process_group : torch.distributed.ProcessGroup, optional
        Data-parallel collection (torch tensors): after each :meth:`collect`
        every rank holds the state one collector gets from ORT's collect of
        the ranks' arrays flattened and concatenated in rank order (per
        channel, each channel's slices so concatenated). A few values per row
        and the new counts travel (:mod:`arrayobs._backends._calib_group`).
    xp, device
        Bind to ``xp`` now, on ``device`` (default: ``xp``'s default device, as
        the observers bind); without ``xp`` (and then without ``device``), to the
        first array's namespace and device.

    Notes
    -----
    Input is float32 (ORT also takes float16, and float64 on its value path:
    arrayobs refuses them with TypeError). The reference's refusals keep its
    exception types: ValueError for a NaN-only or infinite batch, for a NaN or
    inf in the first batch of the symmetric path, and for an empty later batch
    there; AssertionError for float64 on the symmetric path. A refused call
    leaves the collector as it was. ``collect`` reads two flags back.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs.calib.ort import HistogramCollector
    >>> c = HistogramCollector("entropy", False, 8, 4, 99.9)
    >>> _ = c(np.array([-1.0, 0.5, 2.0], dtype=np.float32))
    >>> c.histogram[0].tolist(), float(c.histogram[4])
    ([0, 0, 1, 0, 0, 1, 0, 1], 2.0)
    """

    _SHARED = ("_xp", "_device", "_group")
    _group: Any = None  # a collector pickled before process_group existed has none

    def __init__(
        self,
        method: str,
        symmetric: bool,
        num_bins: int,
        num_quantized_bins: int,
        percentile: float,
        scenario: str = "same",
        *,
        channel_axis: int | None = None,
        capacity: int | None = None,
        xp: Any = None,
        device: Any = None,
        process_group: Any = None,
    ) -> None:
        self._absolute = _absolute(method, symmetric)
        self.method, self.symmetric = method, symmetric
        self.num_bins = _positive(num_bins, "num_bins")
        self.num_quantized_bins = num_quantized_bins
        self.percentile, self.scenario = percentile, scenario
        if channel_axis is not None and (
            isinstance(channel_axis, bool) or not isinstance(channel_axis, int)
        ):
            msg = f"channel_axis must be an int or None, got {channel_axis!r}"
            raise TypeError(msg)
        self.channel_axis = channel_axis
        cap = nphist.default_capacity(self.num_bins) if capacity is None else capacity
        self.capacity = _positive(cap, "capacity")
        if self.capacity < self.num_bins:
            msg = f"capacity ({self.capacity}) must be at least num_bins ({self.num_bins})"
            raise ValueError(msg)
        self._bind_now(xp, device)
        supported = self._xp is None or _backends.backend_class(self._xp).supports_process_group
        self._group = process_group_for(process_group, self._xp, supported)
        self._state: State | None = None
        self._new_lock()

    # -- collecting --------------------------------------------------------------
    def _rows(self, arrays: Any) -> Any:
        """The arrays of one ORT collect as (C, M) rows of the bound namespace."""
        batch = list(arrays) if isinstance(arrays, list | tuple) else [arrays]
        if not batch:
            msg = "collect needs at least one array"
            raise ValueError(msg)
        for a in batch:
            if not is_array(a):
                msg = f"HistogramCollector collects arrays, got {type(a).__name__}"
                raise TypeError(msg)
        xp = array_namespace(batch[0])
        device = device_of(batch[0])
        for a in batch:
            if array_namespace(a) is not xp or device_of(a) != device:
                msg = "the arrays of one collect must share one namespace and device"
                raise TypeError(msg)
        if self._xp is not None:
            # bound by the constructor's xp alone: any device of it, until the first collect
            own = device if self._device is None else self._device
            self._check_binding(xp, own if self._state is None else self._device)
            check = self._device is not None
            if check and device != self._device:
                self._check_binding(xp, device)
        for a in batch:
            if a.shape != batch[0].shape:
                # np.asarray(list) of ragged arrays, in ORT
                msg = (
                    f"setting an array element with a sequence: arrays of shapes "
                    f"{batch[0].shape} and {a.shape} in one collect"
                )
                raise ValueError(msg)
            _check_dtype(a, self._absolute, xp)
        if self.channel_axis is not None:
            ndim = len(batch[0].shape)
            if not -ndim <= self.channel_axis < ndim:
                msg = f"channel_axis {self.channel_axis} is out of range for {ndim}-d arrays"
                raise ValueError(msg)
        parts = [nphist.rows(a, self.channel_axis, xp=xp) for a in batch]
        return xp, device, parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)

    def collect(self, arrays: Any) -> None:
        """One ORT ``collect({name: arrays})`` for this tensor: ``arrays`` is one
        array or a list of same-shape arrays (ORT stacks and flattens them)."""
        if self._group is not None:
            self._collect_group(arrays)
            return
        xp, device, rows = self._rows(arrays)
        with self._lock:
            self._state = self._advance(self._state, rows, xp, device)
            self._xp, self._device = xp, device

    def _collect_group(self, arrays: Any) -> None:
        from arrayobs._backends import _calib_group

        bound: list[tuple[Any, Any]] = []

        def local() -> Any:
            xp, device, rows = self._rows(arrays)
            bound.append((xp, device))
            return rows

        with self._lock:
            new = _calib_group.histogram(
                self._group, local, lambda s, r: self._advance(s, r, *bound[0]), self._state
            )
            self._state, (self._xp, self._device) = new, bound[0]

    def _advance(self, state: State | None, rows: Any, xp: ModuleType, device: Any) -> State:
        """The state after one collect of (C, M) ``rows`` from ``state`` (None:
        never collected), re-padded as needed; raises the reference's refusals."""
        backend = _backends.shared(xp)
        if backend.work_xp is not xp:  # Dask: the eager class computes each collect
            rows = np.asarray(rows)
        work = backend.work_xp
        started = state is not None
        if state is None:
            state = histogram_init(
                self.method,
                self.symmetric,
                self.num_bins,
                channels=None if self.channel_axis is None else rows.shape[0],
                capacity=self.capacity,
                xp=work,
                device=None if work is not xp else device,
            )
        elif backend.work_xp is not xp:
            state = type(state)(*(np.asarray(v) for v in state))
        if state.counts.shape[0] != rows.shape[0]:
            msg = f"this collector has {state.counts.shape[0]} channels, got {rows.shape[0]}"
            raise ValueError(msg)
        new = _step(state, rows, work, started)
        if bool(to_host(new.overflow)):
            need = int(to_host(new.need))
            with backend.float64_scope():
                state = nphist.repad(state, max(2 * state.counts.shape[1], need), xp=work)
            new = _step(state, rows, work, started)
        nphist.raise_error(new)
        if backend.work_xp is not xp:
            new = type(new)(*(xp.asarray(v) for v in new))
        return new

    def forward(self, x: Any) -> Any:
        """``collect([x])``; returns ``x``."""
        self.collect([x])
        return x

    __call__ = forward

    # -- results -----------------------------------------------------------------
    def _rows_result(self) -> list[tuple[Any, ...]]:
        with self._lock:
            state = self._state
        if state is None:
            msg = "Histogram has not been collected. Please run collect() first."
            raise ValueError(msg)
        return histogram_result(state)

    @property
    def histogram(self) -> Any:
        """ORT's ``histogram_dict[name]`` tuple (host NumPy); per channel a list."""
        rows = self._rows_result()
        return rows if self.channel_axis is not None else rows[0]

    def compute_collection_result(self) -> Any:
        """What ORT's ``compute_collection_result()[name]`` holds (per channel a list)."""
        out = []
        for h in self._rows_result():
            if self.method == "entropy":
                # ORT's compute_entropy stores the thresholds followed by the histogram.
                out.append((*entropy_threshold(h, self.num_quantized_bins), *h[:2]))
            elif self.method == "percentile":
                out.append(percentile_thresholds(h, self.percentile, self.symmetric))
            else:
                out.append(TensorData(**distribution(h, self.num_bins, self.scenario)))
        return out if self.channel_axis is not None else out[0]

    # -- state_dict, copy, pickle --------------------------------------------------------
    def _fields(self) -> tuple[str, ...]:
        return (nphist.AbsState if self._absolute else nphist.ValueState)._fields

    def state_dict(self) -> OrderedDict[str, Any]:
        """The state's arrays by field name (empty before the first collect)."""
        with self._lock:
            state = self._state
        if state is None:
            return OrderedDict()
        xp = array_namespace(state.counts)
        with _backends.shared(xp).float64_scope():
            return OrderedDict(
                (k, xp.asarray(v, copy=True)) for k, v in zip(state._fields, state, strict=True)
            )

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load a :meth:`state_dict` (arrays of any supported library), checked
        before anything changes: torch's key checks, then shapes and dtypes."""
        fields = self._fields()
        given, keys = check_keys(state_dict, fields, strict, type(self).__name__, sort=True)
        if any(k not in given for k in fields):
            msg = f"state_dict must hold all of {list(fields)} (got {sorted(given)})"
            raise KeyError(msg)
        host = {k: np.asarray(to_host(given[k])) for k in fields}
        counts = host["counts"]
        if counts.ndim != 2 or counts.dtype != np.int64 or counts.shape[1] < self.num_bins:
            msg = (
                f"state_dict['counts'] must be int64 of shape (C, >= {self.num_bins}), "
                f"got {counts.dtype} {counts.shape}"
            )
            raise ValueError(msg)
        if self._absolute and host["edges"].shape != (counts.shape[0], counts.shape[1] + 1):
            msg = f"state_dict['edges'] must have shape {(counts.shape[0], counts.shape[1] + 1)}"
            raise ValueError(msg)
        if self.channel_axis is None and counts.shape[0] != 1:
            msg = f"a per-tensor collector's counts have one row, got {counts.shape[0]}"
            raise ValueError(msg)
        with self._lock:
            xp = self._xp if self._xp is not None else resolve_namespace(np)
            cls = nphist.AbsState if self._absolute else nphist.ValueState
            with _backends.shared(xp).float64_scope():
                self._state = cls(*(xp.asarray(host[k], device=self._device) for k in fields))
            self._xp = xp
        return keys

    def _pickled(self, out: dict[str, Any]) -> None:
        refuse_pickling_group(self)
        self._pickled_binding(out)
        state = out.pop("_state")
        out["_state"] = None if state is None else tuple(np.array(to_host(v)) for v in state)

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp, device = self._unpickled_binding(state)
        saved = state["_state"]
        if saved is not None and xp is not None:
            cls = nphist.AbsState if state["_absolute"] else nphist.ValueState
            with _backends.shared(xp).float64_scope():
                state["_state"] = cls(*(xp.asarray(v, device=device) for v in saved))

    def extra_repr(self) -> str:
        axis = "" if self.channel_axis is None else f", channel_axis={self.channel_axis}"
        return (
            f"method={self.method!r}, symmetric={self.symmetric}, num_bins={self.num_bins}, "
            f"num_quantized_bins={self.num_quantized_bins}, percentile={self.percentile}, "
            f"scenario={self.scenario!r}{axis}"
        )
