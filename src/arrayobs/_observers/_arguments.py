"""The observers' constructor arguments beyond torch's configuration: torch's
``factory_kwargs``, devices, process groups, and ``with_args`` factories."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from arrayobs._compat import backend_name, device_of


class Factory:
    """What ``with_args`` returns: a constructor with some arguments bound."""

    def __init__(self, func: Callable[..., Any], callable_args: Mapping[str, Any] | None = None):
        self._func = func
        self._callable_args = dict(callable_args or {})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = {k: f() for k, f in self._callable_args.items() if k not in kwargs}
        return self._func(*args, **made, **kwargs)

    def with_args(self, **kwargs: Any) -> Factory:
        return Factory(functools.partial(self._func, **kwargs), self._callable_args)

    def with_callable_args(self, **kwargs: Callable[[], Any]) -> Factory:
        return Factory(self._func, {**self._callable_args, **kwargs})

    def __repr__(self) -> str:
        return f"{self._func!r}{self._callable_args!r}"


def factory_device(factory_kwargs: Any, xp: Any, device: Any) -> tuple[Any, Any]:
    """``(xp, device)`` with torch's ``factory_kwargs`` (the buffers' device and
    dtype) applied: a device there binds to torch unless ``xp`` says otherwise;
    the state stays float32."""
    if factory_kwargs is None:
        return xp, device
    if not isinstance(factory_kwargs, Mapping):
        msg = f"factory_kwargs must be a mapping, got {type(factory_kwargs).__name__}"
        raise TypeError(msg)
    unexpected = sorted(set(factory_kwargs) - {"device", "dtype"})
    if unexpected:
        msg = f"factory_kwargs: unexpected keys {unexpected}; arrayobs takes device and dtype"
        raise TypeError(msg)
    dtype = factory_kwargs.get("dtype")
    if dtype is not None and str(dtype).removeprefix("torch.") != "float32":
        msg = f"factory_kwargs dtype {dtype}: arrayobs keeps its state in float32"
        raise NotImplementedError(msg)
    wanted = factory_kwargs.get("device")
    if wanted is None:
        return xp, device
    if device is not None and str(device) != str(wanted):
        msg = f"device={device!r} and factory_kwargs['device']={wanted!r} disagree"
        raise ValueError(msg)
    return (importlib.import_module("torch") if xp is None else xp), wanted


def checked_device(xp: ModuleType, device: Any) -> Any:
    """``device`` as ``xp`` reports devices; a clear error if ``xp`` has no such device."""
    try:
        return device_of(xp.empty((0,), device=device))
    except Exception as exc:  # each library refuses a foreign device in its own way
        try:
            known = f"; its devices here: {list(xp.__array_namespace_info__().devices())}"
        except Exception:  # a namespace without the inspection API
            known = ""
        msg = f"device {device!r} is not a device of {backend_name(xp)} ({exc}){known}"
        raise ValueError(msg) from exc


def check_process_group(group: Any) -> None:
    """Raise TypeError unless ``group`` is a torch.distributed process group."""
    try:
        import torch.distributed as dist
    except ImportError as exc:
        msg = "process_group needs torch (torch.distributed), which does not import here"
        raise TypeError(msg) from exc
    if not isinstance(group, dist.ProcessGroup):
        msg = f"process_group must be a torch.distributed.ProcessGroup, got {type(group).__name__}"
        raise TypeError(msg)


def process_group_for(group: Any, xp: ModuleType | None, supported: bool) -> Any:
    """``group`` checked for a class bound to ``xp`` (None: not yet bound);
    ``supported``: whether ``xp``'s backend runs torch.distributed collectives."""
    if group is None:
        return None
    if xp is not None and not supported:
        msg = f"process_group needs torch tensors, but xp is {backend_name(xp)}"
        raise TypeError(msg)
    check_process_group(group)
    return group


def refuse_pickling_group(owner: Any) -> None:
    """Raise TypeError if ``owner`` holds a process group (a live connection)."""
    if getattr(owner, "_group", None) is not None:
        msg = (
            f"{type(owner).__name__} with a process_group cannot be pickled (a process "
            "group is a live connection): pickle its state_dict, or one without the group"
        )
        raise TypeError(msg)
