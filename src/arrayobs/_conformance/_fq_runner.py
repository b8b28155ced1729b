"""Running the fake-quantize section: on torch 2.13.0 (the reference) and on any target.

An op case gives one output (the op's result); a module case gives, per batch,
the module's output, ``scale`` and ``zero_point``, and after the last batch
every ``state_dict`` value in torch's key order. In ``jit`` mode (JAX) the op
cases run under ``jax.jit`` with the qparams as arrays (torch's tensor
overloads) and the module cases do not run; in ``lazy`` mode none run (the
ops are lazy on Dask in every mode, so the eager row covers them).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

import arrayobs
from arrayobs import functional as F
from arrayobs._compat import has_dtype, to_host
from arrayobs._conformance._fq_corpus import MODULES, FQCase, arguments, module_batches
from arrayobs._conformance._records import Output, OutputRecords
from arrayobs._conformance._runner import Compared, Summary, Tally, Target, _ulps
from arrayobs._core._fakequant import dtype_name
from arrayobs.testing import supports_dtype

# One output as (dtype name, host values).


def _output(v: Any) -> Output:
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        host = np.asarray(to_host(v))
    return Output(dtype_name(v.dtype), host.reshape(-1))


# -- the reference -------------------------------------------------------------------
def torch_outputs(case: FQCase) -> list[Output]:
    """``case`` on torch 2.13.0's own ops and modules (CPU)."""
    torch = importlib.import_module("torch")
    if case.op == "module":
        return _module_outputs(_torch_module(torch, case), case, lambda h: _torch(torch, h, case))
    importlib.import_module("torch.ao.quantization.fx._decomposed")  # registers the ops
    args = {k: _torch(torch, v, case if k == "x" else None) for k, v in arguments(case).items()}
    return [_output(_call(torch_ops(torch), case, args, scalars=True))]


def _torch(torch: ModuleType, host: np.ndarray, case: FQCase | None) -> Any:
    t = torch.from_numpy(host)
    if case is not None and case.input_dtype == "bfloat16":
        t = t.to(torch.bfloat16)
    return t


def torch_ops(torch: ModuleType) -> dict[str, Callable[..., Any]]:
    ops = torch.ops.quantized_decomposed
    return {
        "fake_quantize_per_tensor_affine": torch.fake_quantize_per_tensor_affine,
        "fake_quantize_per_channel_affine": torch.fake_quantize_per_channel_affine,
        "quantize_per_tensor": ops.quantize_per_tensor,
        "dequantize_per_tensor": ops.dequantize_per_tensor,
        "quantize_per_channel": ops.quantize_per_channel,
        "dequantize_per_channel": ops.dequantize_per_channel,
        "dtype": lambda name: getattr(torch, name),
    }


def _ours() -> dict[str, Callable[..., Any]]:
    return {**{op: getattr(F, op) for op in _OPS}, "dtype": lambda name: name}


_OPS = (
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
    "quantize_per_tensor",
    "dequantize_per_tensor",
    "quantize_per_channel",
    "dequantize_per_channel",
)


def _call(
    ops: dict[str, Callable[..., Any]], case: FQCase, a: dict[str, Any], scalars: bool
) -> Any:
    """One op call; per tensor with Python qparams (``scalars``) or the arrays in ``a``."""
    lo, hi = case.quant_range
    fn = ops[case.op]
    if case.per_channel:
        qp: tuple[Any, ...] = (a["scale"], a["zero_point"], case.axis)
    elif scalars:
        qp = (float(np.float32(case.scale)), case.zero_point)
    else:
        qp = (a["scale"], a["zero_point"])
    if case.op.startswith("fake"):
        return fn(a["x"], *qp, lo, hi)
    kw = {"out_dtype": ops["dtype"](case.out_dtype)} if case.out_dtype else {}
    return fn(a["x"], *qp, lo, hi, ops["dtype"](case.dtype), **kw)


def _torch_module(torch: ModuleType, case: FQCase) -> Any:
    from torch.ao.quantization import fake_quantize as tfq
    from torch.ao.quantization import observer as tobs

    cls, observer, kw = MODULES[case.module or ""]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        if not cls:
            return getattr(tfq, case.module or "")()
        kw = {**kw, "dtype": getattr(torch, kw["dtype"])}
        if "qscheme" in kw:
            kw["qscheme"] = getattr(torch, kw["qscheme"])
        return getattr(tfq, cls)(observer=getattr(tobs, observer), **kw)


def _our_module(target: Target, case: FQCase) -> Any:
    cls, observer, kw = MODULES[case.module or ""]
    where = {"xp": target.xp, "device": target.device}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if not cls:
            return getattr(arrayobs, case.module or "")(**where)
        return getattr(arrayobs, cls)(observer=getattr(arrayobs, observer), **kw, **where)


def _module_outputs(mod: Any, case: FQCase, convert: Callable[[np.ndarray], Any]) -> list[Output]:
    outs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for (observe, fake_quant), host in zip(case.plan, module_batches(case), strict=True):
            mod.enable_observer(bool(observe))
            mod.enable_fake_quant(bool(fake_quant))
            outs += [_output(v) for v in (mod(convert(host)), mod.scale, mod.zero_point)]
        outs += [_output(v) for v in mod.state_dict().values()]
    return outs


# -- a target ------------------------------------------------------------------------
def supports(target: Target, case: FQCase) -> bool:
    """Whether ``target`` runs ``case``: its dtypes exist there, the mode runs it, and
    without float64 only what float32 computes exactly (documented). JAX without x64
    runs every case whose dtypes it has: its double steps run under a local
    ``jax.enable_x64``."""
    if target.mode == "lazy" or (target.mode == "jit" and case.op == "module"):
        return False
    dtypes = {case.input_dtype, case.out_dtype, case.zp_dtype} - {None}
    if not all(supports_dtype(target.xp, target.device, d) for d in dtypes):  # type: ignore[arg-type]
        return False
    if case.out_dtype is not None and not hasattr(target.xp, case.out_dtype):
        return False  # out_dtype is named by the namespace (Dask's names no float16)
    if target.library == "jax" or not case.needs_float64:
        return True
    return has_dtype(target.xp, target.device, "float64")


def _array(target: Target, host: np.ndarray, bfloat16: bool) -> Any:
    xp, lib = target.xp, target.library
    if lib == "torch":
        torch = importlib.import_module("torch")
        x = torch.from_numpy(host).to(target.device)
        return x.to(torch.bfloat16) if bfloat16 else x
    if lib == "dask":
        da = importlib.import_module("dask.array")
        return da.from_array(host, chunks=(max(1, host.shape[0] // 3), *host.shape[1:]))
    x = xp.asarray(host, device=target.device)
    return xp.astype(x, xp.bfloat16) if bfloat16 else x


def target_outputs(target: Target, case: FQCase) -> list[Output]:
    bf16 = case.input_dtype == "bfloat16"
    if case.op == "module":
        mod = _our_module(target, case)
        return _module_outputs(mod, case, lambda h: _array(target, h, bf16))
    a = {k: _array(target, v, bf16 and k == "x") for k, v in arguments(case).items()}
    if target.mode == "jit":
        return [
            _output(
                _jitted(
                    case.op,
                    case.quant_range,
                    case.dtype,
                    case.out_dtype,
                    case.per_channel,
                    case.axis,
                )(**a, **_qparam_arrays(target, case))
            )
        ]
    return [_output(_call(_ours(), case, a, scalars=True))]


def _qparam_arrays(target: Target, case: FQCase) -> dict[str, Any]:
    if case.per_channel:
        return {}
    xp = target.xp
    return {
        "scale": xp.asarray([case.scale], dtype=xp.float32, device=target.device),
        "zero_point": xp.asarray([case.zero_point], dtype=xp.int32, device=target.device),
    }


@functools.lru_cache(maxsize=128)
def _jitted(
    op: str,
    quant_range: tuple[int, int],
    dtype: str | None,
    out_dtype: str | None,
    per_channel: bool,
    axis: int,
) -> Callable[..., Any]:
    """The op under ``jax.jit`` with array arguments (one compile per op and range)."""
    jax = importlib.import_module("jax")
    case = FQCase(
        -1,
        op,
        "",
        "",
        0,
        quant_range=quant_range,
        dtype=dtype,
        out_dtype=out_dtype,
        layout=(0 if axis == 0 else 1) if per_channel else None,
    )
    return jax.jit(lambda **a: _call(_ours(), case, a, scalars=False))  # type: ignore[no-any-return]


# -- comparison ----------------------------------------------------------------------
def _same(got: np.ndarray, want: np.ndarray, dtype: str) -> np.ndarray:
    """Equal encoded values; NaN matches NaN (docs/exactness.md: NaN bits)."""
    same = got == want
    if dtype in ("float32", "float16", "bfloat16"):
        g, w = (a.astype(np.uint32).view(np.float32) for a in (got, want))
        same |= np.isnan(g) & np.isnan(w)
    elif dtype == "float64":
        same |= np.isnan(got.view(np.float64)) & np.isnan(want.view(np.float64))
    return same


def _subnormal(values: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("float32", "float16", "bfloat16"):
        v = np.abs(values.astype(np.uint32).view(np.float32))
        return (v > 0) & (v < np.finfo(np.float32).tiny)
    return np.zeros(values.shape, dtype=bool)


def compare_fq_case(
    target: Target,
    case: FQCase,
    got: list[tuple[str, np.ndarray]],
    want: list[tuple[str, np.ndarray]],
) -> tuple[int, int, int, int, str]:
    """(rows, mismatching rows, documented deviations, worst float32 ulps, the first
    mismatch described)."""
    if len(got) != len(want):
        msg = f"fq case {case.id}: {len(got)} outputs, want {len(want)}"
        return len(want), len(want), 0, 0, msg
    has_int64 = has_dtype(target.xp, target.device, "int64")
    # JAX on the CPU flushes subnormals (documented): a row where torch's value, or
    # an input of the case, is subnormal may differ there, and only there.
    subnormal_input = target.flushes_subnormals and _has_subnormal_input(case)
    bad = deviations = worst = 0
    detail = ""
    for row, ((gd, g), (wd, w)) in enumerate(zip(got, want, strict=True)):
        dtype_ok = gd == wd or (wd == "int64" and gd == "int32" and not has_int64)
        same = g.shape == w.shape and bool(_same(g, w, wd).all())
        if dtype_ok and same:
            continue
        if target.flushes_subnormals and (subnormal_input or _subnormal(w, wd).any()):
            deviations += 1
            continue
        bad += 1
        if g.shape == w.shape and wd in ("float32", "float16", "bfloat16"):
            worst = max(worst, _ulps(g.astype(np.uint32), w.astype(np.uint32)))
        if not detail:
            n = int((~_same(g, w, wd)).sum()) if g.shape == w.shape else -1
            detail = (
                f"fq case {case.id} ({case.op}{' ' + case.module if case.module else ''}) "
                f"row {row}: dtype {gd} vs {wd}, {n} of {w.size} values differ"
            )
    return len(want), bad, deviations, worst, detail


def _has_subnormal_input(case: FQCase) -> bool:
    hosts = module_batches(case) if case.op == "module" else [arguments(case)["x"]]
    for h in hosts:
        if h.dtype.kind == "f":
            v = np.abs(h.astype(np.float64))
            if np.any((v > 0) & (v < np.finfo(np.float32).tiny)):
                return True
    return False


def run_fq_target(
    target: Target,
    cases: Sequence[FQCase],
    reference: OutputRecords,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run the fake-quantize ``cases`` on ``target`` and compare each with ``reference``."""

    def attempt(case: FQCase) -> tuple[Compared, int] | None:
        if not supports(target, case):
            return None
        want = reference.case(case.id)
        calls = len(case.plan) or 1
        try:
            outputs = target_outputs(target, case)
        except Exception as exc:  # counted, with the reason, as every row of the case
            detail = f"fq case {case.id} ({case.op}): {type(exc).__name__}: {exc}"
            return (len(want), len(want), 0, 0, detail), calls
        got = [(o.dtype, o.encoded()) for o in outputs]
        return compare_fq_case(target, case, got, want), calls

    tally = Tally().run(cases, attempt, progress)
    return tally.summary(target.label, str(target.device))
