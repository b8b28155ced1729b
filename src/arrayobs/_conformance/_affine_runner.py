"""Running the affine section: on torchao 0.18.0 (the reference) and on any target.

A ``choose`` case gives the scale and zero point, then (float16, bfloat16 and
float32 inputs) the quantized integers and the dequantized floats; a
``with_min_max`` case the scale and zero point; a ``float8`` case the scale,
the float8 values and the dequantized floats; an ``observer`` case each
batch's ``min_val`` and ``max_val``, then ``calculate_qparams()`` (a None zero
point is the row dtype "none"). Each target runs the chain on its own results.
In ``jit`` mode (JAX) every chain but the observers runs under ``jax.jit``; in
``lazy`` mode none runs (the functions are lazy on Dask in every mode, so the
eager row covers them).
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import has_dtype, to_host
from arrayobs._conformance._affine_corpus import (
    OBSERVERS,
    RANGES,
    AffineCase,
    arguments,
    float8_block,
    granularity_args,
    observer_batches,
)
from arrayobs._conformance._fq_runner import _same, _subnormal
from arrayobs._conformance._records import OutputRecords, encode
from arrayobs._conformance._runner import Compared, Summary, Tally, Target, _ulps
from arrayobs._core._fakequant import dtype_name

Row = tuple[str, np.ndarray]  # (dtype name, host values, flattened)
_NARROW = ("float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")


def _row(v: Any) -> Row:
    if v is None:
        return ("none", np.zeros(0, np.float32))
    name = dtype_name(v.dtype)
    if name == "uint4":  # torch's uint4 tensors: the values, held in uint8 as arrayobs does
        v, name = v.to(importlib.import_module("torch").uint8), "uint8"
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        host = np.asarray(to_host(v))
    if name in _NARROW:
        host = host.astype(np.float32)  # exact
    return name, host.reshape(-1)


# -- the reference -------------------------------------------------------------------
def torchao_outputs(case: AffineCase) -> list[Row]:
    """``case`` on torchao 0.18.0's primitives and observer (torch 2.13.0, CPU)."""
    torch = importlib.import_module("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao's CUDA extension notice
        tq = importlib.import_module("torchao.quantization.quant_primitives")
        tu = importlib.import_module("torchao.quantization.utils")
        tg = importlib.import_module("torchao.quantization.granularity")
        tobs = importlib.import_module("torchao.quantization.observer")

    def tensor(host: np.ndarray) -> Any:
        t = torch.from_numpy(host)
        return t.to(torch.bfloat16) if case.input_dtype == "bfloat16" else t

    def dtype(name: str | None) -> Any:
        return None if name is None else getattr(torch, name)

    name, args = granularity_args(case.granularity)
    gran = getattr(tg, name)(*args)
    tdtype, qmin, qmax = torch_target(torch, case.target)
    mapping = tq.MappingType[case.mapping]
    if case.op == "observer":
        _, _, _, kw = OBSERVERS[case.observer or 0]
        kw = {k: dtype(v) if k.endswith("dtype") else v for k, v in kw.items()}
        if "zero_point_domain" in kw:
            kw["zero_point_domain"] = tq.ZeroPointDomain[kw["zero_point_domain"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # ZeroPointDomain.NONE
            obs = tobs.AffineQuantizedMinMaxObserver(mapping, tdtype, gran, qmin, qmax, **kw)
        rows = []
        for host in observer_batches(case):
            obs(tensor(host))
            rows += [_row(obs.min_val), _row(obs.max_val)]
        return rows + [_row(v) for v in obs.calculate_qparams()]
    if case.op == "with_min_max":
        a = arguments(case)
        got = tq.choose_qparams_affine_with_min_max(
            tensor(a["min_val"]),
            tensor(a["max_val"]),
            mapping,
            [],
            tdtype,
            qmin,
            qmax,
            case.eps,
            dtype(case.scale_dtype),
            dtype(case.zero_point_dtype),
        )
        return [_row(v) for v in got]
    x = tensor(arguments(case)["x"])
    if case.op == "float8":
        lb, ub = case.hp_bounds
        f8 = dtype(case.target)
        scale = tq._choose_scale_float8(
            x, list(float8_block(case)), f8, dtype(case.scale_dtype), lb, ub
        )
        q = tq._quantize_affine_float8(x, scale, f8)
        d = tq._dequantize_affine_float8(q, scale, dtype(case.out_dtype))
        return [_row(scale), _row(q), _row(d)]
    block = tu.get_block_size(x.shape, gran)
    s, z = tq.choose_qparams_affine(
        x,
        mapping,
        block,
        tdtype,
        qmin,
        qmax,
        case.eps,
        dtype(case.scale_dtype),
        dtype(case.zero_point_dtype),
        case.keepdim,
    )
    if not case.quantizes:
        return [_row(s), _row(z)]
    q = tq.quantize_affine(x, block, s, z, tdtype, qmin, qmax)
    d = tq.dequantize_affine(q, block, s, z, tdtype, qmin, qmax, output_dtype=dtype(case.out_dtype))
    return [_row(s), _row(z), _row(q), _row(d)]


def torch_target(torch: ModuleType, name: str) -> tuple[Any, int | None, int | None]:
    """torchao's target dtype and range: int4 is int8 in -8..7 (torch.int4 does not
    quantize on the CPU), uint4 torch's uint4."""
    if name == "int4":
        return torch.int8, *RANGES["int4"]
    return getattr(torch, name), None, None


# -- a target ------------------------------------------------------------------------
def has(target: Target, name: str) -> bool:
    """Whether ``target`` holds arrays of ``name``: float16 everywhere but
    array-api-strict, bfloat16 and float8 on torch, JAX and (ml_dtypes) NumPy and Dask."""
    lib = target.library
    if name in ("none", "int4", "uint4"):
        return True
    if name == "float16":
        return lib != "array_api_strict"
    if name in ("bfloat16", *_NARROW[2:], "float8_e8m0fnu"):
        if lib in ("numpy", "dask"):
            return importlib.util.find_spec("ml_dtypes") is not None
        return lib in ("torch", "jax")
    return has_dtype(target.xp, target.device, name)


def supports(target: Target, case: AffineCase) -> bool:
    """Whether ``target`` runs ``case``: every dtype of it exists there and the mode runs it."""
    if target.mode == "lazy" or (target.mode == "jit" and case.op == "observer"):
        return False
    return all(has(target, d) for d in case.dtypes)


def _array(target: Target, host: np.ndarray, dtype: str) -> Any:
    xp, lib = target.xp, target.library
    if lib == "torch":
        torch = importlib.import_module("torch")
        return torch.from_numpy(host).to(device=target.device, dtype=getattr(torch, dtype))
    if lib in ("numpy", "dask") and dtype == "bfloat16":
        host = host.astype(importlib.import_module("ml_dtypes").bfloat16)
    if lib == "dask":
        da = importlib.import_module("dask.array")
        return da.from_array(host, chunks=(max(1, host.shape[0] // 3), *host.shape[1:]))
    if lib == "numpy":
        return host
    x = xp.asarray(host, device=target.device)
    return xp.astype(x, getattr(xp, dtype)) if dtype == "bfloat16" else x


def _granularity(case: AffineCase) -> Any:
    from arrayobs import affine

    name, args = granularity_args(case.granularity)
    return getattr(affine, name)(*args)


def _chain(case: AffineCase) -> Callable[..., tuple[Any, ...]]:
    """The case's calls on arrayobs.affine, as one function of its arrays."""
    from arrayobs import affine

    if case.op == "with_min_max":
        return lambda min_val, max_val: affine.choose_qparams_affine_with_min_max(
            min_val,
            max_val,
            case.mapping,
            [],
            case.target,
            None,
            None,
            case.eps,
            case.scale_dtype,
            case.zero_point_dtype,
        )
    if case.op == "float8":
        block = float8_block(case)

        def float8(x: Any) -> tuple[Any, ...]:
            lb, ub = case.hp_bounds
            s = affine.choose_scale_float8(x, block, case.target, case.scale_dtype, lb, ub)
            q = affine.quantize_affine_float8(x, s, case.target)
            return s, q, affine.dequantize_affine_float8(q, s, case.out_dtype)

        return float8
    block = affine.get_block_size(case.shape, _granularity(case))

    def choose(x: Any) -> tuple[Any, ...]:
        s, z = affine.choose_qparams_affine(
            x,
            case.mapping,
            block,
            case.target,
            eps=case.eps,
            scale_dtype=case.scale_dtype,
            zero_point_dtype=case.zero_point_dtype,
            keepdim=case.keepdim,
        )
        if not case.quantizes:
            return s, z
        q = affine.quantize_affine(x, block, s, z, case.target)
        return (
            s,
            z,
            q,
            affine.dequantize_affine(q, block, s, z, case.target, output_dtype=case.out_dtype),
        )

    return choose


def target_outputs(target: Target, case: AffineCase) -> list[Row]:
    from arrayobs import affine

    if case.op == "observer":
        mapping, tgt, _, kw = OBSERVERS[case.observer or 0]
        obs = affine.AffineQuantizedMinMaxObserver(
            mapping, tgt, _granularity(case), **kw, xp=target.xp, device=target.device
        )
        rows = []
        for host in observer_batches(case):
            obs(_array(target, host, case.input_dtype))
            rows += [_row(obs.min_val), _row(obs.max_val)]
        return rows + [_row(v) for v in obs.calculate_qparams()]
    arrays = {k: _array(target, v, case.input_dtype) for k, v in arguments(case).items()}
    fn = _chain(case)
    if target.mode == "jit":
        fn = importlib.import_module("jax").jit(fn)
    return [_row(v) for v in fn(**arrays)]


# -- comparison ----------------------------------------------------------------------
def _kind(dtype: str) -> str:
    """The dtype whose encoding ``dtype`` shares (float8: float32 bits)."""
    return "float32" if dtype.startswith("float8") else dtype


def _inputs(case: AffineCase) -> list[np.ndarray]:
    return observer_batches(case) if case.op == "observer" else list(arguments(case).values())


def _has_subnormal_input(case: AffineCase) -> bool:
    for h in _inputs(case):
        v = np.abs(h.astype(np.float64))
        if np.any((v > 0) & (v < np.finfo(np.float32).tiny)):
            return True
    return False


def _zero_signs(case: AffineCase, row: int, got: np.ndarray, want: np.ndarray, kind: str) -> bool:
    """Only zeros' signs differ, where docs/exactness.md's "Signed zeros" allows it: a
    block's min or max (which zero a reduction or torch's vectorised ``max``
    returns is the backend's choice), and with ``eps <= 0`` the zero scale that
    follows it and the dequantized zeros."""
    if kind not in ("float32", "float16", "bfloat16", "float64"):
        return False
    differ = ~_same(got, want, kind)
    values = got.view(np.float64) if kind == "float64" else got.astype(np.uint32).view(np.float32)
    if not (values[differ] == 0).all():
        return False
    observer_state = case.op == "observer" and row < 2 * case.batches
    return observer_state or (case.eps is not None and case.eps <= 0)


def compare_affine_case(
    target: Target, case: AffineCase, got: list[Row], want: list[tuple[str, np.ndarray]]
) -> tuple[int, int, int, int, str]:
    """(rows, mismatching rows, documented deviations, worst float32 ulps, the first
    mismatch described); ``got`` as host values, ``want`` encoded as stored."""
    if len(got) != len(want):
        msg = f"affine case {case.id}: {len(got)} outputs, want {len(want)}"
        return len(want), len(want), 0, 0, msg
    has_int64 = has_dtype(target.xp, target.device, "int64")
    # JAX on the CPU flushes subnormals (documented): a row where torchao's value,
    # or an input of the case, is subnormal may differ there, and only there.
    subnormal_input = target.flushes_subnormals and _has_subnormal_input(case)
    bad = deviations = worst = 0
    detail = ""
    for row, ((gd, host), (wd, w)) in enumerate(zip(got, want, strict=True)):
        g = encode(gd, host)
        kind = _kind(wd)
        dtype_ok = gd == wd or (wd == "int64" and gd == "int32" and not has_int64)
        same = g.shape == w.shape and bool(_same(g, w, kind).all())
        if dtype_ok and same:
            continue
        if target.flushes_subnormals and (subnormal_input or _subnormal(w, kind).any()):
            deviations += 1
            continue
        if dtype_ok and g.shape == w.shape and _zero_signs(case, row, g, w, kind):
            deviations += 1
            continue
        bad += 1
        if g.shape == w.shape and kind in ("float32", "float16", "bfloat16"):
            worst = max(worst, _ulps(g.astype(np.uint32), w.astype(np.uint32)))
        if not detail:
            n = int((~_same(g, w, kind)).sum()) if g.shape == w.shape else -1
            detail = (
                f"affine case {case.id} ({case.op} {case.mapping} {case.granularity} "
                f"{case.target} {case.input_dtype}) row {row}: dtype {gd} vs {wd}, "
                f"{n} of {w.size} values differ"
            )
    return len(want), bad, deviations, worst, detail


def run_affine_target(
    target: Target,
    cases: Sequence[AffineCase],
    reference: OutputRecords,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run the affine ``cases`` on ``target`` and compare each with ``reference``."""

    def attempt(case: AffineCase) -> tuple[Compared, int] | None:
        if not supports(target, case):
            return None
        want = reference.case(case.id)
        calls = case.batches or 1
        try:
            # NaN and infinities are inputs here: NumPy's reductions would warn of them.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", DeprecationWarning)
                got = target_outputs(target, case)
        except Exception as exc:  # counted, with the reason, as every row of the case
            detail = f"affine case {case.id} ({case.op}): {type(exc).__name__}: {exc}"
            return (len(want), len(want), 0, 0, detail), calls
        return compare_affine_case(target, case, got, want), calls

    tally = Tally().run(cases, attempt, progress)
    return tally.summary(target.label, str(target.device))
