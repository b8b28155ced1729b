"""``arrayobs compare --target MODULE:FACTORY``: the observer cases (and the histogram
cases) on any implementation.

The protocol (docs/conformance.md, "Checking your own implementation"): ``FACTORY(observer,
**arguments)`` builds an observer from torch.ao's class name and the case's
constructor arguments in torch's names (``dtype`` and ``qscheme`` as names);
``forward(x)`` takes each batch as a NumPy array (bfloat16 batches as float32
arrays holding bfloat16 values; views as views); ``calculate_qparams()``
returns ``(scale, zero_point)``, warns where the state was never observed and
raises where torch refuses (``min_val > max_val``); ``min_val`` and
``max_val`` are the state. Every returned value is an array-like that
``np.asarray`` converts, of torch's dtype.

The histogram section (``--cases histogram`` only: it needs one more attribute,
so ``--cases all`` with ``--target`` stays the observer cases): ``FACTORY(
"HistogramObserver", bins=..., dtype=..., qscheme=..., reduce_range=...)``
(``quant_min``/``quant_max`` where customized); ``forward(x)`` as above, and
any warning it raises means it dropped infinite values (torch: "torch.inf
detected in input tensor, ignoring input"); ``histogram``, a float32 array of
``bins`` counts, next to ``min_val``/``max_val`` (float32, one value); and
``calculate_qparams()`` as above. A factory that raises ``NotImplementedError``
skips that case (counted as skipped: a HistogramObserver it lacks, or a
configuration). bfloat16 cases are skipped: a NumPy array cannot say
bfloat16, and torch's histc computes its bins in the input's dtype (the
exported files hold them). Compared as a backend's rows, bit for bit.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arrayobs._conformance._corpus import Case, batches, view_kind
from arrayobs._conformance._export import observer_name
from arrayobs._conformance._hist_corpus import HistCase
from arrayobs._conformance._hist_corpus import batches as hist_batches
from arrayobs._conformance._hist_runner import compare_hist_case
from arrayobs._conformance._records import (
    NEVER_OBSERVED,
    OK,
    REFUSED,
    HistRecords,
    HistStep,
    Records,
    Step,
)
from arrayobs._conformance._runner import (
    Compared,
    Summary,
    Tally,
    Target,
    _view,
    compare_case,
)


def load_factory(spec: str) -> Callable[..., Any]:
    """``MODULE:FACTORY``, imported with the current directory on the path (as ``python -m``)."""
    module, sep, name = spec.partition(":")
    if not (module and sep and name):
        msg = f"--target {spec!r}: expected MODULE:FACTORY, e.g. mypkg.observers:make"
        raise ValueError(msg)
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        factory = getattr(importlib.import_module(module), name)
    except Exception as exc:  # any error importing user code (SyntaxError, RuntimeError...)
        msg = f"--target {spec!r}: {type(exc).__name__}: {exc}"
        raise ValueError(msg) from exc
    if not callable(factory):
        msg = f"--target {spec!r}: {name} is not callable"
        raise ValueError(msg)
    return factory  # type: ignore[no-any-return]


def _float32(v: Any, what: str) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype != np.float32:
        msg = f"{what} is {a.dtype}, want float32 (torch's)"
        raise TypeError(msg)
    return a.reshape(-1)


def _steps(factory: Callable[..., Any], case: Case) -> list[Step]:
    obs = factory(observer_name(case), **case.kwargs())
    steps = []
    for host in batches(case):
        x = host.astype(np.float32) if case.input_dtype == "bfloat16" else host
        obs.forward(_view(x, view_kind(case), None))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                scale, zp = obs.calculate_qparams()
            except Exception:  # the protocol: raise where torch refuses
                refused = True
            else:
                refused = False
        lo, hi = _float32(obs.min_val, "min_val"), _float32(obs.max_val, "max_val")
        if refused:
            nan, zero = np.asarray([np.nan], np.float32), np.asarray([0], np.int64)
            steps.append(Step(lo, hi, nan, zero, False, REFUSED))
            continue
        zp_host = np.asarray(zp).reshape(-1)
        if zp_host.dtype not in (np.int32, np.int64, np.float32):
            msg = f"zero_point is {zp_host.dtype}, want int32, int64 or float32 (torch's)"
            raise TypeError(msg)
        status = NEVER_OBSERVED if caught else OK
        zp_int64 = zp_host.dtype == np.int64
        zp_host = zp_host.astype(np.float32 if zp_host.dtype == np.float32 else np.int64)
        steps.append(Step(lo, hi, _float32(scale, "scale"), zp_host, zp_int64, status))
    return steps


def run_external(
    factory: Callable[..., Any],
    label: str,
    cases: Sequence[Case],
    reference: Records,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """The observer ``cases`` on ``factory``'s observers, compared with ``reference``."""
    # Compared as an eager NumPy backend: exact dtypes (int64 exists), no flushed subnormals.
    target = Target(label, np, "cpu")

    def attempt(case: Case) -> tuple[Compared, int]:
        want = reference.case(case.id)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # say reduce_range's deprecation
                steps = _steps(factory, case)
        except Exception as exc:  # counted, with the reason, as every row of the case
            n_rows = len(want["channel"])
            detail = f"case {case.id}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            return (n_rows, n_rows, 0, 0, detail), 0
        got = Records.from_steps([steps]).case(0)
        r = compare_case(target, case, got, want)
        # Deviations are documented per backend; a factory has none to claim.
        return (r.steps, r.mismatches, 0, r.worst_ulps, r.detail), len(steps)

    return Tally(keep=20).run(cases, attempt, progress).summary(label, "host")


# -- the histogram section -----------------------------------------------------------------
def _scalar32(v: Any, what: str) -> float:
    a = _float32(v, what)
    if a.size != 1:
        msg = f"{what} has {a.size} values, want one"
        raise TypeError(msg)
    return float(a[0])


def _hist_steps(obs: Any, case: HistCase) -> list[HistStep]:
    steps = []
    for x in hist_batches(case):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs.forward(x)
        dropped = bool(caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scale, zp = obs.calculate_qparams()
        zp_host = np.asarray(zp).reshape(-1)
        if zp_host.dtype not in (np.int32, np.int64) or zp_host.size != 1:
            msg = f"zero_point is {zp_host.dtype} of {zp_host.size}, want one int32 or int64"
            raise TypeError(msg)
        steps.append(
            HistStep(
                _float32(obs.histogram, "histogram").copy(),
                _scalar32(obs.min_val, "min_val"),
                _scalar32(obs.max_val, "max_val"),
                _scalar32(scale, "scale"),
                int(zp_host[0]),
                zp_host.dtype == np.int64,
                NEVER_OBSERVED if caught else OK,
                dropped,
            )
        )
    return steps


def run_external_hist(
    factory: Callable[..., Any],
    label: str,
    cases: Sequence[HistCase],
    reference: HistRecords,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """The histogram ``cases`` on ``factory``'s HistogramObserver, compared with ``reference``
    bit for bit (as a backend's: histogram, min/max, scale, zero point and its dtype, both
    warnings; a zero min/max of the other sign counted as a deviation)."""
    target = Target(label, np, "cpu")

    def attempt(case: HistCase) -> tuple[Compared, int] | None:
        if case.input_dtype == "bfloat16":
            return None
        want = reference.case(case.id)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # say reduce_range's deprecation
                try:
                    obs = factory("HistogramObserver", **case.kwargs())
                except NotImplementedError:  # the protocol: no such observer or configuration
                    return None
                steps = _hist_steps(obs, case)
        except Exception as exc:  # counted, with the reason, as every row of the case
            rows = len(want["hist_status"])
            detail = f"hist case {case.id}: {type(exc).__name__}: {' '.join(str(exc).split())}"
            return (rows, rows, 0, 0, detail), 0
        got = HistRecords.from_steps([steps]).case(0)
        return compare_hist_case(target, case, got, want), len(steps)

    return Tally(keep=20).run(cases, attempt, progress).summary(label, "host")
