"""What every observer class shares: configuration, binding, state, state_dict, merge.

The classes hold torch's API and nothing backend-specific: each observer
binds to a backend (:mod:`arrayobs._backends`) once, with its namespace, and
hands it every batch together with the observer's rule
(:mod:`arrayobs._core`); what differs per backend lives there.
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
from arrayobs import _core as core
from arrayobs._compat import (
    array_namespace,
    default_device,
    device_of,
    is_array,
    resolve_namespace,
    to_host,
)
from arrayobs._config import FLOAT32_EPS, QuantConfig, boolean, quant_config
from arrayobs._observers import _state_dict
from arrayobs._observers._arguments import (
    checked_device,
    factory_device,
    process_group_for,
    refuse_pickling_group,
)
from arrayobs._observers._shell import Bound, describe
from arrayobs._observers._state_dict import IncompatibleKeys

NUMPY = resolve_namespace(np)


def unless_all_empty(
    state: core.MinMaxState, new: core.MinMaxState, lo: Any, hi: Any, xp: ModuleType
) -> core.MinMaxState:
    """``new``, or ``state`` where the group's (lo, hi) is (+inf, -inf): every
    shard was empty (no batch has that pair), and the state stays."""
    empty = (lo == float("inf")) & (hi == float("-inf"))
    return core.MinMaxState(
        xp.where(empty, state.min_val, new.min_val), xp.where(empty, state.max_val, new.max_val)
    )


def unobserved_qparams(xp: ModuleType, device: Any) -> tuple[Any, Any]:
    """What ``calculate_qparams`` returns before any observation, with torch's
    warning: scale [1.0] and an int64 zero point [0]."""
    warnings.warn(
        "must run observer before calling calculate_qparams. Returning default values.",
        UserWarning,
        stacklevel=3,
    )
    return (
        xp.asarray([1.0], dtype=xp.float32, device=device),
        xp.asarray([0], dtype=core.widest_int(xp, device), device=device),
    )


class Observer(Bound):
    """The base of every observer class. Subclasses set the rule (``_rule``),
    the state's layout (``_fresh_state``, ``_observe``, ``_group_update``) and
    torch's per-class API."""

    # Per-tensor: quant_config refuses per-channel schemes.
    _scope: Mapping[str, bool] = {}
    _rule: core.Rule = core.RunningMinMax()
    # The state's NamedTuple: every field a float32 array.
    _state_type: Any = core.MinMaxState

    def __init__(
        self,
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
        self._fast = boolean(fast, "fast")
        self._maybe_observed = False
        self._config: QuantConfig = quant_config(
            dtype, qscheme, reduce_range, quant_min, quant_max, eps, stacklevel=3, **self._scope
        )
        self.is_dynamic = boolean(is_dynamic, "is_dynamic")
        xp, device = factory_device(factory_kwargs, xp, device)
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
        self._group = process_group_for(
            process_group, None if xp is None else namespace, backend.supports_process_group
        )
        self._backend = backend
        self._device = backend.state_device(
            default_device(namespace) if device is None else checked_device(namespace, device)
        )
        self._seen_type: type | None = None
        self._new_lock()
        self._set_state(self._fresh_state(namespace, self._device), observed=False)

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

    _SNAPSHOT = (
        "_state",
        "_observed",
        "_maybe_observed",
        "_xp",
        "_device",
        "_seen_type",
        "_backend",
    )

    def _snapshot(self) -> tuple[Any, ...]:
        """What an update may change, by reference (updates replace the arrays,
        never write into them): for :meth:`_restore` to undo it."""
        with self._lock:
            return tuple(getattr(self, k) for k in self._SNAPSHOT)

    def _restore(self, saved: tuple[Any, ...]) -> None:
        with self._lock:
            for k, v in zip(self._SNAPSHOT, saved, strict=True):
                setattr(self, k, v)

    def _state_for(self, xp: ModuleType, device: Any) -> Any:
        """The state as arrays of ``xp`` on ``device``: moved from the host while
        unbound (the lock is held)."""
        state = self._state
        if self._xp is None:
            state = self._state_type(
                *(xp.asarray(np.asarray(v), dtype=xp.float32, device=device) for v in state)
            )
        return state

    def _update_state(self, x: Any, step: Any, *, observed: bool = True) -> None:
        """Replace the state by ``step(state)``, atomically, for an input ``x``.

        For modules built on an observer (the fused fake-quantize module): ``x``
        is checked and bound to as :meth:`forward` does, ``step`` gets the state
        as arrays of ``x``'s library and device and returns the new one (None:
        nothing changes, nothing binds). If ``step`` raises, nothing changes.
        """
        with self._lock:
            backend, device = self._bind_input(x)
            new = step(self._state_for(backend.xp, device))
            if new is None:
                return
            self._xp, self._device, self._seen_type = backend.xp, device, type(x)
            self._backend = backend
            self._set_state(new, observed=observed)

    def _fresh_state(self, xp: ModuleType, device: Any) -> core.MinMaxState:
        """The never-observed state: (+inf, -inf), 0-d."""
        return core.init_state(xp=xp, device=device)

    # -- observing -----------------------------------------------------------
    def _bind_input(self, x: Any) -> tuple[_backends.Backend, Any]:
        """Backend and device ``x`` is observed with; raises if ``x`` is not the
        observer's or cannot be observed."""
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
        backend.check_input(x)
        return backend, device

    def _fresh(self) -> bool | None:
        """Whether the state is the never-observed one, for the backend: per
        tensor, False once observed if the rule never returns there, else None
        (decided by value, torch's per-tensor rule)."""
        if self._observed:
            return False if self._rule.stays_observed else None
        return None if self._maybe_observed else True

    def _axis(self, x: Any) -> int | None:
        """The axis a batch is reduced along: none per tensor (per channel: ch_axis)."""
        return None

    def _check_batch(self, state: core.MinMaxState, x: Any, ch: int | None) -> None:
        """Refuse a batch that does not fit the state (per channel: its channel count)."""

    def _reduce(self, backend: _backends.Backend, x: Any, n: int) -> Any:
        """What the update needs of a batch of ``n`` elements before reading the
        state (run outside the lock); None where there is nothing to do."""
        if self._group is not None or not n:
            return None
        ch = self._axis(x)
        return ch, backend.reduce(x, ch)

    def _fold(
        self, backend: _backends.Backend, state: core.MinMaxState, x: Any, n: int, batch: Any
    ) -> core.MinMaxState:
        """The new state (under the lock): ``batch`` from :meth:`_reduce` folded in."""
        if self._group is not None:
            return self._group_update(backend, state, x, n)
        if not n:
            return state  # as torch: an empty batch changes nothing and is not checked
        ch, reduced = batch
        self._check_batch(state, x, ch)
        return backend.fold(state, reduced, self._rule, ch, self._fresh())

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

    def forward(self, x_orig: Any) -> Any:
        """Update the running statistics with ``x_orig`` and return it.

        An empty batch changes nothing. On error the observer is unchanged.
        Nothing is read back from a GPU (a Dask batch is computed, by design).
        Safe to call from several threads: each call's update is atomic (the
        batch's reduction runs outside the observer's lock), so the state is
        that of some serial order of the calls.
        """
        backend = self._backend
        if (
            type(x_orig) is self._seen_type
            and self._group is None
            and backend.device_of(x_orig) == self._device
        ):
            # Bound, and an array of the type and device already seen: the
            # binding is settled, so the per-call work is the batch's.
            backend.check_input(x_orig)
            if not arguments.require_size(backend.size(x_orig)):
                return x_orig  # as torch: an empty batch changes nothing and is not checked
            ch = self._axis(x_orig)
            batch = backend.reduce(x_orig, ch)
            with self._lock:
                if backend is self._backend:  # else a restore or merge rebound it meanwhile
                    state = self._state
                    self._check_batch(state, x_orig, ch)
                    new = backend.fold(state, batch, self._rule, ch, self._fresh())
                    self._state, self._observed, self._maybe_observed = new, True, False
                    return x_orig
        return self._forward_binding(x_orig)

    def _forward_binding(self, x_orig: Any) -> Any:
        """:meth:`forward`, binding on the way and checking what the input is."""
        if self._xp is None:
            with self._lock:
                if self._xp is None:
                    # The first batch binds, under the lock: racing first batches of two
                    # libraries bind once, and the other gets the usual TypeError.
                    self._step(x_orig, locked=True)
                    return x_orig
        self._step(x_orig, locked=False)
        return x_orig

    __call__ = forward

    def _step(self, x: Any, *, locked: bool) -> None:
        backend, device = self._bind_input(x)
        n = arguments.require_size(backend.size(x))
        if locked:
            self._commit(backend, device, x, n, self._reduce(backend, x, n))
            return
        batch = self._reduce(backend, x, n)
        with self._lock:
            self._commit(backend, device, x, n, batch)

    def _commit(self, backend: _backends.Backend, device: Any, x: Any, n: int, batch: Any) -> None:
        """Fold ``batch`` into the state and bind (the lock is held)."""
        state = self._state_for(backend.xp, device)
        new = self._fold(backend, state, x, n, batch)
        observed = self._observed or n != 0
        maybe = self._maybe_observed or (self._group is not None and not observed)
        self._xp, self._device, self._seen_type = backend.xp, device, type(x)
        self._backend = backend
        self._set_state(new, observed=observed)
        # With a process group an empty local shard does not say whether the
        # global batch was empty; calculate_qparams finds out when it must.
        self._maybe_observed = maybe

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
            If ``check`` and ``min_val > max_val`` (torch raises
            ``AssertionError`` there); for an affine range beyond int32 (torch
            raises ``RuntimeError``), or a symmetric zero point beyond int32 on
            a backend without int64.
        """
        with self._lock:
            backend, config, device = self._backend, self._config, self._device
            if not self._observed and self._maybe_observed:
                # Only empty local shards so far: one read says whether any rank had data.
                fresh = backend.all_fresh(self._state)
                state = self._fresh_state(backend.xp, device) if fresh else self._state
                self._set_state(state, observed=not fresh)
            state, observed = self._state, self._observed
        xp = backend.xp
        if not observed:
            return unobserved_qparams(xp, device)
        if not config.zero_point_fits_int32:
            config.check_zero_point(int64=core.widest_int(xp, device) == xp.int64)
        pair = backend.qparams(state, config, check and self._rule.can_cross)
        if pair is None:
            msg = f"min_val is greater than max_val ({self.extra_repr()}); torch.ao raises here too"
            raise ValueError(msg)
        return pair

    def reset_min_max_vals(self) -> None:
        """Forget everything observed, namespace and device kept: back to
        (+inf, -inf), or for per-channel observers to shape (0,)."""
        with self._lock:
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
        with self._lock:
            self._merge_locked(other)

    def _merge_locked(self, other: Observer) -> None:
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
        state = self._state
        out: OrderedDict[str, Any] = OrderedDict(
            eps=self.eps,
            min_val=xp.asarray(state.min_val, copy=True),
            max_val=xp.asarray(state.max_val, copy=True),
        )
        out._metadata = {"": {"version": _state_dict.VERSION}}  # type: ignore[attr-defined]
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load ``eps`` and the state (``min_val``, ``max_val``; the histogram's
        ``histogram`` too) from any supported arrays.

        Accepts a torch observer's state_dict (torch tensors, any device) as
        well as arrays of any supported library or Python numbers; values are
        rounded to float32 as torch's ``copy_`` does. Per tensor a 0-d value
        may come with shape (1,), as torch takes it; per channel ``min_val``
        and ``max_val`` are 1-d of one length, (C,) or (0,) for a
        never-observed observer (C may differ from the current state's, as in
        torch); a histogram has ``bins`` values (torch refuses other sizes at
        calculate_qparams; here at load). Everything is checked before
        anything changes: missing or unexpected keys (``KeyError`` with
        ``strict=True``; torch raises ``RuntimeError``), wrong shapes or dtypes,
        NaN eps, and ``min_val > max_val`` (per channel, in any channel: torch's
        qparams would raise there) raise, leaving the observer as it was. A
        version-1 torch state_dict (no eps) gets the default eps, as in torch;
        per channel, versions 1 and 2 name the buffers ``min_vals`` and
        ``max_vals``, loaded as ``min_val`` and ``max_val``.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as torch's ``_IncompatibleKeys``:
            with ``strict=False`` what was not loaded (a key under a prefix such as
            ``"obs.min_val"`` is unexpected, and ``min_val`` missing). Per channel
            too (torch's per-channel observers never report unexpected keys).
        """
        fields = self._state_type._fields
        given, eps, keys = _state_dict.entries(
            state_dict,
            strict,
            self._config.eps,
            type(self).__name__,
            self._renamed,
            keys=("eps", *fields),
        )
        values = [
            self._loaded(given, k) if k in given else np.asarray(to_host(v), dtype=np.float32)
            for k, v in zip(fields, self._state, strict=True)
        ]
        loaded = self._state_type(*values)
        observed = _state_dict.checked_range(loaded.min_val, loaded.max_val)
        with self._lock:
            xp, device = self._backend.xp, self._device
            state = self._state_type(
                *(xp.asarray(v, dtype=xp.float32, device=device) for v in values)
            )
            self._config = self._config.with_eps(eps)
            self._set_state(state, observed=observed)
        return keys

    def _loaded(self, given: Mapping[str, Any], key: str) -> np.ndarray:
        """``given[key]`` checked for this layout, as a float32 host array (per
        tensor 0-d, taken from shape (1,) too, as torch takes it)."""
        return np.asarray(_state_dict.host_float32(given, key, ()), dtype=np.float32)

    def _renamed(self, given: dict[str, Any], version: Any) -> dict[str, Any]:
        """Entries under this layout's names (per channel: torch's old names)."""
        return given

    # -- copy and pickle -------------------------------------------------------
    # A copy shares the namespace, device and process group (they are not data)
    # and gets a backend of its own.
    _SHARED = ("_backend", "_seen_type", "_xp", "_device", "_group")

    def _pickled(self, out: dict[str, Any]) -> None:
        """The arrays as host copies, the namespace and device by name."""
        refuse_pickling_group(self)
        backend = out.pop("_backend")
        del out["_seen_type"]
        out["_namespace"] = backend.xp.__name__
        out["_device"] = backend.portable_device(self._device)
        out["_xp"] = self._xp is not None
        out["_state"] = tuple(np.array(to_host(v), dtype=np.float32) for v in self._state)

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp = resolve_namespace(importlib.import_module(state.pop("_namespace")))
        backend = _backends.new(xp, state["_fast"])
        device = backend.restore_device(state["_device"])
        state["_xp"] = xp if state["_xp"] else None
        state.update(_backend=backend, _device=device, _seen_type=None)
        state["_state"] = self._state_type(
            *(xp.asarray(v, dtype=xp.float32, device=device) for v in state["_state"])
        )

    def _copied(self, original: Any) -> None:
        self._backend = _backends.new(original._backend.xp, self._fast)

    # -- repr ----------------------------------------------------------------
    def extra_repr(self) -> str:
        return f"min_val={float(to_host(self.min_val))}, max_val={float(to_host(self.max_val))}"
