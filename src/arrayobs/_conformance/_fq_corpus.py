"""The fake-quantize section of the corpus: the ops and the modules, from seeds.

Op cases call one of :data:`OPS` once on one input (torch's ATen
fake-quantize ops and the ``quantized_decomposed`` ops). Each input mixes a
family's values with a fixed block of specials (±0, ±inf, NaN, a subnormal,
huge values, ±65504), at a scale from 1e-30 to 1e20; the ``ties`` family holds
``(k + 0.5) * scale`` (exact where the input dtype can hold it, which the
power-of-two and short-mantissa scales make common) and its float neighbours.
Zero points sit at the bounds, at 0 and in between; every target range
(uint8, int8, int16, int32, (0, 15), (-8, 7), and (0, 2**25) for a zero point
beyond float32's integers) and input dtype (float16, bfloat16, float32, float64)
appears.

Module cases run a fake-quantize module (torch.ao's factories, and a few
configurations of ``FakeQuantize`` and ``FusedMovingAvgObsFakeQuantize``)
over several batches with the observer and fake quantization switched on and
off by a plan; each batch records the output, ``scale`` and ``zero_point``,
and the last the whole ``state_dict``.

Every value is a pure function of the case's parameters (NumPy's legacy
``RandomState``, as the observer corpus); bfloat16 inputs are carried as
float32 arrays holding bfloat16 values.
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Any

import numpy as np

from arrayobs._conformance._corpus import _bfloat16_values

OPS = (
    "fake_quantize_per_tensor_affine",
    "fake_quantize_per_channel_affine",
    "quantize_per_tensor",
    "dequantize_per_tensor",
    "quantize_per_channel",
    "dequantize_per_channel",
)
FAMILIES = ("ordinary", "ties", "specials", "saturate", "subnormal", "huge")
# float32-exact scales, tiny to huge; 2**-7, 0.375, 1, 48 and 2**-20 make float32 ties exact.
SCALES = (2.0**-7, 0.0173, 1e-30, 0.375, 12345.678, 0.1, 1.0, 1e20, 2.0**-20, 3.7, 48.0, 1e-3)
# The ATen fake-quantize ops' ranges: every integer target, sub-byte, and beyond float32's integers.
FQ_RANGES = (
    (0, 255),
    (-128, 127),
    (-(2**15), 2**15 - 1),
    (-(2**31), 2**31 - 1),
    (0, 15),
    (-8, 7),
    (0, 2**25),
)
# The decomposed ops: (dtype, range), the full range and a sub-byte one.
DECOMPOSED = (
    ("uint8", (0, 255)),
    ("int8", (-128, 127)),
    ("int16", (-(2**15), 2**15 - 1)),
    ("int32", (-(2**31), 2**31 - 1)),
    ("uint8", (0, 15)),
    ("int8", (-8, 7)),
)
FQ_INPUTS = ("float32", "float16", "bfloat16", "float64")
DECOMPOSED_INPUTS = ("float32", "float16", "bfloat16")
OUT_DTYPES = ("float32", "float64", "float16")
ZP_DTYPES = ("int32", "float32", "float16")
# Per channel: the layouts (C, K), (K, C) and (2, C, K), by their channel axis.
CHANNEL_LAYOUTS = (0, 1, 1)
SPECIALS = (0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3e-39, 3e38, -1e30, 65504.0, -65504.0)
N = 96  # values of a family per input, besides the specials

# Module name -> (class, observer, keyword arguments); names with "default" or
# "range" are torch.ao's factories of that name, built without arguments.
MODULES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "default_fake_quant": ("", "", {}),
    "default_weight_fake_quant": ("", "", {}),
    "default_per_channel_weight_fake_quant": ("", "", {}),
    "default_fused_act_fake_quant": ("", "", {}),
    "default_fused_wt_fake_quant": ("", "", {}),
    "default_fused_per_channel_wt_fake_quant": ("", "", {}),
    "fused_wt_fake_quant_range_neg_127_to_127": ("", "", {}),
    "fused_per_channel_wt_fake_quant_range_neg_127_to_127": ("", "", {}),
    "fq_4bit_affine": (
        "FakeQuantize",
        "MovingAverageMinMaxObserver",
        {"quant_min": 0, "quant_max": 15, "dtype": "quint8", "averaging_constant": 0.5},
    ),
    "fq_minmax_symmetric": (
        "FakeQuantize",
        "MinMaxObserver",
        {"quant_min": -8, "quant_max": 7, "dtype": "qint8", "qscheme": "per_tensor_symmetric"},
    ),
    "fq_per_channel_axis1": (
        "FakeQuantize",
        "MovingAveragePerChannelMinMaxObserver",
        {
            "quant_min": -128,
            "quant_max": 127,
            "dtype": "qint8",
            "qscheme": "per_channel_affine",
            "ch_axis": 1,
        },
    ),
    "fq_float_qparams": (
        "FakeQuantize",
        "PerChannelMinMaxObserver",
        {
            "quant_min": 0,
            "quant_max": 255,
            "dtype": "quint8",
            "qscheme": "per_channel_affine_float_qparams",
            "ch_axis": 0,
        },
    ),
    "fused_4bit": (
        "FusedMovingAvgObsFakeQuantize",
        "MovingAverageMinMaxObserver",
        {"quant_min": 0, "quant_max": 15, "dtype": "quint8", "averaging_constant": 0.5},
    ),
    "fused_int16_symmetric": (
        "FusedMovingAvgObsFakeQuantize",
        "MovingAverageMinMaxObserver",
        {
            "quant_min": -(2**15),
            "quant_max": 2**15 - 1,
            "dtype": "qint32",
            "qscheme": "per_tensor_symmetric",
            "averaging_constant": 1.0,
        },
    ),
}
# (observer on, fake quant on) per batch.
PLANS = (
    ((1, 1), (1, 1), (1, 1)),
    ((1, 1), (0, 1), (1, 0), (0, 0), (1, 1)),
    ((1, 0), (1, 0), (1, 1), (0, 1)),
    ((0, 1), (1, 1), (0, 1), (1, 1)),
    ((0, 0), (1, 1), (1, 1), (0, 1), (1, 1), (1, 1)),
)
MODULE_FAMILIES = ("ordinary", "tiny", "growing", "edges")
MODULE_INPUTS = ("float32", "float16", "bfloat16", "float64")


@dataclasses.dataclass(frozen=True)
class FQCase:
    """One op call, or one module over a plan of batches."""

    id: int
    op: str  # one of OPS, or "module"
    input_dtype: str
    family: str
    seed: int
    scale: float = 1.0
    zero_point: int = 0
    quant_range: tuple[int, int] = (0, 255)
    dtype: str | None = None  # the decomposed ops' integer dtype
    out_dtype: str | None = None  # dequantize
    zp_dtype: str | None = None  # fake_quantize_per_channel_affine
    layout: int | None = None  # per channel: index into CHANNEL_LAYOUTS
    module: str | None = None
    plan: tuple[tuple[int, int], ...] = ()

    @property
    def per_channel(self) -> bool:
        return self.layout is not None

    @property
    def axis(self) -> int:
        return CHANNEL_LAYOUTS[self.layout or 0]

    @property
    def fused(self) -> bool:
        return self.module is not None and "fused" in self.module

    @property
    def needs_float64(self) -> bool:
        """Exact only with float64 arithmetic (documented): float64 values, the fused
        module's qparams, a float32 zero point per channel (torch fuses its add into
        an FMA; float_qparams), or zero points and ranges beyond float32's integers (2**24)."""
        if "float64" in (self.input_dtype, self.out_dtype) or self.fused:
            return True
        if self.zp_dtype == "float32" or (
            self.module is not None and "float_qparams" in str(MODULES[self.module][2])
        ):
            return True
        lo, hi = self.quant_range
        return hi - lo >= 2**24 or max(abs(lo), abs(hi)) > 2**24

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _zero_points(lo: int, hi: int) -> tuple[int, ...]:
    """At the bounds, at 0 (where in range) and in between."""
    mid = lo + (hi - lo) // 3
    return (lo, hi, 0 if lo <= 0 <= hi else mid, mid)


def cases() -> list[FQCase]:
    """The section, in a fixed order: ops, then modules."""
    out: list[FQCase] = []

    def add(**kw: Any) -> None:
        seed = zlib.crc32(f"arrayobs-fq-{len(out)}".encode())
        out.append(FQCase(id=len(out), seed=seed, **kw))

    n = 0
    for op in OPS:
        decomposed = "fake" not in op
        pairs = DECOMPOSED if decomposed else [(None, r) for r in FQ_RANGES]
        for dtype, (lo, hi) in pairs:
            for zp, _rep in itertools.product(_zero_points(lo, hi), range(2)):
                n += 1
                inputs = DECOMPOSED_INPUTS if op.startswith("quantize") else FQ_INPUTS
                # Family, scale and input dtype rotate with periods that let every
                # family meet every scale and input dtype.
                m, f = divmod(n, len(FAMILIES))
                kw: dict[str, Any] = {
                    "op": op,
                    "input_dtype": inputs[(m + f) % len(inputs)],
                    "family": FAMILIES[f],
                    "scale": SCALES[(7 * m + f) % len(SCALES)],
                    "zero_point": zp,
                    "quant_range": (lo, hi),
                    "dtype": dtype,
                }
                if op.startswith("dequantize"):
                    kw["input_dtype"] = dtype
                    kw["out_dtype"] = OUT_DTYPES[n % len(OUT_DTYPES)]
                if op.endswith("per_channel") or op.endswith("channel_affine"):
                    kw["layout"] = n % len(CHANNEL_LAYOUTS)
                if op == "fake_quantize_per_channel_affine":
                    # Float zero points (float_qparams) only where float16 holds the range.
                    wide = hi - lo > 2**16
                    kw["zp_dtype"] = "int32" if wide else ZP_DTYPES[(n // 2) % len(ZP_DTYPES)]
                add(**kw)
    for i, name in enumerate(MODULES):
        for rep in range(2):
            k = 2 * i + rep
            in_dtype = "float32" if "fused" in name else MODULE_INPUTS[k % len(MODULE_INPUTS)]
            plan = PLANS[k % len(PLANS)]
            if "ch_axis" in MODULES[name][2] or "per_channel" in name:
                # Per channel, the first batch is observed (and, fused, fake-quantized):
                # before that torch's FakeQuantize fails (qparams of one channel) and its
                # fused module resizes scale and zero_point without filling them.
                while plan[0][0] == 0 or ("fused" in name and plan[0] != (1, 1)):
                    plan = PLANS[(PLANS.index(plan) + 1) % len(PLANS)]
            add(
                op="module",
                input_dtype=in_dtype,
                family=MODULE_FAMILIES[k % len(MODULE_FAMILIES)],
                module=name,
                plan=plan,
            )
    return out


def _cast(v: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return _bfloat16_values(v)
    return v.astype(dtype)


def _family(rng: np.random.RandomState, case: FQCase, n: int) -> np.ndarray:
    """float64 values of ``case.family`` around the case's range, in units of the scale."""
    s = float(np.float32(case.scale))
    lo, hi = case.quant_range
    zp = case.zero_point
    width = float(min(hi - lo, 2**20))
    if case.family == "ties":
        k = rng.randint(-int(min(width, 300)), int(min(width, 300)) + 1, n // 2) + 0.5
        ties = k * s
        near = np.nextafter(
            ties.astype(np.float32), np.float32(np.inf) * np.sign(rng.randn(n // 2))
        )
        return np.concatenate([ties, near.astype(np.float64), np.zeros(n - 2 * (n // 2))])
    if case.family == "specials":
        edges = np.asarray([lo - zp - 0.5, hi - zp + 0.5, lo - zp, hi - zp, 0.5, -0.5, 1.5])
        tail = rng.standard_normal(n - edges.size) * width * s
        return np.concatenate([edges * s, tail])
    if case.family == "saturate":
        return rng.standard_normal(n) * width * s * 10.0 ** rng.uniform(0, 6, n)
    if case.family == "subnormal":
        return rng.uniform(-1, 1, n) * 1e-38 * 10.0 ** rng.uniform(-7, 0, n)
    if case.family == "huge":
        return np.sign(rng.standard_normal(n)) * 10.0 ** rng.uniform(20, 38.5, n)
    return (rng.standard_normal(n) * width / 4 + (lo + hi) / 2 - zp) * s


def _quantized(rng: np.random.RandomState, case: FQCase, n: int) -> np.ndarray:
    """Integer inputs of the dequantize ops: the bounds, the zero point and values between."""
    lo, hi = case.quant_range
    fixed = np.asarray([lo, hi, case.zero_point, lo + 1, hi - 1], dtype=np.int64)
    return np.concatenate([fixed, rng.randint(lo, hi, n - fixed.size, dtype=np.int64)])


def arguments(case: FQCase) -> dict[str, np.ndarray]:
    """The host arrays of an op case: ``x`` (C-contiguous), and per channel the
    ``scale`` (float32) and ``zero_point`` of each channel."""
    rng = np.random.RandomState(case.seed)
    n = N + len(SPECIALS)
    with np.errstate(all="ignore"):
        if case.op.startswith("dequantize"):
            x = _quantized(rng, case, n).astype(case.dtype)
        else:
            values = np.concatenate([_family(rng, case, N), SPECIALS])
            x = _cast(values[rng.permutation(n)], case.input_dtype)
    out = {"x": x}
    if not case.per_channel:
        return out
    c = int(rng.choice([1, 3, 4]))
    host_shape = _channel_shape(c, case.layout or 0, x.size)
    out["x"] = np.ascontiguousarray(x[: int(np.prod(host_shape))].reshape(host_shape))
    lo, hi = case.quant_range
    factors = rng.uniform(0.5, 2.0, c)
    out["scale"] = (factors * case.scale).astype(np.float32)
    zps = np.asarray([case.zero_point, lo, hi, lo + (hi - lo) // 2])[rng.randint(0, 4, c)]
    zps[0] = case.zero_point
    if case.zp_dtype in ("float32", "float16"):
        out["zero_point"] = (zps + rng.uniform(-0.5, 0.5, c)).astype(case.zp_dtype)
    else:
        out["zero_point"] = zps.astype("int32")
    return out


def _channel_shape(c: int, layout: int, size: int) -> tuple[int, ...]:
    """(C, K), (K, C) or (2, C, K) with as many values as fit."""
    if layout == 0:
        return (c, size // c)
    if layout == 1:
        return (size // c, c)
    return (2, c, size // (2 * c))


BATCH_SHAPE = (4, 16)


def module_batches(case: FQCase) -> list[np.ndarray]:
    """One host batch of shape (4, 16) per step of the plan, in the input dtype."""
    rng = np.random.RandomState(case.seed)
    out = []
    with np.errstate(all="ignore"):
        for step in range(len(case.plan)):
            magnitude = 10.0 ** rng.uniform(-1, 1)
            if case.family == "tiny":
                magnitude = [1.0, 1e-6, 1e-9, 2.0][step % 4]
            elif case.family == "growing":
                magnitude = 3.0**step
            v = rng.standard_normal(BATCH_SHAPE) * magnitude + rng.choice([0.0, magnitude])
            if case.family == "edges":
                flat = v.reshape(-1)
                flat[: step % 3] = [0.0, -0.0][: step % 3]
                if step == 1:
                    flat[:] = 0.5  # a constant batch
            out.append(np.ascontiguousarray(_cast(v, case.input_dtype)))
    return out
