"""The histogram section of the corpus: HistogramObserver over batch sequences, from seeds.

Each case builds one ``HistogramObserver`` (``bins``, dtype, qscheme,
``reduce_range``, a custom range or none) and feeds it a few small 1-d
batches of one family:

- ``grow``, ``shrink``, ``shift``: normal batches whose range widens, narrows
  (old bins re-binned into a range they no longer fill) or moves;
- ``heavy``: Student-t tails (df 1.2) next to a narrow core;
- ``relu``: half the values exactly zero, the rest positive (an activation);
- ``inside``: a wide first batch, then batches strictly inside it (the
  histograms add without re-binning);
- ``constant``: constant batches (histc widens an empty range by one each
  way), then a spread one;
- ``single``: one element per batch;
- ``inf``: batches holding ±inf (torch warns and drops them), one of them
  only infinities (dropped whole: a first such batch leaves the observer
  unobserved).

Bins run from 1 to 4096 (1, 2, 3, 7, 16, 256, 2048, 4096); input dtypes
float32, float16, bfloat16 and float64; every configuration in
:data:`CONFIGS`. Every value is a pure function of the case (NumPy's legacy
``RandomState``); bfloat16 batches are carried as float32 arrays of
bfloat16 values, as in the other sections. No NaN (torch's histc raises) and
no float32 subnormal.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np

from arrayobs._conformance._corpus import _bfloat16_values

CORPUS_VERSION = 1
FAMILIES = ("grow", "shrink", "shift", "heavy", "relu", "inside", "constant", "single", "inf")
# (dtype, qscheme, reduce_range, (quant_min, quant_max) or None).
CONFIGS: tuple[tuple[str, str, bool, tuple[int, int] | None], ...] = (
    ("quint8", "per_tensor_affine", False, None),
    ("qint8", "per_tensor_symmetric", False, None),
    ("qint8", "per_tensor_affine", False, None),
    ("quint8", "per_tensor_symmetric", False, None),
    ("quint8", "per_tensor_affine", True, None),
    ("qint8", "per_tensor_symmetric", True, None),
    ("quint8", "per_tensor_affine", False, (0, 15)),
    ("qint8", "per_tensor_symmetric", False, (-64, 63)),
)
# Weighted towards torch's default (2048) and 256; each value appears (small bin counts
# cost torch's walk ~0.2 s a call: it steps to its end).
BINS = (2048, 256, 1, 2048, 3, 256, 7, 2048, 4096, 16, 2, 2048, 256, 2048, 4096, 256)
INPUTS = ("float32", "float16", "float32", "bfloat16", "float32", "float64")
REPEATS = 2
SIZE = 48  # values per batch (one size: JAX compiles each op once per shape)


@dataclasses.dataclass(frozen=True)
class HistCase:
    """One HistogramObserver configuration over ``batches`` batches of a family."""

    id: int
    family: str
    bins: int
    input_dtype: str
    dtype: str
    qscheme: str
    reduce_range: bool
    quant_range: tuple[int, int] | None
    batches: int
    seed: int

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments (names) for arrayobs's and torch's HistogramObserver."""
        kw: dict[str, Any] = {
            "bins": self.bins,
            "dtype": self.dtype,
            "qscheme": self.qscheme,
            "reduce_range": self.reduce_range,
        }
        if self.quant_range is not None:
            kw["quant_min"], kw["quant_max"] = self.quant_range
        return kw

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cases() -> list[HistCase]:
    """The section, in a fixed order: every family with every configuration, twice
    (``single`` once: torch's walk over a few spikes runs to its end, ~0.2 s a call).

    Bins and input dtypes rotate with periods (16 and 6) that meet every family."""
    out: list[HistCase] = []
    for k in range(len(FAMILIES) * len(CONFIGS) * REPEATS):
        family = FAMILIES[k % len(FAMILIES)]
        if family == "single" and k >= len(FAMILIES) * len(CONFIGS):
            continue
        dtype, qscheme, reduce_range, quant_range = CONFIGS[(k // len(FAMILIES)) % len(CONFIGS)]
        out.append(
            HistCase(
                id=len(out),
                family=family,
                bins=BINS[(k + k // len(FAMILIES)) % len(BINS)],
                input_dtype=INPUTS[(k + 2 * (k // len(FAMILIES))) % len(INPUTS)],
                dtype=dtype,
                qscheme=qscheme,
                reduce_range=reduce_range,
                quant_range=quant_range,
                batches=3 if family == "single" else 3 + k % 3,
                seed=zlib.crc32(f"arrayobs-hist-{k}".encode()),
            )
        )
    return out


def _values(rng: np.random.RandomState, case: HistCase, step: int, unit: float) -> np.ndarray:
    """float64 values of batch ``step`` of ``case.family``, at the case's ``unit``."""
    f = case.family
    if f == "grow":
        return rng.standard_normal(SIZE) * unit * 3.0**step
    if f == "shrink":
        return rng.standard_normal(SIZE) * unit * 4.0**-step + unit * 0.1 * step
    if f == "shift":
        return rng.standard_normal(SIZE) * unit + unit * 3.0 * rng.uniform(-2, 2)
    if f == "heavy":
        core = rng.standard_normal(SIZE) * unit * 0.01
        tail = np.clip(rng.standard_t(1.2, SIZE) * unit, -3e4, 3e4)
        return np.where(rng.uniform(size=SIZE) < 0.3, tail, core)
    if f == "relu":
        return np.maximum(rng.standard_normal(SIZE) * unit, 0.0)
    if f == "inside":
        width = unit if step == 0 else unit * 0.3
        return rng.uniform(-1, 1, SIZE) * width + (0.0 if step == 0 else 0.1 * unit)
    if f == "constant":
        if step == case.batches - 1:
            return rng.standard_normal(SIZE) * unit
        return np.full(SIZE, [unit, unit, -2.0 * unit, 0.0, unit * 0.5][step % 5])
    if f == "single":
        return rng.standard_normal(1) * unit
    # inf: some batches hold infinities; batch 0 or 1 (by the seed) only infinities.
    v = rng.standard_normal(SIZE) * unit
    if step == case.seed % 2:
        return np.where(rng.uniform(size=SIZE) < 0.5, np.inf, -np.inf)
    v[rng.randint(0, SIZE, 1 + step)] = np.inf if step % 2 else -np.inf
    return v


def batches(case: HistCase) -> list[np.ndarray]:
    """The host batches (1-d, C-contiguous) of ``case``, in its input dtype."""
    rng = np.random.RandomState(case.seed)
    unit = 10.0 ** rng.uniform(-2, 2)
    out = []
    with np.errstate(over="ignore"):  # float16 rounds a heavy tail beyond 65504 to inf
        for step in range(case.batches):
            v = _values(rng, case, step, unit)
            host = _bfloat16_values(v) if case.input_dtype == "bfloat16" else v
            out.append(np.ascontiguousarray(host.astype(_HOST[case.input_dtype])))
    return out


_HOST = {
    "float16": np.float16,
    "bfloat16": np.float32,
    "float32": np.float32,
    "float64": np.float64,
}
