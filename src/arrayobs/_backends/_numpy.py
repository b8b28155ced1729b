"""NumPy: one read of the input, on every core, in the input's own dtype.

``x.min()`` + ``x.max()`` reads a large array from memory twice on one core.
Here each thread takes a contiguous part and walks it in blocks that fit the
L2 cache: the first reduction of a block reads memory, the second reads the
cache. NumPy's reductions release the GIL, so the threads run in parallel.

NumPy reduces float16 without SIMD (about 0.4 GB/s here, and ``astype`` to
float32 about 2 GB/s), so 16-bit floats (float16, and ml_dtypes' bfloat16,
which NumPy cannot reduce at all) are reduced as order-preserving int16 keys:
flipping the magnitude bits of negative values makes integer order equal
float order, and a NaN lands beyond the keys of the infinities.

The state is host memory here, so the per-tensor update and qparams run on
NumPy scalars (:mod:`arrayobs._backends._host`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from arrayobs import _core as core
from arrayobs._backends import _host as host
from arrayobs._backends import _kernels, _numpy_affine
from arrayobs._backends._generic import Backend
from arrayobs._config import QuantConfig
from arrayobs._core import _affine as affine

_MIN = np.minimum.reduce
_MAX = np.maximum.reduce
# Bytes per block: 1 MiB, half of a 2 MiB L2, so the second reduction reads the cache
# (figures: bench/results/tuning.md).
BLOCK_BYTES = 1 << 20
# Below this many bytes one thread and two whole-array reductions are faster
# than starting work on the pool (measured: bench/, "numpy" rows).
THREAD_MIN_BYTES = 1 << 22
_HALF_FLOATS = frozenset({"float16", "bfloat16"})


def _keys(bits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Order-preserving int16 keys of 16-bit float bits (an involution), into ``out``."""
    return core.order_keys(bits, out=out)  # type: ignore[no-any-return]


def _part(a: np.ndarray, half: bool) -> tuple[Any, Any]:
    """(min, max) of a 1-d contiguous part, block by block (keys for 16-bit floats)."""
    step = max(1, BLOCK_BYTES // a.itemsize)
    scratch = np.empty(min(step, a.size), np.int16) if half else None
    los, his = [], []
    for start in range(0, a.size, step):
        block = a[start : start + step]
        if scratch is not None:
            block = _keys(block, scratch[: block.size])
        los.append(_MIN(block))
        his.append(_MAX(block))
    return _MIN(np.asarray(los)), _MAX(np.asarray(his))


def _key_to_float32(key: Any, name: str) -> np.float32:
    bits = _keys(np.asarray([key], np.int16), np.empty(1, np.int16))
    if name == "float16":
        return np.float32(bits.view(np.float16)[0])
    # bfloat16 is the top half of a float32.
    wide: np.ndarray = bits.astype(np.uint16).astype(np.uint32) << 16
    return np.float32(wide.view(np.float32)[0])


# Keys of +inf and -inf: anything beyond them is a NaN.
_INF_KEY = {"float16": 0x7C00, "bfloat16": 0x7F80}


@functools.lru_cache(maxsize=64)
def _kind(dtype: np.dtype[Any]) -> str:
    """``"float32"``, ``"half"`` (16-bit float, reduced as keys), ``"ml"``
    (ml_dtypes' narrow floats and integers, float8 and int4 among them: widened
    to float32, exactly, as NumPy reduces them one element at a time), ``"wide"``
    (may overflow float32), ``"bool"`` or ``"other"``; cached, as
    ``dtype.name`` alone costs a microsecond and this runs on every call."""
    if dtype == np.float32:
        return "float32"
    if dtype.name in _HALF_FLOATS:
        return "half"
    if dtype.type.__module__ == "ml_dtypes":
        return "ml"
    if dtype == np.bool_:
        return "bool"
    return "wide" if dtype.kind == "f" else "other"


def minmax_scalars(x: np.ndarray) -> tuple[np.float32, np.float32]:
    """(min, max) of a non-empty real or bool array as float32 scalars; NaN propagates."""
    kind = _kind(x.dtype)
    half = kind == "half"
    if kind == "bool":
        x = x.view(np.uint8)
    elif kind == "ml":
        x, kind = x.astype(np.float32), "float32"
    contiguous = x.flags.c_contiguous or x.flags.f_contiguous
    if not half and not (contiguous and x.nbytes >= THREAD_MIN_BYTES):
        lo, hi = _MIN(x, axis=None), _MAX(x, axis=None)
    else:
        flat = np.ravel(x, order="K")  # a view when x is contiguous in any order
        if half:
            flat = flat.view(np.int16)
        if flat.nbytes >= THREAD_MIN_BYTES and host.workers() > 1:
            done = list(
                host.pool().map(lambda p: _part(p, half), np.array_split(flat, host.workers()))
            )
        else:
            done = [_part(flat, half)]
        lo = _MIN(np.asarray([d[0] for d in done]))
        hi = _MAX(np.asarray([d[1] for d in done]))
        if half:
            name = x.dtype.name
            inf_key = _INF_KEY[name]
            if lo < -1 - inf_key or hi > inf_key:
                return np.float32(np.nan), np.float32(np.nan)
            return _key_to_float32(lo, name), _key_to_float32(hi, name)
    if kind == "float32":
        return lo, hi
    if kind == "wide":
        # Beyond float32's range becomes +-inf, as the reference's cast does.
        with np.errstate(over="ignore"):
            return np.float32(lo), np.float32(hi)
    return np.float32(lo), np.float32(hi)


def aminmax(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = minmax_scalars(x)
    return np.asarray(lo), np.asarray(hi)


# -- per channel --------------------------------------------------------------
def _keys_to_float32(keys: np.ndarray, name: str, nan: np.ndarray) -> np.ndarray:
    """float32 values of order-preserving int16 keys, NaN where ``nan``."""
    bits = _keys(keys, np.empty_like(keys))
    if name == "float16":
        out = bits.view(np.float16).astype(np.float32)
    else:  # bfloat16 is the top half of a float32.
        out = (bits.astype(np.uint16).astype(np.uint32) << 16).view(np.float32)
    out[nan] = np.nan
    return out


def _slab(v: np.ndarray, half: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (min, max) of an (a, c, b) block: min then max while it sits in L2."""
    if half:
        v = _keys(v, np.empty(v.shape, np.int16))
    if v.shape[0] == 1 and v.shape[1] == 1:
        # One long channel row: the per-tensor blocked walk.
        lo, hi = _part(v.reshape(-1), False)
        return np.asarray([lo]), np.asarray([hi])
    return _MIN(v, axis=(0, 2)), _MAX(v, axis=(0, 2))


def _slabs(a: int, c: int, b: int, itemsize: int) -> list[tuple[int, int, int, int]]:
    """Blocks (a0, a1, c0, c1) of an (a, c, b) array of about BLOCK_BYTES each:
    whole (·, c, b) slabs while one fits, else runs of channels of one slab."""
    row = b * itemsize
    if c * row <= BLOCK_BYTES:
        step = max(1, BLOCK_BYTES // (c * row))
        return [(i, min(i + step, a), 0, c) for i in range(0, a, step)]
    step = max(1, BLOCK_BYTES // row)
    return [(i, i + 1, j, min(j + step, c)) for i in range(a) for j in range(0, c, step)]


def aminmax_axis(
    x: np.ndarray, ch_axis: int, *, threads: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (min, max) of a non-empty array, shape (C,) float32; NaN propagates.

    A contiguous input is viewed as (A, C, B) and reduced in blocks of about
    1 MiB (min then max of each while it is in L2), on every core when it is
    large; 16-bit floats as int16 keys, as per tensor. Other layouts: one
    ``minimum.reduce`` and one ``maximum.reduce`` over the other axes.
    ``threads=False``: one thread (for callers that run chunks in parallel).
    """
    kind = _kind(x.dtype)
    half = kind == "half"
    name = x.dtype.name
    if kind == "bool":
        x = x.view(np.uint8)
    elif kind == "ml":
        x = x.astype(np.float32)
    elif half:
        x = x.view(np.int16)
    if x.ndim == 1:
        lo = _keys(x, np.empty(x.shape, np.int16)) if half else x.copy()
        hi = lo.copy()
    else:
        if not x.flags.c_contiguous and x.flags.f_contiguous:
            x, ch_axis = x.T, x.ndim - 1 - ch_axis  # the same values, C-contiguous
        if x.flags.c_contiguous:
            c = x.shape[ch_axis]
            v = x.reshape(math.prod(x.shape[:ch_axis]), c, -1)
            blocks = _slabs(*v.shape, v.itemsize)
            work = [v[a0:a1, c0:c1] for a0, a1, c0, c1 in blocks]
            if threads and x.nbytes >= THREAD_MIN_BYTES and host.workers() > 1 and len(work) > 1:
                # One run of consecutive blocks per thread (a task per block costs more).
                runs = np.array_split(np.arange(len(work)), min(host.workers(), len(work)))
                parts = host.pool().map(lambda r: [_slab(work[i], half) for i in r], runs)
                done = [d for part in parts for d in part]
            else:
                done = [_slab(w, half) for w in work]
            lo = np.empty(c, v.dtype)
            hi = np.empty(c, v.dtype)
            for (a0, _, c0, c1), (blo, bhi) in zip(blocks, done, strict=True):
                if a0 == 0:
                    lo[c0:c1], hi[c0:c1] = blo, bhi
                else:
                    np.minimum(lo[c0:c1], blo, out=lo[c0:c1])
                    np.maximum(hi[c0:c1], bhi, out=hi[c0:c1])
        else:
            if half:
                x = _keys(x, np.empty(x.shape, np.int16))
            axes = core.other_axes(x.ndim, ch_axis)
            lo, hi = _MIN(x, axis=axes), _MAX(x, axis=axes)
    if half:
        # A NaN key lies beyond an infinity's: on the min side for a negative NaN,
        # on the max side for a positive one; either makes the channel NaN.
        inf_key = _INF_KEY[name]
        nan = (lo < -1 - inf_key) | (hi > inf_key)
        return _keys_to_float32(lo, name, nan), _keys_to_float32(hi, name, nan)
    with np.errstate(over="ignore"):  # beyond float32's range becomes +-inf, as the reference
        return lo.astype(np.float32), hi.astype(np.float32)


# -- fake quantization ---------------------------------------------------------
# Elements per block of the fake quantization (512 KiB of float32: the output block and the
# two bound blocks fill the 2 MiB L2); smaller blocks pay more in per-call overhead than L2
# saves (figures: bench/results/tuning.md).
FQ_BLOCK = 1 << 17
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_FQ_DTYPES = frozenset({np.dtype(np.float16), _F32, _F64})
# Below this many elements the bounds stay scalars (filling two blocks costs more).
FQ_FILL_MIN = 4096


class _FakeQuant(NamedTuple):
    """The scalars of one per-tensor fake quantization, as the generic arithmetic
    of :func:`arrayobs._core._fakequant.fake_quantize` converts them.

    ``compute`` is the input's compute type (float32; float64 for a float64
    input); ``mid`` is where the clamp and the subtraction of the zero point run:
    float32 where the bounds and the zero point are float32 values (then float32
    ``q - zero_point`` is the double one rounded to float32: a float64 result of
    two float32 operands rounded again to float32 is correctly rounded, as
    53 >= 2 * 24 + 2), float64 otherwise, as the generic arithmetic.
    """

    compute: np.dtype[Any]
    mid: np.dtype[Any]
    inv: np.floating[Any]
    zero_compute: np.floating[Any]
    zero_mid: np.floating[Any]
    lo: np.floating[Any]
    hi: np.floating[Any]
    scale: np.float32


def _fq_scalars(
    dtype: np.dtype[Any], scale: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int
) -> _FakeQuant | None:
    """The scalars for ``dtype``, or None where the fast path does not apply."""
    if max(abs(qmin), abs(qmax)) >= 2**63 or zero_point.dtype.kind not in "iuf":
        return None
    compute = _F64 if dtype == _F64 else _F32
    z = zero_point.reshape(-1)[:1]
    with np.errstate(all="ignore"):
        scale32 = np.float32(scale.reshape(-1)[0])
        inv = compute.type(np.float32(1.0) / scale32)
        zero_compute, zero_wide = z.astype(compute)[0], z.astype(_F64)[0]
        lo, hi = np.float64(qmin), np.float64(qmax)
        narrow = np.float32(zero_wide), np.float32(lo), np.float32(hi)
    # A NaN zero point compares unequal: float64 steps, as the generic ones.
    exact = all(a == b for a, b in zip(narrow, (zero_wide, lo, hi), strict=True))
    if compute == np.float32 and exact:
        return _FakeQuant(compute, compute, inv, zero_compute, *narrow, scale32)
    return _FakeQuant(compute, _F64, inv, zero_compute, zero_wide, lo, hi, scale32)


def _fq_block(x: np.ndarray, out: np.ndarray, k: _FakeQuant, work: dict[Any, Any]) -> None:
    """One block of the per-tensor fake quantization into ``out``, in place.

    ``work`` holds a scratch block of each step dtype other than ``out``'s, and
    the bounds as blocks: ``fmax`` and ``fmin`` against a scalar run 5x slower
    than against a contiguous array (NumPy 2.4, no SIMD loop for a scalar operand).
    """
    n = x.size
    c = work[k.compute][:n] if k.compute in work else out
    m = work[k.mid][:n] if k.mid in work else out
    np.multiply(x, k.inv, out=c, casting="same_kind")
    np.rint(c, out=c)
    np.add(c, k.zero_compute, out=c)
    # fmax, fmin: NaN becomes quant_min, as the generic where(isnan(r), lo, clip(r, lo, hi)).
    lo, hi = work["lo"], work["hi"]
    np.fmax(c, lo[:n] if lo.ndim else lo, out=m, casting="same_kind")
    np.fmin(m, hi[:n] if hi.ndim else hi, out=m)
    np.subtract(m, k.zero_mid, out=m)
    # (q - zero_point) rounded to float32, times the float32 scale, cast to out's dtype.
    np.multiply(m, k.scale, out=out, dtype=np.float32, casting="same_kind")


@core.quiet  # per thread: NumPy's error state does not follow a call into the pool
def _fq_part(x: np.ndarray, out: np.ndarray, k: _FakeQuant) -> None:
    """:func:`_fq_block` over a 1-d contiguous part, block by block."""
    step = min(FQ_BLOCK, x.size)
    work: dict[Any, Any] = {t: np.empty(step, t) for t in {k.compute, k.mid} if t != out.dtype}
    fill = step >= FQ_FILL_MIN
    work["lo"], work["hi"] = (np.full(step, k.lo), np.full(step, k.hi)) if fill else (k.lo, k.hi)
    for start in range(0, x.size, step):
        _fq_block(x[start : start + step], out[start : start + step], k, work)


def fake_quantize_tensor(
    x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, qmin: int, qmax: int
) -> np.ndarray | None:
    """Per-tensor fake quantization of a float16/32/64 array, bit for bit as
    :func:`arrayobs._core._fakequant.fake_quantize`, or None where it does not apply.

    The generic arithmetic makes an array of every intermediate (about ten passes
    over memory). Here each block of :data:`FQ_BLOCK` elements goes through the
    seven in-place ufuncs while it sits in L2, so the input is read once and the
    output written once; large arrays in one contiguous part per core.
    """
    k = _fq_scalars(x.dtype, scale, zero_point, qmin, qmax)
    if k is None:
        return None
    # A Fortran-ordered input is walked as its C-ordered transpose; other layouts copied.
    flip = x.ndim > 1 and x.flags.f_contiguous and not x.flags.c_contiguous
    src = x.T if flip else np.asarray(x, order="C")  # asarray keeps a 0-d array 0-d
    out = np.empty(src.shape, x.dtype)
    flat_in, flat_out = src.reshape(-1), out.reshape(-1)
    if src.nbytes >= THREAD_MIN_BYTES and host.workers() > 1:
        parts = zip(
            np.array_split(flat_in, host.workers()),
            np.array_split(flat_out, host.workers()),
            strict=True,
        )
        list(host.pool().map(lambda p: _fq_part(p[0], p[1], k), parts))
    elif src.size:
        _fq_part(flat_in, flat_out, k)
    result = out.T if flip else out
    if max(scale.ndim, zero_point.ndim) <= x.ndim:
        return result
    # A one-element scale or zero point of more axes broadcasts, as the generic product.
    return result.reshape(np.broadcast_shapes(x.shape, scale.shape, zero_point.shape))


def quantize_affine(
    x: Any, block_size: tuple[int, ...], scale: Any, zero_point: Any, tgt: Any
) -> np.ndarray | None:
    """:func:`arrayobs._backends._numpy_affine.quantize` on this module's threads
    (torch on the CPU takes it too); None where it does not apply."""
    threads = getattr(x, "nbytes", 0) >= THREAD_MIN_BYTES and host.workers() > 1
    return _numpy_affine.quantize(  # type: ignore[no-any-return]
        x,
        block_size,
        scale,
        zero_point,
        tgt,
        host.workers() if threads else 1,
        host.pool().map if threads else map,
    )


# -- histc (HistogramObserver) ----------------------------------------------------
# Elements per block: 2 MiB of float32 indices as intp, the fastest of the sizes tried
# (bench/results/tuning.md).
HISTC_BLOCK = 1 << 18
_HISTC_DTYPES = frozenset({_F32, _F64})


def _bin_positions(block: np.ndarray, left: Any, factor: Any, span: Any) -> np.ndarray:
    """histc's ``trunc((x - lo) * bins / (hi - lo))`` in ``block``'s dtype, op
    by op as the generic histc, truncated to intp (what bincount counts)."""
    scaled = np.subtract(block, left)
    scaled *= factor
    scaled /= span
    # Through int32 (the positions are at most bins, below 2**31): float32 -> int32 ->
    # intp is the cheaper conversion (bench/results/tuning.md).
    return scaled.astype(np.int32).astype(np.intp)  # type: ignore[no-any-return]


def histc(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray | None:
    """The generic :func:`arrayobs._core._histogram.histc` of a float32 or
    float64 array whose values are all finite (so inside ``[lo, hi]``), bit
    for bit, or None where it does not apply (other dtypes, a range whose
    arithmetic could overflow).

    The generic one makes a full-size array of every step. Here blocks of
    :data:`HISTC_BLOCK` go through the arithmetic and ``bincount``. bincount
    holds the GIL and the arithmetic does not, so a pool thread computes the
    next block's positions while this one counts.
    """
    if x.dtype not in _HISTC_DTYPES or bins >= 2**31 - 2:
        return None
    t = x.dtype.type
    left, right, factor = t(lo), t(hi), t(bins)
    with np.errstate(over="ignore"):
        span = right - left
        if not (span > 0 and np.isfinite(span * factor)):
            return None  # the generic arithmetic's NaN and overflow rules
    flat = np.ravel(x, order="K")
    starts = range(0, flat.size, HISTC_BLOCK)
    counts = np.zeros(bins + 2, np.int64)

    def positions(start: int) -> np.ndarray:
        return _bin_positions(flat[start : start + HISTC_BLOCK], left, factor, span)

    if len(starts) > 1 and host.workers() > 1:
        pending = host.pool().submit(positions, starts[0])
        for following in (*starts[1:], None):
            ready = pending.result()
            if following is not None:
                pending = host.pool().submit(positions, following)
            counts[: bins + 2] += np.bincount(ready, minlength=bins + 2)[: bins + 2]
    else:
        for start in starts:
            counts += np.bincount(positions(start), minlength=bins + 2)[: bins + 2]
    # x == hi (and any rounding up to bins): the last bin, as the generic clip.
    counts[bins - 1] += counts[bins:].sum()
    return counts[:bins].astype(np.float32)


class NumpyBackend(Backend):
    """The blocked, threaded reductions above; the per-tensor state as host scalars."""

    name = "numpy"

    def device_of(self, x: Any) -> Any:
        return "cpu"

    def size(self, x: Any) -> int:
        return int(x.size)

    def aminmax(self, x: Any, ch_axis: int | None = None) -> tuple[Any, Any]:
        if not self.fast:
            return super().aminmax(x, ch_axis)
        found = _kernels.aminmax(x) if ch_axis is None else _kernels.aminmax_axis(x, ch_axis)
        if found is not None:  # compiled single pass (numba installed)
            return tuple(np.asarray(v) for v in found)  # type: ignore[return-value]
        return aminmax(x) if ch_axis is None else aminmax_axis(x, ch_axis)

    def check_input(self, x: Any) -> None:
        if type(x) is not np.ndarray and isinstance(x, np.ma.MaskedArray):
            # NumPy's reductions ignore the mask, so a masked-out value would count.
            msg = (
                "NumPy masked arrays are not observed (the mask would be ignored): pass "
                "x.compressed() for the unmasked values, or x.filled(value)"
            )
            raise TypeError(msg)
        super().check_input(x)

    def reduce(self, x: Any, ch_axis: int | None = None) -> Any:
        if not self.fast or ch_axis is not None:
            return super().reduce(x, ch_axis)
        return _kernels.aminmax(x) or minmax_scalars(x)

    def fold(
        self,
        state: core.MinMaxState,
        batch: Any,
        rule: core.Rule,
        ch_axis: int | None = None,
        fresh: bool | None = None,
    ) -> core.MinMaxState:
        if not self.fast or ch_axis is not None:
            return super().fold(state, batch, rule, ch_axis, fresh)
        new = host.combine(rule, state.min_val[()], state.max_val[()], *batch)
        return core.MinMaxState(np.asarray(new[0]), np.asarray(new[1]))

    def qparams(
        self, state: core.MinMaxState, config: QuantConfig, check: bool = False
    ) -> tuple[Any, Any] | None:
        if not self.fast or state.min_val.ndim:
            return super().qparams(state, config, check)
        return host.host_qparams(state.min_val[()], state.max_val[()], config, check)

    def fake_quantize(
        self,
        x: Any,
        scale: Any,
        zero_point: Any,
        quant_min: int,
        quant_max: int,
        axis: int | None = None,
    ) -> Any:
        if (
            self.fast
            and axis is None
            and type(x) is np.ndarray
            and x.dtype in _FQ_DTYPES
            and scale.size == 1
            and zero_point.size == 1
        ):
            out = fake_quantize_tensor(x, scale, zero_point, quant_min, quant_max)
            if out is not None:
                return out
        return super().fake_quantize(x, scale, zero_point, quant_min, quant_max, axis)

    def value_range(self, x: Any) -> tuple[float, float]:
        found = _kernels.value_range(x) if self.fast else None
        if found is not None:
            return found
        if self.fast and type(x) is np.ndarray and x.dtype == _F32:
            return tuple(float(v) for v in minmax_scalars(x))  # type: ignore[return-value]
        return super().value_range(x)

    def histc(self, x: Any, bins: int, lo: float, hi: float, *, finite: bool = False) -> Any:
        out = _kernels.histc(x, bins, lo, hi) if self.fast else None
        if out is None and self.fast and finite and type(x) is np.ndarray:
            out = histc(x, bins, lo, hi)
        return super().histc(x, bins, lo, hi) if out is None else out

    def steady_histc(self, x: Any, bins: int, lo: float, hi: float) -> Any | None:
        return _kernels.steady_histc(x, bins, lo, hi) if self.fast else None

    def block_minmax(self, x: Any, block_size: tuple[int, ...], keepdim: bool) -> Any:
        # The threaded per-channel reduction where the blocks are runs of the last axis.
        found = (
            _numpy_affine.block_minmax(x, block_size, keepdim, aminmax_axis) if self.fast else None
        )
        return super().block_minmax(x, block_size, keepdim) if found is None else found

    def choose_qparams_affine(
        self,
        x: Any,
        mapping: Any,
        block_size: tuple[int, ...],
        tgt: Any,
        eps: float | None,
        scale_dtype: str | None,
        zero_point_dtype: str | None,
        keepdim: bool,
    ) -> tuple[Any, Any]:
        found = None
        if self.fast:
            found = _numpy_affine.block_minmax(x, block_size, keepdim, aminmax_axis)
        if found is None:
            return super().choose_qparams_affine(
                x, mapping, block_size, tgt, eps, scale_dtype, zero_point_dtype, keepdim
            )
        # The threaded per-channel reduction, then the generic arithmetic on (min, max).
        return affine.choose_from_minmax(
            *found,
            tuple(x.shape),
            mapping,
            block_size,
            tgt,
            eps,
            scale_dtype,
            zero_point_dtype,
            keepdim,
            xp=self.xp,
        )

    def quantize_affine(
        self, x: Any, block_size: tuple[int, ...], scale: Any, zero_point: Any, tgt: Any
    ) -> Any:
        # Slabs in L2 on every core, instead of ten full-size temporaries on one.
        out = quantize_affine(x, block_size, scale, zero_point, tgt) if self.fast else None
        if out is None:
            return super().quantize_affine(x, block_size, scale, zero_point, tgt)
        return out


BACKEND = NumpyBackend
