"""torch.ao's fake-quantize modules: an observer, its qparams, and the
fake-quantized input, with torch 2.13.0's state_dict.

The arithmetic lives in :mod:`arrayobs._core._fakequant` and each library's
way of running it in :mod:`arrayobs._backends` (``Backend.fake_quantize``);
these classes hold the flags and qparams and mirror torch's module API.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs import _core as core
from arrayobs._compat import (
    array_namespace,
    device_of,
    is_array,
    resolve_namespace,
    to_host,
    xp_argument,
)
from arrayobs._config import boolean
from arrayobs._core import _fused as fused
from arrayobs._core._dtypes import INT_RANGES
from arrayobs._observers import _state_dict
from arrayobs._observers._base import NUMPY, Observer
from arrayobs._observers._per_channel import MovingAveragePerChannelMinMaxObserver
from arrayobs._observers._per_tensor import MovingAverageMinMaxObserver
from arrayobs._observers._shell import Shell, describe
from arrayobs._observers._simple import FixedQParamsObserver
from arrayobs._observers._state_dict import IncompatibleKeys

__all__ = [
    "FakeQuantize",
    "FakeQuantizeBase",
    "FixedQParamsFakeQuantize",
    "FusedMovingAvgObsFakeQuantize",
]

_PREFIX = "activation_post_process."
_PER_CHANNEL = ("per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams")
# torch.iinfo of each dtype FakeQuantize checks a customized range against
# (torch.iinfo(torch.quint4x2) is (0, 255); float8 has none: torch raises TypeError).
_IINFO = {
    **INT_RANGES,
    "quint8": INT_RANGES["uint8"],
    "quint4x2": INT_RANGES["uint8"],
    "qint8": INT_RANGES["int8"],
    "uint16": (0, 2**16 - 1),
    "qint32": INT_RANGES["int32"],
}


def _bound_keywords(factory: Any) -> dict[str, Any]:
    """The keywords a ``with_args`` factory (ours, or a functools.partial) binds."""
    func = getattr(factory, "_func", factory)
    found: dict[str, Any] = {}
    while isinstance(func, functools.partial):
        found = {**func.keywords, **found}
        func = func.func
    return found


def _dtype_name(dtype: Any) -> str:
    text = dtype if isinstance(dtype, str) else str(dtype)
    return text[len("torch.") :] if text.startswith("torch.") else text


class FakeQuantizeBase(Shell):
    """The flags and their switches, shared by every fake-quantize module.

    ``fake_quant_enabled`` and ``observer_enabled`` are torch's buffers: a
    one-element array (uint8 here, int64 in the fused module), read as
    "enabled" where the value is 1 (the fused module: any nonzero value), as
    torch compares. They are held as
    Python ints, so no call reads a flag back from a device; the attributes
    return fresh arrays, and assigning into them does not change the module
    (use the methods, or ``load_state_dict``).
    """

    _flag_dtype = "uint8"
    # forward holds the lock while its observer's methods run.
    _lock_type = threading.RLock

    def __init__(self) -> None:
        self._fake_quant_on = 1
        self._observer_on = 1
        self._new_lock()

    def enable_fake_quant(self, enabled: bool = True) -> None:
        with self._lock:
            self._fake_quant_on = 1 if enabled else 0

    def disable_fake_quant(self) -> None:
        self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True) -> None:
        with self._lock:
            self._observer_on = 1 if enabled else 0

    def disable_observer(self) -> None:
        self.enable_observer(False)

    def _flag_array(self, value: int) -> Any:
        xp, device = self._namespace()
        dtype = xp.uint8 if self._flag_dtype == "uint8" else core.widest_int(xp, device)
        return xp.asarray([value], dtype=dtype, device=device)

    @property
    def fake_quant_enabled(self) -> Any:
        return self._flag_array(self._fake_quant_on)

    @property
    def observer_enabled(self) -> Any:
        return self._flag_array(self._observer_on)

    def _namespace(self) -> tuple[ModuleType, Any]:
        raise NotImplementedError


class FakeQuantize(FakeQuantizeBase):
    """Simulate quantization in training: observe, update the qparams, fake-quantize.

    As ``torch.ao.quantization.FakeQuantize`` in torch 2.13.0. ``forward(X)``:

    1. if the observer is enabled, ``activation_post_process(X)``, then
       ``scale, zero_point = calculate_qparams()`` stored as float32 and int32
       (float32 for ``per_channel_affine_float_qparams``), as torch copies them
       into its buffers;
    2. if fake quantization is enabled, returns
       ``fake_quantize_per_tensor_affine(X, scale, zero_point, quant_min, quant_max)``
       (per channel: ``fake_quantize_per_channel_affine`` along ``ch_axis``),
       else ``X`` itself.

    The gradient, where the library differentiates (torch autograd; JAX), is
    torch's straight-through one: 1 where the rounded value lies within
    ``[quant_min, quant_max]``, else 0.

    Parameters
    ----------
    observer
        An arrayobs observer class or ``with_args`` factory (default
        :class:`MovingAverageMinMaxObserver`).
    quant_min, quant_max
        A customized range, passed to the observer when both are given; checked
        against the dtype's integer range as torch does (``ValueError`` where
        torch raises ``AssertionError``).
    is_dynamic
        Passed to the observer.
    check_qparams
        Keyword only, not in torch: whether each forward's ``calculate_qparams``
        checks ``min_val <= max_val`` (torch always does; a moving average can
        cross by rounding). The check reads one boolean back from a GPU;
        ``False`` skips it, so a forward never synchronises.
    **observer_kwargs
        The observer's arguments, ``xp=`` and ``device=`` included: the qparams
        live with the observer's state.

    Notes
    -----
    On an error nothing changes: the observer's update is undone if the qparams
    then fail (torch keeps the update and raises).
    """

    def __init__(
        self,
        observer: Callable[..., Any] = MovingAverageMinMaxObserver,
        quant_min: int | None = None,
        quant_max: int | None = None,
        is_dynamic: bool = False,
        *,
        check_qparams: bool = True,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__()
        self._check = boolean(check_qparams, "check_qparams")
        if quant_min is not None and quant_max is not None:
            if quant_min > quant_max:
                msg = "quant_min must be less than or equal to quant_max"
                raise ValueError(msg)
            dtype = _bound_keywords(observer).get("dtype", observer_kwargs.get("dtype", "quint8"))
            name = _dtype_name(dtype)
            if name not in _IINFO:
                msg = (
                    f"a customized range needs an integer dtype, got {dtype!r} (torch.iinfo fails)"
                )
                raise TypeError(msg)
            lo, hi = _IINFO[name]
            if lo > quant_min:
                msg = f"quant_min ({quant_min}) out of bound for {name} ({lo}, {hi})"
                raise ValueError(msg)
            if quant_max > hi:
                msg = f"quant_max ({quant_max}) out of bound for {name} ({lo}, {hi})"
                raise ValueError(msg)
            observer_kwargs.update(quant_min=quant_min, quant_max=quant_max)
        observer_kwargs["is_dynamic"] = is_dynamic
        apo = observer(**observer_kwargs)
        missing = [
            a
            for a in ("calculate_qparams", "quant_min", "quant_max", "qscheme", "dtype")
            if not hasattr(apo, a)
        ]
        if missing or not callable(apo):
            msg = f"observer must make an arrayobs observer, got {type(apo).__name__}"
            raise TypeError(msg)
        self.activation_post_process = apo
        self.quant_min: int = apo.quant_min
        self.quant_max: int = apo.quant_max
        self.is_dynamic: bool = getattr(apo, "is_dynamic", False)
        self.dtype: str = apo.dtype
        self.qscheme: str = apo.qscheme
        self.ch_axis: int = getattr(apo, "ch_axis", -1)
        self.is_per_channel = self.qscheme in _PER_CHANNEL
        self._fast: bool = getattr(apo, "_fast", True)
        xp, device = self._observer_namespace()
        self._scale = xp.asarray([1.0], dtype=xp.float32, device=device)
        self._zero_point = xp.asarray([0], dtype=self._zp_dtype(xp), device=device)

    # -- where the qparams live --------------------------------------------------
    def _observer_namespace(self) -> tuple[ModuleType, Any]:
        apo = self.activation_post_process
        xp = getattr(apo, "xp", None)
        if xp is None:
            return NUMPY, None
        return xp, apo.device

    def _namespace(self) -> tuple[ModuleType, Any]:
        return array_namespace(self._scale), device_of(self._scale)

    def _zp_dtype(self, xp: ModuleType) -> Any:
        return xp.float32 if self.qscheme == "per_channel_affine_float_qparams" else xp.int32

    @property
    def scale(self) -> Any:
        return self._scale

    @property
    def zero_point(self) -> Any:
        return self._zero_point

    # -- forward -------------------------------------------------------------------
    def calculate_qparams(self) -> tuple[Any, Any]:
        """The observer's ``calculate_qparams`` (with this module's check)."""
        apo = self.activation_post_process
        if isinstance(apo, Observer):
            return apo.calculate_qparams(check=self._check)
        return apo.calculate_qparams()  # type: ignore[no-any-return]

    def _target(self, x: Any) -> tuple[_backends.Backend, ModuleType, Any]:
        """The backend that fake-quantizes ``x``, its namespace and device;
        raises unless ``x`` is a float array of this module's library and device."""
        if not is_array(x):
            msg = f"{type(self).__name__} takes arrays, got {type(x).__name__}"
            raise TypeError(msg)
        xp = array_namespace(x)
        device = device_of(x)
        bound = getattr(self.activation_post_process, "xp", None)
        if bound is not None:
            own = self.activation_post_process.device
            if xp is not bound:
                msg = (
                    f"{type(self).__name__} is bound to {describe(bound, own)}; "
                    f"got an array of {describe(xp, device)} (construct it, or call its "
                    f"factory, with xp={xp_argument(xp)})"
                )
                raise TypeError(msg)
        backend = _backends.shared(xp, self._fast)
        arguments.require_fake_quantizable(xp, x.dtype)
        return backend, xp, device

    def _stored(self, pair: tuple[Any, Any], xp: ModuleType, device: Any) -> tuple[Any, Any]:
        """Fresh qparams as torch's buffers hold them: float32 scale, int32 zero point."""
        scale, zp = pair
        if array_namespace(scale) is not xp:
            scale = xp.asarray(np.asarray(to_host(scale)), device=device)
            zp = xp.asarray(np.asarray(to_host(zp)), device=device)
        return (
            xp.asarray(xp.astype(scale, xp.float32), device=device),
            xp.asarray(xp.astype(zp, self._zp_dtype(xp)), device=device),
        )

    def _qparams_in(self, xp: ModuleType, device: Any) -> tuple[Any, Any]:
        """The stored qparams in ``xp`` on ``device`` (moved from the host where
        the observer has not bound yet and holds NumPy defaults)."""
        scale, zp = self._scale, self._zero_point
        if array_namespace(scale) is not xp:
            scale = xp.asarray(np.asarray(to_host(scale)), device=device)
            zp = xp.asarray(np.asarray(to_host(zp)), device=device)
        return scale, zp

    def forward(self, X: Any) -> Any:
        """Observe ``X`` (if enabled) and return it fake-quantized (if enabled).

        Raises TypeError for a non-float array or one of another library than
        the observer's, leaving everything as it was.
        """
        with self._lock:
            backend, xp, device = self._target(X)
            if self._observer_on == 1:
                apo = self.activation_post_process
                saved = apo._snapshot() if isinstance(apo, Observer) else None
                try:
                    apo(X)
                    scale, zp = self._stored(self.calculate_qparams(), xp, device)
                except BaseException:
                    if saved is not None:
                        apo._restore(saved)
                    raise
                self._scale, self._zero_point = scale, zp
            if self._fake_quant_on != 1:
                return X
            scale, zp = self._qparams_in(xp, device)
            if self.is_per_channel:
                return backend.fake_quantize(
                    X, scale, zp, self.quant_min_max[0], self.quant_min_max[1], self.ch_axis
                )
            return backend.fake_quantize(X, scale, zp, *self.quant_min_max)

    __call__ = forward

    @property
    def quant_min_max(self) -> tuple[int, int]:
        apo = self.activation_post_process
        return apo.quant_min, apo.quant_max

    # -- state_dict ----------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """torch's keys, in torch's order: the flags, ``scale``, ``zero_point``,
        then the observer's entries under ``activation_post_process.``."""
        with self._lock:
            xp = array_namespace(self._scale)
            out: OrderedDict[str, Any] = OrderedDict(
                fake_quant_enabled=self.fake_quant_enabled,
                observer_enabled=self.observer_enabled,
                scale=xp.asarray(self._scale, copy=True),
                zero_point=xp.asarray(self._zero_point, copy=True),
            )
            for k, v in self.activation_post_process.state_dict().items():
                out[_PREFIX + k] = v
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load torch's keys (a torch FakeQuantize's state_dict, values as any
        library's arrays or Python numbers).

        Everything is checked before anything changes: missing or unexpected keys
        (``KeyError`` with ``strict=True``), a scale that is not a 1-d float
        array, a zero point of another length, and the observer's own checks.
        ``scale`` and ``zero_point`` take the given length, as torch resizes.
        """
        state_dict = _state_dict.as_mapping(state_dict)
        with self._lock:
            apo = self.activation_post_process
            own = ("fake_quant_enabled", "observer_enabled", "scale", "zero_point")
            expected = [*own, *(_PREFIX + k for k in apo.state_dict())]
            _, found = _state_dict.check_keys(
                state_dict, expected, strict, type(self).__name__, say_expected=False
            )
            flags = {k: _state_dict.host_flag(state_dict, k) for k in own[:2] if k in state_dict}
            scale = (
                _state_dict.host_vector(state_dict, "scale", "f") if "scale" in state_dict else None
            )
            zp = (
                _state_dict.host_vector(state_dict, "zero_point", "fiu")
                if "zero_point" in state_dict
                else None
            )
            if scale is not None and zp is not None and scale.shape != zp.shape:
                msg = f"state_dict scale has shape {scale.shape}, zero_point {zp.shape}"
                raise ValueError(msg)
            sub = {k[len(_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(_PREFIX)}
            meta = getattr(state_dict, "_metadata", None)
            if meta is not None and _PREFIX[:-1] in meta:
                sub = _with_metadata(sub, meta[_PREFIX[:-1]])
            apo.load_state_dict(sub, strict=False)
            xp, device = self._namespace()
            if scale is not None:
                self._scale = xp.asarray(scale.astype(np.float32), device=device)
            if zp is not None:
                self._zero_point = xp.asarray(
                    zp.astype(np.float32 if self._zp_dtype(NUMPY) == NUMPY.float32 else np.int32),
                    device=device,
                )
            if "fake_quant_enabled" in flags:
                self._fake_quant_on = flags["fake_quant_enabled"]
            if "observer_enabled" in flags:
                self._observer_on = flags["observer_enabled"]
        return found

    # -- copy and pickle -------------------------------------------------------------
    def _pickled(self, out: dict[str, Any]) -> None:
        """The qparams as host copies, their namespace and device by name."""
        xp, device = self._namespace()
        out["_namespace"] = xp.__name__
        out["_qdevice"] = _backends.new(xp, self._fast).portable_device(device)
        out["_scale"] = np.array(to_host(self._scale))
        out["_zero_point"] = np.array(to_host(self._zero_point))

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp = resolve_namespace(importlib.import_module(state.pop("_namespace")))
        device = _backends.new(xp, state["_fast"]).restore_device(state.pop("_qdevice"))
        state["_scale"] = xp.asarray(state["_scale"], device=device)
        state["_zero_point"] = xp.asarray(state["_zero_point"], device=device)

    # -- repr ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return (
            f"fake_quant_enabled={self.fake_quant_enabled}, "
            f"observer_enabled={self.observer_enabled}, "
            f"quant_min={self.quant_min_max[0]}, quant_max={self.quant_min_max[1]}, "
            f"dtype={self.dtype}, qscheme={self.qscheme}, ch_axis={self.ch_axis}, "
            f"scale={self._scale}, zero_point={self._zero_point}"
        )

    def __repr__(self) -> str:
        # torch's module repr: the child on a line of its own.
        return (
            f"{type(self).__name__}(\n  {self.extra_repr()}\n"
            f"  (activation_post_process): {self.activation_post_process!r}\n)"
        )


class FixedQParamsFakeQuantize(FakeQuantize):
    """Fake quantization with constant qparams, as torch.ao's ``FixedQParamsFakeQuantize``
    (the fixed ranges of sigmoid, hardsigmoid and tanh outputs).

    ``observer`` must make a :class:`FixedQParamsObserver` (per tensor);
    ``calculate_qparams()`` returns the module's ``scale`` and ``zero_point``,
    which start as the observer's. ``**observer_kwargs`` (not in torch) go to
    the observer: ``xp=`` and ``device=`` choose where the qparams live
    (default NumPy). After ``load_state_dict`` the module's qparams are the
    observer's, as torch's module and observer share one tensor.
    """

    def __init__(self, observer: Callable[..., Any], **observer_kwargs: Any) -> None:
        super().__init__(observer=observer, **observer_kwargs)
        apo = self.activation_post_process
        if type(apo) is not FixedQParamsObserver:
            msg = f"the observer must be a FixedQParamsObserver, got {type(apo).__name__}"
            raise TypeError(msg)
        if self.is_per_channel:
            msg = f"only per tensor quantization is supported, got qscheme {self.qscheme}"
            raise ValueError(msg)
        self._scale, self._zero_point = apo.calculate_qparams()

    def calculate_qparams(self) -> tuple[Any, Any]:
        return self._scale, self._zero_point

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        keys = super().load_state_dict(state_dict, strict)
        with self._lock:
            self._scale, self._zero_point = self.activation_post_process.calculate_qparams()
        return keys

    def extra_repr(self) -> str:
        return (
            f"fake_quant_enabled={self.fake_quant_enabled}, "
            f"observer_enabled={self.observer_enabled}, scale={self._scale}, "
            f"zero_point={self._zero_point}, dtype={self.dtype}, "
            f"quant_min={self.quant_min_max[0]}, quant_max={self.quant_min_max[1]}, "
            f"qscheme={self.qscheme}"
        )


class FusedMovingAvgObsFakeQuantize(FakeQuantize):
    """``torch.fused_moving_avg_obs_fake_quant`` as a module: observe, choose
    qparams and fake-quantize with the fused op's own rules (torch 2.13.0, CPU).

    As ``torch.ao.quantization.FusedMovingAvgObsFakeQuantize``: the observer is
    a :class:`MovingAverageMinMaxObserver` or (``ch_axis`` 0 only, as torch)
    :class:`MovingAveragePerChannelMinMaxObserver`, and only its state and
    ``averaging_constant`` are used. ``forward(X)`` (float32 only, as torch):

    1. if the observer is enabled (any nonzero flag), each running min and max
       moves by ``r + c * (cur - r)`` in float32, or takes the batch's value
       where it is infinite (:func:`arrayobs._core._fused.moving_average`);
    2. if fake quantization is enabled, the qparams are recomputed from the
       running values with FBGEMM's ``ChooseQuantizationParams``, which is not
       ``calculate_qparams`` (:mod:`arrayobs._core._fused`: a 6.1e-5 floor on the
       scale, the zero point of the smaller error, float32 and double steps), and
       ``X`` is fake-quantized with them; otherwise ``X`` comes back unchanged and
       the qparams stay.

    ``calculate_qparams()`` is the observer's, as in torch (so it can differ
    from ``scale``/``zero_point``). The flags are int64 arrays (torch's
    buffers), int32 on JAX without x64. A range wider than int32 is refused:
    torch's int32 arithmetic overflows there and gives meaningless qparams.
    Nothing is read back from a device.
    """

    _flag_dtype = "int64"

    def __init__(
        self,
        observer: Callable[..., Any] = MovingAverageMinMaxObserver,
        quant_min: int = 0,
        quant_max: int = 255,
        **observer_kwargs: Any,
    ) -> None:
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        apo = self.activation_post_process
        if not isinstance(
            apo, (MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver)
        ):
            msg = (
                "Fused observer+fake_quant module only works with MovingAverageMinMaxObserver "
                f"or MovingAveragePerChannelMinMaxObserver, got {type(apo).__name__}"
            )
            raise TypeError(msg)
        if self.is_per_channel and self.ch_axis != 0:
            msg = (
                "Per-channel FakeQuant in fused_moving_avg_obs_fake_quant is only supported "
                f"on axis == 0 (got ch_axis={self.ch_axis}), as in torch"
            )
            raise ValueError(msg)
        qmin, qmax = self.quant_min_max
        if qmax - qmin >= 2**31:
            msg = (
                f"quantization range ({qmin}, {qmax}) is wider than int32: torch's fused op "
                "overflows there and gives meaningless qparams"
            )
            raise ValueError(msg)
        self.is_symmetric_quant = self.qscheme in ("per_tensor_symmetric", "per_channel_symmetric")

    def forward(self, X: Any) -> Any:
        """One step of ``torch.fused_moving_avg_obs_fake_quant`` (see the class)."""
        with self._lock:
            backend, xp, device = self._target(X)
            if X.dtype != xp.float32:
                msg = f"{type(self).__name__} takes float32 arrays (as torch), got {X.dtype}"
                raise TypeError(msg)
            apo = self.activation_post_process
            if self.is_per_channel and X.ndim == 0:
                msg = "a per-channel fused fake quantize needs an input with axis 0"
                raise ValueError(msg)
            if backend.size(X) == 0:
                return X
            qmin, qmax = self.quant_min_max
            per_channel, observing = self.is_per_channel, self._observer_on != 0
            found: list[Any] = []

            def step(state: core.MinMaxState) -> core.MinMaxState | None:
                new = None
                if per_channel and (observing or state.min_val.shape[0] == 0):
                    state = new = fused.with_channels(state, X.shape[0], xp=xp, device=device)
                if observing:
                    lo, hi = backend.aminmax(X, 0 if per_channel else None)
                    # Computed now on Dask, as the observers compute their state.
                    moved = fused.observe(
                        state, lo, hi, apo.averaging_constant, xp=xp, device=device
                    )
                    state = new = core.MinMaxState(*backend.materialize(*moved))
                if self._fake_quant_on != 0:
                    m, big_m = state
                    with backend.float64_scope():  # FBGEMM's double steps (JAX without x64)
                        pair = fused.qparams(
                            m, big_m, qmin, qmax, self.is_symmetric_quant, xp=xp, device=device
                        )
                    found.extend(backend.materialize(*pair))
                return new

            apo._update_state(X, step, observed=observing)
            if not found:
                return X
            scale, zp = found
            if self.is_per_channel:
                self._scale, self._zero_point = scale, zp
                return backend.fake_quantize(X, scale, zp, qmin, qmax, 0)
            self._scale = xp.reshape(scale, (1,))
            self._zero_point = xp.reshape(zp, (1,))
            return backend.fake_quantize(X, scale, zp, qmin, qmax)

    __call__ = forward

    def extra_repr(self) -> str:
        return (
            f"fake_quant_enabled={self.fake_quant_enabled}, "
            f"observer_enabled={self.observer_enabled}, scale={self._scale}, "
            f"zero_point={self._zero_point}, dtype={self.dtype}, "
            f"quant_min={self.quant_min_max[0]}, quant_max={self.quant_min_max[1]}, "
            f"qscheme={self.qscheme}, reduce_range={self.activation_post_process.reduce_range}"
        )


def _with_metadata(sub: dict[str, Any], meta: Any) -> Any:
    out: OrderedDict[str, Any] = OrderedDict(sub)
    out._metadata = {"": meta}  # type: ignore[attr-defined]
    return out
