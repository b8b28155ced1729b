"""The calibrators section: its stored reference numbers, its runner and its compare hook.

The runner is exercised end to end on a stand-in for ``arrayobs.calib``: classes of the
contract's API shape (``xp``/``device``, ``channel_axis``, ``histogram``...) that drive
the live references (ONNX Runtime 1.31.1, ModelOpt 0.47.0) on the host, one reference
per channel slice. Its numbers must equal the stored ones on every backend (the inputs
and the MseCalibrator's quant function go through the backend), and a perturbed
stand-in must be reported row by row. ``ARRAYOBS_CALIB_FULL=1`` replays every case
(about 100 s of reference searches) and regenerates the stored file in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import types
from typing import Any

import numpy as np
import pytest

from arrayobs._compat import to_host
from arrayobs._conformance._calib_corpus import cases, channel_slices, inputs
from arrayobs._conformance._calib_records import CalibRecords, load
from arrayobs._conformance._calib_runner import calib_modules, run_calib_target
from arrayobs._conformance._runner import Target
from arrayobs.testing import supports_dtype

FULL = os.environ.get("ARRAYOBS_CALIB_FULL") == "1"
# A quick selection: every ORT, MinMax, Max, Mse and qparams case, and the ModelOpt
# histogram cases whose reference search is short (one per-channel, one merge among them).
_QUICK_MODELOPT = (
    "one call",
    "positive",
    "NaN first",
    "empty",
    "axis 0",
    "no data",
    "entropy start_bin > bins",
    "mse start_bin >= bins",
    "zeros first",
    "merge 3 ranks per channel",
)


def _quick(case: Any) -> bool:
    if case.family != "modelopt-histogram":
        return case.name != "entropy 2048/128"
    return case.name.split(" ", 1)[1] in _QUICK_MODELOPT and "True" in case.name


def _references() -> tuple[Any, Any, Any]:
    pytest.importorskip("onnxruntime", reason="reference not installed: onnxruntime 1.31.1")
    pytest.importorskip("onnx", reason="reference not installed: onnx (ORT reads a model)")
    calib = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )
    reference = importlib.import_module("arrayobs._conformance._calib_reference")
    return importlib.import_module("torch"), calib, reference


def _host(x: Any) -> np.ndarray:
    if type(x).__module__.split(".")[0] == "torch":
        return np.array(x.detach().cpu().numpy(), copy=True)  # float16 stays float16
    return np.asarray(to_host(x))


# -- the stand-in: the references behind the contract's API --------------------------------
def stand_in(perturb: bool = False) -> tuple[types.SimpleNamespace, types.SimpleNamespace]:
    """(ort, modelopt) modules of the contract's shape over the live references;
    ``perturb`` adds one to the first count of every ORT histogram it reports."""
    torch, calib, reference = _references()
    quant_utils = importlib.import_module("onnxruntime.quantization.quant_utils")
    ort_calibrate = importlib.import_module("onnxruntime.quantization.calibrate")

    class PerChannel:
        """One reference per channel slice (or one per tensor without ``channel_axis``)."""

        def __init__(self, make: Any, channel_axis: int | None) -> None:
            self.make, self.axis, self.refs = make, channel_axis, None

        def parts(self, x: np.ndarray) -> list[np.ndarray]:
            return [x] if self.axis is None else channel_slices(x, self.axis)

        def each(self, batches: list[np.ndarray]) -> list[tuple[Any, list[np.ndarray]]]:
            split = [self.parts(b) for b in batches]
            if self.refs is None:
                self.refs = [self.make() for _ in split[0]]
            return [(r, [s[c] for s in split]) for c, r in enumerate(self.refs)]

    class HistogramCollector(PerChannel):
        def __init__(self, *args: Any, channel_axis: int | None = None, **kw: Any) -> None:
            kw.pop("xp", None), kw.pop("device", None)
            if len(args) < 6:
                kw.setdefault("scenario", "same")  # the contract's default
            super().__init__(lambda: ort_calibrate.HistogramCollector(*args, **kw), channel_axis)

        def collect(self, arrays: Any) -> None:
            for ref, parts in self.each([_host(a) for a in arrays]):
                with contextlib.redirect_stdout(io.StringIO()):  # ORT's progress lines
                    ref.collect({"x": parts})

        @property
        def histogram(self) -> Any:
            tuples = []
            for ref in self.refs or []:
                t = list(ref.histogram_dict["x"])
                if perturb:
                    t[0] = t[0].copy()
                    t[0][0] += 1
                tuples.append(tuple(t))
            return tuples[0] if self.axis is None else tuples

        def compute_collection_result(self) -> Any:
            with contextlib.redirect_stdout(io.StringIO()):
                results = [ref.compute_collection_result()["x"] for ref in self.refs or []]
            if self.axis is None:
                return results[0]
            if hasattr(results[0], "avg"):
                keys = ("avg", "std", "lowest", "highest")
                return types.SimpleNamespace(
                    **{k: np.stack([np.asarray(getattr(r, k)) for r in results]) for k in keys}
                )
            return tuple(np.stack([np.asarray(r[i]) for r in results]) for i in (0, 1))

    class MinMaxCalibrater:
        def __init__(self, xp: Any = None, device: Any = None, **kw: Any) -> None:
            self.ref = reference._OrtMinMax(**kw)

        def collect(self, arrays: Any) -> None:
            self.ref.collect([_host(a) for a in arrays])

        def compute_data(self) -> tuple[Any, Any]:
            return self.ref.compute_data()

    class HistogramCalibrator(PerChannel):
        def __init__(self, channel_axis: int | None = None, **kw: Any) -> None:
            kw.pop("xp", None), kw.pop("device", None)
            super().__init__(lambda: calib.HistogramCalibrator(**kw), channel_axis)
            self.kw = kw
            if kw.get("axis") is not None:
                self.make()  # the reference's own refusal

        def collect(self, x: Any) -> None:
            for ref, (part,) in self.each([_host(x)]):
                ref.collect(torch.from_numpy(part.copy()))

        def reset(self) -> None:
            for ref in self.refs or []:
                ref.reset()

        @property
        def histogram(self) -> Any:
            tuples = [(r._calib_hist, r._calib_bin_edges, r._num_bins) for r in self.refs or []]
            return tuples[0] if self.axis is None else tuples

        def compute_amax(self, *args: Any, **kw: Any) -> Any:
            refs = self.refs or [self.make()]
            amax = [r.compute_amax(*args, **kw) for r in refs]
            if self.axis is None or amax[0] is None:
                return amax[0]
            return np.stack([a.numpy() for a in amax])

    class MaxCalibrator:
        def __init__(self, xp: Any = None, device: Any = None, **kw: Any) -> None:
            self.ref = calib.MaxCalibrator(**kw)

        def collect(self, x: Any) -> None:
            self.ref.collect(torch.from_numpy(_host(x)))

        def compute_amax(self) -> Any:
            return self.ref.compute_amax()

    class MseCalibrator:
        def __init__(self, amax: Any, xp: Any = None, device: Any = None, **kw: Any) -> None:
            quant = kw.pop("quant_func", None)

            def through_backend(x: Any, a: Any) -> Any:
                # The runner's quant function, in the target's namespace.
                on = (xp.asarray(t.numpy(), device=device) for t in (x, a))
                return torch.from_numpy(_host(quant(*on)))

            func = None if quant is None else through_backend
            self.ref = calib.MseCalibrator(torch.from_numpy(_host(amax)), quant_func=func, **kw)

        def collect(self, x: Any) -> None:
            self.ref.collect(torch.from_numpy(_host(x)))

        def reset(self) -> None:
            self.ref.reset()

        def compute_amax(self) -> Any:
            return self.ref.compute_amax()

    ort = types.SimpleNamespace(
        HistogramCollector=HistogramCollector,
        MinMaxCalibrater=MinMaxCalibrater,
        compute_scale_zp=quant_utils.compute_scale_zp,
    )
    modelopt = types.SimpleNamespace(
        MaxCalibrator=MaxCalibrator,
        HistogramCalibrator=HistogramCalibrator,
        MseCalibrator=MseCalibrator,
    )
    return ort, modelopt


def _target(backend: Any) -> Target:
    return Target(backend.name, backend.xp, backend.device)


# -- tests ---------------------------------------------------------------------------------
def test_stored_file_matches_the_corpus() -> None:
    records, meta = load()
    corpus = cases()
    assert records.n_cases == len(corpus) == len(meta["cases"])
    for case, stored in zip(corpus, meta["cases"], strict=True):
        described = json.loads(json.dumps(case.describe()))
        assert {k: v for k, v in stored.items() if k != "refusal"} == described
    assert (meta["onnxruntime"], meta["modelopt"]) == ("1.31.1", "0.47.0")
    assert set(meta["machine"]) >= {"torch_cpu_capability", "torch_num_threads", "numpy_simd"}
    assert records.refused and all(r.type for r in records.refused.values())
    # Every family, per-channel cases and 2- and 3-rank merges are in the section.
    families = {c.family for c in corpus}
    assert len(families) == 6
    assert {c.ranks for c in corpus} == {1, 2, 3}
    assert any(c.channel_axis is not None and c.ranks > 1 for c in corpus)
    assert (
        records.case(0)[0].outputs[0][1].dtype == np.int64
    )  # ORT's counts, stored with their dtype


def test_records_round_trip() -> None:
    records, _ = load()
    fields = {k.removeprefix("calib_"): v for k, v in records.fields().items()}
    again = CalibRecords(**fields)
    assert again.equal(records)
    for i in (0, records.n_cases - 1):
        assert [r.op for r in again.case(i)] == [r.op for r in records.case(i)]


def test_runner_on_the_references(backend: Any) -> None:
    """The stand-in (the references themselves) gives the stored numbers: 0 mismatches."""
    modules = stand_in()
    chosen = [c for c in cases() if FULL or _quick(c)]
    if backend.name != "numpy" and not FULL:
        chosen = chosen[::3]  # the references' time, not the backend's, dominates
    records, _ = load()
    summary = run_calib_target(_target(backend), chosen, records, modules=modules)
    assert summary.failures == [] and summary.mismatches == 0
    assert summary.cases + summary.skipped == len(chosen) and summary.batches > summary.cases
    assert summary.skipped <= 2  # float64 cases where the device lacks float64


def test_reference_rows_are_taken_when_read() -> None:
    """A stored row holds the numbers of its own op: ModelOpt's NumPy-path entropy
    changes the live ``_calib_hist`` in place (``bins[0] = bins[1]``) after the row of
    the collect before it was read."""
    torch, calib, reference = _references()
    (case,) = [c for c in cases() if c.name == "torch_hist=False entropy start_bin > bins"]
    live = calib.HistogramCalibrator(**case.arguments)
    (batch,) = inputs(case)[0]
    live.collect(torch.from_numpy(np.array(batch, copy=True)))
    want = live._calib_hist.copy()
    (outcome,) = reference.reference_outcomes([case])
    got = dict(outcome.rows[0].outputs)["calib_hist"]
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert want[0] != want[1]  # the case shows the in-place change
    assert np.array_equal(dict(load()[0].case(case.id)[0].outputs)["calib_hist"], want)


def test_runner_reports_mismatches_row_by_row() -> None:
    modules = stand_in(perturb=True)
    numpy_backend = importlib.import_module("arrayobs.testing").BACKENDS[0]
    xp, device = numpy_backend.load()
    chosen = [c for c in cases() if c.family == "ort-histogram"][:3]
    records, _ = load()
    summary = run_calib_target(Target("numpy", xp, device), chosen, records, modules=modules)
    want_rows = sum(
        1 for c in chosen for r in records.case(c.id) if r.outputs[0][0] == "hist"
    )  # every state row of those cases has a perturbed first count
    assert summary.mismatches == want_rows > 0
    assert summary.failures[0].startswith("calib case 0 (ort-histogram value one call) op 0")
    assert "hist: 1 of 128 values differ" in summary.failures[0]


def test_runner_reports_a_missing_refusal() -> None:
    ort, modelopt = stand_in()

    class Lenient(modelopt.MaxCalibrator):  # type: ignore[name-defined]
        def collect(self, x: Any) -> None:
            if _host(x).size:
                super().collect(x)

    modules = (ort, types.SimpleNamespace(**{**vars(modelopt), "MaxCalibrator": Lenient}))
    (case,) = [c for c in cases() if c.family == "modelopt-max" and c.name == "empty"]
    records, _ = load()
    numpy_backend = importlib.import_module("arrayobs.testing").BACKENDS[0]
    xp, device = numpy_backend.load()
    summary = run_calib_target(Target("numpy", xp, device), [case], records, modules=modules)
    assert summary.mismatches == 1
    assert summary.failures[0].startswith("calib case 81 (modelopt-max empty) row 0: extra row")
    assert "; refused nothing, reference RuntimeError at op 0" in summary.failures[0]


def test_compare_section(capsys: pytest.CaptureFixture[str]) -> None:
    """``arrayobs compare --cases calibrators`` runs the section, or skips it with the
    reason while ``arrayobs.calib`` does not import."""
    from arrayobs.cli import main

    main(["compare", "--backend", "numpy", "--cases", "calibrators", "--quick", "7", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["calib_cases_in_corpus"] == len(cases())
    assert report["calib_reference"]["onnxruntime"] == "1.31.1"
    if isinstance(calib_modules(), str):
        assert report["calib_results"] == []
        (why,) = report["calib_skipped_targets"]
        assert why.startswith("calibrators section on numpy: arrayobs.calib is not importable")
    else:
        assert report["calib_results"][0]["cases"] > 0
    main(["compare", "--backend", "numpy", "--cases", "calibrators", "--quick", "50"])
    first = capsys.readouterr().out.splitlines()[0]
    assert " calibrator cases vs ONNX Runtime 1.31.1 / ModelOpt 0.47.0 (" in first, first


@pytest.mark.skipif(not FULL, reason="ARRAYOBS_CALIB_FULL=1: regenerates every case (~100 s)")
def test_generator_reproduces_the_stored_file() -> None:
    _, _, reference = _references()
    records, meta = load()
    outcomes = reference.reference_outcomes()
    assert CalibRecords.from_outcomes(outcomes).equal(records)
    stored = [c["refusal"] for c in meta["cases"]]
    assert [None if o.refusal is None else dataclasses.asdict(o.refusal) for o in outcomes] == (
        stored
    )


def test_export_writes_the_stored_numbers(tmp_path: Any) -> None:
    """The section as plain files: every input and expected output reads back as the
    corpus's inputs and the stored numbers (dtype, shape and bits)."""
    from arrayobs._conformance._calib_corpus import inputs
    from arrayobs._conformance._calib_export import calib_cases
    from arrayobs._conformance._export import _Writer

    w = _Writer(tmp_path)
    reference, entries = calib_cases(w)
    assert reference["onnxruntime"] == "1.31.1" and reference["machine"]
    records, _ = load()
    json.dumps(entries)  # the manifest's part is JSON as it stands

    def read(entry: dict[str, Any]) -> np.ndarray:
        a = np.load(tmp_path / entry["file"], allow_pickle=False)
        assert str(a.dtype) == entry["dtype"] and list(a.shape) == entry["shape"]
        return a

    for case, entry in zip(cases(), entries, strict=True):
        assert entry["id"] == case.id and len(entry["ops"]) == len(case.ops)
        rows = iter(records.case(case.id))
        for op, host in zip(entry["ops"], inputs(case), strict=True):
            for batch, want in zip(op.get("batches", []), host, strict=True):
                assert np.array_equal(read(batch), want, equal_nan=want.dtype.kind == "f")
                if case.ranks > 1:
                    parts = [read(p) for p in batch["pieces"]]
                    assert np.array_equal(np.concatenate(parts), read(batch), equal_nan=True)
            for expected in op["expected"]:
                row = next(rows)
                assert expected["channel"] == row.channel
                for name, value in row.outputs:
                    got = expected["outputs"][name]
                    if value is None:
                        assert got is None
                        continue
                    a, v = read(got), np.asarray(value)
                    assert a.dtype == v.dtype and a.tobytes() == v.tobytes()
        assert next(rows, None) is None
        stored = records.refused.get(case.id)
        assert (entry["refusal"] is None) == (stored is None)
    assert len(w.files) > 1000


def test_arrayobs_calib_matches_the_stored_numbers(backend: Any) -> None:
    """arrayobs.calib itself against the stored numbers (skipped until it lands)."""
    found = calib_modules()
    if isinstance(found, str):
        pytest.skip(found)
    chosen = cases() if FULL or backend.name == "numpy" else cases()[::3]
    records, _ = load()
    summary = run_calib_target(_target(backend), chosen, records)
    assert summary.mismatches == 0, summary.failures[:5]
    assert summary.cases + summary.skipped == len(chosen)


def _random_cases(seed: int, count: int) -> list[Any]:
    """Random streams of the histogram families: random arguments, scales (growth and
    shrinkage), per-channel axes and ranks, each ending with the families' results."""
    from arrayobs._conformance._calib_cases import CalibCase

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        ort = bool(rng.integers(2))
        shape = (int(rng.integers(4, 40)), int(rng.integers(2, 5)))
        kind = str(rng.choice(["normal", "heavy", "relu", "pos"]))
        scales = np.exp(rng.normal(0, 1.2, int(rng.integers(1, 5)))).round(3)
        ops: list[Any] = [("collect", ((kind, shape, float(s)),)) for s in scales]
        if ort:
            method = str(rng.choice(["entropy", "percentile", "distribution"]))
            bins = int(rng.choice([128, 129, 512])) if method != "distribution" else 512
            arguments = {
                "method": method,
                "symmetric": bool(rng.integers(2)),
                "num_bins": bins,
                "num_quantized_bins": int(rng.choice([32, 63, 128])),
                "percentile": float(rng.choice([90.0, 99.9, 100.0])),
                "scenario": str(rng.choice(["same", "p3"])),
            }
            ops.append(("result", None, {}))
        else:
            arguments = {
                "num_bins": int(rng.choice([130, 200])),
                "torch_hist": bool(rng.integers(2)),
            }
            arguments["skip_zeros"] = bool(rng.integers(2))
            ops += [("result", "percentile", {"percentile": 99.0}), ("result", "mse", {})]
            ops.append(("result", "entropy", {"stride": int(rng.integers(1, 8))}))
        out.append(
            CalibCase(
                id=i,
                family="ort-histogram" if ort else "modelopt-histogram",
                name=f"fuzz {seed}/{i}",
                arguments=arguments,
                ops=tuple(ops),
                channel_axis=None if rng.integers(3) else int(rng.choice([0, 1, -1])),
                ranks=int(rng.choice([1, 1, 2, 3])),
                seed=int(rng.integers(2**31)),
            )
        )
    return out


@pytest.mark.parametrize("who", ["stand-in", "arrayobs.calib"])
def test_fuzz_against_live_references(backend: Any, who: str) -> None:
    """Random streams: the live references (one per channel slice, fed the ranks'
    concatenation) against the target API, compared row by row as the section does."""
    from arrayobs._conformance._calib_run import run_case
    from arrayobs._conformance._calib_runner import compare_calib_case, target_api

    _, _, reference = _references()
    if who == "stand-in":
        modules = stand_in()
    else:
        found = calib_modules()
        if isinstance(found, str):
            pytest.skip(found)
        if backend.name.startswith("array_api_strict") and not supports_dtype(
            backend.xp, backend.device, "int64"
        ):
            pytest.skip("the histogram states need int64 and float64 (runner: NEEDS_X64)")
        modules = found
    api, live = target_api(_target(backend), modules), reference.reference_api()
    count = 40 if FULL else 8 if backend.name == "numpy" else 3
    for case in _random_cases(seed=26, count=count):
        want = run_case(case, live)
        got = run_case(case, api)
        rows, bad, _, _, detail = compare_calib_case(case, got, want.rows, want.refusal)
        assert bad == 0, detail
        assert rows > len(case.ops) - 1
