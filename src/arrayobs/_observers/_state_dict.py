"""Reading a state_dict: torch's keys and versions, checked before anything changes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from arrayobs._compat import to_host
from arrayobs._config import FLOAT32_EPS

# torch's version of these observers' state_dict layout (eps a buffer since 2).
VERSION = 3


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` returns, as torch's ``_IncompatibleKeys``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def as_mapping(state_dict: object) -> Mapping[str, Any]:
    """``state_dict``, or TypeError if it is not a mapping."""
    if not isinstance(state_dict, Mapping):
        msg = f"state_dict must be a mapping, got {type(state_dict).__name__}"
        raise TypeError(msg)
    return state_dict


def check_keys(
    state_dict: object,
    keys: tuple[str, ...] | list[str],
    strict: bool,
    owner: str,
    *,
    sort: bool = True,
    required: bool = True,
    say_expected: bool = True,
) -> tuple[dict[str, Any], IncompatibleKeys]:
    """``state_dict`` as a dict and torch's ``IncompatibleKeys`` against ``keys``.

    Raises TypeError for a non-mapping and, when ``strict``, KeyError for
    missing (if ``required``) or unexpected keys, as torch's ``load_state_dict``
    raises RuntimeError. ``sort``: unexpected keys sorted, else in the
    mapping's order (torch's order for modules without buffers).
    """
    given = dict(as_mapping(state_dict))
    missing = [k for k in keys if k not in given] if required else []
    unexpected = [k for k in given if k not in keys]
    if sort:
        unexpected.sort()
    if strict and (missing or unexpected):
        if not required:
            msg = f"unexpected keys in state_dict: {unexpected}"
        else:
            msg = (
                f"malformed state_dict for {owner}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
            if say_expected:
                msg += f"; expected exactly {list(keys)}"
        raise KeyError(msg)
    return given, IncompatibleKeys(missing, unexpected)


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
    """``state_dict[key]`` checked for shape and dtype, as a float32-rounded Python float.

    A 0-d value may come with shape (1,), as torch's ``load_state_dict`` takes it.
    """
    host = host_array(state_dict, key)
    if host.shape != shape and not (shape == () and host.shape == (1,)):
        msg = f"state_dict[{key!r}] must have shape {shape}, got {host.shape}"
        raise ValueError(msg)
    return float(host.reshape(-1)[0])


def entries(
    state_dict: Mapping[str, Any],
    strict: bool,
    current_eps: float,
    owner: str,
    renamed: Any,
    keys: tuple[str, ...],
) -> tuple[dict[str, Any], float, IncompatibleKeys]:
    """``state_dict``'s entries under their current names, its eps (``current_eps``
    if absent and not ``strict``) and the keys that did not match.

    Raises for a non-mapping, missing or unexpected keys (``strict``), and a
    NaN or malformed eps. A version-1 dict (no eps) gets the default eps, as
    in torch. ``renamed(entries, version)``: the layout's old names.
    """
    metadata = getattr(as_mapping(state_dict), "_metadata", None) or {}
    version = metadata.get("", {}).get("version")
    given = renamed(dict(state_dict), version)
    if "eps" not in given and version == 1:
        given["eps"] = [FLOAT32_EPS]
    given, keys_found = check_keys(given, keys, strict, owner)
    eps = host_float32(given, "eps", (1,)) if "eps" in given else current_eps
    if math.isnan(eps):
        msg = "state_dict['eps'] is NaN"
        raise ValueError(msg)
    return given, eps, keys_found


def checked_range(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Whether a loaded ``(min_val, max_val)`` (host arrays) is observed.

    Raises ValueError for shapes that differ, or ``min_val > max_val`` (in
    any channel): torch's qparams raise there. As torch's
    ``check_min_max_vals``, a 0-d (+inf, -inf) is the never-observed state,
    and so is a per-channel state of no channel.
    """
    if lo.shape != hi.shape:
        msg = f"state_dict min_val and max_val differ in shape: {lo.shape} vs {hi.shape}"
        raise ValueError(msg)
    if lo.ndim == 0:
        low, high = float(lo), float(hi)
        fresh = low == math.inf and high == -math.inf
        if not fresh and low > high:
            msg = f"state_dict min_val ({low}) is greater than max_val ({high})"
            raise ValueError(msg)
        return not fresh
    crossed = lo > hi
    if crossed.any():
        i = int(np.argmax(crossed))
        msg = f"state_dict min_val ({lo[i]}) is greater than max_val ({hi[i]}) in channel {i}"
        raise ValueError(msg)
    return bool(lo.shape[0] > 0)


def host_flag(state_dict: Mapping[str, Any], key: str) -> int:
    """A one-element integer flag (torch's ``fake_quant_enabled``) as a Python int."""
    host = to_host(state_dict[key]) if key in state_dict else None
    if host is None or host.dtype.kind not in "iub" or host.size != 1:
        msg = f"state_dict[{key!r}] must be a one-element integer array"
        raise ValueError(msg)
    return int(host.reshape(-1)[0])


def host_vector(state_dict: Mapping[str, Any], key: str, kinds: str) -> np.ndarray:
    """``state_dict[key]`` as a 1-d host array whose dtype kind is in ``kinds``."""
    try:
        host = np.asarray(to_host(state_dict[key]))
    except Exception as exc:  # any library's refusal to convert means "not an array"
        msg = f"state_dict[{key!r}] must be an array"
        raise TypeError(msg) from exc
    if host.dtype.kind not in kinds or host.ndim != 1:
        msg = f"state_dict[{key!r}] must be a 1-d array ({kinds!r}), got {host.dtype} {host.shape}"
        raise ValueError(msg)
    return host
