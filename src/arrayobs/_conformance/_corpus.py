"""The conformance corpus: observer configurations x batch sequences, from seeds.

Every case is a pure function of its parameters: the batches are generated
with NumPy's legacy ``RandomState`` (whose streams NumPy keeps stable across
versions) as host arrays of the input dtype, so every backend, and the torch
reference, sees the same bytes. bfloat16 batches are carried as float32
arrays whose values are exactly representable in bfloat16.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Any

import numpy as np

from arrayobs._config import DTYPES, FLOAT32_EPS

CORPUS_VERSION = 1

# Customized ranges per quantized dtype (each valid for it in torch 2.13.0).
_RANGES: dict[str, list[tuple[int, int]]] = {
    "qint8": [(-8, 7), (-127, 127)],
    "int8": [(-3, 3)],
    "quint8": [(0, 15), (0, 1000)],
    "uint8": [(0, 15)],
    "qint32": [(-(2**31), 2**31 - 1), (-8, 7)],
    "int32": [(-(2**31), 2**31 - 1)],
    "int16": [(-3, 3)],
    "uint16": [(0, 15)],
    "quint4x2": [(0, 15)],
    "float8_e5m2": [(-8, 7)],
    "float8_e4m3fn": [(0, 15)],
}
# None: MinMaxObserver; a number: MovingAverageMinMaxObserver's averaging_constant.
AVERAGING = (None, 0.0, 1.0, 1 / 3, 0.01, 0.5)
EPS = (FLOAT32_EPS, 2.0**-10, 1e-30, 0.0)
FAMILIES = (
    "ordinary",
    "constant",
    "positive",
    "negative",
    "zeros",
    "subnormal",
    "near_max",
    "beyond_f32",
    "pos_inf",
    "neg_inf",
    "mixed_inf",
    "nan_first",
    "nan_later",
    "mixed",
)
# Families whose values need a float input dtype (ints/bool get "ordinary").
_FLOAT_ONLY = {
    "subnormal",
    "near_max",
    "beyond_f32",
    "pos_inf",
    "neg_inf",
    "mixed_inf",
    "nan_first",
    "nan_later",
}
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "int32", "int64", "bool")
SHAPES = (
    "vector",
    "scalar",
    "one",
    "empty_alone",
    "empty_first",
    "empty_between",
    "large",
    "strided",
    "transposed",
)
LENGTHS = (1, 2, 3, 5, 8, 13, 50)


@dataclasses.dataclass(frozen=True)
class Case:
    """One observer configuration and one batch sequence."""

    id: int
    averaging_constant: float | None
    dtype: str
    qscheme: str
    reduce_range: bool
    quant_range: tuple[int, int] | None
    eps: float
    family: str
    input_dtype: str
    shape: str
    batches: int
    seed: int

    @property
    def observer(self) -> str:
        return "minmax" if self.averaging_constant is None else "moving-average"

    def kwargs(self) -> dict[str, Any]:
        """Constructor arguments (names) for arrayobs's observers."""
        kw: dict[str, Any] = {
            "dtype": self.dtype,
            "qscheme": self.qscheme,
            "reduce_range": self.reduce_range,
            "eps": self.eps,
        }
        if self.quant_range is not None:
            kw["quant_min"], kw["quant_max"] = self.quant_range
        if self.averaging_constant is not None:
            kw["averaging_constant"] = self.averaging_constant
        return kw

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "quant_range": self.quant_range}


def _configs() -> list[tuple[Any, ...]]:
    out = []
    for dtype in DTYPES:
        for qscheme, reduce_range, qrange in itertools.product(
            ("per_tensor_affine", "per_tensor_symmetric"), (False, True), [None, *_RANGES[dtype]]
        ):
            if qscheme == "per_tensor_symmetric" and reduce_range and dtype == "quint8":
                continue  # refused by torch; checked in the unit tests
            out.append((dtype, qscheme, reduce_range, qrange))
    return out


def cases() -> list[Case]:
    """The whole corpus, in a fixed order: every configuration with two sequences.

    Averaging constants and eps rotate over the configurations, and the
    sequence parameters (family, input dtype, shape, length) rotate with
    coprime periods, so every value of each appears many times and in many
    combinations.
    """
    out: list[Case] = []
    for i, (dtype, qscheme, reduce_range, qrange) in enumerate(_configs()):
        for j, c in enumerate(AVERAGING):
            k = len(out)
            for rep in range(2):
                n = k + rep
                family = FAMILIES[n % len(FAMILIES)]
                in_dtype = INPUT_DTYPES[(n // 3) % len(INPUT_DTYPES)]
                if family in _FLOAT_ONLY and in_dtype in ("int8", "int32", "int64", "bool"):
                    in_dtype = "float32"
                if family == "beyond_f32":
                    in_dtype = "float64"
                out.append(
                    Case(
                        id=len(out),
                        averaging_constant=c,
                        dtype=dtype,
                        qscheme=qscheme,
                        reduce_range=reduce_range,
                        quant_range=qrange,
                        eps=EPS[(i + j) % len(EPS)],
                        family=family,
                        input_dtype=in_dtype,
                        shape=SHAPES[(n // 2) % len(SHAPES)],
                        batches=LENGTHS[(n // 5) % len(LENGTHS)],
                        seed=zlib.crc32(f"arrayobs-corpus-{CORPUS_VERSION}-{len(out)}".encode()),
                    )
                )
    return out


def _values(rng: np.random.RandomState, family: str, n: int, step: int) -> np.ndarray:
    """float64 values of one batch of ``family``."""
    if family == "mixed":
        family = FAMILIES[rng.randint(0, len(FAMILIES) - 1)]
    scale = 10.0 ** rng.uniform(-3, 3)
    ordinary = rng.standard_normal(n) * scale + rng.uniform(-1, 1) * scale
    if family == "constant":
        return np.full(n, ordinary[0] if n else 0.0)
    if family == "positive":
        return np.abs(ordinary) + scale / 100
    if family == "negative":
        return -np.abs(ordinary) - scale / 100
    if family == "zeros":
        return np.where(rng.rand(n) < 0.5, 0.0, -0.0)
    if family == "subnormal":
        return rng.uniform(-1, 1, n) * 1e-38 * 10.0 ** rng.uniform(-7, 0)
    if family == "near_max":
        return (
            np.sign(rng.standard_normal(n))
            * float(np.finfo(np.float32).max)
            * rng.uniform(0.5, 1, n)
        )
    if family == "beyond_f32":
        return rng.standard_normal(n) * 1e39
    if family in ("pos_inf", "neg_inf", "mixed_inf"):
        out = ordinary.copy()
        mask = rng.rand(n) < 0.3
        sign = {"pos_inf": 1.0, "neg_inf": -1.0}.get(family)
        infs = np.full(n, sign) if sign is not None else np.sign(rng.standard_normal(n))
        out[mask] = infs[mask] * np.inf
        if n and sign is not None and rng.rand() < 0.3:
            out[:] = sign * np.inf  # inf alone
        return out
    if family in ("nan_first", "nan_later"):
        out = ordinary.copy()
        if n and (step == 0) == (family == "nan_first"):
            out[rng.randint(0, n)] = np.nan
        return out
    return ordinary


def _bfloat16_values(v: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), NaN kept."""
    f = v.astype(np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    out = rounded.view(np.float32)
    return np.where(np.isnan(f), f, out)


def _cast(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bool":
        return v > 0
    if dtype in ("int8", "int32", "int64"):
        info = np.iinfo(dtype)
        return np.clip(np.rint(v * 50), info.min, info.max).astype(dtype)
    if dtype == "bfloat16":
        return _bfloat16_values(v)
    return v.astype(dtype)


def _size(shape: str, step: int, rng: np.random.RandomState) -> tuple[int, ...]:
    """The array shape of batch ``step``."""
    if shape == "empty_alone" or (shape == "empty_first" and step == 0):
        return (0,)
    if shape == "empty_between" and step % 2 == 1:
        return (0,)
    if shape == "scalar":
        return ()
    if shape == "one":
        return (1,)
    if shape == "large":
        return (8192,)
    if shape == "transposed":
        return (int(rng.randint(1, 9)), int(rng.randint(1, 9)))
    if shape == "strided":
        return (2 * int(rng.choice([1, 4, 32])),)
    return (int(rng.choice([1, 7, 64, 300])),)


def batches(case: Case) -> list[np.ndarray]:
    """The host batches of ``case``, each C-contiguous; see :func:`view_kind`."""
    rng = np.random.RandomState(case.seed)
    out = []
    with np.errstate(all="ignore"):
        for step in range(case.batches):
            shape = _size(case.shape, step, rng)
            n = int(np.prod(shape))
            values = _values(rng, case.family, n, step).reshape(shape)
            if case.input_dtype in ("int8", "int32", "int64", "bool"):
                # "mixed" can draw non-finite values; their integer cast is platform-defined.
                values = np.nan_to_num(values, nan=0.0, posinf=1e9, neginf=-1e9)
            out.append(np.ascontiguousarray(_cast(values, case.input_dtype)))
    return out


def view_kind(case: Case) -> str | None:
    """How the backend sees each batch: ``strided`` (x[::2]), ``transposed`` (.T) or as is."""
    return case.shape if case.shape in ("strided", "transposed") else None
