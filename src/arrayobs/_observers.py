"""torch-shaped observer classes: configuration + state + thin methods.

The math lives in :mod:`arrayobs.functional`; these classes validate input at
the boundary, hold the state, bind to a namespace and device, and mirror the
API of ``torch.ao.quantization.observer``.
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import functional as F
from arrayobs._compat import (
    array_namespace,
    backend_name,
    default_device,
    device_of,
    is_array,
    is_cupy,
    is_dask,
    is_jax,
    is_numpy,
    is_torch,
    resolve_namespace,
    size,
    to_host,
)
from arrayobs._config import FLOAT32_EPS, QuantConfig, boolean, quant_config, real_number
from arrayobs._fastpaths import _numpy as _np_fast
from arrayobs._reduce import channel_axis

__all__ = [
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver",
    "PerChannelMinMaxObserver",
]

_STATE_KEYS = ("eps", "min_val", "max_val")
# torch's version of these observers' state_dict layout (eps a buffer since 2).
_STATE_DICT_VERSION = 3


class _Factory:
    """What ``with_args`` returns: a constructor with some arguments bound."""

    def __init__(self, func: Callable[..., Any], callable_args: Mapping[str, Any] | None = None):
        self._func = func
        self._callable_args = dict(callable_args or {})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = {k: f() for k, f in self._callable_args.items() if k not in kwargs}
        return self._func(*args, **made, **kwargs)

    def with_args(self, **kwargs: Any) -> _Factory:
        return _Factory(functools.partial(self._func, **kwargs), self._callable_args)

    def with_callable_args(self, **kwargs: Callable[[], Any]) -> _Factory:
        return _Factory(self._func, {**self._callable_args, **kwargs})

    def __repr__(self) -> str:
        return f"{self._func!r}{self._callable_args!r}"


def _describe(xp: ModuleType, device: Any) -> str:
    return f"{backend_name(xp)} on device {device!r}"


def _host_float32(state_dict: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> float:
    """``state_dict[key]`` checked for shape and dtype, as a float32-rounded Python float."""
    host = _host_array(state_dict, key)
    if host.shape != shape:
        msg = f"state_dict[{key!r}] must have shape {shape}, got {host.shape}"
        raise ValueError(msg)
    return float(host.reshape(-1)[0])


def _host_array(state_dict: Mapping[str, Any], key: str) -> np.ndarray:
    """``state_dict[key]`` checked for a real dtype, as a float32 host array
    (rounded as torch's ``copy_`` rounds; float64 overflow becomes inf)."""
    value = state_dict[key]
    try:
        host = to_host(value)
    except Exception as exc:  # any library's refusal to convert means "not an array"
        msg = f"state_dict[{key!r}] must be an array or a number, got {type(value).__name__}"
        raise TypeError(msg) from exc
    if host.dtype.kind not in "fiu" and host.dtype.name != "bfloat16":
        msg = f"state_dict[{key!r}] must have a real dtype, got {host.dtype}"
        raise TypeError(msg)
    with np.errstate(over="ignore"):
        # A copy: the value may be a view of another library's buffer (torch's
        # per-channel observers resize theirs in place), never to be kept.
        return np.array(host, dtype=np.float32, copy=True)


def _device(x: Any, has_attr: bool) -> Any:
    """``x``'s device; ``x.device`` directly where that is what array-api-compat gives."""
    return x.device if has_attr else device_of(x)


def _crossed_array(state: F.MinMaxState, xp: ModuleType) -> Any:
    """Boolean array: min_val > max_val somewhere, the never-observed state aside."""
    return xp.any((state.min_val > state.max_val) & ~F.is_fresh(state, xp=xp))


def _torch_only(xp: ModuleType) -> None:
    if not is_torch(xp):
        msg = f"process_group needs torch tensors, got an array of {backend_name(xp)}"
        raise TypeError(msg)


def _unless_all_empty(
    state: F.MinMaxState, new: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType
) -> F.MinMaxState:
    """``new``, or ``state`` where the group's (lo, hi) is (+inf, -inf): every
    shard was empty (no batch has that pair), and the state stays."""
    empty = (lo == float("inf")) & (hi == float("-inf"))
    return F.MinMaxState(
        xp.where(empty, state.min_val, new.min_val), xp.where(empty, state.max_val, new.max_val)
    )


def _any_greater(state: F.MinMaxState) -> Any:
    """Boolean array: min_val > max_val in some channel (the per-channel check)."""
    return (state.min_val > state.max_val).any()


@functools.lru_cache(maxsize=256)
def _jax_jit(
    kind: str, arg: Any = None, fast: bool = True, split: bool = False
) -> Callable[..., Any]:
    """The functional core compiled with ``jax.jit``, shared by equal observers.

    ``kind`` is ``"minmax"``, ``"moving_average"`` (``arg``: the averaging
    constant), ``"qparams"`` (``arg``: the QuantConfig), ``"crossed"`` (the
    moving average's check before qparams) or ``"any_greater"`` (the
    per-channel moving average's); ``split``: see
    ``_fastpaths._jax.split_reduction``; ``fast`` is passed
    to the updates. Eager JAX dispatches
    each of the core's few dozen scalar operations separately; one compiled
    call is what a JAX user gets from jitting the functional core.
    """
    import jax

    fn: Callable[..., Any]
    if kind == "crossed":
        fn = functools.partial(_crossed_array, xp=importlib.import_module("jax.numpy"))
    elif kind == "any_greater":
        fn = _any_greater
    elif kind == "minmax":
        fn = functools.partial(F.minmax_update, fast=fast)
    elif kind == "moving_average":
        fn = functools.partial(F.moving_average_update, averaging_constant=arg, fast=fast)
    else:
        fn = functools.partial(F.calculate_qparams, config=arg)
    if split:
        fn = _traced_with_split(fn)
    compiled: Callable[..., Any] = jax.jit(fn)
    return compiled


def _traced_with_split(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, traced with the JAX reduction split in two rows (single-device inputs)."""
    split_reduction = _fastpath("jax").split_reduction

    def traced(*args: Any) -> Any:
        with split_reduction():
            return fn(*args)

    return traced


def _dask_to_host(arrays: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """Compute Dask arrays in one graph (NumPy FP warnings off, as in the core)."""
    import dask

    with np.errstate(all="ignore"):
        return tuple(np.asarray(a) for a in dask.compute(*arrays))  # type: ignore[attr-defined, no-untyped-call]


_NUMPY = resolve_namespace(np)


@functools.lru_cache(maxsize=16)
def _fastpath(name: str) -> Any:
    """``arrayobs._fastpaths._<name>``, imported on first use (an import
    statement in the update itself would cost a microsecond per call)."""
    return importlib.import_module(f"arrayobs._fastpaths._{name}")


@functools.cache
def _collective() -> Any:
    """``arrayobs._distributed`` (imports torch.distributed), on first use."""
    return importlib.import_module("arrayobs._distributed")


@functools.lru_cache(maxsize=64)
def _route(xp: ModuleType, fast: bool) -> str:
    """How an observer bound to ``xp`` updates: numpy, torch, jax, dask or generic."""
    if is_jax(xp):
        return "jax"
    if is_dask(xp):
        return "dask"
    if fast and is_numpy(xp):
        return "numpy"
    if fast and is_torch(xp):
        return "torch"
    if fast and is_cupy(xp):
        return "cupy"
    return "generic"


class _Observer:
    """What every observer class shares: configuration, binding, state, state_dict."""

    def __init__(
        self,
        dtype: Any = "quint8",
        qscheme: Any = "per_tensor_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        self._fast = boolean(fast, "fast")
        self._group = process_group
        self._maybe_observed = False
        self._checked_dtypes: set[Any] = set()
        self._config: QuantConfig = quant_config(
            dtype, qscheme, reduce_range, quant_min, quant_max, eps, stacklevel=3, **self._scope
        )
        self.is_dynamic = boolean(is_dynamic, "is_dynamic")
        if xp is None:
            if device is not None:
                msg = "device needs xp: pass the array library too, or neither"
                raise ValueError(msg)
            self._xp: ModuleType | None = None
            namespace = _NUMPY
        else:
            namespace = resolve_namespace(xp)
            self._xp = namespace
        if process_group is not None and xp is not None and not is_torch(namespace):
            msg = f"process_group needs torch tensors, but xp is {backend_name(namespace)}"
            raise TypeError(msg)
        self._device = (
            default_device(namespace)
            if device is None
            else device_of(namespace.empty((0,), device=device))
        )
        if is_jax(namespace):
            self._device = _fastpath("jax").state_device(self._device)
        self._seen_type: type | None = None
        self._device_attr = False
        self._dask_host: tuple[F.MinMaxState, tuple[Any, Any]] | None = None
        self._set_state(self._fresh_state(namespace, self._device), observed=False)

    with_args = classmethod(lambda cls, **kwargs: _Factory(functools.partial(cls, **kwargs)))
    with_callable_args = classmethod(
        lambda cls, **kwargs: _Factory(cls).with_callable_args(**kwargs)
    )

    # -- configuration, as torch's attributes --------------------------------
    @property
    def config(self) -> QuantConfig:
        """The validated configuration (see :func:`arrayobs.functional.quant_config`)."""
        return self._config

    @property
    def dtype(self) -> str:
        return self._config.dtype

    @property
    def qscheme(self) -> str:
        return self._config.qscheme

    @property
    def reduce_range(self) -> bool:
        return self._config.reduce_range

    @property
    def quant_min(self) -> int:
        return self._config.quant_min

    @property
    def quant_max(self) -> int:
        return self._config.quant_max

    @property
    def has_customized_qrange(self) -> bool:
        return self._config.has_customized_qrange

    @property
    def xp(self) -> ModuleType | None:
        """The bound namespace, or ``None`` before the first observation when unbound."""
        return self._xp

    @property
    def device(self) -> Any:
        return self._device

    # -- state ---------------------------------------------------------------
    @property
    def state(self) -> F.MinMaxState:
        """The functional state (see :mod:`arrayobs.functional`)."""
        return self._state

    @property
    def min_val(self) -> Any:
        """Running minimum: a float32 array of the observer's namespace and device
        (0-d; per channel (C,), and (0,) before the first batch)."""
        return self._state.min_val

    @property
    def max_val(self) -> Any:
        """Running maximum, as :attr:`min_val`."""
        return self._state.max_val

    @property
    def eps(self) -> Any:
        """``eps`` as torch holds it: a float32 array of shape (1,)."""
        xp = self._namespace()
        return xp.asarray([self._config.eps], dtype=xp.float32, device=self._device)

    def _namespace(self) -> ModuleType:
        """The namespace the state lives in (NumPy until an unbound observer binds)."""
        return _NUMPY if self._xp is None else self._xp

    def _set_state(self, state: F.MinMaxState, *, observed: bool) -> None:
        self._state = state
        self._observed = observed
        self._maybe_observed = False

    # Per-tensor: quant_config refuses per-channel schemes.
    _scope: Mapping[str, bool] = {}

    def _fresh_state(self, xp: ModuleType, device: Any) -> F.MinMaxState:
        """The never-observed state: (+inf, -inf), 0-d."""
        return F.init_state(xp=xp, device=device)

    # -- observing -----------------------------------------------------------
    _jax_key: tuple[Any, ...] = ("minmax",)
    _cupy_update: tuple[int, float] = (1, 0.0)  # _fastpaths._cupy.MINMAX
    # On torch CPU, torch.min + torch.max (two eager calls) cost less than the
    # four NumPy views and two tensors a host-scalar combine needs; the moving
    # average's six eager calls cost more.
    _torch_cpu_on_host = False

    def _combine(self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType) -> F.MinMaxState:
        return F.minmax_combine(state, lo, hi, xp=xp)

    def _host_combine(self, m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
        return _np_fast.minmax_combine(m, big_m, lo, hi)

    def _torch_combine(self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType) -> Any:
        return F.MinMaxState(*_fastpath("torch").minmax_combine(*state, lo, hi))

    def _check_dtype(self, x: Any, xp: ModuleType) -> None:
        if x.dtype not in self._checked_dtypes:
            F.require_observable(xp, x.dtype)
            self._checked_dtypes.add(x.dtype)

    def _update(self, state: F.MinMaxState, x: Any, xp: ModuleType) -> F.MinMaxState:
        if self._group is not None:
            return self._group_update(state, x, xp)
        route = _route(xp, self._fast)
        if route == "numpy":
            # The state is host memory: combine on NumPy scalars, not 0-d arrays.
            self._check_dtype(x, xp)
            if x.size == 0:
                return state
            lo, hi = _np_fast.minmax_scalars(x)
            new = self._host_combine(state.min_val[()], state.max_val[()], lo, hi)
            return F.MinMaxState(np.asarray(new[0]), np.asarray(new[1]))
        if route == "torch":
            self._check_dtype(x, xp)
            if x.numel() == 0:
                return state
            fast = _fastpath("torch")
            lo, hi = fast.aminmax(x)
            if not (self._torch_cpu_on_host and x.device.type == "cpu"):
                return self._torch_combine(state, lo, hi, xp)  # type: ignore[no-any-return]
            # CPU tensors are host memory: combine on NumPy scalars (views, no copies).
            host = (v.numpy()[()] for v in (*state, lo, hi))
            new = self._host_combine(*host)
            return F.MinMaxState(*fast.from_host((np.asarray(new[0]), np.asarray(new[1]))))
        if route == "cupy":
            self._check_dtype(x, xp)
            fast = _fastpath("cupy")
            if fast.supported(x):
                # The reduction and the update in two kernel launches.
                new = fast.update(x, *state, *self._cupy_update)
                return F.MinMaxState(*new)
        if route == "jax":
            split = len(x.devices()) == 1
            return _jax_jit(*self._jax_key, self._fast, split)(state, x)  # type: ignore[no-any-return]
        if route == "dask":
            return self._dask_update(state, x, xp)
        cur = F.batch_minmax(x, xp=xp, fast=self._fast)
        return state if cur is None else self._combine(state, *cur, xp)

    def _group_update(self, state: F.MinMaxState, x: Any, xp: ModuleType) -> F.MinMaxState:
        """Every rank's batch reduced together (one collective), then the update.

        Every rank must call forward in step, with an empty shard if it has
        no data, as for any collective.
        """
        _torch_only(xp)
        self._check_dtype(x, xp)
        collective = _collective()
        if x.numel() == 0:
            lo, hi = collective.identity(x.device)
        else:
            lo, hi = F.batch_minmax(x, xp=xp, fast=self._fast)  # type: ignore[misc]
        lo, hi = collective.allreduce_minmax(lo, hi, self._group)
        return _unless_all_empty(state, self._combine(state, lo, hi, xp), lo, hi, xp)

    def _dask_update(self, state: F.MinMaxState, x: Any, xp: ModuleType) -> F.MinMaxState:
        """The batch's (min, max) in one graph and one compute; the few scalar
        operations after it run on the host, not as dozens of tiny tasks."""
        _dask = _fastpath("dask")
        if self._fast and _dask.numpy_chunks(x):
            self._check_dtype(x, xp)
            n = size(x)
            if n is None:
                F.batch_minmax(x, xp=xp)  # raises its error for unknown chunk sizes
            if n == 0:
                return state
            lo, hi = _dask.minmax_scalars(x)
            new = self._host_combine(*self._dask_host_of(state), lo, hi)
            new_state = F.MinMaxState(*(xp.asarray(np.asarray(v)) for v in new))
            self._dask_host = (new_state, new)
            return new_state
        cur = F.batch_minmax(x, xp=xp, fast=False)
        if cur is None:
            return state
        lo, hi = _dask_to_host(cur)
        host = self._combine(F.MinMaxState(*_dask_to_host(tuple(state))), lo, hi, _NUMPY)
        return F.MinMaxState(*(xp.asarray(v) for v in host))

    def _dask_host_of(self, state: F.MinMaxState) -> tuple[Any, Any]:
        """A Dask state's values as float32 scalars: remembered from the update
        that made it, else computed (a compute costs about a millisecond)."""
        cached = self._dask_host
        if cached is not None and cached[0] is state:
            return cached[1]
        m, big_m = _dask_to_host(tuple(state))
        return m[()], big_m[()]

    def _bind_input(self, x: Any) -> tuple[ModuleType, Any]:
        """Namespace and device ``x`` is observed in; raises if it is not the observer's."""
        xp = self._xp
        if xp is not None and type(x) is self._seen_type:
            # The common case: the same array type as last time, so the same namespace.
            dev = self._device if xp is _NUMPY else _device(x, self._device_attr)
        else:
            if not is_array(x):
                msg = f"{type(self).__name__} observes arrays, got {type(x).__name__}"
                raise TypeError(msg)
            xp_x = array_namespace(x)
            if xp is not None and xp_x is not xp:
                msg = (
                    f"{type(self).__name__} is bound to {_describe(xp, self._device)}; "
                    f"got an array of {_describe(xp_x, device_of(x))}"
                )
                raise TypeError(msg)
            xp = xp_x
            dev = device_of(x)
        if _route(xp, True) == "jax":
            dev = _fastpath("jax").state_device(dev)
        if self._xp is not None and dev != self._device:
            msg = (
                f"{type(self).__name__} is bound to {_describe(xp, self._device)}; "
                f"got an array on device {dev!r}"
            )
            raise ValueError(msg)
        return xp, dev

    def forward(self, x: Any) -> Any:
        """Update the running statistics with ``x`` and return ``x`` itself.

        An empty ``x`` changes nothing. On error the observer is unchanged.
        Nothing is read back from a GPU (a Dask batch is computed, by design).
        """
        xp, dev = self._bind_input(x)
        state = self._state
        if self._xp is None:
            # First array of an unbound observer: move the (host) state over.
            f32 = xp.float32
            state = F.MinMaxState(
                *(xp.asarray(np.asarray(v), dtype=f32, device=dev) for v in state)
            )
        new = self._update(state, x, xp)
        observed = self._observed or size(x) != 0
        maybe = self._maybe_observed or (self._group is not None and not observed)
        if self._seen_type is not type(x):
            # torch, CuPy and array-api-strict arrays carry the device array-api-compat reports.
            self._device_attr = backend_name(xp) in ("torch", "cupy", "array_api_strict")
        self._xp, self._device, self._seen_type = xp, dev, type(x)
        self._set_state(new, observed=observed)
        # With a process group an empty local shard does not say whether the
        # global batch was empty; calculate_qparams finds out when it must.
        self._maybe_observed = maybe
        return x

    __call__ = forward

    # -- qparams -------------------------------------------------------------
    def _crossed(self, host: tuple[Any, Any] | None) -> bool:
        """Whether min_val > max_val (``host``: the state as host scalars, if it
        is in host memory); a running min and max cannot cross."""
        return False

    def _host_scalars(self) -> tuple[Any, Any] | None:
        """The state as float32 scalars where it is in host memory (NumPy, torch
        on CPU; Dask, whose state each update computes) and the fast path is on;
        else None (the state stays on its device)."""
        if self._xp is None or not self._fast:
            return None
        route = _route(self._xp, True)
        m, big_m = self._state
        if route == "numpy":
            return m[()], big_m[()]
        if route == "torch" and self._device.type == "cpu":
            return m.numpy()[()], big_m.numpy()[()]
        if route == "dask":
            return self._dask_host_of(self._state)
        return None

    def calculate_qparams(self, *, check: bool = True) -> tuple[Any, Any]:
        """``(scale, zero_point)`` on the observer's device: shape (1,) per
        tensor, (C,) per channel.

        scale is float32; zero_point is int32 for the affine qschemes, int64
        for the symmetric ones (int32 where the backend has no int64, e.g.
        JAX without x64) and float32 for per_channel_affine_float_qparams.
        Before any observation this warns, as torch does, and returns scale
        [1.0] with an int64 zero point [0]. Nothing is read back from a
        device, except by the moving averages' ``check`` (and once, with a
        process group, by a rank that has seen only empty shards).

        Parameters
        ----------
        check : bool
            Raise where torch raises. Only a moving average can reach
            ``min_val > max_val`` (by rounding, in some channel; a loaded state
            is checked when loaded), and checking that reads one boolean back
            from the device; ``check=False`` skips it and computes qparams from
            the crossed values.

        Raises
        ------
        ValueError
            If ``check`` and ``min_val > max_val``; torch raises
            ``AssertionError`` there.
        """
        xp = self._namespace()
        if not self._observed and self._maybe_observed:
            # Only empty local shards so far: one read says whether any rank had data.
            fresh = bool(xp.all(F.is_fresh(self._state, xp=xp)))
            state = self._fresh_state(xp, self._device) if fresh else self._state
            self._set_state(state, observed=not fresh)
        if not self._observed:
            warnings.warn(
                "must run observer before calling calculate_qparams. Returning default values.",
                UserWarning,
                stacklevel=2,
            )
            return (
                xp.asarray([1.0], dtype=xp.float32, device=self._device),
                xp.asarray([0], dtype=F.widest_int(xp, self._device), device=self._device),
            )
        host = self._host_scalars()
        if check and self._crossed(host):
            msg = f"min_val is greater than max_val ({self.extra_repr()}); torch.ao raises here too"
            raise ValueError(msg)
        state = self._state
        config = self._config
        if host is not None:
            # Host memory: a dozen float32 scalar operations instead of ~30 array ones.
            scale, zero_point = _np_fast.qparams(*host, config)
            pair = (
                np.asarray([scale], np.float32),
                np.asarray([zero_point], np.int64 if config.symmetric else np.int32),
            )
            if is_numpy(xp):
                return pair
            if is_dask(xp):
                return tuple(xp.asarray(a) for a in pair)
            return _fastpath("torch").from_host(pair)  # type: ignore[no-any-return]
        if is_jax(xp):
            return tuple(_jax_jit("qparams", config)(state))
        if is_dask(xp):
            host = F.calculate_qparams(F.MinMaxState(*_dask_to_host(tuple(state))), config)
            return tuple(xp.asarray(v) for v in host)
        return tuple(F.calculate_qparams(state, config, xp=xp))

    def reset_min_max_vals(self) -> None:
        """Forget everything observed, namespace and device kept: back to
        (+inf, -inf), or for per-channel observers to shape (0,)."""
        self._set_state(self._fresh_state(self._namespace(), self._device), observed=False)

    def merge(self, other: _Observer) -> None:
        """Fold in what ``other`` observed, as if its batches came after this one's.

        ``other`` must be an observer of the same class, configuration,
        namespace and device (shards observed independently, on other workers
        or at other times, whose state_dicts were loaded into observers). The
        result is exact and does not depend on how merges are grouped; see
        :func:`arrayobs.functional.merge_minmax`.
        """
        if type(other) is not type(self):
            msg = f"merge takes a {type(self).__name__}, got {type(other).__name__}"
            raise TypeError(msg)
        if other._config != self._config or other._layout() != self._layout():
            msg = f"cannot merge observers of different configurations: {other!r} {other._config}"
            raise ValueError(msg)
        if not other._observed and not other._maybe_observed:
            return
        if self._xp is None:
            # Unbound and never observed: take the other's state as it is.
            self._xp, self._device, self._seen_type = other._xp, other._device, other._seen_type
            self._device_attr = other._device_attr
            self._set_state(other._state, observed=other._observed)
            self._maybe_observed = other._maybe_observed
            return
        xp = self._xp
        if other._xp is not xp or other._device != self._device:
            msg = (
                f"cannot merge an observer on {_describe(other._namespace(), other._device)} "
                f"into one on {_describe(xp, self._device)}"
            )
            raise ValueError(msg)
        state = self._merged(other._state, xp)
        maybe = self._maybe_observed or other._maybe_observed
        self._set_state(state, observed=self._observed or other._observed)
        self._maybe_observed = maybe

    def _layout(self) -> Any:
        """What besides the config must agree for a merge (per channel: ch_axis)."""
        return None

    def _merged(self, other: F.MinMaxState, xp: ModuleType) -> F.MinMaxState:
        return F.merge_minmax(self._state, other, xp=xp)

    # -- state_dict ----------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """``{"eps", "min_val", "max_val"}`` as copies in the observer's namespace.

        Carries torch's version metadata, so ``torch`` observers load it (after
        ``torch.asarray`` of each value) with this eps intact.
        """
        xp = self._namespace()
        out: OrderedDict[str, Any] = OrderedDict(
            eps=self.eps,
            min_val=xp.asarray(self._state.min_val, copy=True),
            max_val=xp.asarray(self._state.max_val, copy=True),
        )
        out._metadata = {"": {"version": _STATE_DICT_VERSION}}  # type: ignore[attr-defined]
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load ``eps``, ``min_val`` and ``max_val`` from any supported arrays.

        Accepts a torch observer's state_dict (torch tensors, any device) as
        well as arrays of any supported library or Python numbers; values are
        rounded to float32 as torch's ``copy_`` does. Everything is checked
        before anything changes: missing or unexpected keys (with
        ``strict=True``), wrong shapes or dtypes, NaN eps, and
        ``min_val > max_val`` raise, leaving the observer as it was. A
        version-1 torch state_dict (no eps) gets the default eps, as in torch.
        """
        given, eps = self._entries(state_dict, strict)
        lo, hi = (
            _host_float32(given, k, ()) if k in given else float(to_host(getattr(self._state, k)))
            for k in ("min_val", "max_val")
        )
        fresh = lo == math.inf and hi == -math.inf
        if not fresh and lo > hi:
            msg = f"state_dict min_val ({lo}) is greater than max_val ({hi})"
            raise ValueError(msg)
        xp = self._namespace()
        state = F.MinMaxState(
            *(xp.asarray(v, dtype=xp.float32, device=self._device) for v in (lo, hi))
        )
        self._config = self._config.with_eps(eps)
        self._set_state(state, observed=not fresh)

    def _entries(self, state_dict: Mapping[str, Any], strict: bool) -> tuple[dict[str, Any], float]:
        """``state_dict``'s entries, keys checked, and its eps (the current one if
        absent and not ``strict``), shared by every observer's ``load_state_dict``.

        Raises for a non-mapping, missing or unexpected keys (``strict``), and a
        NaN or malformed eps. A version-1 dict (no eps) gets the default eps, as
        in torch.
        """
        if not isinstance(state_dict, Mapping):
            msg = f"state_dict must be a mapping, got {type(state_dict).__name__}"
            raise TypeError(msg)
        metadata = getattr(state_dict, "_metadata", None) or {}
        version = metadata.get("", {}).get("version")
        given = self._renamed(dict(state_dict), version)
        if "eps" not in given and version == 1:
            given["eps"] = [FLOAT32_EPS]
        missing = [k for k in _STATE_KEYS if k not in given]
        unexpected = sorted(set(given) - set(_STATE_KEYS))
        if strict and (missing or unexpected):
            msg = (
                f"malformed state_dict for {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}; "
                f"expected exactly {list(_STATE_KEYS)}"
            )
            raise KeyError(msg)
        eps = _host_float32(given, "eps", (1,)) if "eps" in given else self._config.eps
        if math.isnan(eps):
            msg = "state_dict['eps'] is NaN"
            raise ValueError(msg)
        return given, eps

    def _renamed(self, given: dict[str, Any], version: Any) -> dict[str, Any]:
        """Entries under this layout's names (per channel: torch's old names)."""
        return given

    # -- repr ----------------------------------------------------------------
    def extra_repr(self) -> str:
        return f"min_val={float(to_host(self.min_val))}, max_val={float(to_host(self.max_val))}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class MinMaxObserver(_Observer):
    """Running min and max of every array observed, and the qparams they imply.

    The same arguments, state, qparams and state_dict as
    ``torch.ao.quantization.MinMaxObserver`` in torch 2.13.0, bit for bit, on
    any Array API backend.

    Parameters
    ----------
    dtype : str or torch.dtype
        Quantized dtype: quint8, qint8, qint32, quint4x2, int8, uint8, int16,
        uint16, int32, float8_e5m2, float8_e4m3fn. quint4x2 and both float8
        dtypes get the range (0, 15), as in torch (an accident there for float8).
    qscheme : str or torch.qscheme
        ``"per_tensor_affine"`` or ``"per_tensor_symmetric"``.
    reduce_range : bool
        Halve the range (deprecated in torch; warns).
    quant_min, quant_max : int, optional
        A customized range, used only when both are given.
    eps : float
        Lower bound of the scale, rounded to float32.
    is_dynamic : bool
        Kept for API compatibility.
    xp : module, optional
        The array library (numpy, torch, jax.numpy, cupy, dask.array,
        array_api_strict) or Array API namespace. ``None`` binds the observer
        to the namespace and device of the first array it observes; until
        then its state lives in NumPy.
    device : optional
        Device of the state, with ``xp``; default: the library's default device.
    fast : bool
        Use the backend's fast path for the batch's (min, max) and the update
        (the default). ``False`` runs the generic Array API code, for
        comparison: the same numbers, except that of two zeros of different
        sign in a batch either may be taken.
    process_group : torch.distributed.ProcessGroup, optional
        Data-parallel observation (torch tensors only): each forward reduces
        the batch's (min, max) across the group in one collective before the
        update, so every rank holds the state one process would have after
        observing the concatenated batch. Every rank must call forward in
        step (an empty shard is fine).

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import MinMaxObserver
    >>> obs = MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric")
    >>> x = np.linspace(-3.0, 1.0, 1000, dtype=np.float32)
    >>> obs(x) is x
    True
    >>> scale, zero_point = obs.calculate_qparams()
    >>> scale, zero_point
    (array([0.02352941], dtype=float32), array([0]))
    """


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Moving averages of each batch's min and max, and the qparams they imply.

    As ``torch.ao.quantization.MovingAverageMinMaxObserver`` in torch 2.13.0:
    the first batch sets the state; each later batch moves it by
    ``m + c * (cur - m)`` in float32 (torch's docs say ``(1 - c) * m + c * cur``,
    which rounds differently). ``averaging_constant`` is not range-checked, as
    in torch. Other parameters as :class:`MinMaxObserver`.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import MovingAverageMinMaxObserver
    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> _ = obs(np.asarray([0.0, 4.0], dtype=np.float32))
    >>> _ = obs(np.asarray([-2.0, 2.0], dtype=np.float32))
    >>> float(obs.min_val), float(obs.max_val)
    (-1.0, 3.0)
    """

    _torch_cpu_on_host = True

    def __init__(
        self,
        averaging_constant: float = 0.01,
        dtype: Any = "quint8",
        qscheme: Any = "per_tensor_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        c = real_number(averaging_constant, "averaging_constant")
        if boolean(is_dynamic, "is_dynamic") and c != 1:
            msg = (
                "is_dynamic=True needs averaging_constant=1 "
                f"(got {averaging_constant!r}), as in torch"
            )
            raise NotImplementedError(msg)
        self.averaging_constant = averaging_constant
        self._jax_key = ("moving_average", averaging_constant)
        self._c = c
        with np.errstate(over="ignore"):
            self._c32 = np.float32(c)
        self._cupy_update = (2, float(self._c32))  # _fastpaths._cupy.MOVING_AVERAGE
        super().__init__(
            dtype,
            qscheme,
            reduce_range,
            quant_min,
            quant_max,
            eps,
            is_dynamic,
            xp=xp,
            device=device,
            fast=fast,
            process_group=process_group,
        )

    def _combine(self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType) -> F.MinMaxState:
        return F.moving_average_combine(state, lo, hi, self.averaging_constant, xp=xp)

    def merge(self, other: _Observer) -> None:
        """Refused: moving averages cannot be merged after the fact.

        Each step ``m + c * (cur - m)`` depends on the state the batches before
        it left, so two shards' final averages do not determine the average of
        the interleaved stream. Reduce each batch's (min, max) across workers
        before the update instead: ``process_group=`` (torch.distributed), a
        sharded JAX array, or a Dask array (README, "Scaling out").
        """
        msg = (
            "moving averages cannot be merged after the fact: each update depends on the "
            "state before it; synchronise every batch's (min, max) instead (process_group=, "
            "a sharded JAX array or a Dask array)"
        )
        raise TypeError(msg)

    def _host_combine(self, m: Any, big_m: Any, lo: Any, hi: Any) -> tuple[Any, Any]:
        return _np_fast.moving_average_combine(m, big_m, lo, hi, self._c32)

    def _torch_combine(self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType) -> Any:
        if not self._observed:
            # Fresh (+inf, -inf): the batch's values, as torch.ao's first update.
            return F.MinMaxState(lo, hi)
        if 0 <= self._c32 <= 1:
            # With 0 <= c <= 1 an observed state never returns to (+inf, -inf)
            # (that needs the batch's min above its max), so it is not fresh.
            new = _fastpath("torch").moving_average_combine(*state, lo, hi, self._c)
            return F.MinMaxState(*new)
        return self._combine(state, lo, hi, xp)

    def _crossed(self, host: tuple[Any, Any] | None) -> bool:
        # A moving average can cross by rounding (c = 1 too); torch raises then.
        if host is not None:
            m, big_m = host
            return bool(m > big_m and not (m == math.inf and big_m == -math.inf))
        xp, state = self._namespace(), self._state
        if is_jax(xp):
            return bool(_jax_jit("crossed")(state))
        return bool(_crossed_array(state, xp))


# -- per channel ---------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _jax_channel_jit(
    averaging_constant: float | None, ch_axis: int, first: bool, fast: bool, split: bool
) -> Callable[..., Any]:
    """A per-channel update compiled with ``jax.jit``: ``(state, x) -> state``.

    ``first``: the state is empty and the batch becomes it; otherwise the
    running min-max (``averaging_constant`` None) or the moving average.
    ``split``: a single-device input, which the reduction may reshape
    (``_fastpaths._jax.split_reduction``).
    """
    import jax
    import jax.numpy as jnp

    def update(state: F.MinMaxState, x: Any) -> F.MinMaxState:
        lo, hi = F.batch_minmax(x, ch_axis=ch_axis, xp=jnp, fast=fast)  # type: ignore[misc]
        if first:
            return F.MinMaxState(lo, hi)
        if averaging_constant is None:
            return F.minmax_combine(state, lo, hi, xp=jnp)
        return F.moving_average_combine(state, lo, hi, averaging_constant, xp=jnp, fresh=False)

    compiled: Callable[..., Any] = jax.jit(_traced_with_split(update) if split else update)
    return compiled


class PerChannelMinMaxObserver(_Observer):
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
    _averaging: float | None = None

    def __init__(
        self,
        ch_axis: int = 0,
        dtype: Any = "quint8",
        qscheme: Any = "per_channel_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        if isinstance(ch_axis, bool) or not isinstance(ch_axis, int):
            msg = f"ch_axis must be an int, got {ch_axis!r}"
            raise TypeError(msg)
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
            eps,
            is_dynamic,
            xp=xp,
            device=device,
            fast=fast,
            process_group=process_group,
        )

    def _fresh_state(self, xp: ModuleType, device: Any) -> F.MinMaxState:
        """Shape (0,), as torch's: the channel count comes with the first batch."""
        return F.init_state(xp=xp, device=device, channels=0)

    # -- observing -----------------------------------------------------------
    def _channel_combine(
        self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType
    ) -> F.MinMaxState:
        """An observed state and a batch's (C,) vectors: torch.min/torch.max."""
        if is_torch(xp) and self._fast:
            return F.MinMaxState(*_fastpath("torch").minmax_combine(*state, lo, hi))
        return F.minmax_combine(state, lo, hi, xp=xp)

    def _has_shape(self) -> bool:
        """Whether the state has its (C,) shape: observed, or perhaps (process group)."""
        return self._observed or self._maybe_observed

    def _check_channels(self, state: F.MinMaxState, x: Any, channels: int) -> None:
        if self._has_shape() and state.min_val.shape[0] != channels:
            msg = (
                f"{type(self).__name__} has {state.min_val.shape[0]} channels; got an input of "
                f"shape {tuple(x.shape)} with {channels} along ch_axis {self.ch_axis}"
            )
            raise ValueError(msg)

    def _update(self, state: F.MinMaxState, x: Any, xp: ModuleType) -> F.MinMaxState:
        if self._group is not None:
            return self._group_update(state, x, xp)
        self._check_dtype(x, xp)
        n = size(x)
        if n is None:
            F.batch_minmax(x, xp=xp)  # raises its error for unknown chunk sizes
        if n == 0:
            return state  # as torch: an empty batch changes nothing and is not checked
        ch = channel_axis(self.ch_axis, x.ndim)
        self._check_channels(state, x, x.shape[ch])
        first = not self._observed
        route = _route(xp, self._fast)
        if route == "jax":
            split = len(x.devices()) == 1
            update = _jax_channel_jit(self._averaging, ch, first, self._fast, split)
            return update(state, x)  # type: ignore[no-any-return]
        lo, hi = F.batch_minmax(x, ch_axis=ch, xp=xp, fast=self._fast)  # type: ignore[misc]
        if route == "dask":
            # Each chunk's vectors and the state in one graph and one compute; the
            # combine on the host.
            m, big_m, lo, hi = _dask_to_host((*state, lo, hi))
            new = (
                (lo, hi)
                if first
                else self._channel_combine(F.MinMaxState(m, big_m), lo, hi, _NUMPY)
            )
            return F.MinMaxState(*(xp.asarray(v) for v in new))
        if first:
            return F.MinMaxState(lo, hi)
        return self._channel_combine(state, lo, hi, xp)

    def _group_update(self, state: F.MinMaxState, x: Any, xp: ModuleType) -> F.MinMaxState:
        """Every rank's (C,) vectors reduced together (one collective of 2C keys).

        An empty shard takes part too: it must keep the channel axis (e.g.
        shape (0, C)) until the observer knows its channel count.
        """
        _torch_only(xp)
        self._check_dtype(x, xp)
        if -x.ndim <= self.ch_axis < x.ndim or x.numel() or not self._has_shape():
            ch = channel_axis(self.ch_axis, x.ndim)  # raises if x has no such axis
            channels = x.shape[ch]
        else:
            channels = state.min_val.shape[0]  # an empty shard without the axis
        self._check_channels(state, x, channels)
        collective = _collective()
        if x.numel() == 0:
            lo, hi = collective.identity(x.device, (channels,))
        else:
            lo, hi = F.batch_minmax(x, ch_axis=ch, xp=xp, fast=self._fast)  # type: ignore[misc]
        lo, hi = collective.allreduce_minmax(lo, hi, self._group)
        if not self._has_shape():
            # The first batch, or (+inf, -inf) everywhere if every shard was empty:
            # then the state is "perhaps observed" until calculate_qparams reads it.
            return F.MinMaxState(lo, hi)
        if self._observed:
            new = self._channel_combine(state, lo, hi, xp)
        else:
            # Perhaps observed: never-observed channels are (+inf, -inf) and take the batch.
            new = self._perhaps_combine(state, lo, hi, xp)
        return _unless_all_empty(state, new, lo, hi, xp)

    def _perhaps_combine(
        self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType
    ) -> F.MinMaxState:
        """Combine into a state that may still be (+inf, -inf): the running min-max
        takes the batch there by itself."""
        return F.minmax_combine(state, lo, hi, xp=xp)

    # -- qparams -------------------------------------------------------------
    def _host_scalars(self) -> tuple[Any, Any] | None:
        return None

    def _crossed(self, host: tuple[Any, Any] | None) -> bool:
        """A running min and max cannot cross (a loaded state is checked when loaded)."""
        return False

    # -- merge ---------------------------------------------------------------
    def _layout(self) -> Any:
        return self.ch_axis

    def _merged(self, other: F.MinMaxState, xp: ModuleType) -> F.MinMaxState:
        if not self._observed:
            return other
        if other.min_val.shape != self._state.min_val.shape:
            msg = (
                f"cannot merge {other.min_val.shape[0]} channels into "
                f"{self._state.min_val.shape[0]}"
            )
            raise ValueError(msg)
        return F.merge_minmax(self._state, other, xp=xp)

    # -- state_dict ----------------------------------------------------------
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Load ``eps``, ``min_val`` and ``max_val`` (shape (C,), or (0,) for a
        never-observed observer) from any supported arrays.

        Everything is checked before anything changes: missing or unexpected
        keys (with ``strict=True``), shapes (``min_val`` and ``max_val`` 1-d of
        one length; C may differ from the current state's, as in torch),
        dtypes, NaN eps, and a channel with ``min_val > max_val`` (torch's
        qparams would raise there) raise and leave the observer as it was.
        A torch state_dict of version 1 or 2 names the buffers ``min_vals`` and
        ``max_vals``; they are loaded as ``min_val`` and ``max_val``. Version 1
        (no eps) gets the default eps, as in torch.
        """
        given, eps = self._entries(state_dict, strict)
        values = {
            k: _host_array(given, k) if k in given else to_host(getattr(self._state, k))
            for k in ("min_val", "max_val")
        }
        lo, hi = values["min_val"], values["max_val"]
        for k, v in values.items():
            if v.ndim != 1:
                msg = f"state_dict[{k!r}] must have shape (C,) or (0,), got {v.shape}"
                raise ValueError(msg)
        if lo.shape != hi.shape:
            msg = f"state_dict min_val and max_val differ in shape: {lo.shape} vs {hi.shape}"
            raise ValueError(msg)
        crossed = lo > hi
        if crossed.any():
            i = int(np.argmax(crossed))
            msg = f"state_dict min_val ({lo[i]}) is greater than max_val ({hi[i]}) in channel {i}"
            raise ValueError(msg)
        xp = self._namespace()
        state = F.MinMaxState(
            *(xp.asarray(v, dtype=xp.float32, device=self._device) for v in (lo, hi))
        )
        self._config = self._config.with_eps(eps)
        self._set_state(state, observed=lo.shape[0] > 0)

    def _renamed(self, given: dict[str, Any], version: Any) -> dict[str, Any]:
        """Versions 1 and 2 named the buffers ``min_vals`` and ``max_vals``."""
        if version is not None and version < _STATE_DICT_VERSION:
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
        lo, hi = (np.array2string(to_host(v), separator=", ", threshold=8) for v in self._state)
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
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        real_number(averaging_constant, "averaging_constant")
        self.averaging_constant = averaging_constant
        self._averaging = averaging_constant
        super().__init__(
            ch_axis,
            dtype,
            qscheme,
            reduce_range,
            quant_min,
            quant_max,
            eps,
            is_dynamic,
            xp=xp,
            device=device,
            fast=fast,
            process_group=process_group,
        )

    merge = MovingAverageMinMaxObserver.merge

    def _perhaps_combine(
        self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType
    ) -> F.MinMaxState:
        # (+inf, -inf) channels take the batch, the others average (per element, as
        # per tensor); exact for 0 <= c <= 1, where no observed channel is (+inf, -inf).
        return F.moving_average_combine(state, lo, hi, self.averaging_constant, xp=xp)

    def _channel_combine(
        self, state: F.MinMaxState, lo: Any, hi: Any, xp: ModuleType
    ) -> F.MinMaxState:
        """``m + c * (cur - m)`` for every channel of an observed state."""
        c = self.averaging_constant
        if is_torch(xp) and self._fast:
            return F.MinMaxState(*_fastpath("torch").moving_average_combine(*state, lo, hi, c))
        return F.moving_average_combine(state, lo, hi, c, xp=xp, fresh=False)

    def _crossed(self, host: tuple[Any, Any] | None) -> bool:
        # Averaging can cross min and max by rounding; torch raises then. One read.
        xp, state = self._namespace(), self._state
        crossed = (
            _jax_jit("any_greater")(state) if is_jax(xp) else xp.any(state.min_val > state.max_val)
        )
        if is_dask(xp):
            (crossed,) = _dask_to_host((crossed,))
        return bool(crossed)
