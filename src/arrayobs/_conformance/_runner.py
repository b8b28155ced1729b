"""Running the corpus: on torch.ao (the reference) and on any backend and mode.

Modes: ``eager`` runs the observer classes; ``jit`` runs the functional core
under ``jax.jit``; ``lazy`` builds the whole sequence on Dask with the
functional core and computes it once at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from arrayobs import functional as F
from arrayobs._compat import backend_name, has_dtype, to_host
from arrayobs._conformance._corpus import Case, batches, view_kind
from arrayobs._conformance._records import NEVER_OBSERVED, OK, REFUSED, Records, Step
from arrayobs._observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs.testing import flushes_subnormals, supports_dtype

MODES = ("eager", "jit", "lazy")


def _observer_class(case: Case) -> type[Any]:
    if case.per_channel:
        if case.averaging_constant is None:
            return PerChannelMinMaxObserver
        return MovingAveragePerChannelMinMaxObserver
    return MinMaxObserver if case.averaging_constant is None else MovingAverageMinMaxObserver


def _view(x: Any, kind: str | None, xp: ModuleType | None) -> Any:
    if kind == "strided":
        return x[::2]
    if kind == "columns":
        return x[:, ::2]
    if kind == "transposed":
        return x.T if xp is None else xp.permute_dims(x, (1, 0))
    return x


# -- the reference -------------------------------------------------------------
def torch_observer(name: str, kwargs: dict[str, Any]) -> Any:
    """torch.ao's observer class ``name`` made with a case's ``kwargs`` (dtype and
    qscheme by name, as the corpus holds them)."""
    torch = importlib.import_module("torch")
    tobs = importlib.import_module("torch.ao.quantization.observer")
    kw = {**kwargs, "dtype": getattr(torch, kwargs["dtype"])}
    kw["qscheme"] = getattr(torch, kwargs["qscheme"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        return getattr(tobs, name)(**kw)


def torch_steps(case: Case) -> list[Step]:
    """``case`` on torch.ao's own observers (torch 2.13.0 on the CPU)."""
    torch = importlib.import_module("torch")
    obs = torch_observer(_observer_class(case).__name__, case.kwargs())
    inputs = (_torch_input(torch, host, case) for host in batches(case))
    return _observe(obs, inputs, AssertionError, torch.int64, torch.float32)


def _torch_input(torch: ModuleType, host: np.ndarray, case: Case) -> Any:
    t = torch.from_numpy(host)
    if case.input_dtype == "bfloat16":
        t = t.to(torch.bfloat16)
    return _view(t, view_kind(case), None)


def _observe(
    obs: Any, inputs: Iterable[Any], refusal: type[Exception], int64: Any, float32: Any
) -> list[Step]:
    """Feed ``inputs`` to an observer class (ours or torch's), recording each batch's outcome."""
    steps = []
    for x in inputs:
        obs(x)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                scale, zp = obs.calculate_qparams()
            except refusal:
                nan, zero = np.asarray([math.nan], np.float32), np.asarray([0], np.int64)
                steps.append(
                    Step(_host(obs.min_val), _host(obs.max_val), nan, zero, False, REFUSED)
                )
                continue
        status = NEVER_OBSERVED if caught else OK
        zp_host = to_host(zp).reshape(-1)
        zp_host = zp_host.astype(np.float32 if zp.dtype == float32 else np.int64)
        steps.append(
            Step(
                _host(obs.min_val),
                _host(obs.max_val),
                _host(scale),
                zp_host,
                zp.dtype == int64,
                status,
            )
        )
    return steps


# -- a backend -------------------------------------------------------------------
@dataclasses.dataclass
class Target:
    """A namespace on a device, run in one mode."""

    backend: str
    xp: ModuleType
    device: Any
    mode: str = "eager"

    @property
    def library(self) -> str:
        return backend_name(self.xp)

    @property
    def label(self) -> str:
        return self.backend if self.mode == "eager" else f"{self.backend} ({self.mode})"

    def supports(self, case: Case) -> bool:
        return supports_dtype(self.xp, self.device, case.input_dtype)

    @property
    def flushes_subnormals(self) -> bool:
        """XLA on the CPU and CuPy flush subnormal float32 to zero (documented deviations)."""
        return flushes_subnormals(self.xp, self.device)

    def array(self, host: np.ndarray, case: Case) -> Any:
        xp, lib = self.xp, self.library
        if lib == "torch":
            torch = importlib.import_module("torch")
            x = torch.from_numpy(host).to(self.device)
            if case.input_dtype == "bfloat16":
                x = x.to(torch.bfloat16)
        elif lib == "dask":
            da = importlib.import_module("dask.array")
            chunks = max(1, host.shape[0] // 3) if host.ndim and host.shape[0] else -1
            x = da.from_array(host, chunks=chunks)
        else:
            x = xp.asarray(host, device=self.device)
            if case.input_dtype == "bfloat16":
                x = xp.astype(x, xp.bfloat16)
        return _view(x, view_kind(case), xp)


def _host(v: Any) -> np.ndarray:
    return np.array(to_host(v), dtype=np.float32, copy=True).reshape(-1)


def _eager_steps(target: Target, case: Case) -> list[Step]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        obs = _observer_class(case)(**case.kwargs(), xp=target.xp, device=target.device)
    inputs = (target.array(host, case) for host in batches(case))
    return _observe(obs, inputs, ValueError, target.xp.int64, target.xp.float32)


def _update_fn(averaging_constant: float | None, ch_axis: int | None) -> Callable[..., Any]:
    fn: Callable[..., Any] = F.minmax_update
    if averaging_constant is not None:
        fn = functools.partial(F.moving_average_update, averaging_constant=averaging_constant)
    return fn if ch_axis is None else functools.partial(fn, ch_axis=ch_axis)


@functools.lru_cache(maxsize=64)
def _jax_update(averaging_constant: float | None, ch_axis: int | None) -> Callable[..., Any]:
    """The functional update under ``jax.jit`` (one per constant and axis)."""
    jax = importlib.import_module("jax")
    return jax.jit(_update_fn(averaging_constant, ch_axis))  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _jax_qparams(config: F.QuantConfig) -> Callable[..., Any]:
    """The functional qparams under ``jax.jit`` (one per configuration)."""
    jax = importlib.import_module("jax")
    return jax.jit(functools.partial(F.calculate_qparams, config=config))  # type: ignore[no-any-return]


def _config(case: Case) -> F.QuantConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        kw = case.kwargs()
        kw.pop("averaging_constant", None)
        kw.pop("ch_axis", None)
        return F.quant_config(**kw, per_tensor=not case.per_channel)


def _functional_steps(target: Target, case: Case) -> list[Step]:
    """The functional core: under jax.jit, or lazily on Dask with one compute at the end."""
    xp, cfg, c = target.xp, _config(case), case.averaging_constant
    if target.mode == "jit":
        update = _jax_update(c, case.ch_axis)
        qparams = _jax_qparams(cfg)
    else:
        update = _update_fn(case.averaging_constant, case.ch_axis)
        qparams = functools.partial(F.calculate_qparams, config=cfg)
    hosts = batches(case)
    channels = None
    if case.per_channel:
        # The functional core takes the channel count up front: from the first non-empty batch.
        shapes = [_view(np.empty(h.shape), view_kind(case), None).shape for h in hosts]
        counts = [s[case.ch_axis] for s in shapes if math.prod(s)]
        channels = counts[0] if counts else len(shapes and shapes[0])
    state = F.init_state(xp=xp, device=target.device, channels=channels)
    outs: list[tuple[Any, ...]] = []
    observed: list[bool] = []
    for host in hosts:
        state = update(state, target.array(host, case))
        outs.append((*state, *qparams(state)))
        observed.append(bool(host.size) or (observed[-1] if observed else False))
    if target.mode == "lazy":
        dask = importlib.import_module("dask")
        with np.errstate(all="ignore"):
            outs = [tuple(o) for o in dask.compute(*outs)]
    steps = []
    for out, seen in zip(outs, observed, strict=True):
        lo, hi, scale = (_host(v) for v in out[:3])
        zp = to_host(out[3]).reshape(-1)
        if case.per_channel and not seen:
            # torch's state is still empty (one default row); the core's fresh
            # (C,) state gives the same defaults in every channel: compare one.
            lo, hi, scale, zp = lo[:0], hi[:0], scale[:1], zp[:1]
        zp = zp.astype(np.float32 if out[3].dtype == xp.float32 else np.int64)
        steps.append(Step(lo, hi, scale, zp, out[3].dtype == xp.int64, OK))
    return steps


# -- comparison ----------------------------------------------------------------------
def _f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def _same_float(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    g, w = _f32(got), _f32(want)
    return (g == w) | (np.isnan(g) & np.isnan(w))


def _ulps(got: np.ndarray, want: np.ndarray) -> int:
    """Largest distance in float32 steps between mismatching finite values (0 if none)."""
    g, w = _f32(got).astype(np.float64), _f32(want).astype(np.float64)
    bad = ~_same_float(got, want) & np.isfinite(g) & np.isfinite(w)
    if not bad.any():
        return 0

    def key(b: np.ndarray) -> np.ndarray:
        i = b.astype(np.int64)
        return np.where(i >= 2**31, 2**31 - i, i)

    return int(np.abs(key(np.asarray(got)[bad]) - key(np.asarray(want)[bad])).max())


def _subnormal(bits: np.ndarray) -> np.ndarray:
    v = np.abs(_f32(bits))
    return (v > 0) & (v < np.finfo(np.float32).tiny)


@dataclasses.dataclass
class CaseResult:
    case: int
    steps: int
    mismatches: int
    deviations: int
    worst_ulps: int
    detail: str = ""


def compare_case(
    target: Target, case: Case, got: dict[str, np.ndarray], want: dict[str, np.ndarray]
) -> CaseResult:
    """Count the batches of ``case`` whose state or qparams differ from the reference."""
    ok = _same_float(got["min_bits"], want["min_bits"]) & _same_float(
        got["max_bits"], want["max_bits"]
    )
    # Which zero a reduction returns on a +0/-0 tie is the backend's choice; with
    # eps <= 0 the sign of a zero scale follows it (a documented deviation).
    zero_sign = np.zeros(len(got["min_bits"]), dtype=bool)
    for f in ("min_bits", "max_bits"):
        zero_sign |= (_f32(got[f]) == 0) & (_f32(want[f]) == 0) & (got[f] != want[f])
    zero_scales = (_f32(got["scale_bits"]) == 0) & (_f32(want["scale_bits"]) == 0)
    scale_ok = _same_float(got["scale_bits"], want["scale_bits"]) | (zero_sign & zero_scales)
    zp_bits = (got["zero_point"] & 0xFFFFFFFF).astype(np.uint32)
    want_zp_bits = (want["zero_point"] & 0xFFFFFFFF).astype(np.uint32)
    float_zp_ok = _same_float(zp_bits, want_zp_bits) & got["zp_float"] & want["zp_float"]
    int_zp_ok = (got["zero_point"] == want["zero_point"]) & ~got["zp_float"] & ~want["zp_float"]
    qp_ok = scale_ok & (float_zp_ok | int_zp_ok)
    if len(got["channel"]) != len(want["channel"]):
        # A different number of rows: a state of the wrong shape somewhere.
        n = len(want["channel"])
        msg = f"case {case.id}: {len(got['channel'])} rows (batches x channels), want {n}"
        return CaseResult(case.id, n, n, 0, 0, msg)
    refused = want["status"] == REFUSED
    if target.mode == "eager":
        has_int64 = has_dtype(target.xp, target.device, "int64")
        dtype_ok = got["zp_int64"] == (want["zp_int64"] & has_int64)
        ok &= (got["status"] == want["status"]) & (refused | (qp_ok & dtype_ok))
    else:
        # The functional core neither warns nor refuses: where torch refused, no qparams
        # to compare; where torch warned, its defaults (a float 0.0 zero point for
        # float_qparams, where torch's default is an int64 0).
        never = (want["status"] == NEVER_OBSERVED) & scale_ok
        ok &= refused | qp_ok | (never & (got["zero_point"] == want["zero_point"]))
    bad = ~ok
    deviations = 0
    if target.flushes_subnormals and bad.any():
        host_batches = batches(case)
        # A subnormal in an input, or in torch's state, scale or float zero point,
        # from that batch on.
        seen = _subnormal(want["min_bits"]) | _subnormal(want["max_bits"])
        seen |= _subnormal(want["scale_bits"]) | (want["zp_float"] & _subnormal(want_zp_bits))
        for i, b in enumerate(host_batches):
            vals = np.abs(np.asarray(b, dtype=np.float64).ravel())
            seen[i] |= bool(np.any((vals > 0) & (vals < np.finfo(np.float32).tiny)))
        explained = np.logical_or.accumulate(seen) & bad
        deviations = int(explained.sum())
        bad &= ~explained
    worst = (
        max(_ulps(got[f][bad], want[f][bad]) for f in ("min_bits", "max_bits", "scale_bits"))
        if bad.any()
        else 0
    )
    detail = ""
    if bad.any():
        i = int(np.argmax(bad))
        pairs = [
            f"{name} {_f32(got[f][i : i + 1])[0]!r} vs {_f32(want[f][i : i + 1])[0]!r}"
            for name, f in (("min", "min_bits"), ("max", "max_bits"), ("scale", "scale_bits"))
        ]
        detail = (
            f"case {case.id} batch {i}: {', '.join(pairs)}, zero_point {got['zero_point'][i]} "
            f"vs {want['zero_point'][i]}, status {got['status'][i]} vs {want['status'][i]}"
        )
    return CaseResult(case.id, len(bad), int(bad.sum()), deviations, worst, detail)


def run_case(target: Target, case: Case) -> list[Step]:
    if target.mode == "eager":
        return _eager_steps(target, case)
    return _functional_steps(target, case)


@dataclasses.dataclass
class Summary:
    """One target's results; ``batches`` counts rows (a batch, per channel: a batch and channel)."""

    label: str
    device: str
    cases: int
    skipped: int
    batches: int
    mismatches: int
    deviations: int
    worst_ulps: int
    seconds_per_update: float
    failures: list[str]


# One case's comparison: (rows, mismatched rows, deviations, worst ulps, failure detail).
Compared = tuple[int, int, int, int, str | None]


@dataclasses.dataclass
class Tally:
    """What a section's runner accumulates case by case, for its :class:`Summary`."""

    keep: int = 400  # failure lines kept
    cases: int = 0
    skipped: int = 0
    rows: int = 0
    mismatches: int = 0
    deviations: int = 0
    worst_ulps: int = 0
    calls: int = 0
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)

    def run(
        self,
        cases: Sequence[Any],
        attempt: Callable[[Any], tuple[Compared, int] | None],
        progress: Callable[[int, int], None] | None = None,
    ) -> Tally:
        """Every case through ``attempt`` (timed): its comparison and how many calls
        that took, or None where the case does not run (counted as skipped). Every
        section's runner is this loop with its own ``attempt``."""
        for n, case in enumerate(cases):
            if progress is not None:
                progress(n, len(cases))
            start = time.perf_counter()
            outcome = attempt(case)
            self.seconds += time.perf_counter() - start
            if outcome is None:
                self.skipped += 1
            else:
                self.add(*outcome)
        if progress is not None:
            progress(len(cases), len(cases))
        return self

    def add(self, compared: Compared, calls: int) -> None:
        """One case's (rows, mismatches, deviations, worst ulps, failure detail), and
        how many calls its ``seconds`` covered."""
        rows, bad, deviations, ulps, detail = compared
        self.cases += 1
        self.rows += rows
        self.mismatches += bad
        self.deviations += deviations
        self.worst_ulps = max(self.worst_ulps, ulps)
        self.calls += calls
        if detail and len(self.failures) < self.keep:
            self.failures.append(detail)

    def summary(self, label: str, device: str) -> Summary:
        return Summary(
            label=label,
            device=device,
            cases=self.cases,
            skipped=self.skipped,
            batches=self.rows,
            mismatches=self.mismatches,
            deviations=self.deviations,
            worst_ulps=self.worst_ulps,
            seconds_per_update=self.seconds / self.calls if self.calls else 0.0,
            failures=self.failures,
        )


def run_target(
    target: Target,
    cases: Sequence[Case],
    reference: Records,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Run ``cases`` on ``target`` and compare each with ``reference``."""

    def attempt(case: Case) -> tuple[Compared, int] | None:
        if not target.supports(case):
            return None
        steps = run_case(target, case)
        got = Records.from_steps([steps]).case(0)
        r = compare_case(target, case, got, reference.case(case.id))
        return (r.steps, r.mismatches, r.deviations, r.worst_ulps, r.detail), len(steps)

    tally = Tally(keep=20).run(cases, attempt, progress)
    return tally.summary(target.label, str(target.device))
