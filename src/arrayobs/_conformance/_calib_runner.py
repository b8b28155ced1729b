"""Running the calibrators section on a target: arrayobs.calib's classes, eagerly, in the
target's namespace and device, against the stored ORT 1.31.1 / ModelOpt 0.47.0 numbers.

Each case builds the class of its family from ``arrayobs.calib.ort`` or
``arrayobs.calib.modelopt`` with the reference's own arguments (plus ``channel_axis``
for a per-channel case, and ``xp``/``device``), runs the case's ops and reads, after
each, what the stored rows hold (``_calib_run``): ``histogram`` (ORT; one tuple per
channel with a ``channel_axis``), ``compute_data()``, ``compute_collection_result()``,
``compute_amax(...)``, ModelOpt's histogram as ``histogram`` = ``(calib_hist,
calib_bin_edges, num_bins)`` (or the reference's ``_calib_hist``, ``_calib_bin_edges``,
``_num_bins``), and ``compute_scale_zp``. A merge case's batches are the concatenation
of its ranks' pieces: on Dask one chunk per piece (the chunked reductions are the
merge), elsewhere one array.

Compared bit for bit: every output's dtype, shape and bits (a NaN matches any NaN), and
a refusal's exception type and op index (its message is arrayobs's own).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs._compat import numpy_avx512, to_host
from arrayobs._conformance._calib_cases import CalibCase
from arrayobs._conformance._calib_records import (
    CalibRecords,
    Outcome,
    Output,
    Refusal,
    Row,
    encode,
)
from arrayobs._conformance._calib_run import Api, read_result, read_state, run_case
from arrayobs._conformance._runner import Compared, Summary, Tally, Target
from arrayobs.testing import supports_dtype

CLASSES = {
    "ort-histogram": "HistogramCollector",
    "ort-minmax": "MinMaxCalibrater",
    "modelopt-max": "MaxCalibrator",
    "modelopt-histogram": "HistogramCalibrator",
    "modelopt-mse": "MseCalibrator",
}
Modules = tuple[ModuleType, ModuleType]  # (the ORT module, the ModelOpt module)


def calib_modules() -> Modules | str:
    """``arrayobs.calib.ort`` and ``arrayobs.calib.modelopt``, or why they do not import."""
    try:
        ort = importlib.import_module("arrayobs.calib.ort")
        modelopt = importlib.import_module("arrayobs.calib.modelopt")
    except ImportError as exc:
        return f"arrayobs.calib is not importable ({exc})"
    return ort, modelopt


# Cases where arrayobs differs from the reference on purpose (documented in the classes'
# docstrings and docs/calibrators.md): a mismatching row there counts as a deviation.
DOCUMENTED: dict[tuple[str, str], str] = {
    ("ort-histogram", "value float64"): (
        "HistogramCollector refuses float16/float64 with TypeError (ORT bins them in their "
        "own dtype, with float64 edges past float32's resolution)"
    ),
    ("ort-minmax", "NaN batch ignored"): (
        "a batch with a NaN counts as NaN (ORT's ReduceMin/ReduceMax kernel gives NaN only "
        "for a leading NaN, so ORT keeps that batch's other values)"
    ),
    ("ort-minmax", "NaN batch ignored moving average"): (
        "a batch with a NaN counts as NaN (ORT's kernel gives NaN only for a leading NaN)"
    ),
    ("ort-minmax", "all-NaN call"): (
        "a batch with a NaN counts as NaN (ORT's kernel gives NaN only for a leading NaN)"
    ),
    ("ort-minmax", "per channel second call"): (
        "per channel, ORT raises ValueError on a second collect_data call (Python min on "
        "arrays); MinMaxCalibrater merges each channel as the per-tensor rule"
    ),
}
# Families that need int64 (and float64) where array_api_strict:no_x64 has neither, so
# that target skips their cases: the histograms keep int64 counts and float64 sums (JAX
# enables x64 for them); MinMax picks ORT's extremes with argmin/argmax, whose int64
# index array_api_strict cannot make there.
NEEDS_X64 = ("ort-histogram", "modelopt-histogram", "ort-minmax")


def documented(case: CalibCase) -> str | None:
    """Why ``case``'s rows may differ from the reference (None: they may not)."""
    return DOCUMENTED.get((case.family, case.name))


def dispatch_dependent(case: CalibCase) -> str | None:
    """Why ``case``'s stored rows may differ from the live reference's under another
    NumPy CPU dispatch than the one they were stored under (None: they may not)."""
    if case.family == "ort-histogram" and "p3" in case.name.split():
        return (
            "ORT's distribution p3 takes float32 powers, which NumPy's AVX512 kernels round "
            "1 ulp away from its AVX2 ones on some values; arrayobs runs ORT's NumPy step, "
            "so it equals live ORT on either (docs/exactness.md, CPU dispatch)"
        )
    return None


def unsupported(target: Target) -> str | None:
    """Why ``target`` does not run the section (None where it does)."""
    modules = calib_modules()
    if isinstance(modules, str):
        return modules
    if target.mode != "eager":
        return "the section runs the classes eagerly (its functional cores are not in it yet)"
    return None


def tensor_quant_8(xp: ModuleType) -> Callable[[Any, Any], Any]:
    """ModelOpt's ``_tensor_quant(x, amax, 8, False)`` (the corpus's MseCalibrator
    ``quant_func``) in ``xp``: ``scale = f32(127 / amax)``, round half to even of
    ``x * scale`` clamped to [-127, 127], divided by the scale; an ``amax <= 2**-24``
    quantizes to 0 (its scale is 0 for the rounding and 1 for the division)."""

    def quant(x: Any, amax: Any) -> Any:
        x32, a = xp.astype(x, xp.float32), xp.astype(amax, xp.float32)
        tiny = a <= 2.0**-24
        scale = 127.0 / a  # a float32 quotient, as torch's 0-d float32 127 over amax
        q = xp.clip(xp.round(x32 * xp.where(tiny, xp.zeros_like(scale), scale)), -127.0, 127.0)
        return xp.astype(q / xp.where(tiny, xp.ones_like(scale), scale), x.dtype)

    return quant


def _host(value: Any) -> Any:
    """A host NumPy copy of the value, of its own dtype (float16 stays float16), taken
    now: a later op must not change a row already read."""
    if value is None:
        return value
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value).__module__.split(".")[0] == "torch":
        return np.array(value.detach().cpu().numpy(), copy=True)
    return np.array(to_host(value), copy=True) if hasattr(value, "shape") else np.asarray(value)


def _hosted(outputs: list[Output]) -> list[Output]:
    return [(name, _host(v)) for name, v in outputs]


def target_api(target: Target, modules: Modules) -> Api:
    """``modules`` (arrayobs.calib's, or a stand-in of the same API) driven in
    ``target``'s namespace and device."""
    ort, modelopt = modules
    xp, device = target.xp, target.device

    def make(case: CalibCase, channel_axis: int | None) -> Any:
        module = ort if case.library == "ort" else modelopt
        kw = dict(case.arguments)
        if case.family == "modelopt-max" and isinstance(kw.get("axis"), list):
            kw["axis"] = tuple(kw["axis"])
        if case.family == "modelopt-mse":
            kw["amax"] = xp.asarray(np.asarray(kw["amax"], np.float32), device=device)
            if kw.get("quant_func") is not None:
                kw["quant_func"] = tensor_quant_8(xp)
        if channel_axis is not None:
            kw["channel_axis"] = channel_axis
        return getattr(module, CLASSES[case.family])(**kw, xp=xp, device=device)

    def to_input(batch: np.ndarray, parts: list[np.ndarray]) -> Any:
        if target.library == "dask":
            da = importlib.import_module("dask.array")
            return da.concatenate([da.from_array(p, chunks=p.shape) for p in parts], axis=0)
        if target.library == "torch":
            torch = importlib.import_module("torch")
            return torch.from_numpy(np.array(batch, copy=True)).to(device)
        return xp.asarray(batch, device=device)

    return Api(
        make=make,
        to_input=to_input,
        state=lambda case, obj, c: _hosted(read_state(case, obj, c)),
        result=lambda case, obj, op, c: _hosted(read_result(case, obj, op, c)),
        scale_zp=ort.compute_scale_zp,
        channels_outside=False,
    )


# -- comparison ----------------------------------------------------------------------
def _same(got: Any, want: Any) -> bool:
    """Bit for bit, dtype and shape included; a NaN matches any NaN."""
    if got is None or want is None:
        return got is None and want is None
    g, w = np.asarray(got), np.asarray(want)
    if g.dtype != w.dtype or g.shape != w.shape:
        return False
    if g.dtype.kind == "f":
        nan = np.isnan(w)
        if not np.array_equal(np.isnan(g), nan):
            return False
        return bool(np.array_equal(encode(g[~nan]), encode(w[~nan])))
    return bool(np.array_equal(g, w))


def _describe(name: str, got: Any, want: Any) -> str:
    if got is None or want is None:
        return f"{name} {got!r} vs {want!r}"
    g, w = np.asarray(got), np.asarray(want)
    if g.dtype != w.dtype or g.shape != w.shape:
        return f"{name} {g.dtype}{list(g.shape)} vs {w.dtype}{list(w.shape)}"
    if g.size == 1:
        return f"{name} {g.reshape(-1)[0]!r} vs {w.reshape(-1)[0]!r}"
    return f"{name}: {int((encode(g) != encode(w)).sum())} of {w.size} values differ"


def _row_differs(got: Row, want: Row) -> list[str]:
    if (got.op, got.channel) != (want.op, want.channel):
        return [f"row op {got.op} channel {got.channel}, want op {want.op} channel {want.channel}"]
    names = [n for n, _ in want.outputs]
    if [n for n, _ in got.outputs] != names:
        return [f"outputs {[n for n, _ in got.outputs]}, want {names}"]
    return [
        _describe(n, g, w)
        for (n, g), (_, w) in zip(got.outputs, want.outputs, strict=True)
        if not _same(g, w)
    ]


def compare_calib_case(
    case: CalibCase, got: Outcome, want: list[Row], refusal: Refusal | None
) -> Compared:
    """(rows, mismatching rows, 0 deviations, 0 ulps, the first mismatch described).

    A row is every stored row, and the refusal where the reference refused; rows the
    target did not reach (it refused early) or added count as mismatches."""
    rows = len(want) + (refusal is not None)
    bad, first = 0, ""
    label = f"calib case {case.id} ({case.family} {case.name})"
    for i in range(max(len(want), len(got.rows))):
        g = got.rows[i] if i < len(got.rows) else None
        w = want[i] if i < len(want) else None
        if g is None or w is None:
            missing = w if g is None else g
            what = "missing" if g is None else "extra"
            differs = [f"{what} row (op {missing.op} channel {missing.channel})"] if missing else []
        else:
            differs = _row_differs(g, w)
        if differs:
            bad += 1
            if not first:
                where = f"op {w.op} channel {w.channel}" if w is not None else f"row {i}"
                first = f"{label} {where}: {'; '.join(differs)}"
    mine, theirs = got.refusal, refusal
    if (mine is None) != (theirs is None) or (
        mine is not None and theirs is not None and (mine.type, mine.op) != (theirs.type, theirs.op)
    ):
        bad += 1
        refused = f"refused {_refused(mine)}, reference {_refused(theirs)}"
        first = f"{first}; {refused}" if first else f"{label}: {refused}"
    return rows, min(bad, rows) if rows else bad, 0, 0, first


def _refused(r: Refusal | None) -> str:
    return "nothing" if r is None else f"{r.type} at op {r.op} ({r.message!r})"


def run_calib_target(
    target: Target,
    cases: Sequence[CalibCase],
    reference: CalibRecords,
    progress: Callable[[int, int], None] | None = None,
    modules: Modules | None = None,
) -> Summary:
    """Run the calibrator ``cases`` on ``target`` and compare each with ``reference``
    (the stored records); ``modules`` stands in for arrayobs.calib."""
    own = modules is None  # arrayobs.calib's classes (the skips and deviations are theirs)
    if modules is None:
        found = calib_modules()
        if isinstance(found, str):
            raise ImportError(found)
        modules = found
    api = target_api(target, modules)

    def attempt(case: CalibCase) -> tuple[Compared, int] | None:
        if not supports_dtype(target.xp, target.device, case.dtype):
            return None  # counted as skipped, as in the other sections
        if (
            own
            and case.family in NEEDS_X64
            and target.library == "array_api_strict"
            and not supports_dtype(target.xp, target.device, "int64")
        ):
            return None  # skipped: the histogram state needs int64 and float64
        want = reference.case(case.id)
        outcome = run_case(case, api)
        compared = compare_calib_case(case, outcome, want, reference.refused.get(case.id))
        rows, bad, _, ulps, _ = compared
        stored = reference.numpy_avx512
        other_dispatch = stored is not None and stored != frozenset(numpy_avx512())
        allowed = documented(case) or (dispatch_dependent(case) and other_dispatch)
        if bad and own and allowed:
            compared = (rows, 0, bad, ulps, "")
        return compared, max(1, len(case.ops))

    tally = Tally().run(cases, attempt, progress)
    return tally.summary(target.label, str(target.device))
