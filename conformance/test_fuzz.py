"""Property-based fuzzing against live torch 2.13.0, on every backend.

``ARRAYOBS_FUZZ_EXAMPLES`` sets the number of generated sequences per backend
(default 200, derandomized so CI is reproducible; the full profile,
``nox -s fuzz-full``, runs 10,000 with fresh randomness). A failure found by
fuzzing is kept below in ``REGRESSIONS`` and runs first, every time.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs import functional as F
from arrayobs._compat import to_host
from arrayobs._config import DTYPES
from arrayobs._conformance import Target
from arrayobs._conformance._corpus import _RANGES, EPS
from arrayobs._conformance._fq_corpus import DECOMPOSED, FQ_RANGES, MODULES, FQCase
from arrayobs._conformance._fq_runner import _our_module, _torch_module
from arrayobs._core._fakequant import dtype_name
from arrayobs.testing import assert_observers_match, assert_state_match, flushes_subnormals

EXAMPLES = int(os.environ.get("ARRAYOBS_FUZZ_EXAMPLES", "200"))
INPUT_DTYPES = ("float32", "float16", "float64")

# (observer kwargs, input dtype, batches): sequences that once failed, kept for good.
REGRESSIONS: list[tuple[dict[str, Any], str, list[list[float]]]] = [
    # Dask's reduction picked the other zero than torch's; with eps=0 the zero scale took its
    # sign (documented: a zero scale may differ in sign only where the zero state does).
    (
        {"dtype": "qint8", "qscheme": "per_tensor_symmetric", "eps": 0.0},
        "float16",
        [[0.0, 0.0, -0.0]],
    ),
    # jnp.min/max dropped a NaN from arrays of 4096+ elements on the CPU (fixed: _backends/_jax).
    ({"dtype": "quint8"}, "float32", [[1.0] * 4095 + [float("nan")] + [2.0] * 10]),
    # A moving average with c=1 crosses (min > max) by rounding; torch refuses, so must we.
    (
        {"averaging_constant": 1.0, "dtype": "uint16"},
        "float32",
        [[-1.2984851598739624, -0.9651013612747192], [0.00014145910972729325]],
    ),
    # XLA rewrote division by the constant 255 as a multiplication (fixed: functional._divisor).
    ({"dtype": "qint8"}, "float32", [[-0.6, 25.4]]),
]
# The same, per channel: (observer kwargs, input dtype, batches, batch shape).
CHANNEL_REGRESSIONS: list[tuple[dict[str, Any], str, list[list[float]], tuple[int, ...]]] = [
    # torch's float zero point 0.5 / scale is 1.1754942e-38, subnormal: JAX on the CPU
    # flushes it to 0.0 (the documented flushing, which now covers float zero points).
    (
        {
            "dtype": "quint4x2",
            "qscheme": "per_channel_affine_float_qparams",
            "reduce_range": True,
            "ch_axis": 0,
        },
        "float32",
        [[0.0, 2.9774709e38, -0.5]],
        (1, 3),
    ),
]


def _observers(torch: Any, backend: Any, kw: dict[str, Any]) -> tuple[Any, Any]:
    from torch.ao.quantization import observer as tobs

    kw = dict(kw)
    c = kw.pop("averaging_constant", None)
    tkw = {**kw, "dtype": getattr(torch, kw["dtype"])}
    if "qscheme" in kw:
        tkw["qscheme"] = getattr(torch, kw["qscheme"])
    per_channel = "ch_axis" in kw
    if c is None:
        cls = PerChannelMinMaxObserver if per_channel else MinMaxObserver
    else:
        cls = MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver
        kw["averaging_constant"] = tkw["averaging_constant"] = c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = cls(**kw, xp=backend.xp, device=backend.device)
        return ours, getattr(tobs, cls.__name__)(**tkw)


def _check(
    backend: Any,
    torch: Any,
    kw: dict[str, Any],
    in_dtype: str,
    batches: list[list[float]],
    shape: tuple[int, ...] = (-1,),
) -> None:
    ours, ref = _observers(torch, backend, kw)
    for step, values in enumerate(batches):
        host = np.asarray(values, dtype=np.float64).reshape(shape if values else (0,) * len(shape))
        t = torch.tensor(host).to(getattr(torch, in_dtype))
        ours(backend.from_torch(t))
        ref(t)
        where = f"[{backend.name} {kw} {in_dtype} batch {step}: {values}]"
        # Before the first non-empty batch both warn on qparams (tests/test_observer_api.py).
        check = assert_observers_match if ours._observed else assert_state_match
        flushes = flushes_subnormals(backend.xp, backend.device)
        check(ours, ref, xp=backend.xp, device=backend.device, where=where, flushes=flushes)


@pytest.mark.parametrize("index", range(len(REGRESSIONS)))
def test_regressions(backend: Any, torch_ref: Any, index: int) -> None:
    kw, in_dtype, batches = REGRESSIONS[index]
    if not backend.has(in_dtype):
        pytest.skip(f"{backend.name} has no {in_dtype}")
    _check(backend, torch_ref, kw, in_dtype, batches)


@pytest.mark.parametrize("index", range(len(CHANNEL_REGRESSIONS)))
def test_channel_regressions(backend: Any, torch_ref: Any, index: int) -> None:
    kw, in_dtype, batches, shape = CHANNEL_REGRESSIONS[index]
    _check(backend, torch_ref, kw, in_dtype, batches, shape)


@st.composite
def _configs(draw: st.DrawFn, allow_subnormal: bool) -> dict[str, Any]:
    dtype = draw(st.sampled_from(DTYPES))
    kw: dict[str, Any] = {
        "dtype": dtype,
        "qscheme": draw(st.sampled_from(["per_tensor_affine", "per_tensor_symmetric"])),
        "eps": draw(st.sampled_from(EPS)),
    }
    if draw(st.booleans()):
        kw["quant_min"], kw["quant_max"] = draw(st.sampled_from(_RANGES[dtype]))
    if kw["qscheme"] == "per_tensor_affine" or dtype != "quint8":
        kw["reduce_range"] = draw(st.booleans())
    c = draw(
        st.one_of(
            st.none(),
            st.sampled_from([0.0, 1.0, 1 / 3, 0.01, 0.5]),
            # Where subnormals flush, a product c * (cur - m) must stay normal:
            # c >= 2**-20 with |values| >= 1e-10 (below) keeps it above 1e-38.
            st.floats(0.0 if allow_subnormal else 2.0**-20, 1.0, width=32),
        )
    )
    if c is not None:
        kw["averaging_constant"] = c
    return kw


def _batches(allow_subnormal: bool) -> st.SearchStrategy[list[list[float]]]:
    value = st.floats(width=32, allow_subnormal=allow_subnormal)
    # Lengths from a small set, so JAX compiles each shape once.
    batch = st.sampled_from([0, 1, 3, 8]).flatmap(lambda n: st.lists(value, min_size=n, max_size=n))
    return st.lists(batch, min_size=1, max_size=8)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_sequences_match_torch(backend: Any, torch_ref: Any, data: st.DataObject) -> None:
    # JAX on CPU and CuPy flush subnormals, an averaging constant's too: a
    # documented deviation (tests/test_special_values.py), so none are drawn there.
    flushes = flushes_subnormals(backend.xp, backend.device)
    kw = data.draw(_configs(allow_subnormal=not flushes))
    in_dtype = data.draw(st.sampled_from([d for d in INPUT_DTYPES if backend.has(d)]))
    batches = data.draw(_batches(allow_subnormal=not flushes))
    if flushes:
        # Tiny normal values can give subnormal averages, or a subnormal scale where
        # eps = 0: keep clear of them there.
        batches = [[v if abs(v) >= 1e-10 else 0.0 for v in b] for b in batches]
    _check(backend, torch_ref, kw, in_dtype, batches)


@settings(
    max_examples=max(1, EXAMPLES // 2),
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_per_channel_sequences_match_torch(
    backend: Any, torch_ref: Any, data: st.DataObject
) -> None:
    """Per-channel observers on (rows, C) batches, ch_axis 0, 1 or -1."""
    flushes = flushes_subnormals(backend.xp, backend.device)
    kw = data.draw(_configs(allow_subnormal=not flushes))
    kw["qscheme"] = kw["qscheme"].replace("per_tensor", "per_channel")
    if data.draw(st.booleans()):
        kw["qscheme"] = "per_channel_affine_float_qparams"
    if kw["qscheme"] == "per_channel_symmetric" and kw["dtype"] == "quint8":
        kw.pop("reduce_range", None)
    kw["ch_axis"] = data.draw(st.sampled_from([0, 1, -1]))
    in_dtype = data.draw(st.sampled_from([d for d in INPUT_DTYPES if backend.has(d)]))
    channels, rows = data.draw(st.sampled_from([1, 2, 3])), data.draw(st.sampled_from([1, 3]))
    shape = (channels, rows) if kw["ch_axis"] == 0 else (rows, channels)
    value = st.floats(width=32, allow_subnormal=not flushes)
    batch = st.one_of(
        st.just([]), st.lists(value, min_size=rows * channels, max_size=rows * channels)
    )
    batches = data.draw(st.lists(batch, min_size=1, max_size=6))
    if flushes:
        batches = [[v if abs(v) >= 1e-10 else 0.0 for v in b] for b in batches]
    _check(backend, torch_ref, kw, in_dtype, batches, shape)


# -- fake quantization ---------------------------------------------------------------------
# The ops and the modules against live torch; fewer examples than the observers (each
# draws one call), the same profile: ARRAYOBS_FUZZ_EXAMPLES scales both.
FQ_EXAMPLES = max(1, EXAMPLES // 8)
MODULE_EXAMPLES = max(1, EXAMPLES // 40)


def _fq_same(got: Any, want: Any, where: str) -> None:
    """The same dtype, shape and values (NaN matches NaN; zeros' signs count)."""
    assert dtype_name(got.dtype) == dtype_name(want.dtype), where
    with np.errstate(all="ignore"):  # a lazy Dask result computes here
        g, w = to_host(got), to_host(want)
    assert g.shape == w.shape, where
    if g.dtype.kind == "f":
        g, w = g.astype(np.float64), w.astype(np.float64)
        same = ((g == w) & (np.signbit(g) == np.signbit(w))) | (np.isnan(g) & np.isnan(w))
    else:
        same = g == w
    assert same.all(), f"{where}: {g[~same][:5]} vs {w[~same][:5]}"


@settings(
    max_examples=FQ_EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_fake_quantize_matches_torch(
    backend: Any, torch_ref: Any, data: st.DataObject
) -> None:
    """fake_quantize_per_tensor/_per_channel_affine and quantize_per_tensor/_per_channel."""
    importlib.import_module("torch.ao.quantization.fx._decomposed")  # registers the ops
    torch = torch_ref
    flushes = flushes_subnormals(backend.xp, backend.device)
    wide = backend.has("float64")
    op = data.draw(st.sampled_from(["fq_tensor", "fq_channel", "q_tensor", "q_channel"]))
    decomposed = op.startswith("q_")
    pairs = DECOMPOSED if decomposed else [(None, r) for r in FQ_RANGES]
    # Without float64, exact only below 2**24 (documented).
    pairs = [p for p in pairs if wide or p[1][1] - p[1][0] < 2**24]
    dtype, (lo, hi) = data.draw(st.sampled_from(pairs))
    choices = ["float32", "float16", "bfloat16"] + ([] if decomposed else ["float64"])
    in_dtype = data.draw(st.sampled_from([d for d in choices if backend.has(d)]))
    scale = data.draw(st.floats(2.0**-100, 2.0**100, width=32))
    zp = data.draw(st.integers(lo, hi))
    channels, rows = data.draw(st.sampled_from([1, 3])), data.draw(st.sampled_from([1, 8]))
    value = st.one_of(
        st.floats(width=32, allow_subnormal=not flushes),
        st.integers(-300, 300).map(lambda k: (k + 0.5) * scale),  # ties
    )
    values = data.draw(st.lists(value, min_size=channels * rows, max_size=channels * rows))
    t = (
        torch.tensor(values, dtype=torch.float64)
        .reshape(channels, rows)
        .to(getattr(torch, in_dtype))
    )
    x = backend.from_torch(t)
    where = f"[{backend.name} {op} {in_dtype} scale={scale} zp={zp} ({lo}, {hi}) {values}]"
    ops = torch.ops.quantized_decomposed
    if op.endswith("tensor"):
        if op == "fq_tensor":
            want = torch.fake_quantize_per_tensor_affine(t, scale, zp, lo, hi)
            got = F.fake_quantize_per_tensor_affine(x, scale, zp, lo, hi)
        else:
            want = ops.quantize_per_tensor(t, scale, zp, lo, hi, getattr(torch, dtype))
            got = F.quantize_per_tensor(x, scale, zp, lo, hi, dtype)
    else:
        s = torch.tensor(
            [
                scale * f
                for f in data.draw(
                    st.lists(st.sampled_from([0.5, 1.0, 3.0]), min_size=channels, max_size=channels)
                )
            ],
            dtype=torch.float32,
        )
        z = torch.tensor([zp] * channels, dtype=torch.int32)
        s_b, z_b = backend.from_torch(s), backend.from_torch(z)
        if op == "fq_channel":
            want = torch.fake_quantize_per_channel_affine(t, s, z, 0, lo, hi)
            got = F.fake_quantize_per_channel_affine(x, s_b, z_b, 0, lo, hi)
        else:
            want = ops.quantize_per_channel(t, s, z, 0, lo, hi, getattr(torch, dtype))
            got = F.quantize_per_channel(x, s_b, z_b, 0, lo, hi, dtype)
    _fq_same(got, want, where)


@settings(
    max_examples=MODULE_EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_fake_quant_module_sequences_match_torch(
    backend: Any, torch_ref: Any, data: st.DataObject
) -> None:
    """A fake-quantize module over batches, observer and fake quantization switched at random."""
    torch = torch_ref
    flushes = flushes_subnormals(backend.xp, backend.device)
    # Exact only with float64 (documented): the fused module's qparams take double
    # steps, and float_qparams's float32 zero point is added in an FMA.
    names = [
        n
        for n in MODULES
        if backend.has("float64") or not ("fused" in n or "float_qparams" in str(MODULES[n]))
    ]
    name = data.draw(st.sampled_from(names))
    per_channel = "per_channel" in name or "ch_axis" in MODULES[name][2]
    flags = st.tuples(st.integers(0, 1), st.integers(0, 1))
    plan = data.draw(st.lists(flags, min_size=1, max_size=5))
    if per_channel:
        # torch fails before a first observation, and its fused module leaves scale and
        # zero_point unfilled (uninitialised memory) until it first fake-quantizes.
        plan[0] = (1, 1) if "fused" in name else (1, plan[0][1])
    case = FQCase(-1, "module", "float32", "", 0, module=name)
    ours = _our_module(Target(backend.name, backend.xp, backend.device), case)
    ref = _torch_module(torch, case)
    # Normal magnitudes where subnormals flush: no subnormal state or scale there.
    value = st.floats(-1e6, 1e6, width=32, allow_subnormal=not flushes)
    for step, (observe, fake_quant) in enumerate(plan):
        values = data.draw(st.lists(value, min_size=12, max_size=12))
        if flushes:
            values = [v if abs(v) >= 1e-10 else 0.0 for v in values]
        t = torch.tensor(values, dtype=torch.float32).reshape(3, 4)
        where = f"[{backend.name} {name} plan={plan} step {step}: {values}]"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for mod in (ours, ref):
                mod.enable_observer(bool(observe))
                mod.enable_fake_quant(bool(fake_quant))
            _fq_same(ours(backend.from_torch(t)), ref(t), where)
        _fq_same(ours.scale, ref.scale, where + " scale")
        _fq_same(ours.zero_point, ref.zero_point, where + " zero_point")


# -- torchao's affine primitives -------------------------------------------------------------
AFFINE_EXAMPLES = max(1, EXAMPLES // 8)
# (name, quant_min, quant_max): the storage dtype and range, as torchao's weight paths hold them.
AFFINE_TARGETS = [
    ("int8", -128, 127),
    ("uint8", 0, 255),
    ("int8", -8, 7),
    ("uint8", 0, 15),
    ("int16", -(2**15), 2**15 - 1),
]


@settings(
    max_examples=AFFINE_EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_affine_matches_torchao(backend: Any, torch_ref: Any, data: st.DataObject) -> None:
    """choose_qparams_affine, quantize_affine and dequantize_affine against live torchao."""
    tq = pytest.importorskip("torchao.quantization.quant_primitives")
    from arrayobs import affine

    torch = torch_ref
    flushes = flushes_subnormals(backend.xp, backend.device)
    mapping = data.draw(st.sampled_from(["ASYMMETRIC", "SYMMETRIC", "SYMMETRIC_NO_CLIPPING_ERR"]))
    name, lo, hi = data.draw(st.sampled_from(AFFINE_TARGETS))
    in_dtype = data.draw(
        st.sampled_from([d for d in ("float32", "bfloat16", "float16") if backend.has(d)])
    )
    if in_dtype == "float16" and not hasattr(backend.xp, "float16"):
        in_dtype = "float32"
    rows, groups, group = (data.draw(st.sampled_from(v)) for v in ([1, 4], [1, 3], [8, 16]))
    gran = data.draw(
        st.sampled_from(
            [affine.PerGroup(group), affine.PerAxis(0), affine.PerTensor(), affine.PerRow()]
        )
    )
    shape = (rows, groups * group)
    block = affine.get_block_size(shape, gran)
    value = st.one_of(
        st.floats(-1e4, 1e4, width=32, allow_subnormal=not flushes),
        st.sampled_from([0.0, -0.0, 0.5, -1.5, 2.5]),
    )
    n = rows * groups * group
    values = data.draw(st.lists(value, min_size=n, max_size=n))
    t = torch.tensor(values, dtype=torch.float32).reshape(shape).to(getattr(torch, in_dtype))
    x = backend.from_torch(t)
    where = f"[{backend.name} {mapping} {name} ({lo}, {hi}) {in_dtype} {gran} {values}]"
    tdtype = getattr(torch, name)
    want_s, want_z = tq.choose_qparams_affine(t, tq.MappingType[mapping], block, tdtype, lo, hi)
    got_s, got_z = affine.choose_qparams_affine(x, mapping, block, name, lo, hi)
    _fq_same(got_s, want_s, f"{where} scale")
    _fq_same(got_z, want_z, f"{where} zero_point")
    want_q = tq.quantize_affine(t, block, want_s, want_z, tdtype, lo, hi)
    got_q = affine.quantize_affine(x, block, got_s, got_z, name, lo, hi)
    _fq_same(got_q, want_q, f"{where} quantized")
    want_d = tq.dequantize_affine(want_q, block, want_s, want_z, tdtype, lo, hi)
    got_d = affine.dequantize_affine(got_q, block, got_s, got_z, name, lo, hi)
    _fq_same(got_d, want_d, f"{where} dequantized")


# -- HistogramObserver ---------------------------------------------------------------------
# Fewer examples than the observers: torch's search over a few spikes steps to its end
# (~0.2 s a call); ARRAYOBS_FUZZ_EXAMPLES scales it too.
HIST_EXAMPLES = max(1, EXAMPLES // 20)
HIST_BINS = [1, 2, 3, 7, 16, 256, 2048]


# (bins, (dtype, qscheme, reduce_range, quant_range), input dtype, batches): sequences
# that once failed, kept for good.
HIST_REGRESSIONS: list[tuple[int, Any, str, list[list[float]]]] = [
    # NumPy's min of [0.0, ..., -0.0, 1.0] is -0.0, torch's 0.0 (documented: "Signed zeros").
    (
        1,
        ("quint8", "per_tensor_affine", False, None),
        "float32",
        [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.0, 1.0]],
    ),
    # float16's (x - min) * bins overflows to inf: torch's int conversion gives bin 0, XLA's
    # saturates to the last bin (the corpus's JAX float16 mismatches; open).
    (2048, ("quint8", "per_tensor_affine", False, None), "float16", [[-30.0, 0.5, 30.0]]),
]


def _check_histogram(
    backend: Any,
    torch: Any,
    bins: int,
    config: Any,
    in_dtype: str,
    batches: list[list[float]],
) -> None:
    from torch.ao.quantization import HistogramObserver as TorchHistogram

    from arrayobs import HistogramObserver
    from arrayobs._conformance._hist_corpus import HistCase
    from arrayobs._conformance._hist_runner import _functional_steps, _observe, compare_hist_case
    from arrayobs._conformance._records import HistRecords

    dtype, qscheme, reduce_range, quant_range = config
    tensors = [torch.tensor(b, dtype=torch.float64).to(getattr(torch, in_dtype)) for b in batches]
    case = HistCase(-1, "fuzz", bins, in_dtype, dtype, qscheme, reduce_range, quant_range, 0, 0)
    kw = case.kwargs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        ours = HistogramObserver(**kw, xp=backend.xp, device=backend.device)
        tkw = {**kw, "dtype": getattr(torch, dtype), "qscheme": getattr(torch, qscheme)}
        ref = TorchHistogram(**tkw)
    want = _observe(ref, tensors, torch.int64)
    inputs = [backend.from_torch(t) for t in tensors]
    runs = {"eager": _observe(ours, inputs, backend.xp.int64)}
    if backend.name == "jax":  # and the functional core under jax.jit
        jit = Target(backend.name, backend.xp, backend.device, "jit")
        runs["jit"] = _functional_steps(jit, case, inputs)
    for mode, got in runs.items():
        _, bad, _, _, detail = compare_hist_case(
            Target(backend.name, backend.xp, backend.device, mode),
            case,
            HistRecords.from_steps([got]).case(0),
            HistRecords.from_steps([want]).case(0),
        )
        assert bad == 0, f"[{backend.name} {mode} {kw} {in_dtype} {batches}] {detail}"


def _histogram_backend(backend: Any) -> None:
    if backend.name == "array_api_strict:no_x64":
        pytest.skip("searchsorted returns int64, which the no_x64 device lacks")


@pytest.mark.parametrize("index", range(len(HIST_REGRESSIONS)))
def test_histogram_regressions(backend: Any, torch_ref: Any, index: int) -> None:
    _histogram_backend(backend)
    bins, config, in_dtype, batches = HIST_REGRESSIONS[index]
    if not backend.has(in_dtype):
        pytest.skip(f"{backend.name} has no {in_dtype}")
    _check_histogram(backend, torch_ref, bins, config, in_dtype, batches)


@settings(
    max_examples=HIST_EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES < 10_000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_histogram_sequences_match_torch(
    backend: Any, torch_ref: Any, data: st.DataObject
) -> None:
    """HistogramObserver over random batches: the histogram bits, min_val, max_val,
    scale bits, zero point and both warnings after every batch."""
    from arrayobs._conformance._hist_corpus import CONFIGS

    _histogram_backend(backend)
    flushes = flushes_subnormals(backend.xp, backend.device)
    bins = data.draw(st.sampled_from(HIST_BINS))
    config = data.draw(st.sampled_from(CONFIGS))
    in_dtype = data.draw(
        st.sampled_from(
            [d for d in ("float32", "float16", "bfloat16", "float64") if backend.has(d)]
        )
    )
    scale = data.draw(st.sampled_from([1e-3, 1.0, 1e3]))
    value = st.one_of(
        st.floats(-1e4, 1e4, width=32, allow_subnormal=not flushes).map(lambda v: v * scale),
        st.sampled_from([0.0, 1.0, float("inf"), float("-inf")]),
    )
    # Lengths from a small set, so JAX compiles each shape once.
    batch = st.sampled_from([1, 8, 32]).flatmap(lambda n: st.lists(value, min_size=n, max_size=n))
    batches = data.draw(st.lists(batch, min_size=1, max_size=4))
    if flushes:
        batches = [[v if abs(v) >= 1e-30 else 0.0 for v in b] for b in batches]
    _check_histogram(backend, torch_ref, bins, config, in_dtype, batches)
