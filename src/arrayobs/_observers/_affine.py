"""torchao's ``AffineQuantizedMinMaxObserver``, and a moving-average variant.

The state is one (min, max) pair per block, in the first batch's dtype (the
moving average: float32, as torch.ao's); ``calculate_qparams`` is torchao's
``choose_qparams_affine_with_min_max`` of it (:mod:`arrayobs._core._affine`).
"""

from __future__ import annotations

import importlib
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs._compat import (
    array_namespace,
    default_device,
    has_dtype,
    is_array,
    resolve_namespace,
    to_host,
    without_graph,
)
from arrayobs._core import _affine as core
from arrayobs._core import _affine_fold as affine_fold
from arrayobs._core._minmax import (
    MinMaxState,
    moving_average_combine,
    quiet,
)
from arrayobs._observers._arguments import checked_device
from arrayobs._observers._shell import Bound
from arrayobs._observers._state_dict import IncompatibleKeys, check_keys

NUMPY = resolve_namespace(np)
_KEYS = ("min_val", "max_val")


class AffineObserverBase(Bound):
    """What torchao's ``AffineQuantizedObserverBase`` holds: the checked
    quantization arguments (torchao's, with its deprecation warnings) and the
    binding to ``xp``/``device``."""

    def __init__(
        self,
        mapping_type: Any,
        target_dtype: Any,
        granularity: Any,
        quant_min: float | None = None,
        quant_max: float | None = None,
        eps: float | None = None,
        scale_dtype: Any = None,
        zero_point_dtype: Any = None,
        preserve_zero: bool = True,
        zero_point_domain: Any = core.ZeroPointDomain.INT,
        keepdim: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
    ) -> None:
        if granularity is None:
            msg = "granularity is None: pass PerTensor(), PerAxis(axis), PerGroup(n), ..."
            raise ValueError(msg)
        self.mapping_type = arguments.mapping_type(mapping_type)
        self._target = arguments.target(target_dtype, quant_min, quant_max)
        self.target_dtype = self._target.name
        self.granularity = core.granularity(granularity)
        self.quant_min, self.quant_max = quant_min, quant_max
        self.eps = arguments.eps_value(eps)
        self.scale_dtype = arguments.scale_dtype_name(scale_dtype)
        self.zero_point_dtype = arguments.zero_point_dtype_name(zero_point_dtype)
        self.preserve_zero = arguments.boolean(preserve_zero, "preserve_zero")
        self.zero_point_domain = arguments.zero_point_domain(zero_point_domain)
        self.keepdim = arguments.boolean(keepdim, "keepdim")
        if xp is None:
            if device is not None:
                msg = "device needs xp: pass the array library too, or neither"
                raise ValueError(msg)
            namespace, self._xp = NUMPY, None
        else:
            namespace = resolve_namespace(xp)
            self._xp = namespace
        self._backend = _backends.new(namespace)
        self._device = self._backend.state_device(
            default_device(namespace) if device is None else checked_device(namespace, device)
        )
        self._new_lock()
        if not self.preserve_zero:
            warnings.warn(
                "preserve_zero=False is deprecated in torchao; only preserve_zero=True is "
                "supported",
                DeprecationWarning,
                stacklevel=3,
            )
        if self.zero_point_domain is not core.ZeroPointDomain.INT:
            warnings.warn(
                f"zero_point_domain={self.zero_point_domain} is deprecated in torchao; only "
                "ZeroPointDomain.INT is supported",
                DeprecationWarning,
                stacklevel=3,
            )


class AffineQuantizedMinMaxObserver(AffineObserverBase):
    """torchao's ``AffineQuantizedMinMaxObserver``: the running min and max of
    each block, and torchao's affine qparams of them.

    Parameters are torchao's (``mapping_type``, ``target_dtype`` and
    ``granularity`` required); dtypes as names or backend dtypes. ``xp=`` and
    ``device=`` bind the observer up front; otherwise it binds to the first
    array it observes. ``preserve_zero=False`` and a zero-point domain other
    than INT warn (DeprecationWarning), as torchao, and change nothing but
    ``ZeroPointDomain.NONE``, which makes the zero point None.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs.affine import AffineQuantizedMinMaxObserver, MappingType, PerGroup
    >>> obs = AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, "int8", PerGroup(4))
    >>> _ = obs(np.arange(8, dtype=np.float32).reshape(1, 8))
    >>> scale, zero_point = obs.calculate_qparams()
    >>> scale.shape, zero_point.dtype  # one row of two groups; a float symmetric zero point
    ((1, 2), dtype('float32'))
    """

    # A copy shares the namespace, device and backend, and the state's arrays
    # (never written into, only replaced).
    _SHARED = ("_backend", "_xp", "_device", "_state")

    def __init__(
        self,
        mapping_type: Any,
        target_dtype: Any,
        granularity: Any,
        quant_min: float | None = None,
        quant_max: float | None = None,
        eps: float | None = None,
        scale_dtype: Any = None,
        zero_point_dtype: Any = None,
        preserve_zero: bool = True,
        zero_point_domain: Any = core.ZeroPointDomain.INT,
        keepdim: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
    ) -> None:
        self._state: MinMaxState | None = None
        super().__init__(
            mapping_type,
            target_dtype,
            granularity,
            quant_min,
            quant_max,
            eps,
            scale_dtype,
            zero_point_dtype,
            preserve_zero,
            zero_point_domain,
            keepdim,
            xp=xp,
            device=device,
        )

    # -- state -----------------------------------------------------------------
    def _observed_state(self) -> MinMaxState:
        state = self._state
        if state is None:
            msg = f"{type(self).__name__} has observed nothing yet (torchao has no min_val then)"
            raise AttributeError(msg)
        return state

    @property
    def min_val(self) -> Any:
        """Per-block minimum (AttributeError before the first non-empty batch, as torchao)."""
        return self._observed_state().min_val

    @property
    def max_val(self) -> Any:
        """Per-block maximum, as :attr:`min_val`."""
        return self._observed_state().max_val

    # -- observing ---------------------------------------------------------------
    def _batch(self, backend: _backends.Backend, x: Any) -> MinMaxState:
        x = without_graph(x)  # torchao's observers detach: state never keeps a graph
        block = core.get_block_size(x.shape, self.granularity)
        return MinMaxState(*backend.block_minmax(x, block, self.keepdim))

    def _fold(self, state: MinMaxState, batch: MinMaxState, xp: ModuleType) -> MinMaxState:
        return affine_fold.fold(state, batch, xp=xp)

    def forward(self, input: Any) -> Any:
        """Fold ``input``'s per-block min and max into the state; return ``input``.

        An empty batch changes nothing, as torchao. A batch whose blocks do not
        fit the state's shape raises ValueError (torchao: AssertionError), and
        any error leaves the observer as it was. Safe from several threads.
        """
        if not is_array(input):
            msg = f"{type(self).__name__} observes arrays, got {type(input).__name__}"
            raise TypeError(msg)
        xp = array_namespace(input)
        backend = self._backend if xp is self._xp else _backends.new(xp)
        device = backend.device_of(input)
        self._check_binding(xp, device)
        if not arguments.require_size(backend.size(input)):
            return input
        core.float_name(input.dtype, "observed input")
        # The reduction, outside the lock; computed now on Dask, as the torch.ao
        # classes compute each Dask batch (the state is one value per block).
        batch = MinMaxState(*backend.materialize(*self._batch(backend, input)))
        with self._lock:
            self._check_binding(xp, device)
            state = self._state
            if state is not None and self._xp is None:
                state = MinMaxState(*(_moved(v, xp, device) for v in state))
            if state is None:
                new = self._first(batch, xp)
            else:
                if tuple(state.min_val.shape) != tuple(batch.min_val.shape):
                    msg = (
                        f"cannot update a state of shape {tuple(state.min_val.shape)} with a "
                        f"batch whose blocks have shape {tuple(batch.min_val.shape)}"
                    )
                    raise ValueError(msg)
                new = quiet(self._fold)(state, batch, xp)
            self._xp, self._device, self._backend = xp, device, backend
            self._state = new
        return input

    __call__ = forward

    def _first(self, batch: MinMaxState, xp: ModuleType) -> MinMaxState:
        return batch

    def calculate_qparams(self) -> tuple[Any, Any]:
        """torchao's ``choose_qparams_affine_with_min_max`` of the state:
        ``(scale, zero_point)``, one per block; the zero point None with
        ``ZeroPointDomain.NONE``. ValueError before any observation (torchao:
        AssertionError)."""
        with self._lock:
            state, xp = self._state, self._backend.xp
        if state is None:
            msg = f"{type(self).__name__}: run the observer before calling calculate_qparams"
            raise ValueError(msg)
        # JAX without x64 would hand back a 32-bit array.
        wanted = (("scale_dtype", self.scale_dtype), ("zero_point_dtype", self.zero_point_dtype))
        for what, wide in wanted:
            if wide in ("int64", "float64") and not has_dtype(xp, self._device, wide):
                msg = f"{what} {wide} is not available in {xp.__name__} (enable 64-bit dtypes)"
                raise TypeError(msg)
        scale, zp, name = core.qparams_from_minmax(
            state.min_val, state.max_val, self.mapping_type, self._target, self.eps, xp=xp
        )
        scale, zp = core.finish(
            scale, zp, name, self.mapping_type, self.scale_dtype, self._zp_dtype(name), xp=xp
        )
        if self.zero_point_domain is core.ZeroPointDomain.NONE:
            zp = None
        return scale, zp

    # -- state_dict --------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """``{"min_val", "max_val"}`` as copies once observed, else empty (torchao's
        own state_dict is always empty: its min and max are plain attributes)."""
        with self._lock:
            state, xp = self._state, self._backend.xp
        if state is None:
            return OrderedDict()
        return OrderedDict((k, xp.asarray(v, copy=True)) for k, v in zip(_KEYS, state, strict=True))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load ``min_val`` and ``max_val`` (arrays of any supported library, one
        float dtype and shape), or nothing: an empty dict makes the observer
        unobserved. Checked before anything changes."""
        state_dict, found = check_keys(
            state_dict, _KEYS, strict, type(self).__name__, required=False
        )
        given = [k for k in _KEYS if k in state_dict]
        if len(given) == 1:
            msg = f"state_dict has {given[0]} without {({*_KEYS} - {given[0]}).pop()}"
            raise KeyError(msg)
        if not given:
            with self._lock:
                self._state = None
            return found
        hosts, names = [], []
        for key in _KEYS:
            value = state_dict[key]
            if not is_array(value):
                msg = f"state_dict[{key!r}] must be an array, got {type(value).__name__}"
                raise TypeError(msg)
            names.append(core.float_name(value.dtype, f"state_dict[{key!r}]"))
            hosts.append(_host(value))
        if names[0] != names[1] or hosts[0].shape != hosts[1].shape:
            msg = "state_dict min_val and max_val must have one dtype and shape"
            raise ValueError(msg)
        name = self._state_dtype(names[0])
        with self._lock:
            xp = self._backend.xp
            kind = core.backend_dtype(name, xp)
            self._state = MinMaxState(
                *(xp.astype(xp.asarray(h, device=self._device), kind) for h in hosts)
            )
        return found

    def _state_dtype(self, name: str) -> str:
        return name

    def _zp_dtype(self, state_name: str) -> str | None:
        return self.zero_point_dtype

    # -- copy and pickle ------------------------------------------------------------
    def _pickled(self, out: dict[str, Any]) -> None:
        backend, state = out.pop("_backend"), out["_state"]
        out["_namespace"] = backend.xp.__name__
        out["_bound"] = out.pop("_xp") is not None
        out["_device"] = backend.portable_device(self._device)
        if state is not None:
            out["_state"] = (core.dtype_name(state.min_val.dtype), *(_host(v) for v in state))

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp = resolve_namespace(importlib.import_module(state.pop("_namespace")))
        backend = _backends.new(xp)
        device = backend.restore_device(state["_device"])
        saved = state["_state"]
        if saved is not None:
            kind = core.backend_dtype(saved[0], xp)
            saved = MinMaxState(*(xp.astype(xp.asarray(h, device=device), kind) for h in saved[1:]))
        state.update(
            _xp=xp if state.pop("_bound") else None, _backend=backend, _device=device, _state=saved
        )


def _host(v: Any) -> np.ndarray:
    """A NumPy copy of any library's array, 16-bit floats widened (exactly) to
    float32, which every library takes back."""
    host = np.array(to_host(v), copy=True)
    return host.astype(np.float32) if host.dtype.itemsize < 4 else host


def _moved(v: Any, xp: ModuleType, device: Any) -> Any:
    """A host (NumPy) state array as an array of ``xp`` on ``device``, same dtype."""
    name = core.dtype_name(v.dtype)
    return xp.astype(xp.asarray(_host(v), device=device), core.backend_dtype(name, xp))


class AffineQuantizedMovingAverageMinMaxObserver(AffineQuantizedMinMaxObserver):
    """:class:`AffineQuantizedMinMaxObserver` with a moving average per block, as
    torchao's pt2e ``AffineQuantizedMovingAverageMinMaxObserver``
    (``torchao.quantization.pt2e._affine_quantization``, torchao 0.18.0).

    By default (``running_dtype="input"``, torchao's) the state keeps the first
    batch's dtype: bfloat16 input keeps a bfloat16 running min and max. Every
    later batch moves it by ``m + c * (cur - m)`` in that dtype (float16 and
    bfloat16 rounded after each operation, ``c`` in float32 op math), and a
    ``zero_point_dtype`` of None gives the zero point the state's dtype, as
    torchao's pt2e qparams do. ``running_dtype="float32"`` is torch.ao's
    ``MovingAverageMinMaxObserver`` applied to every block instead: a float32
    state (each batch's block min and max rounded to float32), three float32
    operations per step, and an int32 zero point for ASYMMETRIC by default.
    On float32 input their states agree. ``averaging_constant`` (default 0.01) and
    ``running_dtype`` are keyword-only; the positional parameters are the
    min-max observer's (torchao's pt2e class takes ``averaging_constant``
    fourth).
    """

    def __init__(
        self,
        mapping_type: Any,
        target_dtype: Any,
        granularity: Any,
        quant_min: float | None = None,
        quant_max: float | None = None,
        eps: float | None = None,
        scale_dtype: Any = None,
        zero_point_dtype: Any = None,
        preserve_zero: bool = True,
        zero_point_domain: Any = core.ZeroPointDomain.INT,
        keepdim: bool = False,
        *,
        averaging_constant: float = 0.01,
        running_dtype: str = "input",
        xp: Any = None,
        device: Any = None,
    ) -> None:
        c = arguments.eps_value(averaging_constant)
        if c is None:
            msg = "averaging_constant must be a real number, got None"
            raise ValueError(msg)
        self.averaging_constant = c
        if running_dtype not in ("input", "float32"):
            msg = f"running_dtype must be 'input' (torchao's) or 'float32', got {running_dtype!r}"
            raise ValueError(msg)
        self.running_dtype = running_dtype
        super().__init__(
            mapping_type,
            target_dtype,
            granularity,
            quant_min,
            quant_max,
            eps,
            scale_dtype,
            zero_point_dtype,
            preserve_zero,
            zero_point_domain,
            keepdim,
            xp=xp,
            device=device,
        )

    def _unpickled(self, state: dict[str, Any]) -> None:
        # Pickles from before running_dtype (0.1.0) held torch.ao's float32 average.
        state.setdefault("running_dtype", "float32")
        super()._unpickled(state)

    def _batch(self, backend: _backends.Backend, x: Any) -> MinMaxState:
        mn, mx = super()._batch(backend, x)
        if self.running_dtype == "input":
            return MinMaxState(mn, mx)
        xp = backend.xp
        return MinMaxState(xp.astype(mn, xp.float32), xp.astype(mx, xp.float32))

    def _fold(self, state: MinMaxState, batch: MinMaxState, xp: ModuleType) -> MinMaxState:
        if self.running_dtype == "input":
            return MinMaxState(*core.moving_average(state, batch, self.averaging_constant, xp=xp))
        return moving_average_combine(
            state, batch.min_val, batch.max_val, self.averaging_constant, xp=xp, fresh=False
        )

    def _zp_dtype(self, state_name: str) -> str | None:
        if self.zero_point_dtype is None and self.running_dtype == "input":
            return state_name  # torchao pt2e: the zero point takes min_val's dtype
        return self.zero_point_dtype
