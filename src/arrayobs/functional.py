"""The pure functional core of arrayobs: state in, state out.

Every function here takes arrays and returns new arrays; nothing is mutated,
no Python ``if`` looks at an array's values and nothing is read back to the
host. So the same code runs eagerly on any Array API backend, under
``jax.jit``, and on lazy Dask arrays. The histogram functions are the
exception: ``histogram_update`` branches through ``Backend.cond`` and
re-bins through ``Backend.rebin_upsampled`` (``lax.cond`` and a
``lax.fori_loop`` under ``jax.jit``, both branches lazily on Dask, a host
read elsewhere), and ``histogram_qparams`` reads the state back once. The
observer classes are built on the same rules (``arrayobs._core``) and
backends (``arrayobs._backends``).

An update is ``batch_minmax`` (one reduction over the batch) followed by
``minmax_combine`` or ``moving_average_combine`` (a few scalar operations);
``minmax_update`` and ``moving_average_update`` do both. The split lets the
batch's (min, max) be reduced elsewhere (across devices, say) and folded in.

The arithmetic reproduces torch 2.13.0's ``torch.ao.quantization`` observers
bit for bit: float32 throughout, Python-float constants rounded to float32,
``torch.min``/``torch.max`` returning their first argument on a tie of equal
values, and the zero point's float-to-int32 cast behaving as on x86 (NaN and
out-of-range values become ``-2**31``).

Examples
--------
A moving-average observer as two pure functions under ``jax.jit``:

>>> import jax, jax.numpy as jnp
>>> from arrayobs import functional as F
>>> cfg = F.quant_config("quint8", "per_tensor_affine")
>>> update = jax.jit(lambda s, x: F.moving_average_update(s, x, 0.01))
>>> qparams = jax.jit(lambda s: F.calculate_qparams(s, cfg))
>>> state = F.init_state(xp=jnp)
>>> for batch in (jnp.linspace(-1.0, 3.0, 101), jnp.linspace(-2.0, 2.0, 11)):
...     state = update(state, batch)
>>> scale, zero_point = qparams(state)
>>> float(scale[0]), int(zero_point[0])
(0.01568627543747425, 64)
"""

from __future__ import annotations

import numbers
from types import ModuleType
from typing import Any

from arrayobs import _arguments as arguments
from arrayobs import _backends
from arrayobs import _core as core
from arrayobs._compat import (
    array_namespace,
    device_of,
    is_array,
    on_host,
    resolve_namespace,
    size,
    torch_compiling,
)
from arrayobs._config import PER_TENSOR_QSCHEMES, QuantConfig, quant_config
from arrayobs._core import (
    MinMaxState,
    QParams,
    calculate_qparams,
    init_state,
    is_fresh,
    merge_minmax,
    minmax_combine,
    moving_average_combine,
    namespace,
    quiet,
)
from arrayobs._core import _fakequant as fakequant
from arrayobs._core import _fused as core_fused
from arrayobs._core import _histogram as hist
from arrayobs._core._dtypes import FLOAT_NAMES, dtype_name
from arrayobs._core._histogram import HistogramState

__all__ = [
    "HistogramState",
    "MinMaxState",
    "QParams",
    "QuantConfig",
    "batch_minmax",
    "calculate_qparams",
    "dequantize_per_channel",
    "dequantize_per_tensor",
    "fake_quantize_per_channel_affine",
    "fake_quantize_per_tensor_affine",
    "fused_moving_avg_obs_fake_quant",
    "histogram_init",
    "histogram_qparams",
    "histogram_update",
    "init_state",
    "is_fresh",
    "merge_minmax",
    "minmax_combine",
    "minmax_update",
    "moving_average_combine",
    "moving_average_update",
    "pminmax",
    "quant_config",
    "quantize_per_channel",
    "quantize_per_tensor",
]


@quiet
def batch_minmax(
    x: Any, *, ch_axis: int | None = None, xp: ModuleType | None = None, fast: bool = True
) -> tuple[Any, Any] | None:
    """(min, max) of one batch as float32 arrays, or None for an empty batch.

    0-d, or with ``ch_axis`` of shape (C,): each channel along ``ch_axis``
    (negative counts from the end, as torch) reduced over every other axis.
    The same numbers as reducing ``astype(x, float32)``: rounding to float32 is
    monotonic, so the reduction runs in the input's own dtype. NaN propagates.
    ``fast=False`` turns the backend's fast path off (the numbers are the same;
    of two zeros of different sign, either may be returned).

    Raises
    ------
    TypeError
        For a dtype that is not real or bool, or a NumPy masked array.
    ValueError
        If ``x`` has no axis ``ch_axis`` (checked before the empty case), or
        unknown size (Dask).
    """
    backend = _backends.shared(array_namespace(x) if xp is None else xp, fast)
    backend.check_input(x)
    n = arguments.require_size(size(x))
    ch = None if ch_axis is None else arguments.channel_axis(ch_axis, x.ndim)
    if n == 0:
        return None
    return backend.aminmax(x, ch)


def _check_channels(state: MinMaxState, cur: tuple[Any, Any], ch_axis: int | None) -> None:
    """The batch's (min, max) must have the state's shape (shapes are static, even under jit)."""
    want, got = tuple(state.min_val.shape), tuple(cur[0].shape)
    if want != got:
        if ch_axis is None:
            msg = f"a per-tensor update needs a 0-d state, got shape {want}; pass ch_axis"
        elif len(want) != 1:
            msg = f"a per-channel update needs a state of shape (C,), got {want}"
        else:
            msg = (
                f"the batch has {got[0]} channels along ch_axis {ch_axis}; the state has {want[0]}"
            )
        raise ValueError(msg)


def pminmax(cur_min: Any, cur_max: Any, axis_name: Any) -> tuple[Any, Any]:
    """Inside JAX's ``shard_map`` (or ``pmap``): every shard's (min, max) combined.

    The pattern for a batch sharded over a mesh axis ``"i"``::

        lo, hi = F.pminmax(*F.batch_minmax(shard), "i")
        state = F.minmax_combine(state, lo, hi)

    Unlike ``lax.pmin``/``lax.pmax``, which drop a NaN on the CPU, a NaN on
    any shard propagates, as in one process. One collective. (An empty shard:
    pass ``(inf, -inf)``, the identity.)
    """
    from arrayobs._backends import _jax

    return _jax.pminmax(cur_min, cur_max, axis_name)


@quiet
def minmax_update(
    state: MinMaxState,
    x: Any,
    *,
    ch_axis: int | None = None,
    xp: ModuleType | None = None,
    fast: bool = True,
) -> MinMaxState:
    """``MinMaxObserver.forward``: the running elementwise min and max.

    With ``ch_axis``, ``PerChannelMinMaxObserver.forward`` on a state of
    shape (C,) (see :func:`init_state`). An empty ``x`` returns ``state``
    unchanged; NaN in a batch stays for good.
    """
    xp = namespace(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return minmax_combine(state, *cur, xp=xp)


@quiet
def moving_average_update(
    state: MinMaxState,
    x: Any,
    averaging_constant: float,
    *,
    ch_axis: int | None = None,
    xp: ModuleType | None = None,
    fast: bool = True,
) -> MinMaxState:
    """``MovingAverageMinMaxObserver.forward`` (with ``ch_axis``: the per-channel one).

    A fresh state (both +inf and -inf) takes the batch's min and max; any other
    state moves by ``m + c * (cur - m)`` (not ``(1 - c) * m + c * cur`` as
    torch's docs say). The choice is a ``where``, so nothing is read back.
    Per channel, from :func:`init_state` with ``channels``, this gives torch's
    numbers: the first batch finds every channel fresh, and no channel of an
    observed state is (+inf, -inf) again for ``0 <= averaging_constant <= 1``.
    """
    xp = namespace(state, xp)
    cur = batch_minmax(x, ch_axis=ch_axis, xp=xp, fast=fast)
    if cur is None:
        return state
    _check_channels(state, cur, ch_axis)
    return moving_average_combine(state, *cur, averaging_constant, xp=xp)


# -- quantize, dequantize and fake-quantize --------------------------------------
# -- HistogramObserver ----------------------------------------------------------------
def histogram_init(bins: int = 2048, *, xp: ModuleType, device: Any = None) -> HistogramState:
    """A never-observed ``HistogramObserver`` state: ``histogram`` float32
    zeros of shape ``(bins,)``, ``min_val`` +inf and ``max_val`` -inf (0-d float32).
    ``xp`` is a library (``numpy``, ``dask.array``) or an Array API namespace."""
    namespace = resolve_namespace(xp)
    return hist.init_histogram(arguments.checked_bins(bins), xp=namespace, device=device)


def histogram_update(
    state: HistogramState, x: Any, *, xp: ModuleType | None = None
) -> HistogramState:
    """``HistogramObserver.forward``: ``x`` binned by torch's ``histc`` over the
    union of the ranges, the old histogram re-binned into it as torch re-bins it.

    The same state as torch 2.13.0's observer after every batch, bit for bit
    (histogram, ``min_val``, ``max_val``). Its branches are ``Backend.cond``
    and its re-binning ``Backend.rebin_upsampled``: under ``jax.jit``
    ``lax.cond`` and a ``lax.fori_loop`` over the re-binning's runs (about
    16r passes over the bins when the range grows r-fold), so it reads
    nothing back (float64 is enabled locally for the range and the
    re-binning's ``linspace``; float64 input needs ``jax_enable_x64``);
    on Dask both branches stay in the graph (one chosen when it computes)
    and the re-binning is a host task, so the update is lazy; elsewhere, and
    on JAX eagerly, a host read each and the re-binning on the host in one
    pass. The observer class is the faster eager path (its fast paths count
    5 to 10x faster than these generic operations).

    Where torch differs: a batch with NaN (torch's ``histc`` raises) makes
    ``min_val`` and ``max_val`` NaN and freezes the state so, which
    :func:`histogram_qparams` refuses; infinite values are dropped without
    torch's warning. An empty batch or one with no finite value returns
    ``state`` unchanged.

    Raises
    ------
    TypeError
        For input that is not an array of the state's namespace (a NumPy
        masked array included) or not float16, bfloat16, float32 or float64.
    """
    xp = array_namespace(state.min_val) if xp is None else xp
    given = arguments.array_namespace(x, "x")
    if given.__name__ != xp.__name__:
        msg = f"x is a {given.__name__} array; the state's namespace is {xp.__name__}"
        raise TypeError(msg)
    backend = _backends.shared(xp)
    backend.check_input(x)  # e.g. NumPy's masked arrays
    name = str(x.dtype).rsplit(".", 1)[-1]
    if name not in FLOAT_NAMES:
        msg = (
            f"histogram_update observes float16, bfloat16, float32 or float64 arrays, got {x.dtype}"
        )
        raise TypeError(msg)
    if arguments.require_size(size(x)) == 0:
        return state
    with backend.float64_scope():
        return hist.update_arrays(state, x, xp=xp, cond=backend.cond, rebin=backend.rebin_upsampled)


def histogram_qparams(
    state: HistogramState, config: QuantConfig, *, xp: ModuleType | None = None
) -> QParams:
    """``HistogramObserver.calculate_qparams``: torch's L2 search over the
    state, then its qparams, each of shape (1,) on the state's device.

    Reads the state back once (one transfer) and searches on the host, so it
    runs outside ``jax.jit`` (a traced state raises TypeError). A
    never-observed state gives scale 1.0 and zero point 0 (the class also
    warns and uses int64 there, as torch); a NaN state (see
    :func:`histogram_update`) raises ValueError.

    Raises
    ------
    TypeError
        For a ``config`` that is not a :class:`QuantConfig` (make one with
        :func:`quant_config`) or a ``state`` that is not a histogram state.
    ValueError
        For a per-channel ``config`` (HistogramObserver is per tensor, as torch's).
    """
    if not isinstance(config, QuantConfig):
        msg = f"config must be a QuantConfig (from quant_config(...)), got {type(config).__name__}"
        raise TypeError(msg)
    if config.qscheme not in PER_TENSOR_QSCHEMES:
        msg = (
            f"config has qscheme {config.qscheme!r}; the histogram takes {PER_TENSOR_QSCHEMES} "
            "(torch's HistogramObserver is per tensor)"
        )
        raise ValueError(msg)
    if not (isinstance(state, tuple) and len(state) == 3 and all(is_array(v) for v in state)):
        msg = f"state must be a HistogramState of three arrays, got {type(state).__name__}"
        raise TypeError(msg)
    state = HistogramState(*state)
    xp = array_namespace(state.min_val) if xp is None else resolve_namespace(xp)
    backend = _backends.shared(xp)
    device = device_of(state.histogram)
    return QParams(*_backends.searched_qparams(state, config, backend, device))


def _float_input(x: Any, fast: bool) -> tuple[Any, Any, ModuleType]:
    """The backend and namespace of a float16/bfloat16/float32/float64 array."""
    xp = arguments.array_namespace(x, "x")
    arguments.require_fake_quantizable(xp, x.dtype)
    return _backends.shared(xp, fast), xp, _device(x)


def _device(x: Any) -> Any:
    # Under jax.jit a tracer has no device to ask; new constants go to the default one.
    if torch_compiling():
        return getattr(x, "device", None)
    try:
        return device_of(x)
    except Exception:
        return None


def fake_quantize_per_tensor_affine(
    x: Any, scale: Any, zero_point: Any, quant_min: int, quant_max: int, *, fast: bool = True
) -> Any:
    """``torch.fake_quantize_per_tensor_affine``, bit for bit on torch's CPU kernel.

    ``out = (clamp(rint(x * (1.0f / scale)) + zero_point, quant_min, quant_max)
    - zero_point) * scale`` in float32 (the reciprocal is float32; ``x / scale``
    differs in the last bit). The output has ``x``'s dtype: float16 and bfloat16
    are computed in float32, float64 is multiplied by the float32 reciprocal in
    float64 and dequantized as a float32 product, as ATen does. NaN gives
    ``quant_min``'s value, +-inf a bound's.

    ``scale`` and ``zero_point`` are Python numbers (the scale rounded to
    float32; the zero point checked against the range, as torch checks) or
    one-element arrays of ``x``'s library (not checked, as torch's tensor
    overload: that would read them back; a float zero point is truncated).

    The gradient, where the library differentiates (torch autograd, JAX), is
    torch's straight-through one: the incoming gradient where the rounded value
    lies in ``[quant_min, quant_max]``, 0 elsewhere. Nothing is read back from a
    device: it runs under ``jax.jit``, ``torch.compile`` and lazily on Dask.

    Raises
    ------
    TypeError
        For an input that is not a float array, or qparams of another library.
    ValueError
        If ``quant_min > quant_max`` or a Python zero point lies outside the
        range (torch raises RuntimeError).
    """
    backend, xp, device = _float_input(x, fast)
    qmin, qmax = arguments.check_range(quant_min, quant_max)
    s = arguments.tensor_scale(scale, xp, device)
    z = arguments.tensor_zero_point(zero_point, qmin, qmax, xp, device)
    return backend.fake_quantize(x, s, z, qmin, qmax)


def fake_quantize_per_channel_affine(
    x: Any,
    scale: Any,
    zero_point: Any,
    axis: int,
    quant_min: int,
    quant_max: int,
    *,
    fast: bool = True,
) -> Any:
    """``torch.fake_quantize_per_channel_affine``, bit for bit on torch's CPU kernel.

    As :func:`fake_quantize_per_tensor_affine` channel by channel along
    ``axis`` (0 <= axis < x.ndim, as torch), with torch's per-channel rules:
    ``scale`` a float32 array and ``zero_point`` an int32, float32 or float16
    array, both of shape (x.shape[axis],). With an integer zero point the
    rounded value is converted to int64 before the clamp, so NaN, +-inf and
    magnitudes beyond 2**63 give ``quant_min``'s value (per tensor +inf gives
    ``quant_max``'s); the dequantized value is a double product. A float zero
    point (``per_channel_affine_float_qparams``) is added before rounding,
    fused as AVX2/AVX-512 CPUs fuse it for float32 (see the docs'
    exactness page). Integer zero points are range-checked, as torch checks them,
    where that reads nothing back from a device (NumPy, array-api-strict, CPU
    torch outside torch.compile); zero channels are refused, as torch.
    """
    backend, xp, _ = _float_input(x, fast)
    qmin, qmax = arguments.check_range(quant_min, quant_max)
    ax = arguments.channel_axis_checked(axis, x.ndim)
    s, z = arguments.channel_qparams(x, scale, zero_point, ax, xp)
    if on_host(z):
        arguments.check_channel_zero_points(z, qmin, qmax, xp)
    return backend.fake_quantize(x, s, z, qmin, qmax, ax)


def _decomposed_input(x: Any) -> tuple[Any, ModuleType, Any]:
    xp = arguments.array_namespace(x, "x")
    if dtype_name(x.dtype) not in ("float16", "bfloat16", "float32"):
        msg = f"Expecting input to have dtype float32 (or float16, bfloat16), but got {x.dtype}"
        raise TypeError(msg)
    return _backends.shared(xp, True), xp, _device(x)


def _range(quant_min: int, quant_max: int, dtype: Any, xp: ModuleType) -> tuple[int, int, str]:
    qmin = arguments.integer(quant_min, "quant_min")
    qmax = arguments.integer(quant_max, "quant_max")
    name, _ = arguments.int_dtype(dtype, xp)
    arguments.check_bounds(qmin, qmax, name)
    return qmin, qmax, name


def _tensor_inverse(scale: Any, xp: ModuleType, device: Any) -> Any:
    """``1.0 / scale`` as torch's decomposed op takes it: a Python double, rounded
    to float32 by the multiplication (an array scale is read as its value)."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        inv = 1.0 / float(scale)  # ZeroDivisionError for 0, as torch's Python code
        return xp.asarray(fakequant.float32_value(inv), dtype=xp.float32, device=device)
    arguments.tensor_scale(scale, xp, device)  # checks only
    return fakequant.decomposed_inverse(xp.reshape(scale, ()), xp, device)


def _tensor_zero_point(zero_point: Any, xp: ModuleType, device: Any) -> Any:
    if isinstance(zero_point, numbers.Integral) and not isinstance(zero_point, bool):
        return xp.asarray(int(zero_point), dtype=core.widest_int(xp, device), device=device)
    return arguments.tensor_zero_point(zero_point, -(2**31), 2**31 - 1, xp, device)


def quantize_per_tensor(
    x: Any, scale: Any, zero_point: Any, quant_min: int, quant_max: int, dtype: Any
) -> Any:
    """``torch.ops.quantized_decomposed.quantize_per_tensor`` (the pt2e path).

    ``clamp(round(x * inv) + zero_point, quant_min, quant_max)`` cast to
    ``dtype`` (uint8, int8, int16 or int32, a name or the backend's dtype),
    with ``inv = 1.0 / scale`` taken as a Python double and rounded to float32
    (ATen's fake-quantize kernels take ``1.0f / scale`` in float32; the two
    differ for rare scales, see the docs). ``x`` is float32 (float16 and
    bfloat16 are upcast, as torch). NaN becomes ``-2**31`` cut to ``dtype``
    (0 for the 8- and 16-bit types), as torch's cast on x86. ``scale`` and
    ``zero_point`` may be one-element arrays (torch's ``.tensor`` overload).
    """
    backend, xp, device = _decomposed_input(x)
    qmin, qmax, name = _range(quant_min, quant_max, dtype, xp)
    inv = _tensor_inverse(scale, xp, device)
    z = _tensor_zero_point(zero_point, xp, device)
    return backend.quantize(x, inv, z, qmin, qmax, name)


def dequantize_per_tensor(
    q: Any,
    scale: Any,
    zero_point: Any,
    quant_min: int,
    quant_max: int,
    dtype: Any,
    *,
    out_dtype: Any = None,
) -> Any:
    """``torch.ops.quantized_decomposed.dequantize_per_tensor``:
    ``(q.to(out_dtype) - zero_point) * scale``, ``out_dtype`` float32 by
    default. ``q`` must have ``dtype``; the range is checked against it."""
    xp = arguments.array_namespace(q, "q")
    device = _device(q)
    _, _, name = _range(quant_min, quant_max, dtype, xp)
    if q.dtype != getattr(xp, name):
        msg = f"Expecting input to have dtype: {name}, but got {q.dtype}"
        raise TypeError(msg)
    out = arguments.float_dtype("float32" if out_dtype is None else out_dtype, xp)
    compute = xp.float64 if out == getattr(xp, "float64", None) else xp.float32
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        s = xp.asarray(float(scale), dtype=compute, device=device)
    else:
        arguments.tensor_scale(scale, xp, device)  # checks only
        s = xp.astype(xp.reshape(scale, ()), compute)
    z = _tensor_zero_point(zero_point, xp, device)
    return _backends.shared(xp, True).dequantize(q, s, z, out)


def quantize_per_channel(
    x: Any,
    scales: Any,
    zero_points: Any,
    axis: int,
    quant_min: int,
    quant_max: int,
    dtype: Any,
) -> Any:
    """``torch.ops.quantized_decomposed.quantize_per_channel``:
    ``clamp(round(x * (1.0 / scales)) + zero_points, quant_min, quant_max)``
    along ``axis`` (negative counts from the end), the reciprocal in the
    scales' dtype, cast to ``dtype`` as :func:`quantize_per_tensor`."""
    backend, xp, _ = _decomposed_input(x)
    qmin, qmax, name = _range(quant_min, quant_max, dtype, xp)
    ax = arguments.channel_axis(arguments.integer(axis, "axis"), x.ndim)
    scales, zero_points = _channel_pair(x, scales, zero_points, ax, xp)
    return backend.quantize(x, 1.0 / scales, zero_points, qmin, qmax, name, ax)


def dequantize_per_channel(
    q: Any,
    scales: Any,
    zero_points: Any,
    axis: int,
    quant_min: int,
    quant_max: int,
    dtype: Any,
    *,
    out_dtype: Any = None,
) -> Any:
    """``torch.ops.quantized_decomposed.dequantize_per_channel``:
    ``((q - zero_points) * scales).to(out_dtype)`` along ``axis``, the
    difference in the integers; ``zero_points`` may be None."""
    xp = arguments.array_namespace(q, "q")
    _, _, name = _range(quant_min, quant_max, dtype, xp)
    if q.dtype != getattr(xp, name):
        msg = f"Expecting input to have dtype: {name}, but got dtype: {q.dtype}"
        raise TypeError(msg)
    out = arguments.float_dtype("float32" if out_dtype is None else out_dtype, xp)
    ax = arguments.channel_axis(arguments.integer(axis, "axis"), q.ndim)
    scales, zero_points = _channel_pair(q, scales, zero_points, ax, xp)
    return _backends.shared(xp, True).dequantize(q, scales, zero_points, out, ax)


def _channel_pair(
    x: Any, scales: Any, zero_points: Any, axis: int, xp: ModuleType
) -> tuple[Any, Any]:
    for value, what in ((scales, "scales"), (zero_points, "zero_points")):
        if value is None and what == "zero_points":
            continue
        if arguments.array_namespace(value, what) is not xp:
            msg = f"{what} must be an array of the input's library"
            raise TypeError(msg)
        if value.ndim != 1 or value.shape[0] != x.shape[axis]:
            msg = f"{what} must have shape ({x.shape[axis]},), got {tuple(value.shape)}"
            raise ValueError(msg)
    if not xp.isdtype(scales.dtype, "real floating"):
        msg = f"scales must be a float array, got {scales.dtype}"
        raise TypeError(msg)
    return scales, zero_points


def fused_moving_avg_obs_fake_quant(
    input: Any,
    observer_on: Any,
    fake_quant_on: Any,
    running_min: Any,
    running_max: Any,
    scale: Any,
    zero_point: Any,
    averaging_const: float,
    quant_min: int,
    quant_max: int,
    ch_axis: int,
    per_row_fake_quant: bool = False,
    symmetric_quant: bool = False,
) -> tuple[Any, Any, Any, Any, Any]:
    """``torch.fused_moving_avg_obs_fake_quant``, with torch's arguments, as a pure function.

    torch's op updates ``running_min``, ``running_max``, ``scale`` and
    ``zero_point`` in place and returns the fake-quantized input; this one
    leaves its arguments as they are and returns
    ``(output, running_min, running_max, scale, zero_point)``, so it runs under
    ``jax.jit`` and on lazy Dask arrays. The numbers are torch's CPU op's, bit for
    bit (the rules are :class:`~arrayobs.FusedMovingAvgObsFakeQuantize`'s: any
    infinite running value takes the batch's, FBGEMM's qparams).

    Parameters
    ----------
    input : array
        float32, as torch requires.
    observer_on, fake_quant_on : int, bool or array
        The two switches. torch reads its tensors back (``.item()``); a Python
        number decides here, an array of the input's library stays in the
        computation (both branches computed, the result selected), so nothing
        is read back from a device.
    running_min, running_max, scale : array
        float32 of one element per tensor, or ``(C,)`` with ``per_row_fake_quant``.
    zero_point : array
        int32 (or float32) of the same size.
    averaging_const : float
    quant_min, quant_max : int
    ch_axis : int
        0 with ``per_row_fake_quant`` (torch supports no other axis there).
    per_row_fake_quant, symmetric_quant : bool

    Returns
    -------
    tuple
        The output (the input's values fake-quantized, or a copy where
        ``fake_quant_on`` is off, as torch), then the new ``running_min``,
        ``running_max``, ``scale`` and ``zero_point`` with the shapes and dtypes
        of the ones passed in. An empty input changes nothing, as in torch.

    Notes
    -----
    Per row, each channel along axis 0 is reduced over every other axis;
    torch's CPU op reduces only axis 1 and so handles 2-D input only (its
    module, :class:`~arrayobs.FusedMovingAvgObsFakeQuantize`, is used on
    2-D weights). torch allows an int64 zero point per tensor only; here the
    zero point is int32 or float32.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import functional as F
    >>> state = (np.full(1, np.inf, np.float32), np.full(1, -np.inf, np.float32),
    ...          np.ones(1, np.float32), np.zeros(1, np.int32))
    >>> x = np.linspace(-1.0, 3.0, 5, dtype=np.float32)
    >>> out, *state = F.fused_moving_avg_obs_fake_quant(x, 1, 1, *state, 0.01, 0, 255, 0)
    >>> [float(a[0]) for a in state[:3]], int(state[3][0])
    ([-1.0, 3.0, 0.01568627543747425], 64)
    """
    xp = arguments.array_namespace(input, "input")
    if dtype_name(input.dtype) != "float32":
        msg = f"input must be float32 (as torch's op), got {input.dtype}"
        raise TypeError(msg)
    qmin, qmax = arguments.check_range(quant_min, quant_max)
    axis = arguments.integer(ch_axis, "ch_axis")
    if per_row_fake_quant and axis != 0:
        msg = f"per-row fused fake quantization is only supported on axis 0 (as torch), got {axis}"
        raise ValueError(msg)
    if per_row_fake_quant and input.ndim == 0:
        msg = "per-row fused fake quantization needs an input with an axis 0"
        raise ValueError(msg)
    state = (running_min, running_max, scale, zero_point)
    arguments.fused_state(state, input.shape[0] if per_row_fake_quant else 1, xp)
    observe = arguments.switch(observer_on, "observer_on", xp)
    fake_quant = arguments.switch(fake_quant_on, "fake_quant_on", xp)
    if size(input) == 0:
        return (xp.asarray(input, copy=True), *state)
    backend, device = _backends.shared(xp), _device(input)
    # A switch that is a Python False skips its work; an array one selects after both.
    if observe is False:
        batch = (running_min, running_max)
    else:
        batch = backend.aminmax(input, 0 if per_row_fake_quant else None)
    # FBGEMM's double steps: a local jax.enable_x64 on JAX, nothing elsewhere.
    with backend.float64_scope():
        new = core_fused.step(
            *state,
            batch,
            observe,
            fake_quant,
            averaging_const,
            qmin,
            qmax,
            bool(symmetric_quant),
            xp=xp,
            device=device,
        )
    if fake_quant is False:
        return (xp.asarray(input, copy=True), *new)
    new_scale, new_zp = new[2], new[3]
    if per_row_fake_quant:
        quantized = backend.fake_quantize(input, new_scale, new_zp, qmin, qmax, 0)
    else:
        s = xp.reshape(new_scale, ())
        z = xp.reshape(xp.astype(new_zp, xp.int32), ())
        quantized = backend.fake_quantize(input, s, z, qmin, qmax)
    out = quantized if fake_quant is True else xp.where(fake_quant, quantized, input)
    return (out, *new)
