"""Running the histogram section: on torch 2.13.0 (the reference) and on any target.

Each case builds a ``HistogramObserver`` from its constructor arguments (the
public API only) and records, after every batch, the histogram, ``min_val``,
``max_val``, ``calculate_qparams()``, whether ``calculate_qparams`` warned
(never observed) and whether ``forward`` warned of infinities.

The ``eager`` mode runs the observer class; the ``jit`` mode (JAX) runs the
functional core, ``histogram_update`` under ``jax.jit``, and the ``lazy`` mode
(Dask) the same core lazily, every state computed at the end in one graph;
``histogram_qparams`` follows each state (the core never warns: its
never-observed qparams are compared by value, and its silently dropped
infinities are not compared). array-api-strict's device without
float64 cannot run it: the generic ``histc`` counts with ``searchsorted``,
whose int64 indices that device lacks (tests/test_histogram.py skips it too).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arrayobs._compat import has_dtype, to_host
from arrayobs._conformance._fq_runner import _array
from arrayobs._conformance._hist_corpus import HistCase, batches
from arrayobs._conformance._records import NEVER_OBSERVED, OK, HistRecords, HistStep
from arrayobs._conformance._runner import (
    Compared,
    Summary,
    Tally,
    Target,
    _f32,
    _ulps,
    torch_observer,
)
from arrayobs.testing import supports_dtype

_INF_WARNING = "torch.inf detected"


def _observe(obs: Any, inputs: Sequence[Any], int64: Any) -> list[HistStep]:
    """Feed ``inputs`` to a HistogramObserver (ours or torch's), recording each batch."""
    steps = []
    for x in inputs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs(x)
        dropped = any(_INF_WARNING in str(w.message) for w in caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scale, zp = obs.calculate_qparams()
        state = (obs.histogram, obs.min_val, obs.max_val)
        status = NEVER_OBSERVED if caught else OK
        steps.append(_step(state, scale, zp, zp.dtype == int64, status, dropped))
    return steps


def _step(
    state: Sequence[Any], scale: Any, zp: Any, int64: bool, status: int, dropped: bool
) -> HistStep:
    """One batch's record: ``state`` (histogram, min_val, max_val) and qparams on the host."""
    histogram, lo, hi = (to_host(v) for v in state)
    with np.errstate(all="ignore"):
        return HistStep(
            np.array(histogram, dtype=np.float32, copy=True).reshape(-1),
            float(np.asarray(lo, dtype=np.float32)),
            float(np.asarray(hi, dtype=np.float32)),
            float(np.asarray(to_host(scale), dtype=np.float32).reshape(-1)[0]),
            int(np.asarray(to_host(zp)).reshape(-1)[0]),
            int64,
            status,
            dropped,
        )


# -- the reference -------------------------------------------------------------------
def torch_hist_steps(case: HistCase) -> list[HistStep]:
    """``case`` on torch.ao's own HistogramObserver (torch 2.13.0 on the CPU)."""
    torch = importlib.import_module("torch")
    obs = torch_observer("HistogramObserver", case.kwargs())
    inputs = [torch.from_numpy(h) for h in batches(case)]
    if case.input_dtype == "bfloat16":
        inputs = [t.to(torch.bfloat16) for t in inputs]
    return _observe(obs, inputs, torch.int64)


# -- a target ------------------------------------------------------------------------
def unsupported(target: Target) -> str | None:
    """Why ``target`` cannot run the section at all (None where it can)."""
    if target.library == "array_api_strict" and not has_dtype(target.xp, target.device, "int64"):
        return "searchsorted (the generic histc's counting) returns int64, which this device lacks"
    return None


def supports(target: Target, case: HistCase) -> bool:
    """Whether ``target`` runs ``case``: the mode and device run the section, the input
    dtype exists there."""
    return unsupported(target) is None and supports_dtype(
        target.xp, target.device, case.input_dtype
    )


def target_hist_steps(target: Target, case: HistCase) -> list[HistStep]:
    """``case`` on arrayobs.HistogramObserver in ``target``'s namespace and device
    (the functional core in the ``jit`` mode)."""
    from arrayobs import HistogramObserver

    bf16 = case.input_dtype == "bfloat16"
    inputs = [_array(target, h, bf16) for h in batches(case)]
    if target.mode != "eager":
        return _functional_steps(target, case, inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        obs = HistogramObserver(**case.kwargs(), xp=target.xp, device=target.device)
    return _observe(obs, inputs, target.xp.int64)


@functools.cache
def _jitted_update() -> Any:
    from arrayobs import functional as F

    return importlib.import_module("jax").jit(F.histogram_update)


def _functional_steps(target: Target, case: HistCase, inputs: Sequence[Any]) -> list[HistStep]:
    """The functional core: ``histogram_update`` after each batch (under ``jax.jit``,
    or lazily on Dask with one compute of every state at the end), then
    ``histogram_qparams`` of each state."""
    from arrayobs import functional as F

    kw = case.kwargs()
    bins = kw.pop("bins")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        config = F.quant_config(**kw)
    update = _jitted_update() if target.mode == "jit" else F.histogram_update
    state = F.histogram_init(bins, xp=target.xp, device=target.device)
    states = []
    for x in inputs:
        state = update(state, x)
        states.append(state)
    if target.mode == "lazy":
        with np.errstate(all="ignore"):
            computed = importlib.import_module("dask").compute(*[tuple(s) for s in states])
        states = [F.HistogramState(*(np.asarray(v) for v in s)) for s in computed]
    steps = []
    for state in states:
        scale, zp = F.histogram_qparams(state, config)
        int64 = np.asarray(to_host(zp)).dtype == np.int64
        steps.append(_step(state, scale, zp, int64, OK, False))
    return steps


# -- comparison ----------------------------------------------------------------------
_SCALARS = ("hist_min_bits", "hist_max_bits", "hist_scale_bits")


def compare_hist_case(
    target: Target, case: HistCase, got: dict[str, Any], want: dict[str, Any]
) -> tuple[int, int, int, int, str]:
    """(rows, mismatching rows, documented deviations, worst float32 ulps, the first
    mismatch described).

    Bit for bit: every histogram value, min_val, max_val and scale; the zero
    point and its dtype (int32 where the device has no int64); both warnings.
    Only the sign of a zero min_val or max_val may differ (docs/exactness.md, "Signed zeros":
    which zero a reduction returns is the backend's choice), counted as a deviation."""
    rows = len(want["hist_status"])
    if len(got["hist_status"]) != rows:
        msg = f"hist case {case.id}: {len(got['hist_status'])} batches, want {rows}"
        return rows, rows, 0, 0, msg
    has_int64 = has_dtype(target.xp, target.device, "int64")
    fields: dict[str, np.ndarray] = {
        "histogram": np.asarray(
            [
                g.shape == w.shape and bool(np.array_equal(g, w))
                for g, w in zip(got["histograms"], want["histograms"], strict=True)
            ]
        ),
        "min_val": _f32(got["hist_min_bits"]) == _f32(want["hist_min_bits"]),
        "max_val": _f32(got["hist_max_bits"]) == _f32(want["hist_max_bits"]),
        "scale": got["hist_scale_bits"] == want["hist_scale_bits"],
        "zero_point": got["hist_zero_point"] == want["hist_zero_point"],
        "zero_point dtype": got["hist_zp_int64"] == (want["hist_zp_int64"] & has_int64),
        "status": got["hist_status"] == want["hist_status"],
        "inf warning": got["hist_inf_dropped"] == want["hist_inf_dropped"],
    }
    if target.mode != "eager":
        # The functional core never warns: torch's never-observed defaults are compared
        # by value (its int64 zero point is the core's usual dtype), infinities not at all.
        fields["zero_point dtype"] |= want["hist_status"] == NEVER_OBSERVED
        fields["status"] = np.ones(rows, dtype=bool)
        fields["inf warning"] = np.ones(rows, dtype=bool)
    bad = ~np.logical_and.reduce(list(fields.values()))
    signs = (got["hist_min_bits"] != want["hist_min_bits"]) | (
        got["hist_max_bits"] != want["hist_max_bits"]
    )
    deviations = int((signs & ~bad).sum())
    if not bad.any():
        return rows, 0, deviations, 0, ""
    worst = max(_ulps(got[f][bad], want[f][bad]) for f in _SCALARS)
    for g, w, b in zip(got["histograms"], want["histograms"], bad, strict=True):
        if b and g.shape == w.shape:
            worst = max(worst, _ulps(g, w))
    i = int(np.argmax(bad))
    differ = [name for name, ok in fields.items() if not ok[i]]
    g, w = got["histograms"][i], want["histograms"][i]
    values = {
        "min_val": (got["hist_min_bits"][i], want["hist_min_bits"][i]),
        "max_val": (got["hist_max_bits"][i], want["hist_max_bits"][i]),
        "scale": (got["hist_scale_bits"][i], want["hist_scale_bits"][i]),
    }
    shown = [
        f"{k} {np.uint32(a).view(np.float32)!r} vs {np.uint32(b).view(np.float32)!r}"
        for k, (a, b) in values.items()
        if k in differ
    ]
    if "histogram" in differ:
        n = int((g != w).sum()) if g.shape == w.shape else -1
        shown.append(f"histogram: {n} of {w.size} bins differ")
    if "zero_point" in differ:
        shown.append(f"zero_point {got['hist_zero_point'][i]} vs {want['hist_zero_point'][i]}")
    detail = (
        f"hist case {case.id} ({case.family} bins={case.bins} {case.input_dtype} {case.dtype} "
        f"{case.qscheme}{' reduce_range' if case.reduce_range else ''} {case.quant_range or ''}) "
        f"batch {i}: {', '.join(differ)} differ; {'; '.join(shown)}"
    )
    return rows, int(bad.sum()), deviations, worst, detail


def run_hist_target(
    target: Target,
    cases: Sequence[HistCase],
    reference: HistRecords,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run the histogram ``cases`` on ``target`` and compare each with ``reference``."""

    def attempt(case: HistCase) -> tuple[Compared, int] | None:
        if not supports(target, case):
            return None
        want = reference.case(case.id)
        try:
            steps = target_hist_steps(target, case)
        except Exception as exc:  # counted, with the reason, as every row of the case
            rows = len(want["hist_status"])
            detail = f"hist case {case.id} ({case.family}): {type(exc).__name__}: {exc}"
            return (rows, rows, 0, 0, detail), rows
        got = HistRecords.from_steps([steps]).case(0)
        compared = compare_hist_case(target, case, got, want)
        return compared, compared[0]

    tally = Tally().run(cases, attempt, progress)
    return tally.summary(target.label, str(target.device))
