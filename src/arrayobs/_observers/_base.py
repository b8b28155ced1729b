"""What every observer class shares: configuration, binding, state, state_dict, merge.

The classes hold torch's API and nothing backend-specific: each observer
binds to a backend (:mod:`arrayobs._backends`) once, with its namespace, and
hands it every batch together with the observer's rule
(:mod:`arrayobs._core`); what differs per backend lives there.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _backends
from arrayobs import _core as core
from arrayobs._compat import (
    array_namespace,
    backend_name,
    default_device,
    device_of,
    is_array,
    resolve_namespace,
    to_host,
)
from arrayobs._config import FLOAT32_EPS, QuantConfig, boolean, quant_config

_STATE_KEYS = ("eps", "min_val", "max_val")
# torch's version of these observers' state_dict layout (eps a buffer since 2).
STATE_DICT_VERSION = 3
NUMPY = resolve_namespace(np)


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


def describe(xp: ModuleType, device: Any) -> str:
    return f"{backend_name(xp)} on device {device!r}"


def host_array(state_dict: Mapping[str, Any], key: str) -> np.ndarray:
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


def host_float32(state_dict: Mapping[str, Any], key: str, shape: tuple[int, ...]) -> float:
    """``state_dict[key]`` checked for shape and dtype, as a float32-rounded Python float."""
    host = host_array(state_dict, key)
    if host.shape != shape:
        msg = f"state_dict[{key!r}] must have shape {shape}, got {host.shape}"
        raise ValueError(msg)
    return float(host.reshape(-1)[0])


def unless_all_empty(
    state: core.MinMaxState, new: core.MinMaxState, lo: Any, hi: Any, xp: ModuleType
) -> core.MinMaxState:
    """``new``, or ``state`` where the group's (lo, hi) is (+inf, -inf): every
    shard was empty (no batch has that pair), and the state stays."""
    empty = (lo == float("inf")) & (hi == float("-inf"))
    return core.MinMaxState(
        xp.where(empty, state.min_val, new.min_val), xp.where(empty, state.max_val, new.max_val)
    )


class Observer:
    """The base of every observer class. Subclasses set the rule (``_rule``),
    the state's layout (``_fresh_state``, ``_observe``, ``_group_update``) and
    torch's per-class API."""

    # Per-tensor: quant_config refuses per-channel schemes.
    _scope: Mapping[str, bool] = {}
    _rule: core.Rule = core.RunningMinMax()

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
        self._config: QuantConfig = quant_config(
            dtype, qscheme, reduce_range, quant_min, quant_max, eps, stacklevel=3, **self._scope
        )
        self.is_dynamic = boolean(is_dynamic, "is_dynamic")
        if xp is None:
            if device is not None:
                msg = "device needs xp: pass the array library too, or neither"
                raise ValueError(msg)
            self._xp: ModuleType | None = None
            namespace = NUMPY
        else:
            namespace = resolve_namespace(xp)
            self._xp = namespace
        backend = _backends.new(namespace, self._fast)
        if process_group is not None and xp is not None and not backend.supports_process_group:
            msg = f"process_group needs torch tensors, but xp is {backend_name(namespace)}"
            raise TypeError(msg)
        self._backend = backend
        self._device = backend.state_device(
            default_device(namespace)
            if device is None
            else device_of(namespace.empty((0,), device=device))
        )
        self._seen_type: type | None = None
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
    def state(self) -> core.MinMaxState:
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
        xp = self._backend.xp
        return xp.asarray([self._config.eps], dtype=xp.float32, device=self._device)

    def _set_state(self, state: core.MinMaxState, *, observed: bool) -> None:
        self._state = state
        self._observed = observed
        self._maybe_observed = False

    def _fresh_state(self, xp: ModuleType, device: Any) -> core.MinMaxState:
        """The never-observed state: (+inf, -inf), 0-d."""
        return core.init_state(xp=xp, device=device)

    # -- observing -----------------------------------------------------------
    def _bind_input(self, x: Any) -> tuple[_backends.Backend, Any]:
        """Backend and device ``x`` is observed with; raises if ``x`` is not the observer's."""
        backend = self._backend
        if self._xp is None or type(x) is not self._seen_type:
            if not is_array(x):
                msg = f"{type(self).__name__} observes arrays, got {type(x).__name__}"
                raise TypeError(msg)
            xp = array_namespace(x)
            if self._xp is None:
                backend = _backends.new(xp, self._fast)
            elif xp is not self._xp:
                msg = (
                    f"{type(self).__name__} is bound to {describe(self._xp, self._device)}; "
                    f"got an array of {describe(xp, device_of(x))}"
                )
                raise TypeError(msg)
        device = backend.device_of(x)
        if self._xp is not None and device != self._device:
            msg = (
                f"{type(self).__name__} is bound to {describe(backend.xp, self._device)}; "
                f"got an array on device {device!r}"
            )
            raise ValueError(msg)
        return backend, device

    def _fresh(self) -> bool | None:
        """Whether the state is the never-observed one, for the backend: per
        tensor, False once observed if the rule never returns there, else None
        (decided by value, torch's per-tensor rule)."""
        if self._observed:
            return False if self._rule.stays_observed else None
        return None if self._maybe_observed else True

    def _observe(
        self, backend: _backends.Backend, state: core.MinMaxState, x: Any
    ) -> core.MinMaxState:
        """The new state after a non-empty batch ``x`` of a checked dtype."""
        return backend.update(state, x, self._rule, None, self._fresh())

    def _group_update(
        self, backend: _backends.Backend, state: core.MinMaxState, x: Any, n: int
    ) -> core.MinMaxState:
        """Every rank's batch reduced together (one collective), then the update.

        Every rank must call forward in step, with an empty shard if it has
        no data, as for any collective.
        """
        if n:
            lo, hi = backend.aminmax(x)
        else:
            lo, hi = core.init_state(xp=backend.xp, device=backend.device_of(x))
        lo, hi = backend.allreduce_minmax(lo, hi, self._group)
        new = backend.combine(state, lo, hi, self._rule, None)
        return unless_all_empty(state, new, lo, hi, backend.xp)

    def forward(self, x: Any) -> Any:
        """Update the running statistics with ``x`` and return ``x`` itself.

        An empty ``x`` changes nothing. On error the observer is unchanged.
        Nothing is read back from a GPU (a Dask batch is computed, by design).
        """
        backend, device = self._bind_input(x)
        state = self._state
        if self._xp is None:
            # First array of an unbound observer: move the (host) state over.
            xp = backend.xp
            state = core.MinMaxState(
                *(xp.asarray(np.asarray(v), dtype=xp.float32, device=device) for v in state)
            )
        backend.check_dtype(x.dtype)
        n = core.require_size(backend.size(x))
        if self._group is not None:
            new = self._group_update(backend, state, x, n)
        elif n:
            new = self._observe(backend, state, x)
        else:
            new = state
        observed = self._observed or n != 0
        maybe = self._maybe_observed or (self._group is not None and not observed)
        self._xp, self._device, self._seen_type = backend.xp, device, type(x)
        self._backend = backend
        self._set_state(new, observed=observed)
        # With a process group an empty local shard does not say whether the
        # global batch was empty; calculate_qparams finds out when it must.
        self._maybe_observed = maybe
        return x

    __call__ = forward

    # -- qparams -------------------------------------------------------------
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
        backend = self._backend
        xp = backend.xp
        if not self._observed and self._maybe_observed:
            # Only empty local shards so far: one read says whether any rank had data.
            fresh = backend.all_fresh(self._state)
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
                xp.asarray([0], dtype=core.widest_int(xp, self._device), device=self._device),
            )
        pair = backend.qparams(self._state, self._config, check and self._rule.can_cross)
        if pair is None:
            msg = f"min_val is greater than max_val ({self.extra_repr()}); torch.ao raises here too"
            raise ValueError(msg)
        return pair

    def reset_min_max_vals(self) -> None:
        """Forget everything observed, namespace and device kept: back to
        (+inf, -inf), or for per-channel observers to shape (0,)."""
        self._set_state(self._fresh_state(self._backend.xp, self._device), observed=False)

    def merge(self, other: Observer) -> None:
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
            self._backend = _backends.new(other._backend.xp, self._fast)
            self._set_state(other._state, observed=other._observed)
            self._maybe_observed = other._maybe_observed
            return
        xp = self._xp
        if other._xp is not xp or other._device != self._device:
            msg = (
                f"cannot merge an observer on {describe(other._backend.xp, other._device)} "
                f"into one on {describe(xp, self._device)}"
            )
            raise ValueError(msg)
        state = self._merged(other._state, xp)
        maybe = self._maybe_observed or other._maybe_observed
        self._set_state(state, observed=self._observed or other._observed)
        self._maybe_observed = maybe

    def _layout(self) -> Any:
        """What besides the config must agree for a merge (per channel: ch_axis)."""
        return None

    def _merged(self, other: core.MinMaxState, xp: ModuleType) -> core.MinMaxState:
        return core.merge_minmax(self._state, other, xp=xp)

    # -- state_dict ----------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Any]:
        """``{"eps", "min_val", "max_val"}`` as copies in the observer's namespace.

        Carries torch's version metadata, so ``torch`` observers load it (after
        ``torch.asarray`` of each value) with this eps intact.
        """
        xp = self._backend.xp
        out: OrderedDict[str, Any] = OrderedDict(
            eps=self.eps,
            min_val=xp.asarray(self._state.min_val, copy=True),
            max_val=xp.asarray(self._state.max_val, copy=True),
        )
        out._metadata = {"": {"version": STATE_DICT_VERSION}}  # type: ignore[attr-defined]
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
            host_float32(given, k, ()) if k in given else float(to_host(getattr(self._state, k)))
            for k in ("min_val", "max_val")
        )
        fresh = lo == math.inf and hi == -math.inf
        if not fresh and lo > hi:
            msg = f"state_dict min_val ({lo}) is greater than max_val ({hi})"
            raise ValueError(msg)
        self._load(eps, lo, hi, observed=not fresh)

    def _load(self, eps: float, lo: Any, hi: Any, *, observed: bool) -> None:
        """Checked host values become the state."""
        xp = self._backend.xp
        state = core.MinMaxState(
            *(xp.asarray(v, dtype=xp.float32, device=self._device) for v in (lo, hi))
        )
        self._config = self._config.with_eps(eps)
        self._set_state(state, observed=observed)

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
        eps = host_float32(given, "eps", (1,)) if "eps" in given else self._config.eps
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
