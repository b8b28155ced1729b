"""The per-channel observers: torch's ``PerChannelMinMaxObserver`` and
``MovingAveragePerChannelMinMaxObserver``."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs import _core as core
from arrayobs._compat import state_text
from arrayobs._config import FLOAT32_EPS, boolean, real_number
from arrayobs._observers import _state_dict
from arrayobs._observers._base import Observer, unless_all_empty
from arrayobs._observers._per_tensor import MovingAverageMinMaxObserver


class PerChannelMinMaxObserver(Observer):
    """Running min and max of each channel, and the per-channel qparams they imply.

    As ``torch.ao.quantization.PerChannelMinMaxObserver`` in torch 2.13.0, bit
    for bit: each channel along ``ch_axis`` is reduced over every other axis.
    The state has shape (0,) until the first non-empty batch, then (C,); its
    qparams have shape (C,). Other parameters as :class:`MinMaxObserver`.

    Parameters
    ----------
    ch_axis : int
        The channel axis (negative counts from the end, as torch).
    qscheme : str or torch.qscheme
        ``"per_channel_affine"`` (zero point int32), ``"per_channel_symmetric"``
        (int64) or ``"per_channel_affine_float_qparams"`` (float32 zero point
        ``-min / scale``, scale replaced by 1 where not above eps).
    is_dynamic : bool
        Must be False: torch refuses dynamic per-channel observers.

    Raises
    ------
    NotImplementedError
        For a per-tensor qscheme, ``is_dynamic=True``, or
        per_channel_symmetric with reduce_range and quint8, as torch.

    Notes
    -----
    Where torch differs, on purpose:

    - A batch whose channel count differs from the state's raises
      ``ValueError`` (torch broadcasts a count of 1 against the other, or
      fails inside ``torch.min``); so does an input without axis ``ch_axis``
      (torch: ``IndexError``). An empty batch changes nothing and is not
      checked, as in torch.
    - ``reset_min_max_vals`` keeps the namespace and device (torch's makes
      new CPU tensors).
    - A version-2 state_dict (``min_vals``/``max_vals``) is loaded under the
      new names (torch 2.13.0 resizes its buffers and never fills them).
    - ``process_group=`` (torch tensors): each forward reduces the batch's (C,)
      vectors across the group in one collective. An empty shard must keep the
      channel axis (shape (0, C), say) until the channel count is known; a rank
      that has seen only empty shards reads one boolean in ``calculate_qparams``
      to learn whether the group observed anything, as per tensor.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import PerChannelMinMaxObserver
    >>> obs = PerChannelMinMaxObserver(ch_axis=0, qscheme="per_channel_symmetric", dtype="qint8")
    >>> _ = obs(np.asarray([[-1.0, 0.5], [0.25, 2.0]], dtype=np.float32))
    >>> obs.min_val, obs.max_val
    (array([-1.  ,  0.25], dtype=float32), array([0.5, 2. ], dtype=float32))
    >>> scale, zero_point = obs.calculate_qparams()
    >>> scale, zero_point
    (array([0.00784314, 0.01568628], dtype=float32), array([0, 0]))
    """

    _scope: Mapping[str, bool] = {"per_tensor": False, "per_channel": True}

    def __init__(
        self,
        ch_axis: int = 0,
        dtype: Any = "quint8",
        qscheme: Any = "per_channel_affine",
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
        try:
            # Any integer (np.int64(1), a 0-d integer tensor), as torch; not a bool.
            if isinstance(ch_axis, bool):
                raise TypeError
            ch_axis = operator.index(ch_axis)
        except TypeError:
            msg = f"ch_axis must be an int, got {ch_axis!r}"
            raise TypeError(msg) from None
        if boolean(is_dynamic, "is_dynamic"):
            msg = f"{type(self).__name__} does not support dynamic quantization, as in torch"
            raise NotImplementedError(msg)
        self.ch_axis = ch_axis
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

    def _fresh_state(self, xp: ModuleType, device: Any) -> core.MinMaxState:
        """Shape (0,), as torch's: the channel count comes with the first batch."""
        return core.init_state(xp=xp, device=device, channels=0)

    # -- observing -----------------------------------------------------------
    def _has_shape(self) -> bool:
        """Whether the state has its (C,) shape: observed, or perhaps (process group)."""
        return self._observed or self._maybe_observed

    def _check_channels(self, state: core.MinMaxState, x: Any, channels: int) -> None:
        if self._has_shape() and state.min_val.shape[0] != channels:
            msg = (
                f"{type(self).__name__} has {state.min_val.shape[0]} channels; got an input of "
                f"shape {tuple(x.shape)} with {channels} along ch_axis {self.ch_axis}"
            )
            raise ValueError(msg)

    def _fresh(self) -> bool | None:
        """torch's per-channel rule: the first batch (the state is empty) becomes
        the state; every later one is averaged, even into infinities. Perhaps
        observed (a process group's empty shards): by value."""
        if self._observed:
            return False
        return None if self._maybe_observed else True

    def _axis(self, x: Any) -> int:
        return arguments.channel_axis(self.ch_axis, x.ndim)

    def _check_batch(self, state: core.MinMaxState, x: Any, ch: int | None) -> None:
        self._check_channels(state, x, x.shape[ch])

    def _group_update(
        self, backend: _backends.Backend, state: core.MinMaxState, x: Any, n: int
    ) -> core.MinMaxState:
        """Every rank's (C,) vectors reduced together (one collective of 2C keys).

        An empty shard takes part too: it must keep the channel axis (e.g.
        shape (0, C)) until the observer knows its channel count.
        """
        if -x.ndim <= self.ch_axis < x.ndim or n or not self._has_shape():
            ch = arguments.channel_axis(self.ch_axis, x.ndim)  # raises if x has no such axis
            channels = x.shape[ch]
        else:
            channels = state.min_val.shape[0]  # an empty shard without the axis
        self._check_channels(state, x, channels)
        if n:
            lo, hi = backend.aminmax(x, ch)
        else:
            lo, hi = core.init_state(xp=backend.xp, device=backend.device_of(x), channels=channels)
        lo, hi = backend.allreduce_minmax(lo, hi, self._group)
        if not self._has_shape():
            # The first batch, or (+inf, -inf) everywhere if every shard was empty:
            # then the state is "perhaps observed" until calculate_qparams reads it.
            return core.MinMaxState(lo, hi)
        new = backend.combine(state, lo, hi, self._rule, self._fresh())
        return unless_all_empty(state, new, lo, hi, backend.xp)

    # -- merge ---------------------------------------------------------------
    def _layout(self) -> Any:
        return self.ch_axis

    def _merged(self, other: core.MinMaxState, xp: ModuleType) -> core.MinMaxState:
        if not self._observed:
            return other
        if other.min_val.shape != self._state.min_val.shape:
            msg = (
                f"cannot merge {other.min_val.shape[0]} channels into "
                f"{self._state.min_val.shape[0]}"
            )
            raise ValueError(msg)
        return core.merge_minmax(self._state, other, xp=xp)

    # -- state_dict ----------------------------------------------------------
    def _loaded(self, given: Mapping[str, Any], key: str) -> np.ndarray:
        """Per channel: 1-d, (C,) or (0,)."""
        value = _state_dict.host_array(given, key)
        if value.ndim != 1:
            msg = f"state_dict[{key!r}] must have shape (C,) or (0,), got {value.shape}"
            raise ValueError(msg)
        return value

    def _renamed(self, given: dict[str, Any], version: Any) -> dict[str, Any]:
        """Versions 1 and 2 named the buffers ``min_vals`` and ``max_vals``."""
        if version is not None and version < _state_dict.VERSION:
            for old, new in (("min_vals", "min_val"), ("max_vals", "max_val")):
                if old in given:
                    if new in given:
                        msg = f"state_dict of version {version} has both {old!r} and {new!r}"
                        raise KeyError(msg)
                    given[new] = given.pop(old)
        return given

    # -- repr ----------------------------------------------------------------
    def extra_repr(self) -> str:
        # Summarised past 8 channels, as torch's tensor repr summarises.
        lo, hi = (state_text(v) for v in self._state)
        return f"min_val={lo}, max_val={hi}"


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel moving averages of each batch's min and max, and their qparams.

    As ``torch.ao.quantization.MovingAveragePerChannelMinMaxObserver`` in torch
    2.13.0, bit for bit: the first batch sets the (C,) state; every later one
    moves each channel by ``m + c * (cur - m)`` in float32, even from
    infinities (torch's per-channel observers have no per-value "fresh" rule).
    Other parameters as :class:`PerChannelMinMaxObserver`; moving averages
    cannot be merged (see :meth:`MovingAverageMinMaxObserver.merge`).

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import MovingAveragePerChannelMinMaxObserver
    >>> obs = MovingAveragePerChannelMinMaxObserver(averaging_constant=0.5, ch_axis=-1)
    >>> _ = obs(np.asarray([[0.0, 4.0], [2.0, 8.0]], dtype=np.float32))
    >>> _ = obs(np.asarray([[-2.0, 2.0]], dtype=np.float32))
    >>> obs.min_val, obs.max_val
    (array([-1.,  3.], dtype=float32), array([0., 5.], dtype=float32))
    """

    def __init__(
        self,
        averaging_constant: float = 0.01,
        ch_axis: int = 0,
        dtype: Any = "quint8",
        qscheme: Any = "per_channel_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        factory_kwargs: Mapping[str, Any] | None = None,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        real_number(averaging_constant, "averaging_constant")
        self.averaging_constant = averaging_constant
        self._rule = core.MovingAverage(averaging_constant)
        super().__init__(
            ch_axis,
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

    merge = MovingAverageMinMaxObserver.merge
