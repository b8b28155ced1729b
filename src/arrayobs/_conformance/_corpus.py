"""The conformance corpus: observer configurations x batch sequences, from seeds.

Per-tensor cases come first (MinMaxObserver, MovingAverageMinMaxObserver),
then per-channel ones (``ch_axis`` set: PerChannelMinMaxObserver,
MovingAveragePerChannelMinMaxObserver), whose batches have one fixed shape
per case (a layout: 1-d to 4-d, ch_axis 0, 1, -1 or the last axis, C = 1,
non-contiguous views) and whose families damage single channels.

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

# 2: per-channel cases added after the per-tensor ones, which are unchanged.
# 3: the fake-quantize section (_fq_corpus.py) added; the observer cases are unchanged.
CORPUS_VERSION = 3

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

# Per channel: layout -> (ch_axis, the batch shape from (C, K1, K2)); see _pc_shape.
LAYOUTS = (
    "2d_ch0",
    "2d_ch1",
    "2d_neg",
    "3d_mid",
    "3d_neg",
    "4d_nchw",
    "4d_last",
    "one_channel",
    "one_per_channel",
    "transposed",
    "columns",
    "empty_first",
)
PC_FAMILIES = (
    "ordinary",
    "constant_channel",
    "nan_channel",
    "inf_channel",
    "zeros",
    "subnormal",
    "near_max",
    "beyond_f32",
    "mixed_inf",
    "nan_later",
    "positive",
    "negative",
    "mixed",
)
PC_LENGTHS = (1, 2, 3, 5, 8)
# Families whose values an integer or bool input dtype can hold.
_INT_FAMILIES = ("ordinary", "constant_channel", "zeros", "positive", "negative")
CHANNELS = (1, 3, 8)


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
    ch_axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.ch_axis is not None

    @property
    def observer(self) -> str:
        kind = "minmax" if self.averaging_constant is None else "moving-average"
        return f"per-channel-{kind}" if self.per_channel else kind

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
        if self.ch_axis is not None:
            kw["ch_axis"] = self.ch_axis
        return kw

    def describe(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "quant_range": self.quant_range}


def _configs(
    qschemes: tuple[str, ...] = ("per_tensor_affine", "per_tensor_symmetric"),
) -> list[tuple[Any, ...]]:
    out = []
    for dtype in DTYPES:
        for qscheme, reduce_range, qrange in itertools.product(
            qschemes, (False, True), [None, *_RANGES[dtype]]
        ):
            if qscheme.endswith("_symmetric") and reduce_range and dtype == "quint8":
                continue  # refused by torch; checked in the unit tests
            out.append((dtype, qscheme, reduce_range, qrange))
    return out


_PC_QSCHEMES = ("per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams")
# ch_axis of each layout (the shapes are in _pc_shape).
_LAYOUT_AXIS = {
    "2d_ch0": 0,
    "2d_ch1": 1,
    "2d_neg": -1,
    "3d_mid": 1,
    "3d_neg": -1,
    "4d_nchw": 1,
    "4d_last": 3,
    "one_channel": 0,
    "one_per_channel": 0,
    "transposed": 0,
    "columns": 0,
    "empty_first": 1,
}


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
                        # "1": the seeds of version 1, whose cases are unchanged.
                        seed=zlib.crc32(f"arrayobs-corpus-1-{len(out)}".encode()),
                    )
                )
    return out + _per_channel_cases(len(out))


def _per_channel_cases(first_id: int) -> list[Case]:
    """Every per-channel configuration with two sequences; the averaging
    constant, eps, layout, family, input dtype and length rotate."""
    out: list[Case] = []
    for i, (dtype, qscheme, reduce_range, qrange) in enumerate(_configs(_PC_QSCHEMES)):
        for rep in range(2):
            n = 2 * i + rep
            family = PC_FAMILIES[n % len(PC_FAMILIES)]
            in_dtype = INPUT_DTYPES[(n // 3) % len(INPUT_DTYPES)]
            integral = in_dtype in ("int8", "int32", "int64", "bool")
            if integral and family not in _INT_FAMILIES:
                in_dtype = "float32"
            if family == "beyond_f32":
                in_dtype = "float64"
            layout = LAYOUTS[(n // 2) % len(LAYOUTS)]
            case_id = first_id + len(out)
            out.append(
                Case(
                    id=case_id,
                    averaging_constant=AVERAGING[n % len(AVERAGING)],
                    dtype=dtype,
                    qscheme=qscheme,
                    reduce_range=reduce_range,
                    quant_range=qrange,
                    eps=EPS[(i + rep) % len(EPS)],
                    family=family,
                    input_dtype=in_dtype,
                    shape=layout,
                    batches=PC_LENGTHS[(n // 5) % len(PC_LENGTHS)],
                    seed=zlib.crc32(f"arrayobs-corpus-pc-{case_id}".encode()),
                    ch_axis=_LAYOUT_AXIS[layout],
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


def _pc_shape(layout: str, c: int, k1: int, k2: int, step: int) -> tuple[int, ...]:
    """The host shape of a per-channel batch (before :func:`view_kind`'s view)."""
    shapes = {
        "2d_ch0": (c, k1),
        "2d_ch1": (k1, c),
        "2d_neg": (k1, c),
        "3d_mid": (k1, c, k2),
        "3d_neg": (k1, k2, c),
        "4d_nchw": (k2, c, k1, k2),
        "4d_last": (k2, k1, k2, c),
        "one_channel": (1, k1 * k2),
        "one_per_channel": (c, 1),
        "transposed": (k1, c),  # seen as x.T: (c, k1), ch_axis 0
        "columns": (c, 2 * k1),  # seen as x[:, ::2]
        "empty_first": (0 if step == 0 else k1, c),
    }
    return shapes[layout]


def _pc_values(rng: np.random.RandomState, case: Case, shape: tuple[int, ...], step: int) -> Any:
    """float64 values of one per-channel batch: a family, then one channel damaged."""
    n = int(np.prod(shape))
    family = case.family
    base = {"constant_channel": "ordinary", "nan_channel": "ordinary", "inf_channel": "ordinary"}
    values = _values(rng, base.get(family, family), n, step).reshape(shape)
    if n == 0 or family not in base:
        return values
    axis = _LAYOUT_AXIS[case.shape] % len(shape)
    if case.shape == "transposed":
        axis = 1  # the channel axis of the view x.T is the host's axis 1
    index: list[Any] = [slice(None)] * len(shape)
    index[axis] = int(rng.randint(0, shape[axis]))
    channel = tuple(index)
    if family == "constant_channel":
        values[channel] = values[channel].reshape(-1)[0]
    elif family == "nan_channel":
        values[channel] = np.nan
    elif step == 0 or rng.rand() < 0.5:  # inf_channel
        flat = values[channel].reshape(-1)
        flat[int(rng.randint(0, flat.size))] = np.inf if rng.rand() < 0.5 else -np.inf
        values[channel] = flat.reshape(values[channel].shape)
    return values


def batches(case: Case) -> list[np.ndarray]:
    """The host batches of ``case``, each C-contiguous; see :func:`view_kind`."""
    rng = np.random.RandomState(case.seed)
    if case.per_channel:
        return _pc_batches(case, rng)
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


def _pc_batches(case: Case, rng: np.random.RandomState) -> list[np.ndarray]:
    # One shape per case: a layer's weights or activations keep theirs.
    c = 1 if case.shape == "one_channel" else int(rng.choice(CHANNELS))
    k1, k2 = int(rng.choice([1, 2, 5])), int(rng.choice([1, 3]))
    out = []
    with np.errstate(all="ignore"):
        for step in range(case.batches):
            shape = _pc_shape(case.shape, c, k1, k2, step)
            values = _pc_values(rng, case, shape, step)
            if case.input_dtype in ("int8", "int32", "int64", "bool"):
                values = np.nan_to_num(values, nan=0.0, posinf=1e9, neginf=-1e9)
            out.append(np.ascontiguousarray(_cast(values, case.input_dtype)))
    return out


def view_kind(case: Case) -> str | None:
    """How the backend sees each batch: ``strided`` (x[::2]), ``transposed`` (.T),
    ``columns`` (x[:, ::2]) or as is."""
    return case.shape if case.shape in ("strided", "transposed", "columns") else None
