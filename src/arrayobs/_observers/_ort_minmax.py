"""ONNX Runtime 1.31.1's ``MinMaxCalibrater``, for one tensor, on the shared shell."""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from arrayobs import _backends
from arrayobs._compat import (
    device_of,
    namespace_of,
    resolve_namespace,
    state_text,
    to_host,
    without_graph,
)
from arrayobs._config import boolean
from arrayobs._core import _calib_ort as core
from arrayobs._observers._arguments import process_group_for, refuse_pickling_group
from arrayobs._observers._shell import Bound, check_binding
from arrayobs._observers._state_dict import IncompatibleKeys, check_keys

_KEYS = ("lowest", "highest", "seen")
_DTYPES = ("float32", "float16")  # the tensor types ORT calibrates


class MinMaxCalibrater(Bound):
    """ORT's ``MinMaxCalibrater`` rule for one tensor: the range ORT's
    ``compute_data()`` gives for it, bit for bit.

    ``collect(arrays)`` is one ORT ``collect_data`` call whose reader yields
    ``arrays`` (a list of batches, or one array); ``compute_data()`` returns
    the tensor's ``(lowest, highest)`` as host NumPy arrays of shape (1,), or
    (C,) with ``per_channel`` (channel axis 1, as ORT reduces every other
    axis). The rule is :func:`arrayobs._core._calib_ort.minmax_update`: per
    call, ``nanmin``/``nanmax`` over the batches' ReduceMin/ReduceMax
    (``nanmean`` with ``moving_average``, not an EMA), symmetric per call,
    then merged as Python ``min``/``max`` (or ``old + c * (new - old)`` in
    float32 with ``moving_average``).

    Parameters
    ----------
    symmetric, moving_average, averaging_constant, max_intermediate_outputs, per_channel
        As ORT. ``max_intermediate_outputs=k`` discards each full group of k
        batches of a call (as ORT does). ``averaging_constant`` outside
        [0, 1] with ``moving_average`` raises ValueError (as ORT).
    xp, device
        Bind to ``xp`` now, on ``device`` (default: ``xp``'s default device, as
        the observers bind); without ``xp`` (and then without ``device``), to the
        first array's namespace and device.
    process_group : torch.distributed.ProcessGroup, optional
        Data-parallel collection (torch tensors): each :meth:`collect` is, on
        every rank, one ``collect_data`` call whose reader yields rank 0's
        batches, then rank 1's, and so on (each batch's min and max travel).

    Notes
    -----
    Deviations (documented in :mod:`arrayobs._core._calib_ort`): a batch with a
    NaN counts as NaN (ORT's kernel gives NaN only for a leading NaN); a zero
    extreme takes the first zero's sign. Per channel, ORT raises ValueError
    on a second ``collect_data`` call (Python ``min`` on arrays); here the
    per-tensor merge applies to each channel. float32 and float16 tensors,
    as ORT selects them; an empty first call raises ValueError("No data is
    collected."), as ORT. A refused call changes nothing.

    Examples
    --------
    >>> import numpy as np
    >>> cal = MinMaxCalibrater(moving_average=True)
    >>> cal.collect([np.array([[1.0, -2.0]], np.float32), np.array([[5.0, 0.0]], np.float32)])
    >>> cal.compute_data()
    (array([-1.], dtype=float32), array([3.], dtype=float32))
    """

    _SHARED = ("_xp", "_device", "_group")
    _group: Any = None  # a calibrater pickled before process_group existed has none
    symmetric: bool
    moving_average: bool
    averaging_constant: float
    max_intermediate_outputs: int | None
    per_channel: bool

    def __init__(
        self,
        symmetric: bool = False,
        moving_average: bool = False,
        averaging_constant: float = 0.01,
        max_intermediate_outputs: int | None = None,
        per_channel: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        process_group: Any = None,
    ) -> None:
        self.symmetric = boolean(symmetric, "symmetric")
        self.moving_average = boolean(moving_average, "moving_average")
        if isinstance(averaging_constant, bool) or not isinstance(averaging_constant, numbers.Real):
            msg = f"averaging_constant must be a real number, got {averaging_constant!r}"
            raise TypeError(msg)
        if self.moving_average and not 0 <= averaging_constant <= 1:
            msg = (
                "Invalid averaging constant, which should not be < 0 or > 1 "
                f"(got {averaging_constant!r})."
            )
            raise ValueError(msg)
        self.averaging_constant = float(averaging_constant)
        k = max_intermediate_outputs
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)):
            msg = f"max_intermediate_outputs must be an int or None, got {k!r}"
            raise TypeError(msg)
        self.max_intermediate_outputs = None if k is None else int(k)
        self.per_channel = boolean(per_channel, "per_channel")
        self._bind_now(xp, device)
        supported = self._xp is None or _backends.backend_class(self._xp).supports_process_group
        self._group = process_group_for(process_group, self._xp, supported)
        self._state: core.OrtMinMaxState | None = None
        self._new_lock()

    @property
    def _discard(self) -> int | None:
        # ORT clears its list when it reaches k; k <= 0 is never reached.
        k = self.max_intermediate_outputs
        return k if k is not None and k > 0 else None

    # -- collecting ------------------------------------------------------------------
    def collect(self, arrays: Any) -> None:
        """One ORT ``collect_data`` call on ``arrays`` (a list of batches or one
        array); see the class's notes. On error nothing changes."""
        # The state never keeps an autograd graph.
        batches = [
            without_graph(b) for b in (arrays if isinstance(arrays, (list, tuple)) else [arrays])
        ]
        with self._lock:
            self._collect(batches)

    def forward(self, x: Any) -> Any:
        """``collect([x])``; returns ``x``."""
        self.collect([x])
        return x

    __call__ = forward

    def _collect(self, batches: list[Any]) -> None:
        if self._group is not None:
            from arrayobs._observers import _calib_grouped

            batches = _calib_grouped.minmax_batches(self, batches)
        k = self._discard
        kept = batches if k is None else batches[len(batches) - len(batches) % k :]
        xp, device = self._xp, self._device
        dtype = None if self._state is None else self._state.lowest.dtype
        channels = None if self._state is None else self._state.lowest.shape[0]
        for b in kept:
            bxp, bdevice = namespace_of(b), device_of(b)
            own = bdevice if device is None else device
            check_binding(type(self).__name__, xp, own, bxp, bdevice)
            xp, device = bxp, bdevice
            if str(b.dtype).rsplit(".", 1)[-1] not in _DTYPES:
                msg = f"MinMaxCalibrater observes float32 or float16 arrays (as ORT), got {b.dtype}"
                raise TypeError(msg)
            if dtype is not None and b.dtype != dtype:
                msg = f"MinMaxCalibrater holds a {dtype} range; got a {b.dtype} batch"
                raise TypeError(msg)
            dtype = b.dtype
            if self.per_channel:
                if b.ndim < 2:
                    msg = f"per_channel reduces all axes but 1: needs 2 or more dims, got {b.shape}"
                    raise ValueError(msg)
                if channels is not None and b.shape[1] != channels:
                    msg = (
                        f"per_channel range has {channels} channels; got a batch of shape {b.shape}"
                    )
                    raise ValueError(msg)
                channels = b.shape[1]
        if not kept:
            if self._state is None or not bool(to_host(self._state.seen)):
                msg = "No data is collected."
                raise ValueError(msg)
            return
        state = self._state
        if state is None:
            assert xp is not None  # kept holds a batch, which bound it
            state = core.minmax_init(xp=xp, device=device, channels=channels, dtype=dtype)
        new = core.minmax_update(
            state,
            kept,
            symmetric=self.symmetric,
            moving_average=self.moving_average,
            averaging_constant=self.averaging_constant,
            channel_axis=1 if self.per_channel else None,
        )
        self._xp, self._device, self._state = xp, device, new

    # -- results ---------------------------------------------------------------------
    def compute_data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lowest, highest)`` of ORT's ``compute_data()`` for this tensor (host
        NumPy); ValueError("No data is collected.") before any data."""
        with self._lock:
            state = self._state
        if state is None:
            msg = "No data is collected."
            raise ValueError(msg)
        return core.minmax_result(state)

    def reset(self) -> None:
        """Forget the collected range (the binding stays)."""
        with self._lock:
            self._state = None

    # -- state_dict ------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """``lowest``, ``highest`` (the range arrays) and ``seen``; empty before any data."""
        with self._lock:
            state = self._state
        if state is None:
            return OrderedDict()
        return OrderedDict(zip(_KEYS, state, strict=True))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load a :meth:`state_dict`; checked whole before anything changes."""
        given, result = check_keys(state_dict, _KEYS, strict, type(self).__name__)
        if any(k not in given for k in _KEYS):
            return result
        host = {
            k: core.host(given[k]) if hasattr(given[k], "dtype") else to_host(given[k])
            for k in _KEYS
        }
        lo, hi = host["lowest"], host["highest"]
        if (
            lo.dtype.name not in _DTYPES
            or lo.dtype != hi.dtype
            or lo.ndim != 1
            or lo.shape != hi.shape
        ):
            msg = (
                "state_dict lowest/highest must be float32 or float16 arrays of one shape (n,), "
                f"got {lo.dtype}{lo.shape} and {hi.dtype}{hi.shape}"
            )
            raise ValueError(msg)
        if not self.per_channel and lo.shape != (1,):
            msg = f"a per-tensor range has shape (1,), got {lo.shape}"
            raise ValueError(msg)
        with self._lock:
            xp = self._xp or resolve_namespace(np)
            device = self._device
            self._state = core.OrtMinMaxState(
                xp.asarray(lo, device=device),
                xp.asarray(hi, device=device),
                xp.asarray(bool(host["seen"]), device=device),
            )
            self._xp = xp
        return result

    # -- copy, pickle, repr ----------------------------------------------------------
    def _pickled(self, out: dict[str, Any]) -> None:
        refuse_pickling_group(self)
        self._pickled_binding(out)
        if out["_state"] is not None:
            out["_state"] = tuple(core.host(v) for v in out["_state"])

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp, device = self._unpickled_binding(state)
        if state["_state"] is not None and xp is not None:
            state["_state"] = core.OrtMinMaxState(
                *(xp.asarray(v, device=device) for v in state["_state"])
            )

    def extra_repr(self) -> str:
        text = (
            f"symmetric={self.symmetric}, moving_average={self.moving_average}, "
            f"averaging_constant={self.averaging_constant}, "
            f"max_intermediate_outputs={self.max_intermediate_outputs}, "
            f"per_channel={self.per_channel}"
        )
        if self._state is not None:
            lo, hi = state_text(self._state.lowest), state_text(self._state.highest)
            text += f", lowest={lo}, highest={hi}"
        return text
