"""Fuzzing ``arrayobs.calib`` against the live references (ONNX Runtime 1.31.1, ModelOpt
0.47.0), on every backend: random calibrator cases of every family (arguments, shapes,
scales, channel axes, ranks, NaN, infinities, signed zeros, subnormals, empty batches,
and arguments the references refuse), each run through the reference and through
arrayobs.calib and compared row by row, bit for bit, as ``arrayobs compare`` does
(``_calib_runner.compare_calib_case``: every output's dtype, shape and bits; a refusal's
exception type and op).

The cases are seeded: ``ARRAYOBS_FUZZ_SEED`` (default 26) and ``ARRAYOBS_FUZZ_EXAMPLES``
(default 200, as conformance/test_fuzz.py) give ``EXAMPLES // 25`` cases a family on
NumPy (8), ``EXAMPLES // 100`` on torch and array-api-strict (2), and ``EXAMPLES // 400``
on JAX and Dask, whose classes run op by op (none by default: the stored corpus covers
them in tests-calib). ``nox -s fuzz-calib`` runs 4,000 with a fresh seed, which it prints.
A failure names the seed, the family and the case's index: rerun with that seed. Cases
that once failed stay in ``REGRESSIONS``. On JAX, cases holding subnormals are passed over
(XLA on the CPU flushes them to zero: docs/exactness.md).

Left out on purpose, being documented deviations (``_calib_runner.DOCUMENTED``): NaN in
ORT MinMax batches, a second ``collect_data`` of per-channel ORT MinMax, and ORT
HistogramCollector on float16/float64. The sign of a zero min or max (ORT's ``lowest``,
``highest``, ``min``, ``max``) is compared by value (docs/exactness.md, "Signed zeros": the
references' ``nanmin``/``nanmax`` pick it by NumPy's SIMD layout; found here: ORT MinMax
per channel gave ``nanmin([0., -0.]) == nanmax([0., -0.]) == -0.``, arrayobs +0).
"""

from __future__ import annotations

import importlib
import os
import zlib
from typing import Any

import numpy as np
import pytest

from arrayobs._conformance._calib_cases import CalibCase
from arrayobs._conformance._calib_corpus import FAMILIES
from arrayobs._conformance._calib_records import Outcome, Row
from arrayobs._conformance._calib_runner import calib_modules, compare_calib_case, target_api
from arrayobs.testing import supports_dtype
from tests.test_calib_conformance import _references, _target

EXAMPLES = int(os.environ.get("ARRAYOBS_FUZZ_EXAMPLES", "200"))
SEED = int(os.environ.get("ARRAYOBS_FUZZ_SEED", "26"))
# float32 values that reach the references' edge cases: NaN, both infinities, both zeros,
# the largest finite value, the smallest subnormal.
SPECIALS = (np.nan, np.inf, -np.inf, -0.0, 0.0, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45)
# ModelOpt's torch-mode histogram grows its bin count with the range at a fixed width, so a
# finite 3.4e38 after a unit-range batch asks both sides for ~1e38 bins; its entropy search
# is quadratic in the bins: the streams keep the range within a few times the first's.
BOUNDED = tuple(s for s in SPECIALS if not (np.isfinite(s) and abs(s) > 1))
QTYPES = ("int8", "uint8")


def _values(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    scale: float,
    specials: tuple[float, ...] = SPECIALS,
) -> Any:
    """A literal batch of about ``scale``: normal, heavy-tailed (clipped at 4 x scale),
    constant or zero values, sometimes with ``specials`` at random places."""
    n = int(np.prod(shape))
    kind = int(rng.integers(6))
    if kind == 0:
        v = np.full(n, rng.choice([0.0, -0.0, scale]))
    elif kind == 1:
        v = np.clip(rng.standard_t(1.5, n), -4.0, 4.0) * scale
    else:
        v = rng.standard_normal(n) * scale
    v = v.astype(np.float32)
    if n and specials and rng.random() < 0.35:
        at = rng.integers(0, n, int(rng.integers(1, 4)))
        v[at] = rng.choice(np.asarray(specials, np.float32), at.size)
    return ("values", v.reshape(shape).tolist())


def _collects(
    rng: np.random.Generator,
    shape: tuple[int | None, ...],
    calls: int,
    per_call: int = 1,
    specials: tuple[float, ...] = SPECIALS,
    lengths: tuple[int, int] = (0, 200),
) -> list[Any]:
    """``calls`` collect ops of ``per_call`` batches each, of ``shape`` (a None dimension
    drawn per batch from ``lengths``), their scales within 3x of each other."""
    base = float(np.exp(rng.normal(0.0, 2.0)))

    def draw() -> Any:
        size = tuple(int(rng.integers(*lengths)) if d is None else d for d in shape)
        return _values(rng, size, base * float(np.exp(rng.uniform(-0.5, 0.5))), specials)

    return [("collect", tuple(draw() for _ in range(per_call))) for _ in range(calls)]


def _ort_histogram(rng: np.random.Generator) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    method = str(rng.choice(["entropy", "percentile", "distribution"]))
    bins = int(
        rng.choice([8, 33, 128, 200, 512, 600] if method == "distribution" else [8, 33, 128, 200])
    )
    arguments = {
        "method": method,
        "symmetric": bool(rng.integers(2)),
        "num_bins": bins,
        "num_quantized_bins": int(rng.choice([4, 15, 32, 128])),
        "percentile": float(rng.choice([0.0, 50.0, 99.9, 99.999, 100.0, 100.5])),
        "scenario": str(rng.choice(["same", "p3", "same", "p2"])),
    }
    options: dict[str, Any] = {"ranks": int(rng.choice([1, 1, 2]))}
    columns = int(rng.integers(2, 4))
    if rng.random() < 0.3:
        options["channel_axis"] = int(rng.choice([0, 1, -1]))
        rows = int(rng.integers(1, 30))
        shape: tuple[int | None, ...] = (rows, columns)
    else:
        shape = (None,)
    ops = _collects(rng, shape, int(rng.integers(1, 4)), int(rng.integers(1, 3)), BOUNDED)
    ops += [("result", None, {}), ("qparams", str(rng.choice(QTYPES)), False, False)]
    return arguments, ops, options


def _ort_minmax(rng: np.random.Generator) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    arguments: dict[str, Any] = {"symmetric": bool(rng.integers(2))}
    if rng.random() < 0.5:
        arguments["moving_average"] = True
        arguments["averaging_constant"] = float(rng.choice([0.01, 0.25, 0.5, 1.0]))
    per_channel = rng.random() < 0.2
    if per_channel:
        arguments["per_channel"] = True
    calls = 1 if per_channel else int(rng.integers(1, 4))
    # The model's input X is (N, 3).
    no_nan = tuple(v for v in SPECIALS if not np.isnan(v))
    ops = _collects(rng, (None, 3), calls, int(rng.integers(1, 4)), no_nan, lengths=(1, 12))
    if not per_channel:
        reduce_range, symmetric = bool(rng.integers(2)), bool(rng.integers(2))
        ops += [("result", None, {}), ("qparams", str(rng.choice(QTYPES)), reduce_range, symmetric)]
    return arguments, ops, {"ranks": int(rng.choice([1, 1, 2]))}


def _ort_scale_zp(rng: np.random.Generator) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    ops = []
    for _ in range(8):
        lo, hi = sorted(float(v) for v in rng.standard_normal(2) * np.exp(rng.normal(0, 4)))
        if rng.random() < 0.25:
            lo, hi = rng.choice(np.asarray(SPECIALS, np.float32), 2).tolist()
        reduce_range, symmetric = bool(rng.integers(2)), bool(rng.integers(2))
        ops.append(("scale_zp", lo, hi, str(rng.choice(QTYPES)), reduce_range, symmetric))
    return {}, ops, {}


def _modelopt_max(rng: np.random.Generator) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    axis = [None, 0, -1, 1][int(rng.integers(4))]
    arguments: dict[str, Any] = {
        "num_bits": int(rng.choice([4, 8])),
        "axis": axis,
        "unsigned": bool(rng.integers(2)),
    }
    rows, columns = int(rng.integers(1, 6)), int(rng.integers(1, 20))
    ops = _collects(rng, (rows, columns), int(rng.integers(1, 4)))
    if rng.random() < 0.2:
        ops.insert(1, ("reset",))
    return arguments, ops, {"ranks": int(rng.choice([1, 1, 2]))}


def _modelopt_histogram(
    rng: np.random.Generator,
) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    arguments: dict[str, Any] = {
        "num_bins": int(rng.choice([8, 64, 130, 256])),
        "torch_hist": bool(rng.integers(2)),
        "skip_zeros": bool(rng.integers(2)),
        "num_bits": int(rng.choice([4, 8])),
        "unsigned": bool(rng.integers(2)),
    }
    options: dict[str, Any] = {"ranks": int(rng.choice([1, 1, 2]))}
    if rng.random() < 0.25:
        options["channel_axis"] = int(rng.choice([0, -1]))
        rows, columns = int(rng.integers(1, 20)), int(rng.integers(2, 4))
        shape: tuple[int | None, ...] = (rows, columns)
    else:
        shape = (None,)
    ops = _collects(rng, shape, int(rng.integers(1, 4)), specials=BOUNDED, lengths=(0, 300))
    for _ in range(int(rng.integers(1, 4))):
        method = str(rng.choice(["entropy", "mse", "percentile"]))
        kwargs: dict[str, Any] = {}
        if method == "percentile":
            kwargs["percentile"] = float(rng.choice([0.0, 50.0, 99.0, 99.99, 100.0, 101.0]))
        elif rng.random() < 0.5:
            kwargs["stride"] = int(rng.integers(1, 9))
            kwargs["start_bin"] = int(rng.choice([1, 16, 64, 200]))
        ops.append(("result", method, kwargs))
    return arguments, ops, options


def _modelopt_mse(rng: np.random.Generator) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    arguments: dict[str, Any] = {"amax": float(np.float32(np.exp(rng.normal(0.0, 1.5))))}
    if rng.random() < 0.8:
        arguments["quant_func"] = "tensor_quant_8"
    size = int(rng.integers(1, 200))
    ops = _collects(rng, (size,), int(rng.integers(1, 3)))
    if rng.random() < 0.2:
        ops.insert(1, ("reset",))
    return arguments, ops, {"ranks": int(rng.choice([1, 1, 2]))}


# Outputs whose zero's sign is the backend's (docs/exactness.md, "Signed zeros").
ZERO_SIGN = ("lowest", "highest", "min", "max")


def _zeros_unsigned(outcome: Outcome) -> Outcome:
    """``outcome`` with every zero of a ZERO_SIGN output made +0."""

    def plus(name: str, v: Any) -> Any:
        if name not in ZERO_SIGN or v is None:
            return v
        a = np.asarray(v)
        return np.where(a == 0, np.zeros_like(a), a) if a.dtype.kind == "f" else a

    rows = [Row(r.op, r.channel, [(n, plus(n, v)) for n, v in r.outputs]) for r in outcome.rows]
    return Outcome(rows, outcome.refusal)


DRAW = {
    "ort-histogram": _ort_histogram,
    "ort-minmax": _ort_minmax,
    "ort-scale-zp": _ort_scale_zp,
    "modelopt-max": _modelopt_max,
    "modelopt-histogram": _modelopt_histogram,
    "modelopt-mse": _modelopt_mse,
}


def random_case(family: str, index: int, seed: int = SEED) -> CalibCase:
    """Case ``index`` of ``family``'s random stream for ``seed``."""
    rng = np.random.default_rng(zlib.crc32(f"{seed}-{family}-{index}".encode()))
    arguments, ops, options = DRAW[family](rng)
    return CalibCase(
        id=index,
        family=family,
        name=f"fuzz seed {seed} #{index}",
        arguments=arguments,
        ops=tuple(ops),
        **options,
    )


# (family, index, seed) of random cases that once failed, run first on every backend.
REGRESSIONS = [
    # np.histogram refuses a first range too narrow for distinct float32 edges (zeros and
    # one subnormal); arrayobs's abs paths binned it (fixed: _calib_nphist error code 6).
    ("modelopt-histogram", 9, 11),
]


def _has_subnormal(case: CalibCase) -> bool:
    values = [np.asarray(b[1], np.float32) for op in case.ops if op[0] == "collect" for b in op[1]]
    tiny = np.finfo(np.float32).tiny
    return any(bool(np.any((v != 0) & (np.abs(v) < tiny))) for v in values)


def _check(backend: Any, case: CalibCase, live: Any, api: Any) -> None:
    run_case = importlib.import_module("arrayobs._conformance._calib_run").run_case
    want = _zeros_unsigned(run_case(case, live))
    got = _zeros_unsigned(run_case(case, api))
    _, bad, _, _, detail = compare_calib_case(case, got, want.rows, want.refusal)
    assert bad == 0, f"{case.name} ({case.family}) on {backend.name}: {detail}\n{case}"


def _apis(backend: Any, family: str) -> tuple[Any, Any]:
    _, _, reference = _references()
    found = calib_modules()
    if isinstance(found, str):
        pytest.skip(found)
    needs_x64 = family in ("ort-histogram", "modelopt-histogram", "ort-minmax")
    if needs_x64 and not supports_dtype(backend.xp, backend.device, "int64"):
        pytest.skip("the histogram and MinMax states need int64 (runner: NEEDS_X64)")
    return target_api(_target(backend), found), reference.reference_api()


@pytest.mark.parametrize("index", range(len(REGRESSIONS)))
def test_regressions(backend: Any, index: int) -> None:
    family, i, seed = REGRESSIONS[index]
    case = random_case(family, i, seed)
    if backend.library == "jax" and _has_subnormal(case):
        pytest.skip("JAX on the CPU flushes subnormals to zero (docs/exactness.md)")
    api, live = _apis(backend, family)
    _check(backend, case, live, api)


def _count(backend: Any) -> int:
    """Cases a family: JAX and Dask (op by op, slow) only in the long run."""
    if backend.library in ("jax", "dask"):
        return EXAMPLES // 400
    return max(1, EXAMPLES // (25 if backend.name == "numpy" else 100))


@pytest.mark.parametrize("family", FAMILIES)
def test_random_cases_match_the_references(backend: Any, family: str) -> None:
    count = _count(backend)
    if not count:
        pytest.skip("JAX and Dask are fuzzed in nox -s fuzz-calib (ARRAYOBS_FUZZ_EXAMPLES >= 400)")
    api, live = _apis(backend, family)
    for index in range(count):
        case = random_case(family, index)
        if backend.library == "jax" and _has_subnormal(case):
            continue  # JAX on the CPU flushes subnormals to zero (docs/exactness.md)
        _check(backend, case, live, api)
