"""The one stateful shell every class of arrayobs stands on.

A family (the MinMax observers, the histogram, the simple observers, the
affine observers, the fake-quantize modules) says only what is its own: its
state, its rule, its qparams, and torch's or torchao's public signature. The
shell holds the rest, once:

- ``with_args`` / ``with_callable_args``, torch's factories;
- the lock (``_lock_type``), rebuilt on every copy and unpickling;
- deep copy (``_SHARED``: attributes a copy shares, not data, such as the
  namespace and device; :meth:`_copied` rebuilds what must be a copy's own);
- pickling (:meth:`_pickled` turns arrays into host copies and namespaces
  into names, :meth:`_unpickled` undoes it; both run on the attribute dict,
  so a pickle written before this shell existed loads as it did);
- the binding (:class:`Bound`: ``xp``, ``device``, :func:`check_binding`) and torch's state_dict key
  check (:func:`arrayobs._observers._state_dict.check_keys`, with torch's
  ``IncompatibleKeys``);
- ``repr`` from ``extra_repr``, as torch's modules print.
"""

from __future__ import annotations

import copy
import functools
import importlib
import threading
from types import ModuleType
from typing import Any, ClassVar

from arrayobs import _backends
from arrayobs._compat import backend_name, default_device, resolve_namespace
from arrayobs._observers._arguments import Factory, checked_device


def describe(xp: ModuleType, device: Any) -> str:
    return f"{backend_name(xp)} on device {device!r}"


def check_binding(
    owner: str, bound: ModuleType | None, own: Any, xp: ModuleType, device: Any
) -> None:
    """Raise unless an array of ``xp`` on ``device`` fits an object bound to
    ``bound`` on ``own`` (anything fits an unbound one): TypeError for another
    library, ValueError for another device."""
    if bound is None:
        return
    if xp is not bound:
        msg = f"{owner} is bound to {describe(bound, own)}; got an array of {describe(xp, device)}"
        raise TypeError(msg)
    if device != own:
        msg = f"{owner} is bound to {describe(bound, own)}; got an array on device {device!r}"
        raise ValueError(msg)


class Shell:
    """The base of every stateful class (see the module's docstring)."""

    # The lock's kind: a module that calls its own observer under its lock re-enters.
    _lock_type: ClassVar[Any] = threading.Lock
    # Attributes a deep copy shares with the original (not data); the lock is never copied.
    _SHARED: ClassVar[tuple[str, ...]] = ()

    with_args = classmethod(lambda cls, **kwargs: Factory(functools.partial(cls, **kwargs)))
    with_callable_args = classmethod(
        lambda cls, **kwargs: Factory(cls).with_callable_args(**kwargs)
    )

    def _new_lock(self) -> None:
        self._lock = self._lock_type()

    # -- copy and pickle -----------------------------------------------------------
    def _pickled(self, out: dict[str, Any]) -> None:
        """Turn ``out`` (the attributes, read under the lock) into what pickles."""

    def _unpickled(self, state: dict[str, Any]) -> None:
        """Undo :meth:`_pickled` in ``state`` before it becomes the attributes."""

    def _copied(self, original: Any) -> None:
        """Rebuild, in a fresh deep copy, what must be its own (a backend's caches)."""

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            out = {k: v for k, v in self.__dict__.items() if k != "_lock"}
            self._pickled(out)
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._unpickled(state)
        self.__dict__.update(state)
        self._new_lock()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        """A copy that goes on exactly as this one would; ``_SHARED`` is shared."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        with self._lock:
            items = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        shared = {k: items.pop(k) for k in self._SHARED if k in items}
        new.__dict__.update(copy.deepcopy(items, memo))
        new.__dict__.update(shared)
        new._new_lock()
        new._copied(self)
        return new

    # -- repr ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Bound(Shell):
    """A shell whose arrays live in one namespace on one device: ``xp`` and
    ``device``, and the check that an input belongs there."""

    _xp: ModuleType | None
    _device: Any

    @property
    def xp(self) -> ModuleType | None:
        """The bound namespace, or ``None`` before the first observation when unbound."""
        return self._xp

    @property
    def device(self) -> Any:
        return self._device

    def _check_binding(self, xp: ModuleType, device: Any) -> None:
        check_binding(type(self).__name__, self._xp, self._device, xp, device)

    def _pickled_binding(self, out: dict[str, Any]) -> None:
        """In ``out`` (see :meth:`Shell._pickled`): the namespace by name, and the
        device in a form that pickles (a device object need not: array-api-strict's
        come back as its default device)."""
        xp = out.pop("_xp")
        out["_namespace"] = None if xp is None else xp.__name__
        if xp is not None:
            out["_device"] = _backends.shared(xp).portable_device(out["_device"])

    def _unpickled_binding(self, state: dict[str, Any]) -> tuple[ModuleType | None, Any]:
        """Undo :meth:`_pickled_binding` in ``state``; the namespace and device."""
        name = state.pop("_namespace")
        xp = None if name is None else resolve_namespace(importlib.import_module(name))
        state["_xp"] = xp
        if xp is not None:
            # None: a pickle from before the device travelled (its arrays came back on
            # the default device).
            saved = state["_device"]
            restored = None if saved is None else _backends.shared(xp).restore_device(saved)
            state["_device"] = default_device(xp) if restored is None else restored
        return xp, state["_device"]

    def _bind_now(self, xp: Any, device: Any) -> None:
        """The constructor's ``xp=``/``device=``: bound now to ``xp`` on ``device``
        (default: ``xp``'s default device, as the observers bind), or unbound until
        the first array when ``xp`` is None (then ``device`` must be None too)."""
        if xp is None:
            if device is not None:
                msg = f"device={device!r} needs xp= (the namespace the device belongs to)"
                raise ValueError(msg)
            self._xp, self._device = None, None
            return
        namespace = resolve_namespace(xp)
        self._device = (
            default_device(namespace) if device is None else checked_device(namespace, device)
        )
        self._xp = namespace
