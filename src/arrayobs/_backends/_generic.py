"""The generic backend: the Array API standard and nothing else.

:class:`Backend` is both the protocol every backend implements and its
reference implementation. A backend module subclasses it and overrides only
what it does faster; whatever it does not override runs this code, so a
backend without a fast version of something falls back to the generic one.
Each override is tested against this class bit for bit (``tests/``,
"fast equals generic").

One instance serves one observer (it may cache what that observer's state
looks like on the host) or, through :func:`arrayobs._backends.shared`, the
functional API. ``fast=False`` asks a backend for the generic math; it keeps
only what its library needs to run at all (Dask's computes, JAX's jit).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import _core as core
from arrayobs._compat import backend_name, device_of, size, to_host
from arrayobs._config import QuantConfig
from arrayobs._core import _affine as affine
from arrayobs._core import _fakequant as fakequant
from arrayobs._core import _histogram as hist


class Backend:
    """The protocol between the observer classes and an array library.

    Parameters
    ----------
    xp : module
        The Array API namespace (array-api-compat's, for the wrapped libraries).
    fast : bool
        Use the library's fast paths (a subclass's overrides); False runs the
        generic math of this class.
    """

    name = "generic"
    #: Whether the library's min/max reductions can drop a NaN (XLA on the CPU):
    #: the generic reductions then put it back with one more pass.
    reductions_drop_nan = False

    def __init__(self, xp: ModuleType, fast: bool = True) -> None:
        self.xp = xp
        self.fast = fast
        self._observable: set[Any] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} fast={self.fast}>"

    # -- binding -----------------------------------------------------------------
    def state_device(self, device: Any) -> Any:
        """Where an observer's state lives for inputs on ``device``."""
        return device

    def device_of(self, x: Any) -> Any:
        """The device of ``x``, as :meth:`state_device` stores it."""
        return device_of(x)

    def check_input(self, x: Any) -> None:
        """Raise TypeError unless ``x`` can be observed: its dtype real or bool
        (checked once per dtype), and for a backend, whatever else it refuses."""
        dtype = x.dtype
        if dtype not in self._observable:
            core.require_observable(self.xp, dtype)
            self._observable.add(dtype)

    def portable_device(self, device: Any) -> Any:
        """``device`` in a form that pickles (:meth:`restore_device` undoes it)."""
        return device

    def restore_device(self, portable: Any) -> Any:
        return portable

    def size(self, x: Any) -> int | None:
        """The number of elements of ``x``; None if unknown (Dask)."""
        n: int | None = size(x)
        return n

    # -- one batch -----------------------------------------------------------------
    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        """(min, max) of a non-empty real or bool array as float32 arrays.

        0-d, or with ``ch_axis`` (non-negative) of shape (C,): each channel
        reduced over every other axis. NaN propagates.
        """
        return core.aminmax(x, xp=self.xp, ch_axis=ch_axis)

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        """The part of an update that needs only the batch (a non-empty ``x`` of
        a checked dtype), for :meth:`fold`: by default its (min, max).

        The observers run it outside their lock; a backend that fuses the
        reduction with the update (one compiled call, or a kernel that reads
        the state) returns ``x`` and does everything in :meth:`fold`.
        """
        return self.aminmax(x, ch_axis)

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        """``rule`` applied to ``state`` and what :meth:`reduce` returned.

        ``fresh``: whether ``state`` is the never-observed one (None: decide
        per element, by value; see :class:`arrayobs._core.RunningMinMax`).
        """
        lo, hi = batch
        return self.combine(state, lo, hi, rule, fresh)

    def combine(
        self, state: core.MinMaxState, lo: Any, hi: Any, rule: core.Rule, fresh: bool | None = None
    ) -> core.MinMaxState:
        """``rule`` applied to ``state`` and a batch's (min, max), reduced elsewhere."""
        return rule.combine(state, lo, hi, xp=self.xp, fresh=fresh)

    # -- reading the state ---------------------------------------------------------
    def qparams(
        self, state: core.MinMaxState, config: QuantConfig, check: bool = False
    ) -> tuple[Any, Any] | None:
        """``(scale, zero_point)`` of ``state``, on its device; reads nothing back.

        ``check``: first :meth:`any_crossed` (one read from a device), and None
        if torch would refuse the state.
        """
        if check and self.any_crossed(state):
            return None
        return tuple(core.calculate_qparams(state, config, xp=self.xp))  # type: ignore[return-value]

    def any_crossed(self, state: core.MinMaxState) -> bool:
        """Whether torch would refuse ``state``'s qparams (one read from a device)."""
        return bool(core.crossed(state, xp=self.xp))

    def all_fresh(self, state: core.MinMaxState) -> bool:
        """Whether ``state`` is never-observed everywhere (one read from a device)."""
        return bool(self.xp.all(core.is_fresh(state)))

    def materialize(self, *values: Any) -> tuple[Any, ...]:
        """Small results (a state, qparams) made concrete, so a stateful object never
        keeps a growing task graph: as they are, except on lazy libraries (Dask)."""
        return values

    def whole_rows(self, a: Any) -> Any:
        """A (K, n) array about to be summed row by row in a fixed order of
        slices (:func:`arrayobs._core._sum.cascade_sum`): as it is, except on
        chunked libraries (Dask), where each row goes into one chunk."""
        return a

    # -- where a small state's update runs ------------------------------------------
    @property
    def work_xp(self) -> Any:
        """The namespace a small state's stateful update runs in (the histogram's):
        this one, except where :meth:`to_work` moves the state elsewhere."""
        return self.xp

    def to_work(self, state: Any) -> Any:
        """``state`` (a NamedTuple of arrays) as :attr:`work_xp` arrays."""
        return state

    def from_work(self, state: Any) -> Any:
        """Undo :meth:`to_work` on an updated state."""
        return state

    # -- host transfers ------------------------------------------------------------
    def read_float32(self, *arrays: Any) -> list[Any]:
        """float32 ``arrays`` as NumPy arrays of their shapes, in one transfer from a
        device (concatenated there, then split on the host)."""
        xp = self.xp
        flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
        host = np.asarray(to_host(flat), dtype=np.float32)
        out, start = [], 0
        for a in arrays:
            n = math.prod(a.shape)
            out.append(host[start : start + n].reshape(a.shape))
            start += n
        return out

    def from_host(self, arrays: Any, dtypes: Any, device: Any) -> tuple[Any, ...]:
        """Host (NumPy) ``arrays`` as this library's arrays of ``dtypes`` on ``device``."""
        xp = self.xp
        return tuple(
            xp.asarray(a, dtype=d, device=device) for a, d in zip(arrays, dtypes, strict=True)
        )

    # -- histograms (HistogramObserver) ------------------------------------------
    def value_range(self, x: Any) -> tuple[float, float]:
        """(min, max) of a non-empty floating ``x`` as Python floats, in its own
        dtype's values (NaN propagates); the caller reads them back to branch."""
        xp = self.xp
        if self.reductions_drop_nan and bool(xp.any(xp.isnan(x))):
            return math.nan, math.nan
        return float(xp.min(x)), float(xp.max(x))

    def histc(self, x: Any, bins: int, lo: float, hi: float, *, finite: bool = False) -> Any:
        """torch's CPU ``histc(x, bins, min=lo, max=hi)`` as float32 counts
        (see :func:`arrayobs._core._histogram.histc`). ``finite``: the caller
        knows every value is finite, hence inside ``[lo, hi]``."""
        device = self.state_device(self.device_of(x))
        return hist.histc(x, bins, lo, hi, xp=self.xp, device=device)

    def steady_histc(self, x: Any, bins: int, lo: float, hi: float) -> Any | None:
        """The steady state of HistogramObserver's forward in one pass: :meth:`histc`
        of ``x`` over the observed state's range ``[lo, hi]`` (finite, ``lo < hi``)
        where every value of ``x`` lies in it (the forward then leaves the range
        as it is), else None, as here always: the caller then reads the batch's
        range (:meth:`value_range`) and bins it (:meth:`histc`)."""
        return None

    # -- control flow on values (the functional histogram update) -----------------
    def cond(self, pred: Any, then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:
        """``then()`` where the 0-d boolean ``pred`` holds, else ``otherwise()``:
        here a host read; JAX's ``lax.cond`` reads nothing back."""
        return hist.python_cond(pred, then, otherwise)

    def rebin_upsampled(self, histogram: Any, assigned: Any) -> Any:
        """torch's re-binning sums ``bincount(assigned, weights=repeat_interleave(
        histogram, 16) / 16)``: here on the host (one read of each, one write);
        under ``jax.jit``, JAX's loop on the device."""
        counts = hist.bincount_upsampled(to_host(histogram), to_host(assigned))
        return self.xp.asarray(counts, device=self.device_of(histogram))

    def float64_scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where float64 arrays can be made (JAX without x64 enables it locally)."""
        return contextlib.nullcontext()

    # -- quantizing ----------------------------------------------------------------
    def fake_quantize(
        self,
        x: Any,
        scale: Any,
        zero_point: Any,
        quant_min: int,
        quant_max: int,
        axis: int | None = None,
    ) -> Any:
        """ATen's fake quantization of a float ``x`` (see
        :func:`arrayobs._core._fakequant.fake_quantize` for the arguments), with
        torch's straight-through gradient where the library differentiates."""
        out, _ = fakequant.fake_quantize(
            x, scale, zero_point, quant_min, quant_max, axis, xp=self.xp, device=_device(x)
        )
        return out

    def quantize(
        self,
        x: Any,
        inv: Any,
        zero_point: Any,
        quant_min: int,
        quant_max: int,
        dtype: str,
        axis: int | None = None,
    ) -> Any:
        """The ``quantized_decomposed`` quantize (``_core._fakequant.quantize``)."""
        return fakequant.quantize(
            x, inv, zero_point, quant_min, quant_max, dtype, axis, xp=self.xp, device=_device(x)
        )

    def dequantize(
        self, q: Any, scale: Any, zero_point: Any, out_dtype: Any, axis: int | None = None
    ) -> Any:
        """The ``quantized_decomposed`` dequantize (``_core._fakequant.dequantize``)."""
        return fakequant.dequantize(q, scale, zero_point, out_dtype, axis, xp=self.xp)

    # -- torchao's affine primitives -----------------------------------------------
    def choose_qparams_affine(
        self,
        x: Any,
        mapping: affine.MappingType,
        block_size: tuple[int, ...],
        tgt: affine.Target,
        eps: float | None,
        scale_dtype: str | None,
        zero_point_dtype: str | None,
        keepdim: bool,
    ) -> tuple[Any, Any]:
        """torchao's ``choose_qparams_affine`` (:func:`arrayobs._core._affine.choose_qparams`;
        arguments checked by :mod:`arrayobs.affine`)."""
        return affine.choose_qparams(
            x,
            mapping,
            block_size,
            tgt,
            eps,
            scale_dtype,
            zero_point_dtype,
            keepdim,
            xp=self.xp,
            nan_safe=self.reductions_drop_nan,
        )

    def block_minmax(self, x: Any, block_size: tuple[int, ...], keepdim: bool) -> Any:
        """torchao's per-block ``amin``/``amax`` in ``x``'s dtype
        (:func:`arrayobs._core._affine.block_minmax`), for the affine observers."""
        return affine.block_minmax(
            x, block_size, keepdim, xp=self.xp, nan_safe=self.reductions_drop_nan
        )

    def quantize_affine(
        self, x: Any, block_size: tuple[int, ...], scale: Any, zero_point: Any, tgt: affine.Target
    ) -> Any:
        """torchao's ``quantize_affine`` (:func:`arrayobs._core._affine.quantize`)."""
        return affine.quantize(x, block_size, scale, zero_point, tgt, xp=self.xp)

    # -- across processes ----------------------------------------------------------
    #: Whether :meth:`allreduce_minmax` works (torch.distributed: torch only).
    supports_process_group = False

    def allreduce_minmax(self, lo: Any, hi: Any, group: Any) -> tuple[Any, Any]:
        """The (min, max) of every rank's (lo, hi) across ``group``, in one collective."""
        raise self._no_collectives()

    def allreduce_max(self, values: list[float], device: Any, group: Any) -> list[float]:
        """Each of ``values`` (Python floats, no NaN) maximised across ``group``, exactly."""
        raise self._no_collectives()

    def allreduce_counts(self, counts: Any, group: Any) -> Any:
        """Histogram counts (float32 whole numbers) summed across ``group``, exactly."""
        raise self._no_collectives()

    def _no_collectives(self) -> TypeError:
        msg = f"process_group needs torch tensors, got an array of {backend_name(self.xp)}"
        return TypeError(msg)


def _device(x: Any) -> Any:
    """``x``'s device for new constants, without array-api-compat's lookup (which
    neither torch.compile nor a JAX tracer allows); None where it has none (Dask)."""
    return getattr(x, "device", None)


BACKEND = Backend
