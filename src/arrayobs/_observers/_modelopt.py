"""ModelOpt 0.47.0's ``MaxCalibrator`` and ``HistogramCalibrator`` on the shared shell.

Thin classes over :mod:`arrayobs.calib.modelopt`'s functional core: each collect
is one pure update; the new state replaces the old only when the call is
accepted, so a refused call leaves the calibrator exactly as it was.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from arrayobs import _backends
from arrayobs._arguments import array_namespace
from arrayobs._compat import device_of, to_host, without_graph
from arrayobs._core import _calib_modelopt as core
from arrayobs._core import _calib_nphist as nphist
from arrayobs._observers import _modelopt_core as api
from arrayobs._observers._arguments import process_group_for, refuse_pickling_group
from arrayobs._observers._shell import Bound
from arrayobs._observers._state_dict import IncompatibleKeys, check_keys


def _int(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        msg = f"{what} must be an int >= {low}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        msg = f"{what} must be a bool, got {value!r}"
        raise TypeError(msg)
    return bool(value)


def _group_for(group: Any, xp: Any) -> Any:
    supported = xp is None or _backends.backend_class(xp).supports_process_group
    return process_group_for(group, xp, supported)


class _Calibrator(Bound):
    """Binding, state swap, pickling and state_dict shared by both classes."""

    _state: Any
    _state_type: Any
    _SHARED = ("_xp", "_device", "_group")
    _group: Any = None  # process_group= (see _calib_grouped); None in older pickles

    def _bind(self, x: Any) -> tuple[Any, Any]:
        xp = array_namespace(x, "x")
        device = device_of(x)
        self._check_binding(xp, device)
        return xp, device

    def forward(self, x: Any) -> Any:
        """``collect(x)``, then ``x`` itself."""
        self.collect(x)
        return x

    __call__ = forward

    def collect(self, x: Any) -> None:
        """One reference ``collect(x)``; refused calls change nothing."""
        x = without_graph(x)  # the state never keeps an autograd graph
        with self._lock:
            if self._group is not None:
                new, xp, device = self._grouped(x)
            else:
                xp, device = self._bind(x)
                new = self._collected(x, xp, device)
            self._xp, self._device, self._state = xp, device, new

    def _grouped(self, x: Any) -> tuple[Any, Any, Any]:  # pragma: no cover
        raise NotImplementedError

    def _collected(self, x: Any, xp: Any, device: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything collected (the binding stays)."""
        with self._lock:
            self._state = None

    # -- pickling -------------------------------------------------------------------
    def _pickled(self, out: dict[str, Any]) -> None:
        refuse_pickling_group(self)
        self._pickled_binding(out)
        state = out["_state"]
        out["_state"] = None if state is None else tuple(np.asarray(to_host(v)) for v in state)

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp, device = self._unpickled_binding(state)
        values = state["_state"]
        if values is not None and xp is not None:
            with _backends.shared(xp).float64_scope():  # NumPy mode's int64/float64
                kind = state.get("_state_type", self._state_type)
                state["_state"] = kind(*(xp.asarray(v, device=device) for v in values))

    # -- state_dict --------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """The state's arrays by field name (empty before any collect)."""
        with self._lock:
            state, xp = self._state, self._xp
        if state is None or xp is None:
            return OrderedDict()
        return OrderedDict((k, xp.asarray(v, copy=True)) for k, v in state._asdict().items())

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load what :meth:`state_dict` gave (the same namespace's arrays);
        checked before anything changes."""
        keys = self._state_type._fields
        given, result = check_keys(state_dict, keys, strict, type(self).__name__)
        if any(k not in given for k in keys):
            msg = f"{type(self).__name__}.load_state_dict needs every key {list(keys)}"
            raise KeyError(msg)
        xp = array_namespace(given[keys[0]], "state_dict values")
        with _backends.shared(xp).float64_scope():  # NumPy mode's int64/float64
            state = self._state_type(*(xp.asarray(given[k], copy=True) for k in keys))
        self._check_loaded(state)
        with self._lock:
            self._check_binding(xp, device_of(state[0]))
            self._xp, self._device, self._state = xp, device_of(state[0]), state
        return result

    def _check_loaded(self, state: Any) -> None:
        """Refuse a loaded state that does not fit this configuration."""


class MaxCalibrator(_Calibrator):
    """ModelOpt's ``MaxCalibrator``: the running absolute max, per tensor or per ``axis``.

    As ``modelopt.torch.quantization.calib.MaxCalibrator`` in 0.47.0, bit for
    bit: ``amax = max(|max(x)|, |min(x)|)`` over the dims not named by
    ``axis``, kept as size-1 dims and squeezed to 0-d when it has one element
    (an ``axis`` naming every dim gives the per-tensor scalar, as in the
    reference), in the input's dtype; merged with ``maximum``.

    ``process_group`` (torch tensors): each collect gives every rank the
    state of one ``collect`` of the ranks' tensors concatenated along axis 0
    in rank order (``axis`` must not keep axis 0); each rank's reduced max
    and min travel.

    Refusals keep the reference's exception types: a NaN or infinite amax
    raises AssertionError (the reference asserts; here it is raised also under
    ``python -O``), an empty array and a changed amax shape RuntimeError.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs.calib.modelopt import MaxCalibrator
    >>> cal = MaxCalibrator()
    >>> cal.collect(np.asarray([-3.0, 1.0], dtype=np.float32))
    >>> float(cal.compute_amax())
    3.0
    """

    _state_type = core.MaxState

    def __init__(
        self,
        num_bits: int = 8,
        axis: Any = None,
        unsigned: bool = False,
        track_amax: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        process_group: Any = None,
    ) -> None:
        self._num_bits = num_bits
        self._axis = axis
        self._unsigned = unsigned
        self._track_amax = _bool(track_amax, "track_amax")
        self._amaxs: list[np.ndarray] = []
        self._bind_now(xp, device)
        self._group = _group_for(process_group, self._xp)
        self._state = None
        self._new_lock()

    @property
    def amaxs(self) -> list[np.ndarray]:
        """Each collect's amax (host NumPy), with ``track_amax``."""
        return self._amaxs

    def _collected(self, x: Any, xp: Any, device: Any) -> Any:
        state = self._state
        if state is None:
            shape = core.max_shape(tuple(x.shape), self._axis)
            state = core.max_init(shape, x.dtype, xp=xp, device=device)
        new = api.max_update(state, x, self._axis, xp=xp)
        api.raise_max_error(int(to_host(new.error)))
        if self._track_amax:
            self._amaxs.append(np.asarray(to_host(core.max_batch(x, self._axis, xp=xp))))
        return new

    def _grouped(self, x: Any) -> tuple[Any, Any, Any]:
        from arrayobs._observers import _calib_grouped

        return _calib_grouped.max_calibrator(self, x)

    def reset(self) -> None:
        with self._lock:
            self._state = None

    def compute_amax(self) -> Any:
        """The amax collected so far (the calibrator's namespace), or None."""
        with self._lock:
            return None if self._state is None else self._state.amax

    def extra_repr(self) -> str:
        return f"num_bits={self._num_bits}, axis={self._axis}, track_amax={self._track_amax}"


class HistogramCalibrator(_Calibrator):
    """ModelOpt's ``HistogramCalibrator``: a growing histogram of ``|x|`` and
    the entropy, mse and percentile searches over it.

    As ``modelopt.torch.quantization.calib.HistogramCalibrator`` in 0.47.0 with
    ``torch_hist=True``, bit for bit on the CPU: the same counts and edges after
    every collect (edges float32; ``torch.arange``'s values follow ATen's vector
    width, ``lanes``: 8 for ATen's AVX2 kernel, which torch also runs on
    AVX512 CPUs, 16 for an AVX512 one; default: the width the imported torch's
    arange shows, else 8) and the same ``compute_amax``, including the reference's quirks
    (its mse search returns ``centers[start_bin]`` in practice, docs/design/
    calibrators.md 4.5). ``torch_hist=False`` collects with NumPy's histogram
    rules as the reference (int64 counts; edges float64 once grown;
    :mod:`arrayobs._core._calib_nphist`), and its entropy search changes the
    stored first bin as the reference's does.

    ``axis`` is refused as the reference refuses it (NotImplementedError);
    ``channel_axis`` (arrayobs) keeps one histogram per channel along that
    axis, each equal bit for bit to the reference fed that channel's slices;
    ``compute_amax`` then returns one amax per channel.

    ``process_group`` (torch tensors): each collect gives every rank the
    state of one ``collect`` of the ranks' tensors concatenated in rank order
    (per channel, each channel's slices); five values per row and the new
    counts travel (:mod:`arrayobs._backends._calib_group`).

    ``capacity``: bins kept per channel before the state is re-padded (the
    class re-pads exactly, never refuses; the functional core records ``need``
    instead). The reference's refusals keep its exception types: a NaN or
    infinite first batch RuntimeError, a growth after an all-zero first batch
    OverflowError, an empty array RuntimeError; the calibrator is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs.calib.modelopt import HistogramCalibrator
    >>> cal = HistogramCalibrator(num_bins=256)
    >>> cal.collect(np.linspace(-1.0, 2.0, 1000, dtype=np.float32))
    >>> float(cal.compute_amax("percentile", percentile=50.0))
    0.75
    """

    _state_type: Any = core.HistState

    def __init__(
        self,
        num_bits: int = 8,
        axis: Any = None,
        unsigned: bool = False,
        num_bins: int = 2048,
        grow_method: Any = None,
        skip_zeros: bool = False,
        torch_hist: bool = True,
        *,
        channel_axis: int | None = None,
        capacity: int | None = None,
        lanes: int | None = None,
        xp: Any = None,
        device: Any = None,
        process_group: Any = None,
    ) -> None:
        if axis is not None:
            msg = "Calibrator histogram collection only supports per tensor scaling"
            raise NotImplementedError(msg)
        self._num_bits = _int(num_bits, "num_bits", 1)
        self._unsigned = _bool(unsigned, "unsigned")
        self._num_bins = _int(num_bins, "num_bins", 1)
        self._skip_zeros = _bool(skip_zeros, "skip_zeros")
        self._torch_hist = _bool(torch_hist, "torch_hist")
        self._state_type = core.HistState if self._torch_hist else nphist.AbsState
        self._channel_axis = None if channel_axis is None else int(channel_axis)
        self._capacity = 16 * self._num_bins if capacity is None else _int(capacity, "capacity", 1)
        if self._capacity < self._num_bins:
            msg = f"capacity must be at least num_bins ({self._num_bins}), got {capacity}"
            raise ValueError(msg)

        self._lanes = api.default_lanes() if lanes is None else _int(lanes, "lanes", 1)
        self._bind_now(xp, device)
        self._group = _group_for(process_group, self._xp)
        self._state = None
        self._new_lock()

    def _collected(self, x: Any, xp: Any, device: Any) -> Any:

        state = self._state
        if state is None:
            channels = None
            if self._channel_axis is not None:
                channels = x.shape[self._channel_axis]
            state = api.histogram_init(
                self._num_bins,
                xp=xp,
                device=device,
                channels=channels,
                capacity=self._capacity,
                torch_hist=self._torch_hist,
            )
        update: dict[str, Any] = {
            "skip_zeros": self._skip_zeros,
            "channel_axis": self._channel_axis,
        }
        new = api.histogram_update(state, x, lanes=self._lanes, xp=xp, **update)
        if not self._torch_hist:
            return self._numpy_mode(state, new, x, xp, update)
        with np.errstate(all="ignore"):  # Dask computes here, outside the core's quiet
            errors = np.asarray(to_host(new.error))
            need = int(np.asarray(to_host(new.need)).max())
        for c, code in enumerate(errors):
            api.raise_error(int(code), c if self._channel_axis is not None else None)
        capacity = state.counts.shape[1]
        if need > capacity:  # re-pad exactly (growth only appends bins), then bin again
            size = capacity
            while size < need:
                size *= 2
            pad = xp.zeros(
                (state.counts.shape[0], size - capacity), dtype=xp.float32, device=device
            )
            state = state._replace(counts=xp.concat([state.counts, pad], axis=1))
            new = api.histogram_update(state, x, lanes=self._lanes, xp=xp, **update)
        return new

    def _grouped(self, x: Any) -> tuple[Any, Any, Any]:
        from arrayobs._observers import _calib_grouped

        return _calib_grouped.histogram_calibrator(self, x)

    def _numpy_mode(self, state: Any, new: Any, x: Any, xp: Any, update: dict[str, Any]) -> Any:
        """NumPy mode's refusals, or its exact re-pad past the capacity."""

        with np.errstate(all="ignore"):  # Dask computes here, outside the core's quiet
            error, overflow = int(to_host(new.error)), bool(to_host(new.overflow))
        if error:
            nphist.raise_error(new)
        if overflow:
            size = state.counts.shape[1]
            while size < int(to_host(new.need)):
                size *= 2
            with _backends.shared(xp).float64_scope():
                state = nphist.repad(state, size, xp=xp)
            new = api.histogram_update(state, x, xp=xp, **update)
        return new

    @property
    def _per_channel(self) -> bool:
        return self._channel_axis is not None

    @property
    def calib_hist(self) -> Any:
        """The reference's ``_calib_hist`` (float32 counts; host NumPy), a list per channel."""
        return self._host(0)

    @property
    def calib_bin_edges(self) -> Any:
        """The reference's ``_calib_bin_edges`` (float32; host NumPy), a list per channel."""
        return self._host(1)

    def _host(self, which: int) -> Any:

        with self._lock:
            state = self._state
        if state is None:
            return None
        rows = [pair[which] for pair in api.histogram_host(state, self._lanes)]
        return rows if self._per_channel else rows[0]

    def compute_amax(
        self, method: str, *, stride: int = 1, start_bin: int = 128, percentile: float = 99.99
    ) -> Any:
        """The reference's ``compute_amax``: float32 amax (0-d, or (C,) per
        channel) in the calibrator's namespace, or None before any collect.
        Unknown ``method``: TypeError; ``percentile`` outside [0, 100]:
        ValueError (checked first, as the reference)."""

        with self._lock:
            state, xp, device = self._state, self._xp, self._device
            if state is not None:
                # the reference changes its first bin before its search, which may still refuse
                state = self._state = api.searched_state(state, method)
        if state is None:
            if method == "percentile" and (percentile < 0 or percentile > 100):
                msg = "Invalid percentile. Must be in range 0 <= percentile <= 100."
                raise ValueError(msg)
            if method not in ("entropy", "mse", "percentile"):
                msg = f"Unknown calibration method {method}"
                raise TypeError(msg)
            return None
        out, _ = api.histogram_result(
            state,
            method,
            num_bits=self._num_bits,
            unsigned=self._unsigned,
            stride=stride,
            start_bin=start_bin,
            percentile=percentile,
            lanes=self._lanes,
            per_channel=self._per_channel,
        )
        if out is None or xp is None:
            return None
        return xp.asarray(out, device=device)

    def _check_loaded(self, state: Any) -> None:
        counts = state.counts
        if counts.ndim != 2:
            shape = tuple(counts.shape)
            msg = f"state_dict['counts'] must be 2-d (channels, capacity), got shape {shape}"
            raise ValueError(msg)

    def extra_repr(self) -> str:
        extra = "" if self._channel_axis is None else f", channel_axis={self._channel_axis}"
        return (
            f"num_bits={self._num_bits}, unsigned={self._unsigned}, num_bins={self._num_bins}, "
            f"skip_zeros={self._skip_zeros}, torch_hist={self._torch_hist}{extra}"
        )


class MseCalibrator(_Calibrator):
    """ModelOpt's ``MseCalibrator``: per-candidate quantization losses summed
    over batches, and the candidate amax with the smallest.

    As ``modelopt.torch.quantization.calib.MseCalibrator`` in 0.47.0, bit for
    bit on the CPU: ``ceil((stop - start) / step) + 1`` multipliers from
    ``torch.linspace`` (float32), each batch's error ``(x - quant_func(x,
    amax * m)) ** 2`` (or ``error_func(x, xq)``, float32) summed over the dims
    not in ``axis`` in ATen's float32 order, added across batches in float32;
    ``compute_amax`` takes the first smallest loss per channel. Each collect
    is one :func:`arrayobs.calib.modelopt.mse_update`.

    ``quant_func(x, amax)`` and ``error_func(x, xq)`` take and return arrays of
    the input's namespace (:func:`arrayobs._core._calib_modelopt.tensor_quant`
    is ModelOpt's ``_tensor_quant``). ``axis`` must name leading dims (each
    loss then sums a contiguous run, the order reproduced; a per-tensor loss
    up to 32768 values, where ATen keeps one thread); other axes:
    NotImplementedError. No ``quant_func``: RuntimeError at collect, as the
    reference. ``reset`` drops the initial amax, as the reference; a collect
    after it raises TypeError.
    """

    _state_type = core.MseState
    # the functions are shared by copies, not copied
    _SHARED = ("_xp", "_device", "_quant_func", "_error_func")  # type: ignore[assignment]

    def __init__(
        self,
        amax: Any,
        axis: Any = None,
        step_size: float = 0.1,
        start_multiplier: float = 0.25,
        stop_multiplier: float = 4.0,
        quant_func: Any = None,
        error_func: Any = None,
        *,
        xp: Any = None,
        device: Any = None,
    ) -> None:
        self._initial_amax = without_graph(amax)  # the losses never keep a graph
        self._axis = axis
        self._step_size = step_size
        self._start_multiplier = start_multiplier
        self._stop_multiplier = stop_multiplier
        self._num_steps = core.mse_steps(start_multiplier, stop_multiplier, step_size)
        self._quant_func = quant_func
        self._error_func = error_func
        self._bind_now(xp, device)
        self._state = None
        self._new_lock()

    def collect(self, x: Any) -> None:
        """One reference ``collect(x)``; a refused call changes nothing."""
        if self._quant_func is None:
            msg = "Quantization function not set."
            raise RuntimeError(msg)
        super().collect(x)

    def _collected(self, x: Any, xp: Any, device: Any) -> Any:
        state = self._state
        if state is None:
            if self._initial_amax is None:
                msg = "MseCalibrator was reset, which drops its initial amax (as ModelOpt's)"
                raise TypeError(msg)
            state = api.mse_init(
                self._initial_amax,
                tuple(x.shape),
                self._axis,
                self._step_size,
                self._start_multiplier,
                self._stop_multiplier,
                xp=xp,
                device=device,
            )
        new = api.mse_update(state, x, self._quant_func, self._error_func, xp=xp)
        # a quant_func or error_func with parameters of its own could record a
        # graph (the reference runs under torch.no_grad)
        new = new._replace(losses=without_graph(new.losses))
        # computed now on lazy libraries: the calibrator never keeps a growing graph
        return type(new)(*_backends.shared(xp).materialize(*new))

    def reset(self) -> None:
        """Forget the losses and the initial amax, as the reference."""
        with self._lock:
            self._state = None
            self._initial_amax = None

    def compute_amax(self) -> Any:
        """``initial_amax * candidate[argmin(loss)]`` per channel (float32,
        the initial amax's shape), or None before any collect."""
        with self._lock:
            state, xp, device = self._state, self._xp, self._device
        out = None if state is None or xp is None else api.mse_result(state)
        return None if out is None or xp is None else xp.asarray(out, device=device)

    @property
    def losses(self) -> np.ndarray | None:
        """The summed losses, (steps,) or (steps, channels...), float32 on the host."""
        with self._lock:
            state = self._state
        return None if state is None else np.asarray(to_host(state.losses)).copy()

    def _pickled(self, out: dict[str, Any]) -> None:
        super()._pickled(out)
        amax = out["_initial_amax"]
        out["_initial_amax"] = None if amax is None else np.asarray(to_host(amax))

    def _unpickled(self, state: dict[str, Any]) -> None:
        super()._unpickled(state)
        amax, xp = state["_initial_amax"], state["_xp"]
        if amax is not None and xp is not None:
            state["_initial_amax"] = xp.asarray(amax, device=state["_device"])

    def _check_loaded(self, state: Any) -> None:
        steps = tuple(state.candidates.shape)
        if steps != (self._num_steps,) or state.losses.shape[0] != self._num_steps:
            msg = (
                f"state_dict holds {steps} candidates and losses of shape "
                f"{tuple(state.losses.shape)}; this calibrator has {self._num_steps} steps"
            )
            raise ValueError(msg)

    def extra_repr(self) -> str:
        return f"axis={self._axis}, steps={self._num_steps}"
