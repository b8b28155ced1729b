"""torch.ao's observers that compute nothing: fixed qparams, placeholders, recording.

As ``FixedQParamsObserver``, ``PlaceholderObserver``, ``RecordingObserver``,
``NoopObserver`` and ``ReuseInputObserver`` of torch 2.13.0
(``torch/ao/quantization/observer.py``), with their state_dicts, reprs and
``with_args`` defaults, so that any qconfig of torch.ao has its counterpart.
"""

from __future__ import annotations

import importlib
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _backends
from arrayobs._compat import array_namespace, default_device, is_array, resolve_namespace, to_host
from arrayobs._config import (
    DTYPES,
    FLOAT32_EPS,
    PER_TENSOR_QSCHEMES,
    QSCHEMES,
    _name,
    boolean,
    real_number,
    to_float32,
)
from arrayobs._core._dtypes import FLOAT_NAMES
from arrayobs._observers._arguments import checked_device
from arrayobs._observers._shell import Bound, Shell
from arrayobs._observers._state_dict import IncompatibleKeys, check_keys

__all__ = [
    "FixedQParamsObserver",
    "NoopObserver",
    "PlaceholderObserver",
    "RecordingObserver",
    "ReuseInputObserver",
    "default_affine_fixed_qparams_observer",
    "default_debug_observer",
    "default_dynamic_quant_observer",
    "default_fixed_qparams_range_0to1_observer",
    "default_fixed_qparams_range_neg1to1_observer",
    "default_placeholder_observer",
    "default_reuse_input_observer",
    "default_symmetric_fixed_qparams_observer",
]

# What a placeholder passes on: a quantized dtype, or the float dtype of a
# dynamic or float16 path (torch takes any object; these are the ones its
# qconfigs use).
ANY_DTYPES = (*DTYPES, *FLOAT_NAMES)
# nn.Module's state_dict version: none of these classes sets its own.
VERSION = 1
_INT32 = (-(2**31), 2**31 - 1)


def _optional_int(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int or None, got {value!r}"
        raise TypeError(msg)
    return int(value)


def _zero_point(value: object, what: str) -> int:
    """An int32 zero point; torch truncates a float and raises beyond int32."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"{what} must be an int, got {value!r}"
        raise TypeError(msg)
    if not _INT32[0] <= int(value) <= _INT32[1]:
        msg = f"{what} {value} does not fit int32 (torch.ao raises here too)"
        raise ValueError(msg)
    return int(value)


def _versioned(entries: OrderedDict[str, Any]) -> OrderedDict[str, Any]:
    entries._metadata = {"": {"version": VERSION}}  # type: ignore[attr-defined]
    return entries


class SimpleObserver(Shell):
    """What the observers below share with torch's ``ObserverBase``: ``dtype``,
    ``is_dynamic``, a ``forward`` that returns its input, and a state_dict with
    no entries."""

    _state_keys: tuple[str, ...] = ()

    def __init__(self, dtype: str, is_dynamic: bool = False) -> None:
        self.dtype = dtype
        self.is_dynamic = is_dynamic
        self._new_lock()

    def forward(self, x: Any) -> Any:
        """Return ``x``, the same object, observing nothing."""
        return x

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def calculate_qparams(self) -> tuple[Any, Any]:
        """Raises ``RuntimeError``: there are no qparams (torch raises ``Exception``)."""
        msg = f"calculate_qparams should not be called for {type(self).__name__}"
        raise RuntimeError(msg)

    def state_dict(self) -> OrderedDict[str, Any]:
        """Empty, as torch's, with torch's version metadata."""
        return _versioned(OrderedDict())

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Take an empty mapping; any key is unexpected (``KeyError`` with
        ``strict=True``; torch raises ``RuntimeError``)."""
        _, keys = check_keys(state_dict, self._state_keys, strict, type(self).__name__, sort=False)
        return keys


class FixedQParamsObserver(SimpleObserver, Bound):
    """Constant qparams: ``calculate_qparams`` returns ``(scale, zero_point)``
    whatever was seen, as ``torch.ao.quantization.FixedQParamsObserver``.

    Parameters
    ----------
    scale : float
        Rounded to float32, as torch does (not checked for sign or NaN, as in torch).
    zero_point : int
        Must fit int32 (torch raises ``RuntimeError`` there; it truncates a
        float, which is refused here).
    dtype : str or torch.dtype
        A quantized dtype (as :class:`MinMaxObserver`); kept, not used.
    qscheme : str or torch.qscheme
        ``"per_tensor_affine"`` or ``"per_tensor_symmetric"`` (torch supports
        only per-tensor schemes here, without checking).
    quant_min, quant_max : int or None
        Kept as given, unchecked, as in torch.
    is_dynamic : bool
        ``True`` raises ``NotImplementedError``, as in torch.
    xp : module, optional
        The array library of ``scale`` and ``zero_point``; default NumPy.
    device : optional
        Their device, with ``xp``; default the library's default device.

    Examples
    --------
    >>> from arrayobs import FixedQParamsObserver
    >>> obs = FixedQParamsObserver(scale=1.0 / 256.0, zero_point=0)
    >>> obs.calculate_qparams()
    (array([0.00390625], dtype=float32), array([0], dtype=int32))
    """

    _state_keys = ("scale", "zero_point")
    _SHARED = ("_xp", "_device")

    def __init__(
        self,
        scale: float,
        zero_point: int,
        dtype: Any = "quint8",
        qscheme: Any = "per_tensor_affine",
        quant_min: int | None = 0,
        quant_max: int | None = 255,
        is_dynamic: bool = False,
        *,
        xp: Any = None,
        device: Any = None,
    ) -> None:
        if boolean(is_dynamic, "is_dynamic"):
            msg = "FixedQParamsObserver doesn't support dynamic quantization"
            raise NotImplementedError(msg)
        host = (to_float32(real_number(scale, "scale")), _zero_point(zero_point, "zero_point"))
        super().__init__(_name(dtype, DTYPES, "dtype"), is_dynamic)
        self.qscheme = _name(qscheme, PER_TENSOR_QSCHEMES, "qscheme")
        self.quant_min = _optional_int(quant_min, "quant_min")
        self.quant_max = _optional_int(quant_max, "quant_max")
        if xp is None and device is not None:
            msg = "device needs xp: pass the array library too, or neither"
            raise ValueError(msg)
        namespace = resolve_namespace(np if xp is None else xp)
        self._xp: ModuleType = namespace
        self._device = (
            default_device(namespace) if device is None else checked_device(namespace, device)
        )
        self._set(*host)

    def _set(self, scale: float | None, zero_point: int | None) -> None:
        """New qparams from Python numbers (None: keep that one)."""
        old = getattr(self, "_qparams", (None, None))
        new = _qparams(self._xp, self._device, scale, zero_point)
        # One tuple, replaced whole: a reader in another thread sees the old
        # pair or the new one, never half of each.
        self._qparams = (old[0] if new[0] is None else new[0], old[1] if new[1] is None else new[1])

    @property
    def scale(self) -> Any:
        """float32, shape (1,), as torch's buffer."""
        return self._qparams[0]

    @property
    def zero_point(self) -> Any:
        """int32, shape (1,), as torch's buffer."""
        return self._qparams[1]

    def calculate_qparams(self) -> tuple[Any, Any]:
        """``(scale, zero_point)``: copies, float32 and int32 of shape (1,)."""
        xp, (scale, zero_point) = self._xp, self._qparams
        return xp.asarray(scale, copy=True), xp.asarray(zero_point, copy=True)

    def state_dict(self) -> OrderedDict[str, Any]:
        """``{"scale", "zero_point"}`` as copies, with torch's version metadata."""
        return _versioned(OrderedDict(zip(self._state_keys, self.calculate_qparams(), strict=True)))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load ``scale`` and ``zero_point`` from arrays of any supported library.

        Each must have shape (1,), as torch requires; ``scale`` a real dtype
        (rounded to float32, as torch's ``copy_``), ``zero_point`` an integer
        dtype within int32 (torch truncates a float and wraps beyond int32;
        both are refused here). Everything is checked before anything changes.
        With ``strict=False`` a missing key keeps its value.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as torch's ``_IncompatibleKeys``.
        """
        given, keys = check_keys(
            state_dict, self._state_keys, strict, type(self).__name__, sort=False
        )
        scale = zero_point = None
        if "scale" in given:
            scale = to_float32(float(_host(given, "scale", "fiu")[0]))
        if "zero_point" in given:
            host = _host(given, "zero_point", "iu")
            zero_point = _zero_point(int(host[0]), "state_dict['zero_point']")
        self._set(scale, zero_point)
        return keys

    def _pickled(self, out: dict[str, Any]) -> None:
        """The qparams as Python numbers, the namespace and device by name."""
        scale, zero_point = out.pop("_qparams")
        xp = out.pop("_xp")
        out["_namespace"] = xp.__name__
        out["_device"] = _backends.shared(xp).portable_device(self._device)
        out["_host"] = (float(to_host(scale)[0]), int(to_host(zero_point)[0]))

    def _unpickled(self, state: dict[str, Any]) -> None:
        xp = resolve_namespace(importlib.import_module(state.pop("_namespace")))
        host = state.pop("_host")
        state["_xp"] = xp
        state["_device"] = device = _backends.shared(xp).restore_device(state["_device"])
        state["_qparams"] = _qparams(xp, device, *host)


def _qparams(xp: ModuleType, device: Any, scale: float | None, zero_point: int | None) -> Any:
    """torch's buffers of Python qparams: float32 and int32, shape (1,) (None stays None)."""
    return (
        None if scale is None else xp.asarray([scale], dtype=xp.float32, device=device),
        None if zero_point is None else xp.asarray([zero_point], dtype=xp.int32, device=device),
    )


def _host(state_dict: Mapping[str, Any], key: str, kinds: str) -> np.ndarray:
    value = state_dict[key]
    try:
        host = to_host(value)
    except Exception as exc:  # any library's refusal to convert means "not an array"
        msg = f"state_dict[{key!r}] must be an array, got {type(value).__name__}"
        raise TypeError(msg) from exc
    if host.dtype.kind not in kinds:
        kind = "an integer" if kinds == "iu" else "a real"
        msg = f"state_dict[{key!r}] must have {kind} dtype, got {host.dtype}"
        raise TypeError(msg)
    if host.shape != (1,):
        msg = f"state_dict[{key!r}] must have shape (1,), got {host.shape}"
        raise ValueError(msg)
    return host


class PlaceholderObserver(SimpleObserver):
    """Observes nothing; holds the configuration a converted module reads, as
    ``torch.ao.quantization.PlaceholderObserver`` (for float16, or dynamic
    quantization).

    ``dtype`` is a quantized dtype or float16, bfloat16, float32, float64.
    ``qscheme`` defaults to per_tensor_affine and ``eps`` to float32's
    epsilon (a Python float, not rounded, as in torch); ``quant_min`` and
    ``quant_max`` are kept unchecked. ``compute_dtype`` is deprecated: a
    truthy one warns and, as in torch 2.13.0, changes nothing (``is_dynamic``
    stays as given). ``custom_op_name`` is kept as ``custom_op``.

    Examples
    --------
    >>> from arrayobs import PlaceholderObserver
    >>> PlaceholderObserver(dtype="float16")
    PlaceholderObserver(dtype=torch.float16, is_dynamic=False)
    """

    def __init__(
        self,
        dtype: Any = "float32",
        custom_op_name: str = "",
        compute_dtype: Any = None,
        quant_min: int | None = None,
        quant_max: int | None = None,
        qscheme: Any = None,
        eps: float | None = None,
        is_dynamic: bool = False,
    ) -> None:
        name = _name(dtype, ANY_DTYPES, "dtype")
        qscheme_name = (
            "per_tensor_affine" if qscheme is None else _name(qscheme, QSCHEMES, "qscheme")
        )
        if compute_dtype is not None:
            _name(compute_dtype, ANY_DTYPES, "compute_dtype")
        values = (
            _optional_int(quant_min, "quant_min"),
            _optional_int(quant_max, "quant_max"),
            FLOAT32_EPS if eps is None else real_number(eps, "eps"),
            _custom_op(custom_op_name),
        )
        super().__init__(name, boolean(is_dynamic, "is_dynamic"))
        self.qscheme = qscheme_name
        self.quant_min, self.quant_max, self.eps, self.custom_op = values
        if compute_dtype:
            warnings.warn(
                "Please use `is_dynamic` instead of `compute_dtype`; `compute_dtype` "
                "will be deprecated in a future release of PyTorch.",
                UserWarning,
                stacklevel=2,
            )

    def extra_repr(self) -> str:
        """As torch prints it."""
        return f"dtype=torch.{self.dtype}, is_dynamic={self.is_dynamic}"


def _custom_op(value: object) -> str:
    if not isinstance(value, str):
        msg = f"custom_op_name must be a str, got {value!r}"
        raise TypeError(msg)
    return value


class RecordingObserver(SimpleObserver):
    """Records a copy of every array observed, in ``tensor_val``, as
    ``torch.ao.quantization.RecordingObserver`` (for debugging).

    Each copy is in the input's library and on its device, without an
    autograd graph (torch's keeps the graph of ``x.clone()``). Appending is
    atomic, so ``forward`` may be called from several threads.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import RecordingObserver
    >>> obs = RecordingObserver()
    >>> x = np.arange(3.0)
    >>> obs(x) is x
    True
    >>> obs.get_tensor_value()
    [array([0., 1., 2.])]
    """

    def __init__(self, dtype: Any = "quint8") -> None:
        super().__init__(_name(dtype, ANY_DTYPES, "dtype"))
        self.tensor_val: list[Any] = []

    def forward(self, x: Any) -> Any:
        """Append a copy of ``x`` to ``tensor_val``; return ``x``."""
        if not is_array(x):
            msg = f"RecordingObserver records arrays, got {type(x).__name__}"
            raise TypeError(msg)
        xp = array_namespace(x)
        # An array with an autograd graph (torch) is detached first: a copy
        # would otherwise keep the graph, and torch.asarray warns about it.
        source = x.detach() if getattr(x, "requires_grad", False) else x
        self.tensor_val.append(xp.asarray(source, copy=True))
        return x

    def get_tensor_value(self) -> list[Any]:
        """``tensor_val`` itself, as torch returns it."""
        return self.tensor_val


class NoopObserver(SimpleObserver):
    """Observes nothing, as ``torch.ao.quantization.NoopObserver`` (float16 by
    default); ``custom_op_name`` is kept as ``custom_op``."""

    def __init__(self, dtype: Any = "float16", custom_op_name: str = "") -> None:
        name = _name(dtype, ANY_DTYPES, "dtype")
        custom_op = _custom_op(custom_op_name)
        super().__init__(name)
        self.custom_op = custom_op


class ReuseInputObserver(SimpleObserver):
    """Observes nothing; marks an output (of a reshape, say) that reuses its
    input's observer, as ``torch.ao.quantization.ReuseInputObserver``."""

    def __init__(self) -> None:
        super().__init__("quint8")


default_placeholder_observer = PlaceholderObserver
default_debug_observer = RecordingObserver
default_dynamic_quant_observer = PlaceholderObserver.with_args(
    dtype="quint8", quant_min=0, quant_max=255, is_dynamic=True
)
default_fixed_qparams_range_neg1to1_observer = FixedQParamsObserver.with_args(
    scale=2.0 / 256.0, zero_point=128, dtype="quint8", quant_min=0, quant_max=255
)
default_fixed_qparams_range_0to1_observer = FixedQParamsObserver.with_args(
    scale=1.0 / 256.0, zero_point=0, dtype="quint8", quant_min=0, quant_max=255
)
# torch keeps these two names for backwards compatibility.
default_symmetric_fixed_qparams_observer = default_fixed_qparams_range_neg1to1_observer
default_affine_fixed_qparams_observer = default_fixed_qparams_range_0to1_observer
default_reuse_input_observer = ReuseInputObserver
