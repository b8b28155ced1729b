"""JAX: min and max in one variadic reduction, NaN propagating.

Two XLA CPU behaviours (jax 0.10.2) shape this module:

- ``jnp.min``/``jnp.max`` drop a NaN from arrays of 4096 or more elements:
  a float32 array holding one NaN gave a finite min and max for 64 of 64 NaN
  positions tried at 4096, 8192 and 100000 elements (eager and jitted), never
  at 1000 or fewer. The Array API standard, torch and NumPy propagate NaN.
  A variadic ``lax.reduce`` whose body is ``minimum``/``maximum`` keeps it.
- ``jit(lambda x: (x.min(), x.max()))`` takes about as long as two passes.
  On the CPU, one variadic reduction over a (2, n/2) view, then over its two
  rows, ran 1.9x faster at 1e8 float32 on a 2-core machine (bench/ has the
  figures). The observer classes ask for that split (``split_reduction``)
  for single-device inputs; otherwise, and on other platforms, one variadic
  reduction over every axis, which XLA partitions for sharded arrays.

``aminmax_checked`` is the generic pair with the NaN put back from an
``isnan`` test: what ``fast=False`` gives, since its only difference from the
generic path is a correction.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from arrayobs import _core as core
from arrayobs._backends import _numpy
from arrayobs._backends._generic import Backend
from arrayobs._config import QuantConfig
from arrayobs._core import _fakequant as fakequant
from arrayobs._core import _histogram as hist

# Below this many elements the (2, n/2) split buys nothing.
SPLIT_MIN = 1 << 16
SPLIT: contextvars.ContextVar[bool] = contextvars.ContextVar("arrayobs_jax_split", default=False)


def _identities(dtype: Any) -> tuple[Any, Any]:
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(jnp.inf, dtype), jnp.array(-jnp.inf, dtype)
    info = jnp.iinfo(dtype)  # type: ignore[no-untyped-call]
    return jnp.array(info.max, dtype), jnp.array(info.min, dtype)


def _both(lhs: tuple[Any, Any], rhs: tuple[Any, Any]) -> tuple[Any, Any]:
    return lax.min(lhs[0], rhs[0]), lax.max(lhs[1], rhs[1])


def _reduce(lo: Any, hi: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    """Min of ``lo`` and max of ``hi`` over ``axes``, in one reduction."""
    return lax.reduce((lo, hi), _identities(lo.dtype), _both, axes)  # type: ignore[no-any-return]


def aminmax(x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
    """0-d (min, max), or per channel of ``ch_axis`` (shape (C,)), as float32."""
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    elif jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize < 4 and x.dtype != jnp.float16:
        # Widened (exactly) to float32, fused into the reduction: XLA's CPU variadic
        # reduction of bfloat16 ran 18x slower than of float32, and float8 formats
        # without infinities cannot hold the reduction's identities (e4m3fn: NaN).
        x = x.astype(jnp.float32)
    if ch_axis is not None and SPLIT.get() and x.ndim > 1:
        lo, hi = _channels(x, ch_axis)
    elif ch_axis is not None:
        # Every axis but the channel's, in one variadic reduction (a 1-d input: none).
        lo, hi = _reduce(x, x, core.other_axes(x.ndim, ch_axis))
    elif SPLIT.get() and x.size >= SPLIT_MIN:
        # The split is the CPU's win; on an H200 it made float16 1.6x slower.
        flat = x.reshape(-1)
        lo, hi = lax.platform_dependent(
            flat, cpu=_split_reduce, default=lambda v: _reduce(v, v, (0,))
        )
    else:
        # Over every axis of x as it is: a sharded x reduces shard by shard,
        # then across devices (no gather; a reshape could force one).
        lo, hi = _reduce(x, x, tuple(range(x.ndim)))
    return lo.astype(jnp.float32), hi.astype(jnp.float32)


@contextlib.contextmanager
def split_reduction() -> Iterator[None]:
    """While tracing inside this, :func:`aminmax` may split the input in two rows.

    For the observer classes, which know their input sits on one device; a
    reshape of an array sharded over several devices would gather it.
    """
    token = SPLIT.set(True)
    try:
        yield
    finally:
        SPLIT.reset(token)


# Rows per block of a (rows, C) reduction on the CPU; see _blocked_rows.
ROW_BLOCKS = 64


def _channels(x: Any, ch_axis: int) -> tuple[Any, Any]:
    """Per channel, for a single-device input: x seen as (A, C, B), B reduced
    first (the minor axis), then A in blocks on the CPU."""
    shape = x.shape
    a, c = math.prod(shape[:ch_axis]), shape[ch_axis]
    v = x.reshape(a, c, -1)
    lo, hi = _reduce(v, v, (2,)) if v.shape[2] > 1 else (v[:, :, 0], v[:, :, 0])
    if a == 1:
        return lo[0], hi[0]
    return lax.platform_dependent(  # type: ignore[no-any-return]
        lo, hi, cpu=_blocked_rows, default=lambda lo, hi: _reduce(lo, hi, (0,))
    )


def _blocked_rows(lo: Any, hi: Any) -> tuple[Any, Any]:
    """(min, max) over axis 0 of (A, C) pairs on the CPU.

    XLA's CPU variadic reduction over the major axis is slow: (2441, 4096)
    float32 took 71-77 ms, against 2.7-3.3 ms viewed as (64, A/64, C) and
    reduced over the middle axis, then the first (bench/: per-channel rows).
    """
    a, c = lo.shape
    n = a // ROW_BLOCKS * ROW_BLOCKS
    if n == 0:
        return _reduce(lo, hi, (0,))
    blocks = (ROW_BLOCKS, n // ROW_BLOCKS, c)
    out = _reduce(*_reduce(lo[:n].reshape(blocks), hi[:n].reshape(blocks), (1,)), (0,))
    if n < a:
        out = _both(out, _reduce(lo[n:], hi[n:], (0,)))
    return out


def _split_reduce(flat: Any) -> tuple[Any, Any]:
    """One variadic reduction over a (2, n/2) view, then over its two rows."""
    n = flat.shape[0]
    half = n // 2
    rows = flat[: 2 * half].reshape(2, half)
    lo, hi = _reduce(*_reduce(rows, rows, (1,)), (0,))
    if n % 2:
        lo, hi = _both((lo, hi), (flat[-1], flat[-1]))
    return lo, hi


def aminmax_checked(x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    axes = core.other_axes(x.ndim, ch_axis)
    lo, hi = jnp.min(x, axis=axes), jnp.max(x, axis=axes)
    if jnp.issubdtype(x.dtype, jnp.floating):
        has_nan = jnp.any(jnp.isnan(x), axis=axes)
        lo = jnp.where(has_nan, jnp.nan, lo)
        hi = jnp.where(has_nan, jnp.nan, hi)
    return lo.astype(jnp.float32), hi.astype(jnp.float32)


def state_device(device: Any) -> Any:
    """Where an observer's state lives for inputs on ``device`` (a device or a sharding).

    A NamedSharding over several devices becomes the replicated sharding on the
    same mesh: the two state scalars sit on every device the input does, so a
    jitted update takes both (JAX refuses arguments committed to different
    device sets) and nothing is gathered.
    """
    if isinstance(device, jax.sharding.NamedSharding) and len(device.device_set) > 1:
        return jax.sharding.NamedSharding(device.mesh, jax.sharding.PartitionSpec())  # type: ignore[no-untyped-call]
    return device


def pminmax(lo: Any, hi: Any, axis_name: Any) -> tuple[Any, Any]:
    """(min, max) of float32 ``lo``/``hi`` across ``axis_name``, NaN propagating.

    ``lax.pmin``/``lax.pmax`` of floats drop a NaN on the CPU (jax 0.10.2: a
    NaN shard's value vanished from both). Integer keys of the bits
    (:mod:`arrayobs._core._keys`) reduce exactly, in one collective.
    """
    lo_bits, hi_bits = (lax.bitcast_convert_type(v, jnp.int32) for v in (lo, hi))
    packed = jnp.stack(core.pack_minmax(lo_bits, hi_bits, jnp.isnan(lo) | jnp.isnan(hi), xp=jnp))
    packed = lax.pmin(packed, axis_name)  # type: ignore[no-untyped-call]
    lo_bits, hi_bits, any_nan = core.unpack_minmax(packed[0], packed[1])
    return (
        jnp.where(any_nan, jnp.nan, lax.bitcast_convert_type(lo_bits, jnp.float32)),
        jnp.where(any_nan, jnp.nan, lax.bitcast_convert_type(hi_bits, jnp.float32)),
    )


# -- the backend: every step one compiled call -----------------------------------
# Eager JAX dispatches each of the rules' few dozen scalar operations
# separately; one compiled call is what a JAX user gets from jitting the
# functional core. Compiled functions are shared by equal observers.
def _traced_with_split(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, traced with the reduction split in two rows (single-device inputs)."""

    def traced(*args: Any) -> Any:
        with split_reduction():
            return fn(*args)

    return traced


@functools.lru_cache(maxsize=256)
def compiled_update(
    rule: core.Rule, ch_axis: int | None, fresh: bool | None, fast: bool, split: bool
) -> Callable[..., Any]:
    """``(state, x) -> state`` for a non-empty ``x``, under ``jax.jit``."""
    reduce = aminmax if fast else aminmax_checked

    def update(state: core.MinMaxState, x: Any) -> core.MinMaxState:
        lo, hi = reduce(x, ch_axis)
        return rule.combine(state, lo, hi, xp=jnp, fresh=fresh)

    return jax.jit(_traced_with_split(update) if split else update)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def compiled_qparams(config: QuantConfig) -> Callable[..., Any]:
    """``state -> (scale, zero_point)`` under ``jax.jit``."""
    return jax.jit(functools.partial(core.calculate_qparams, config=config, xp=jnp))  # type: ignore[no-any-return]


@functools.cache
def compiled_crossed() -> Callable[..., Any]:
    return jax.jit(functools.partial(core.crossed, xp=jnp))  # type: ignore[no-any-return]


def _fake_quantize_mask(
    x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: int | None
) -> tuple[Any, Any]:
    return fakequant.fake_quantize(x, scale, zero_point, qmin, qmax, axis, xp=jnp)  # type: ignore[arg-type]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def fake_quantize(x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: Any) -> Any:
    """The generic fake quantization with torch's straight-through gradient
    (``dY * mask``; none for the qparams, as torch's non-learnable op)."""
    return _fake_quantize_mask(x, scale, zero_point, qmin, qmax, axis)[0]


def _fq_forward(x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int, axis: Any) -> Any:
    out, mask = _fake_quantize_mask(x, scale, zero_point, qmin, qmax, axis)
    return out, (mask, scale, zero_point)


def _no_cotangent(v: Any) -> Any:
    if jnp.issubdtype(v.dtype, jnp.inexact):
        return jnp.zeros_like(v)
    return np.zeros(v.shape, dtype=jax.dtypes.float0)


def _fq_backward(qmin: int, qmax: int, axis: Any, res: Any, grad: Any) -> Any:
    mask, scale, zero_point = res
    return (
        jnp.where(mask, grad, jnp.zeros_like(grad)),
        _no_cotangent(scale),
        _no_cotangent(zero_point),
    )


fake_quantize.defvjp(_fq_forward, _fq_backward)


class JaxBackend(Backend):
    """The variadic reduction above; every update, qparams and check one compiled call."""

    name = "jax"
    reductions_drop_nan = True

    def state_device(self, device: Any) -> Any:
        return state_device(device)

    def device_of(self, x: Any) -> Any:
        if isinstance(x, jax.core.Tracer):
            msg = (
                "the observer classes run eagerly and cannot observe a traced JAX value "
                "(inside jax.jit, vmap or grad); under jax.jit use the functional core: "
                "arrayobs.functional.minmax_update / moving_average_update / histogram_update"
            )
            raise TypeError(msg)
        return state_device(super().device_of(x))

    def portable_device(self, device: Any) -> Any:
        if isinstance(device, jax.Device):
            return ("jax.Device", device.platform, device.id)
        msg = f"an observer whose state lives on {device!r} cannot be pickled (one device only)"
        raise TypeError(msg)

    def restore_device(self, portable: Any) -> Any:
        _, platform, device_id = portable
        for device in jax.devices(platform):
            if device.id == device_id:
                return device
        msg = f"no JAX {platform} device with id {device_id} here"
        raise ValueError(msg)

    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        # fast=False is the generic pair with the NaN that jnp.min/max drop put back.
        return aminmax(x, ch_axis) if self.fast else aminmax_checked(x, ch_axis)

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        return x  # reduced and folded in one compiled call

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        if state.min_val.ndim == 0:
            # Per tensor "by value" is exact whatever the hint: one compiled
            # function serves the first batch and every later one.
            fresh = None
        # A single-device input may be reshaped for the split; a sharded one not.
        split = len(batch.devices()) == 1
        return compiled_update(rule, ch_axis, fresh, self.fast, split)(state, batch)  # type: ignore[no-any-return]

    def qparams(
        self, state: core.MinMaxState, config: QuantConfig, check: bool = False
    ) -> tuple[Any, Any] | None:
        if check and self.any_crossed(state):
            return None
        return tuple(compiled_qparams(config)(state))  # type: ignore[return-value]

    def any_crossed(self, state: core.MinMaxState) -> bool:
        return bool(compiled_crossed()(state))

    def fake_quantize(
        self,
        x: Any,
        scale: Any,
        zero_point: Any,
        quant_min: int,
        quant_max: int,
        axis: int | None = None,
    ) -> Any:
        # The clamp and the integer arithmetic after it are exact in float64: enabled
        # locally, as the histogram's core, so JAX's default (no x64) is exact too.
        with self.float64_scope():
            return fake_quantize(x, scale, zero_point, quant_min, quant_max, axis)

    # jnp.asarray(..., device=) goes through a sharding constraint (about 0.3 ms a
    # call here); device_get and device_put move a tuple in one call each.
    def read_float32(self, *arrays: Any) -> list[Any]:
        if any(isinstance(a, jax.core.Tracer) for a in arrays):
            msg = (
                "this reads the state back to the host (the histogram's search runs "
                "there): call it outside jax.jit, on the state the jitted update returned"
            )
            raise TypeError(msg)
        return [np.asarray(a, dtype=np.float32) for a in jax.device_get(arrays)]

    def from_host(self, arrays: Any, dtypes: Any, device: Any) -> tuple[Any, ...]:
        host = [np.asarray(a, dtype=np.dtype(d)) for a, d in zip(arrays, dtypes, strict=True)]
        return tuple(jax.device_put(host, device))

    # The functional histogram update: under jax.jit its branches and loop stay on the device.
    def cond(self, pred: Any, then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:
        if isinstance(pred, jax.core.Tracer):
            return lax.cond(pred, then, otherwise)
        return super().cond(pred, then, otherwise)  # eagerly: one branch, run as it is

    def rebin_upsampled(self, histogram: Any, assigned: Any) -> Any:
        if isinstance(histogram, jax.core.Tracer) or isinstance(assigned, jax.core.Tracer):
            # XLA's scatter-add has no fixed order: each run is summed in order instead.
            return hist.rebin_runs(
                histogram,
                assigned,
                xp=self.xp,
                loop=lambda n, body, init: lax.fori_loop(0, n, body, init),
            )
        return super().rebin_upsampled(histogram, assigned)

    def float64_scope(self) -> contextlib.AbstractContextManager[Any]:
        # Inside jax.jit too: the float64 operations are traced as such.
        return jax.enable_x64(True)  # type: ignore[no-any-return]

    # HistogramObserver: an eager single-device CPU array is host memory that NumPy
    # reads without a copy; its fast paths then count 8x faster than the generic
    # operations, each compiled per shape (bench/histogram.py).
    def value_range(self, x: Any) -> tuple[float, float]:
        host = _host_view(x) if self.fast else None
        if host is None or host.dtype != np.float32:
            return super().value_range(x)
        return tuple(float(v) for v in _numpy.minmax_scalars(host))  # type: ignore[return-value]

    def histc(self, x: Any, bins: int, lo: float, hi: float, *, finite: bool = False) -> Any:
        host = _host_view(x) if self.fast and finite else None
        counts = None if host is None else _numpy.histc(host, bins, lo, hi)
        if counts is None:
            return super().histc(x, bins, lo, hi)
        return jax.device_put(counts, next(iter(x.devices())))


def _host_view(x: Any) -> np.ndarray | None:
    """NumPy's view of a single-device CPU array (None elsewhere)."""
    devices = x.devices()
    if len(devices) != 1 or next(iter(devices)).platform != "cpu":
        return None
    return np.asarray(x)


BACKEND = JaxBackend
