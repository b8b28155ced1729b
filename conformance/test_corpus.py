"""Every backend and mode against the stored torch reference; the reference against live torch."""

from __future__ import annotations

import collections
import itertools
import json
from typing import Any

import numpy as np
import pytest

from arrayobs import _conformance as C
from arrayobs._conformance import _corpus
from conformance.conftest import sample


def test_stored_reference_is_what_live_torch_computes(
    torch_ref: Any, reference: Any, live_check: None
) -> None:
    stored, meta = reference
    live = C.generate_reference()
    assert meta["torch"].startswith("2.13.0")
    for field in ("case_offsets", *C._records.FIELDS):
        got, want = getattr(live, field), getattr(stored, field)
        assert np.array_equal(got, want), f"{field} differs from live torch {torch_ref.__version__}"


def test_reference_describes_this_corpus(reference: Any) -> None:
    stored, meta = reference
    cases = C.cases()
    assert meta["corpus_version"] == C.CORPUS_VERSION
    assert [c.describe() for c in cases] == [
        {**d, "quant_range": tuple(d["quant_range"]) if d["quant_range"] else None}
        for d in meta["cases"]
    ]
    assert len(stored.case_offsets) == len(cases) + 1
    assert [len(C.batches(c)) for c in cases[:50]] == [c.batches for c in cases[:50]]


def test_corpus_covers_what_conformance_promises() -> None:
    cases = C.cases()
    seen = {
        f: collections.Counter(getattr(c, f) for c in cases)
        for f in _corpus.Case.__dataclass_fields__
    }
    assert set(seen["family"]) == set(_corpus.FAMILIES) | set(_corpus.PC_FAMILIES)
    assert set(seen["input_dtype"]) == set(_corpus.INPUT_DTYPES)
    assert set(seen["shape"]) == set(_corpus.SHAPES) | set(_corpus.LAYOUTS)
    assert set(seen["averaging_constant"]) == set(_corpus.AVERAGING)
    assert set(seen["eps"]) == set(_corpus.EPS)
    assert set(seen["batches"]) == set(_corpus.LENGTHS)
    assert set(seen["ch_axis"]) == {None, 0, 1, -1, 3}
    assert {(c.dtype, c.quant_range) for c in cases} >= {
        ("qint8", (-8, 7)),
        ("quint8", (0, 15)),
        ("int8", (-3, 3)),
        ("qint8", (-127, 127)),
        ("quint8", (0, 1000)),
        ("qint32", (-(2**31), 2**31 - 1)),
    }
    assert {c.qscheme for c in cases} == {
        "per_tensor_affine",
        "per_tensor_symmetric",
        "per_channel_affine",
        "per_channel_symmetric",
        "per_channel_affine_float_qparams",
    }
    assert {c.reduce_range for c in cases} == {False, True}
    stored = C.load()[0]
    status = collections.Counter(stored.status.tolist())
    assert all(status[s] > 0 for s in (0, 1, 2)), status
    # Per channel: every layout and family, C = 1 and C > 1, float zero points, and
    # the channel-damaging families really damage one channel (NaN, inf, constant).
    per_channel = [c for c in cases if c.per_channel]
    assert {c.shape for c in per_channel} == set(_corpus.LAYOUTS)
    assert {c.family for c in per_channel} == set(_corpus.PC_FAMILIES)
    assert stored.zp_float.any() and (stored.channel > 0).any()
    shapes = [b.shape for c in per_channel for b in C.batches(c)]
    assert {len(s) for s in shapes} == {2, 3, 4}
    nan_channel = next(c for c in per_channel if c.family == "nan_channel")
    host = C.batches(nan_channel)[0]
    axis = _corpus._LAYOUT_AXIS[nan_channel.shape] % host.ndim
    assert np.isnan(host).any(axis=tuple(i for i in range(host.ndim) if i != axis)).sum() == 1


# The main corpus runs whole on NumPy, torch and array-api-strict; on the slow targets a
# sample that still covers every value of every field (conftest.sample: 269 of 1,458
# cases on Dask, 387 on JAX), whole in the conformance-full sessions and in
# ``arrayobs compare``.
_MAIN_SAMPLE = {("dask", "lazy"): 6, ("dask", "eager"): 6, ("jax", "eager"): 4, ("jax", "jit"): 4}


def test_target_matches_reference(target: C.Target, reference: Any) -> None:
    stored, _ = reference
    cases = sample(C.cases(), _MAIN_SAMPLE.get((target.library, target.mode), 1))
    summary = C.run_target(target, cases, stored)
    print(
        f"\n{summary.label}: {summary.cases} cases, {summary.batches} batches, "
        f"{summary.mismatches} mismatches, {summary.deviations} documented deviations, "
        f"{summary.skipped} cases skipped (input dtype not on this backend), "
        f"{summary.seconds_per_update * 1e6:.0f} us/update"
    )
    assert summary.cases > 0
    assert summary.mismatches == 0, "\n".join(summary.failures)
    if not target.flushes_subnormals:
        assert summary.deviations == 0


# -- the fake-quantize section ------------------------------------------------------------
def test_stored_fake_quant_reference_is_what_live_torch_computes(
    torch_ref: Any, reference: Any, live_check: None
) -> None:
    stored = C.load_fake_quant()
    live = C.generate_fake_quant_reference()
    for field, want in stored.fields().items():
        got = live.fields()[field]
        assert np.array_equal(got, want), f"{field} differs from live torch {torch_ref.__version__}"


def test_fake_quant_section_covers_what_it_promises(reference: Any) -> None:
    from arrayobs._conformance import _fq_corpus as Q

    _, meta = reference
    cases = C.fake_quant_cases()
    assert meta["fake_quant_cases"] == [
        {**c.describe(), "quant_range": list(c.quant_range), "plan": [list(p) for p in c.plan]}
        for c in cases
    ]
    assert len(C.load_fake_quant().case_offsets) == len(cases) + 1
    ops = [c for c in cases if c.op != "module"]
    assert {c.op for c in ops} == set(Q.OPS)
    assert {c.family for c in ops} == set(Q.FAMILIES)
    assert {c.scale for c in ops} == set(Q.SCALES)
    assert {c.quant_range for c in ops} >= set(Q.FQ_RANGES)
    assert {(c.dtype, c.quant_range) for c in ops if c.dtype} == set(Q.DECOMPOSED)
    for op in ("fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine"):
        assert {c.input_dtype for c in ops if c.op == op} == set(Q.FQ_INPUTS), op
    assert {c.zp_dtype for c in ops} == {None, *Q.ZP_DTYPES}
    assert {c.out_dtype for c in ops} == {None, *Q.OUT_DTYPES}
    # Zero points at both bounds of every range.
    for lo, hi in Q.FQ_RANGES:
        zps = {c.zero_point for c in ops if c.quant_range == (lo, hi)}
        assert {lo, hi} <= zps
    # The inputs hold ties, both zeros, infinities, NaN, subnormal and huge values.
    x = np.concatenate([Q.arguments(c)["x"].astype(np.float64).ravel() for c in ops])
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (np.signbit(x) & (x == 0)).any() and (~np.signbit(x) & (x == 0)).any()
    assert ((np.abs(x) > 0) & (np.abs(x) < 1.2e-38)).any() and (
        np.abs(x[np.isfinite(x)]) > 1e37
    ).any()
    exact = [
        c
        for c in ops
        if c.family == "ties"
        and c.scale in (2.0**-7, 1.0, 2.0**-20)
        and c.input_dtype in ("float32", "float64")
        and not c.op.startswith("deq")
    ]
    for case in exact:
        t = Q.arguments(case)["x"].astype(np.float64) / case.scale
        assert (t[np.isfinite(t)] % 1 == 0.5).sum() >= 20, case
    modules = [c for c in cases if c.op == "module"]
    assert {c.module for c in modules} == set(Q.MODULES)
    assert {c.plan for c in modules} == set(Q.PLANS)
    assert {c.input_dtype for c in modules} == set(Q.MODULE_INPUTS)


def test_fake_quant_target_matches_reference(target: C.Target) -> None:
    if target.mode == "lazy":
        pytest.skip("the ops are lazy on Dask in every mode: the eager target runs them")
    summary = C.run_fq_target(target, C.fake_quant_cases(), C.load_fake_quant())
    print(
        f"\n{summary.label} fake quantize: {summary.cases} cases, {summary.batches} outputs, "
        f"{summary.mismatches} mismatches, {summary.deviations} documented deviations, "
        f"{summary.skipped} skipped, {summary.seconds_per_update * 1e6:.0f} us/call"
    )
    assert summary.cases > 0
    assert summary.mismatches == 0, "\n".join(summary.failures)
    if not target.flushes_subnormals:
        assert summary.deviations == 0


# -- the affine section (torchao 0.18.0) --------------------------------------------------
# The section runs whole on NumPy, torch and array-api-strict; JAX (eagerly each op
# compiles alone) and Dask run every N-th case here, every case in ``arrayobs compare
# --cases affine`` and in the fuzz-full sessions (conformance/test_fuzz.py).
_AFFINE_STRIDE = {("jax", "eager"): 34, ("jax", "jit"): 5, ("dask", "eager"): 7}


def _affine_cases(target: C.Target) -> list[Any]:
    return C.affine_cases()[:: _AFFINE_STRIDE.get((target.library, target.mode), 1)]


def test_stored_affine_reference_is_what_live_torchao_computes(
    torch_ref: Any, live_check: None
) -> None:
    pytest.importorskip("torchao")
    stored, meta = C.load_affine()
    assert meta["torchao"] == "0.18.0" and meta["torch"].startswith("2.13.0")
    assert stored.equal(C.generate_affine_reference()), "differs from live torchao 0.18.0"


def test_affine_section_covers_what_it_promises() -> None:
    from arrayobs._conformance import _affine_corpus as A

    stored, meta = C.load_affine()
    cases = C.affine_cases()
    assert meta["corpus_version"] == A.CORPUS_VERSION
    assert meta["cases"] == [json.loads(json.dumps(c.describe())) for c in cases]
    assert len(stored.case_offsets) == len(cases) + 1
    choose = [c for c in cases if c.op == "choose"]
    assert {(c.mapping, c.granularity, c.target) for c in choose} == set(
        itertools.product(A.MAPPINGS, A.GRANULARITIES, A.TARGETS)
    )
    for field, allowed in (
        ("input_dtype", A.INPUTS),
        ("family", A.FAMILIES),
        ("eps", A.EPS),
        ("scale_dtype", A.SCALE_DTYPES),
        ("zero_point_dtype", A.ZP_DTYPES),
        ("out_dtype", A.OUT_DTYPES),
        ("keepdim", (False, True)),
    ):
        assert {getattr(c, field) for c in choose} == set(allowed), field
    assert {c.op for c in cases} == {"choose", "with_min_max", "float8", "observer"}
    float8 = [c for c in cases if c.op == "float8"]
    assert {(c.target, c.float8_kind, c.scale_dtype) for c in float8} == set(
        itertools.product(A.TARGETS[6:], A.FLOAT8_KINDS, A.FLOAT8_SCALES)
    )
    assert {c.hp_bounds for c in float8} == set(A.FLOAT8_BOUNDS)
    assert {c.observer for c in cases if c.op == "observer"} == set(range(len(A.OBSERVERS)))
    # The inputs hold ties, both zeros, infinities, NaN, subnormal and heavy-tailed values.
    xs = [A.arguments(c)["x"].astype(np.float64).ravel() for c in choose + float8]
    x = np.concatenate(xs)
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (np.signbit(x) & (x == 0)).any() and (~np.signbit(x) & (x == 0)).any()
    assert ((np.abs(x) > 0) & (np.abs(x) < 1.17e-38)).any() and (np.abs(x) > 1e6).any()
    ties = [c for c in choose if c.family == "ties" and c.input_dtype == "float32"]
    assert ties and all(
        ((A.arguments(c)["x"] / A._unit(c)) % 1 == 0.5).sum() >= 100 for c in ties
    ), "ties"
    # Every row dtype: scale bits in their dtype, zero points, integers, float8 and floats.
    dtypes = {C._records.AFFINE_DTYPES[d] for d in stored.dtype}
    assert dtypes >= {"float32", "float16", "bfloat16", "float64", "int32", "int8", "uint8"}
    assert dtypes >= {"int16", "float8_e4m3fn", "float8_e5m2", "none"}


def test_affine_target_matches_reference(target: C.Target) -> None:
    if target.mode == "lazy":
        pytest.skip("the functions are lazy on Dask in every mode: the eager target runs them")
    cases = _affine_cases(target)
    summary = C.run_affine_target(target, cases, C.load_affine()[0])
    print(
        f"\n{summary.label} affine: {summary.cases} cases, {summary.batches} outputs, "
        f"{summary.mismatches} mismatches, {summary.deviations} documented deviations, "
        f"{summary.skipped} skipped (dtype not on this backend), "
        f"{summary.seconds_per_update * 1e6:.0f} us/call"
    )
    assert summary.cases > 0
    assert summary.mismatches == 0, "\n".join(summary.failures)


# -- the histogram section (HistogramObserver, torch 2.13.0) ---------------------------------
# Eager targets run the observer class, JAX's jit target the functional core under
# jax.jit and Dask's lazy one the core lazily (see _hist_runner). Dask runs every other
# case here eagerly (each batch computes) and every eighth lazily (about 0.6 s a batch:
# some 650 tasks each), every case in ``arrayobs compare``.
_HIST_STRIDE = {("dask", "eager"): 2, ("dask", "lazy"): 8}


def test_stored_histogram_reference_is_what_live_torch_computes(
    torch_ref: Any, live_check: None
) -> None:
    stored, meta = C.load_histogram()
    assert meta["torch"].startswith("2.13.0")
    live = C.generate_histogram_reference()
    for field in C._records.HIST_FIELDS:
        got, want = getattr(live, field), getattr(stored, field)
        assert np.array_equal(got, want), f"{field} differs from live torch {torch_ref.__version__}"


def test_histogram_section_covers_what_it_promises() -> None:
    from arrayobs._conformance import _hist_corpus as H

    stored, meta = C.load_histogram()
    cases = C.histogram_cases()
    assert meta["corpus_version"] == H.CORPUS_VERSION
    assert meta["cases"] == [json.loads(json.dumps(c.describe())) for c in cases]
    assert len(stored.hist_case_offsets) == len(cases) + 1
    assert {c.family for c in cases} == set(H.FAMILIES)
    assert {c.bins for c in cases} == set(H.BINS) >= {1, 2, 3, 7, 256, 2048, 4096}
    assert {c.input_dtype for c in cases} == {"float16", "bfloat16", "float32", "float64"}
    configs = {(c.dtype, c.qscheme, c.reduce_range, c.quant_range) for c in cases}
    assert configs == set(H.CONFIGS)
    assert {c.qscheme for c in cases} == {"per_tensor_affine", "per_tensor_symmetric"}
    assert {c.dtype for c in cases} == {"quint8", "qint8"}
    # Every family meets both qschemes, and the big and small bin counts.
    for family in H.FAMILIES:
        seen = [c for c in cases if c.family == family]
        assert {c.qscheme for c in seen} == {"per_tensor_affine", "per_tensor_symmetric"}, family
        assert min(c.bins for c in seen) <= 16 and max(c.bins for c in seen) >= 256, family
    # The families do what they say: ranges that grow; single and constant batches;
    # infinities (and a batch of nothing else); heavy tails.
    by = {f: [c for c in cases if c.family == f] for f in H.FAMILIES}
    for case in by["grow"]:
        spans = [np.ptp(b.astype(np.float64)) for b in H.batches(case)]
        assert spans == sorted(spans), case
    hosts = {f: [H.batches(c) for c in by[f]] for f in H.FAMILIES}
    assert all(len(b) == 1 for bs in hosts["single"] for b in bs)
    assert all(any(np.ptp(b) == 0 for b in bs) for bs in hosts["constant"])
    assert all(any(np.isinf(b).all() for b in bs) for bs in hosts["inf"])
    assert all(any(np.isinf(b).any() & ~np.isinf(b).all() for b in bs) for bs in hosts["inf"])
    heavy = np.concatenate([b.astype(np.float64) for bs in hosts["heavy"] for b in bs])
    assert np.abs(heavy).max() > 1000 * np.median(np.abs(heavy))
    # No NaN (torch's histc raises) and no float32 subnormal anywhere.
    values = np.concatenate(
        [b.astype(np.float64) for family in hosts.values() for bs in family for b in bs]
    )
    assert not np.isnan(values).any()
    assert not ((np.abs(values) > 0) & (np.abs(values) < 1.2e-38)).any()
    # torch dropped infinities, stayed unobserved after an all-inf first batch, and
    # re-binned (the state's range changed after the first batch).
    assert stored.hist_inf_dropped.any() and (stored.hist_status == 1).any()
    assert (stored.hist_status == 0).sum() > 0.9 * len(stored.hist_status)


def test_histogram_target_matches_reference(target: C.Target) -> None:
    from arrayobs._conformance._hist_runner import unsupported

    reason = unsupported(target)
    if reason is not None:
        pytest.skip(reason)
    stride = _HIST_STRIDE.get((target.library, target.mode), 1)
    summary = C.run_hist_target(target, C.histogram_cases()[::stride], C.load_histogram()[0])
    print(
        f"\n{summary.label} histogram: {summary.cases} cases, {summary.batches} batches, "
        f"{summary.mismatches} mismatches, {summary.deviations} documented deviations (zero "
        f"signs), {summary.skipped} skipped (input dtype not on this backend), "
        f"{summary.seconds_per_update * 1e3:.1f} ms/batch"
    )
    assert summary.cases > 0
    assert summary.mismatches == 0, "\n".join(summary.failures)
