"""The affine section of the corpus: torchao 0.18.0's affine primitives, from seeds.

Four kinds of case (``op``):

- ``choose``: ``choose_qparams_affine`` on one input, then ``quantize_affine``
  and ``dequantize_affine`` on the chosen scale and zero point (float64 inputs:
  the choice alone, as torchao quantizes float16, bfloat16 and float32 only).
  Every MappingType, granularity (PerTensor, PerAxis, PerGroup 32 and 128,
  PerRow, PerToken, PerBlock), target (int8, uint8, int16, int32, int4 held in
  int8 as -8..7, uint4 held in uint8 as 0..15, float8_e4m3fn, float8_e5m2),
  input dtype, eps (default and explicit), scale dtype, zero point dtype and
  dequantized output dtype.
- ``with_min_max``: ``choose_qparams_affine_with_min_max`` on given min/max
  arrays (min above max, ±0, infinities and NaN among them).
- ``float8``: ``choose_scale_float8`` (tensorwise, rowwise, blockwise; float32
  and power-of-two scales; amax bounds), ``quantize_affine_float8`` and
  ``dequantize_affine_float8``.
- ``observer``: ``AffineQuantizedMinMaxObserver`` over a few batches.

Inputs mix a family's values: ``ties`` (``(k + 0.5) * u`` with the block
range set so that the scale is ``u``, a power of two), ``zeros`` (±0 and
constant blocks), ``specials`` (±inf and NaN), ``subnormal``, ``heavy``
(Cauchy tails) and ``ordinary`` (rows of magnitudes from 1e-3 to 1e3). Every
value is a pure function of the case (NumPy's legacy ``RandomState``);
bfloat16 values are carried as float32 arrays, as in the other sections.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Any

import numpy as np

from arrayobs._conformance._corpus import _bfloat16_values

CORPUS_VERSION = 1
MAPPINGS = ("SYMMETRIC", "SYMMETRIC_NO_CLIPPING_ERR", "ASYMMETRIC")
# Granularity as "Name" or "Name:argument" (PerBlock's block as "8x32").
GRANULARITIES = (
    "PerTensor",
    "PerAxis:0",
    "PerAxis:1",
    "PerGroup:32",
    "PerGroup:128",
    "PerRow",
    "PerToken",
    "PerBlock:8x32",
)
TARGETS = ("int8", "uint8", "int16", "int32", "int4", "uint4", "float8_e4m3fn", "float8_e5m2")
# (quant_min, quant_max) of each target (float8: torchao's finfo bounds).
RANGES = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int4": (-8, 7),
    "uint4": (0, 15),
    "float8_e4m3fn": (-448, 448),
    "float8_e5m2": (-57344, 57344),
}
INPUTS = ("float32", "bfloat16", "float16", "float64")
FAMILIES = ("ordinary", "ties", "zeros", "specials", "subnormal", "heavy")
EPS = (None, 1e-6, 2.0**-20, 0.0)
SCALE_DTYPES = (None, "float32", "bfloat16", "float16")
ZP_DTYPES = ("int32", None, "int32", "float32")
OUT_DTYPES = ("float32", "bfloat16", "float16")
SHAPES = ((8, 256), (2, 8, 128), (16, 128))
# float8 scales: (block kind, scale dtype, (hp_value_lb, hp_value_ub)).
FLOAT8_KINDS = ("tensorwise", "rowwise", "blockwise")
FLOAT8_SCALES = ("float32", "float8_e8m0fnu")
FLOAT8_BOUNDS = ((None, None), (1e-12, None), (None, 100.0), (0.5, 2.0))
# Observer configurations: (mapping, target, granularity, keyword arguments).
OBSERVERS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("ASYMMETRIC", "uint8", "PerGroup:32", {}),
    ("SYMMETRIC", "int8", "PerAxis:0", {"keepdim": True}),
    ("SYMMETRIC_NO_CLIPPING_ERR", "int4", "PerToken", {}),
    ("SYMMETRIC", "int8", "PerRow", {"zero_point_dtype": "int32"}),
    ("ASYMMETRIC", "int16", "PerTensor", {"eps": 1e-6, "scale_dtype": "float32"}),
    ("SYMMETRIC", "float8_e4m3fn", "PerTensor", {"zero_point_domain": "NONE"}),
    ("ASYMMETRIC", "uint4", "PerBlock:8x32", {"scale_dtype": "bfloat16"}),
    ("SYMMETRIC", "int32", "PerGroup:128", {}),
)
OBSERVER_INPUTS = ("float32", "bfloat16", "float16")
N_BATCHES = (3, 4)


@dataclasses.dataclass(frozen=True)
class AffineCase:
    """One call chain (choose, with_min_max, float8) or one observer over batches."""

    id: int
    op: str  # "choose", "with_min_max", "float8" or "observer"
    input_dtype: str
    family: str
    seed: int
    shape: tuple[int, ...] = (8, 256)
    granularity: str = "PerTensor"
    mapping: str = "ASYMMETRIC"
    target: str = "int8"
    eps: float | None = None
    scale_dtype: str | None = None
    zero_point_dtype: str | None = "int32"
    keepdim: bool = False
    out_dtype: str = "float32"
    float8_kind: str | None = None
    hp_bounds: tuple[float | None, float | None] = (None, None)
    observer: int | None = None  # index into OBSERVERS
    batches: int = 0

    @property
    def dtypes(self) -> set[str]:
        """Every dtype the case's arrays have (inputs and outputs)."""
        out = {self.input_dtype, self.out_dtype}
        if self.op == "float8":
            return out | {self.target}
        if self.op == "observer":
            _, target, _, kw = OBSERVERS[self.observer or 0]
            return out | {target} | {kw[k] for k in ("scale_dtype",) if k in kw}
        out |= {self.scale_dtype or self.input_dtype, self.target}
        out |= {self.zero_point_dtype or self.scale_dtype or self.input_dtype}
        return out - {"int4", "uint4"}

    @property
    def quantizes(self) -> bool:
        """choose: torchao quantizes float16, bfloat16 and float32 inputs only."""
        return self.op == "choose" and self.input_dtype != "float64"

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def granularity_args(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"PerGroup:32"`` -> ``("PerGroup", (32,))``; PerBlock's argument is a tuple."""
    name, _, arg = text.partition(":")
    if not arg:
        return name, ()
    if "x" in arg:
        return name, (tuple(int(a) for a in arg.split("x")),)
    return name, (int(arg),)


def cases() -> list[AffineCase]:
    """The section, in a fixed order: choose, with_min_max, float8, observers."""
    out: list[AffineCase] = []

    def add(**kw: Any) -> None:
        seed = zlib.crc32(f"arrayobs-affine-{len(out)}".encode())
        out.append(AffineCase(id=len(out), seed=seed, **kw))

    # Every (mapping, granularity, target) once; the other parameters rotate with
    # periods prime to each other so that each meets most of the others.
    for n, (mapping, gran, target) in enumerate(
        itertools.product(MAPPINGS, GRANULARITIES, TARGETS)
    ):
        in_dtype = INPUTS[n % len(INPUTS)]
        shape = SHAPES[n % len(SHAPES)]
        if gran in ("PerAxis:1", "PerBlock:8x32") and len(shape) == 3:
            shape = (16, 128)
        add(
            op="choose",
            input_dtype=in_dtype,
            family=FAMILIES[(n + n // 4) % len(FAMILIES)],
            shape=shape,
            granularity=gran,
            mapping=mapping,
            target=target,
            eps=EPS[(n // 2) % len(EPS)],
            scale_dtype=SCALE_DTYPES[(n // 3) % len(SCALE_DTYPES)],
            zero_point_dtype=ZP_DTYPES[(n // 5) % len(ZP_DTYPES)],
            keepdim=n % 7 == 3,
            out_dtype=OUT_DTYPES[(n // 4) % len(OUT_DTYPES)],
        )
    for n, (mapping, target) in enumerate(itertools.product(MAPPINGS, TARGETS[:6])):
        for rep in range(2):
            k = 2 * n + rep
            in_dtype = INPUTS[k % len(INPUTS)]
            if in_dtype == "float16" and target == "int32":
                # torchao refuses: ATen cannot take 2**32 - 1 as a float16 scalar.
                in_dtype = "float32"
            add(
                op="with_min_max",
                input_dtype=in_dtype,
                family=("ordinary", "specials", "zeros")[k % 3],
                shape=((5, 3), (12,))[rep],
                mapping=mapping,
                target=target,
                eps=EPS[k % len(EPS)],
                scale_dtype=SCALE_DTYPES[(k // 3) % len(SCALE_DTYPES)],
                zero_point_dtype=(None, "int32", "float32")[k % 3],
            )
    for n, (f8, kind, sdt) in enumerate(
        itertools.product(TARGETS[6:], FLOAT8_KINDS, FLOAT8_SCALES)
    ):
        for rep in range(2):
            k = 2 * n + rep
            add(
                op="float8",
                input_dtype=INPUTS[k % 3],
                family=FAMILIES[k % len(FAMILIES)],
                shape=(64, 128),
                target=f8,
                scale_dtype=sdt,
                out_dtype=OUT_DTYPES[k % len(OUT_DTYPES)],
                float8_kind=kind,
                hp_bounds=FLOAT8_BOUNDS[k % len(FLOAT8_BOUNDS)],
            )
    for i, (mapping, target, gran, _kw) in enumerate(OBSERVERS):
        for rep in range(2):
            k = 2 * i + rep
            add(
                op="observer",
                input_dtype=OBSERVER_INPUTS[k % len(OBSERVER_INPUTS)],
                family=("ordinary", "ties", "zeros", "specials", "heavy")[k % 5],
                shape=(8, 256) if gran != "PerToken" else (2, 8, 128),
                granularity=gran,
                mapping=mapping,
                target=target,
                observer=i,
                batches=N_BATCHES[rep],
            )
    return out


def _cast(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return _bfloat16_values(v)
    return v.astype(dtype)


def _unit(case: AffineCase) -> float:
    """The ``ties`` family's scale: a power of two whose block range fits float16."""
    return 2.0**-20 if case.target in ("int32", "float8_e5m2") else 2.0**-6


def _values(rng: np.random.RandomState, case: AffineCase, shape: tuple[int, ...]) -> np.ndarray:
    """float64 values of the case's family (rows of the last axis)."""
    n = int(np.prod(shape))
    rows = n // shape[-1]
    mag = 10.0 ** rng.uniform(-3, 3, (rows, 1))
    v: np.ndarray = (rng.standard_normal((rows, shape[-1])) * mag).reshape(-1)
    if case.family == "ties":
        u = _unit(case)
        lo, hi = RANGES[case.target]
        half = (hi - lo) / 2
        k = rng.randint(-int(min(half, 300)), int(min(half, 300)), n) + 0.5
        v = k * u
        # The block's range is [-half * u, half * u] where both ends land in it,
        # which makes the scale exactly u (ASYMMETRIC and SYMMETRIC).
        ends = rng.uniform(0, 1, n) < 0.25
        v[ends] = np.sign(rng.standard_normal(int(ends.sum()))) * half * u
    elif case.family == "zeros":
        v[rng.uniform(0, 1, n) < 0.3] = 0.0
        v[rng.uniform(0, 1, n) < 0.2] = -0.0
        v = v.reshape(rows, -1)
        v[0] = 0.0
        v[1 % rows] = -0.0
        v[2 % rows] = 1.5  # a constant row: constant blocks along it
        v[3 % rows, :32] = -2.25
        v = v.reshape(-1)
    elif case.family == "specials":
        picks = rng.randint(0, n, 6)
        v[picks] = [np.inf, -np.inf, np.nan, 3e38, -3e38, -0.0]
        v[rng.uniform(0, 1, n) < 0.02] = np.nan
    elif case.family == "subnormal":
        v = rng.uniform(-1, 1, n) * 1e-38 * 10.0 ** rng.uniform(-7, 0, n)
        v[: n // 4] *= 1e30  # some blocks of normal values
    elif case.family == "heavy":
        v = rng.standard_cauchy(n) * 10.0 ** rng.uniform(-2, 2)
    return v.reshape(shape)


def arguments(case: AffineCase) -> dict[str, np.ndarray]:
    """The host arrays of a non-observer case: ``x`` (choose, float8) or
    ``min_val`` and ``max_val`` (with_min_max), in the input dtype."""
    rng = np.random.RandomState(case.seed)
    with np.errstate(all="ignore"):
        if case.op != "with_min_max":
            return {
                "x": np.ascontiguousarray(_cast(_values(rng, case, case.shape), case.input_dtype))
            }
        a = _values(rng, case, case.shape)
        b = _values(rng, case, case.shape)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        flat = lo.reshape(-1)
        flat[0] = hi.reshape(-1)[0] + 1.0  # min above max
        flat[1] = 1e-40 if case.family != "specials" else np.nan
        hi.reshape(-1)[2] = -0.0
        return {
            "min_val": np.ascontiguousarray(_cast(lo, case.input_dtype)),
            "max_val": np.ascontiguousarray(_cast(hi, case.input_dtype)),
        }


def observer_batches(case: AffineCase) -> list[np.ndarray]:
    """The batches of an observer case, growing in magnitude, in the input dtype."""
    rng = np.random.RandomState(case.seed)
    out = []
    with np.errstate(all="ignore"):
        for step in range(case.batches):
            v = _values(rng, case, case.shape) * (1.0 + step)
            out.append(np.ascontiguousarray(_cast(v, case.input_dtype)))
    return out


def float8_block(case: AffineCase) -> tuple[int, ...]:
    """The float8 case's block: the whole tensor, a row, or 32 x 32."""
    rows, cols = case.shape
    return {"tensorwise": (rows, cols), "rowwise": (1, cols), "blockwise": (32, 32)}[
        case.float8_kind or "tensorwise"
    ]
