"""The live references (ONNX Runtime 1.31.1, ModelOpt 0.47.0 on torch 2.13.0's CPU) behind
the contract's API shape, for the generator and for tests."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from arrayobs._conformance._calib_cases import CalibCase
from arrayobs._conformance._calib_corpus import CORPUS_VERSION, cases
from arrayobs._conformance._calib_records import (
    MODELOPT_VERSION,
    ORT_VERSION,
    CalibRecords,
    Outcome,
    Output,
    host,
    load,
    reference_path,
    save,
)
from arrayobs._conformance._calib_run import Api, read_result, read_state, run_case

_MODEL: dict[str, str] = {}


def _relu_model() -> str:
    """A one-node Relu model with input X of shape (N, 3) (ir_version 10, opset 17)."""
    if "path" not in _MODEL:
        onnx = importlib.import_module("onnx")
        h, tp = onnx.helper, onnx.TensorProto
        x = h.make_tensor_value_info("X", tp.FLOAT, [None, 3])
        y = h.make_tensor_value_info("Y", tp.FLOAT, [None, 3])
        graph = h.make_graph([h.make_node("Relu", ["X"], ["Y"])], "g", [x], [y])
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=10)
        path = os.path.join(tempfile.mkdtemp(prefix="arrayobs-calib-"), "relu.onnx")
        onnx.save(model, path)
        _MODEL["path"] = path
    return _MODEL["path"]


class _OrtMinMax:
    """ORT's MinMaxCalibrater on the Relu model's input X, as one tensor's calibrator:
    ``collect(arrays)`` is one ``collect_data`` call over those batches."""

    def __init__(self, **kwargs: Any) -> None:
        cal = importlib.import_module("onnxruntime.quantization.calibrate")
        path = _relu_model()
        aug = os.path.join(os.path.dirname(path), f"aug-{id(self)}.onnx")
        self.c = cal.MinMaxCalibrater(path, augmented_model_path=aug, **kwargs)
        self.c.augment_graph()
        self.c.create_inference_session()
        self._reader = cal.CalibrationDataReader

    def collect(self, arrays: list[np.ndarray]) -> None:
        it = iter([{"X": a} for a in arrays])

        class Reader(self._reader):  # type: ignore[name-defined,misc]
            def get_next(self) -> Any:
                return next(it, None)

        self.c.collect_data(Reader())

    def compute_data(self) -> tuple[Any, Any]:
        lowest, highest = self.c.compute_data()["X"].range_value
        return lowest, highest


def _mo_quant_func(name: str | None) -> Any:
    if name is None:
        return None
    tq = importlib.import_module("modelopt.torch.quantization.tensor_quant")
    return lambda x, amax: tq._tensor_quant(x, amax, 8, False)


def _reference_make(case: CalibCase, channel_axis: int | None) -> Any:
    if channel_axis is not None:
        msg = "the references are per tensor"
        raise AssertionError(msg)
    if case.family == "ort-histogram":
        cal = importlib.import_module("onnxruntime.quantization.calibrate")
        a = case.arguments
        collector = cal.HistogramCollector(
            a["method"],
            a["symmetric"],
            a["num_bins"],
            a["num_quantized_bins"],
            a["percentile"],
            a["scenario"],
        )
        return _OrtCollector(collector)
    if case.family == "ort-minmax":
        return _OrtMinMax(**case.arguments)
    calib = importlib.import_module("modelopt.torch.quantization.calib")
    kw = dict(case.arguments)
    if case.family == "modelopt-max":
        if isinstance(kw.get("axis"), list):
            kw["axis"] = tuple(kw["axis"])
        return calib.MaxCalibrator(**kw)
    if case.family == "modelopt-histogram":
        return calib.HistogramCalibrator(**kw)
    torch = importlib.import_module("torch")
    kw["amax"] = torch.tensor(kw["amax"], dtype=torch.float32)
    kw["quant_func"] = _mo_quant_func(kw.get("quant_func"))
    return calib.MseCalibrator(**kw)


class _OrtCollector:
    """ORT's HistogramCollector for one tensor, in the contract's shape."""

    def __init__(self, collector: Any) -> None:
        self.c = collector

    def collect(self, arrays: list[np.ndarray]) -> None:
        self.c.collect({"x": list(arrays)})

    @property
    def histogram(self) -> tuple[Any, ...]:
        return tuple(self.c.histogram_dict["x"])

    def compute_collection_result(self) -> Any:
        return self.c.compute_collection_result()["x"]


def _reference_input(batch: np.ndarray, parts: list[np.ndarray]) -> Any:
    del parts
    return batch


def _snapshot(outputs: list[Output]) -> list[Output]:
    """Host copies of ``outputs``, taken now: the references hand out their live state
    (ModelOpt's ``_calib_hist`` is a NumPy array that a later ``compute_amax("entropy")``
    changes in place, ``bins[0] = bins[1]``), and a row must hold the numbers of its op."""
    return [(n, None if v is None else np.array(host(v), copy=True)) for n, v in outputs]


def reference_api() -> Api:
    """The live references behind the contract's API shape."""
    qu = importlib.import_module("onnxruntime.quantization.quant_utils")
    torch = importlib.import_module("torch")

    def make(case: CalibCase, channel_axis: int | None) -> Any:
        obj = _reference_make(case, channel_axis)
        if case.library == "modelopt":
            return _TorchInputs(obj, torch)
        return obj

    return Api(
        make=make,
        to_input=_reference_input,
        state=lambda case, obj, c: _snapshot(read_state(case, getattr(obj, "obj", obj), c)),
        result=lambda case, obj, op, c: _snapshot(
            read_result(case, getattr(obj, "obj", obj), op, c)
        ),
        scale_zp=qu.compute_scale_zp,
        channels_outside=True,
    )


class _TorchInputs:
    """A ModelOpt calibrator fed host NumPy batches as CPU tensors."""

    def __init__(self, obj: Any, torch: Any) -> None:
        self.obj, self.torch = obj, torch

    def collect(self, x: np.ndarray) -> None:
        self.obj.collect(self.torch.from_numpy(np.array(x, copy=True)))

    def reset(self) -> None:
        self.obj.reset()


def reference_outcomes(chosen: Sequence[CalibCase] | None = None) -> list[Outcome]:
    """Every case (or ``chosen``) on the live references."""
    api = reference_api()
    return [run_case(case, api) for case in (cases() if chosen is None else chosen)]


def machine() -> dict[str, Any]:
    """The facts the references' bits depend on (spec T15)."""
    torch = importlib.import_module("torch")
    simd: Any = None
    with contextlib.suppress(Exception):
        config = np.show_config(mode="dicts")
        simd = config.get("SIMD Extensions") if isinstance(config, dict) else None
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_default_dtype": str(torch.get_default_dtype()).removeprefix("torch."),
        "numpy_simd": simd,
    }


def header(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    versions = {}
    for name, module in (
        ("onnxruntime", "onnxruntime"),
        ("modelopt", "modelopt"),
        ("torch", "torch"),
        ("scipy", "scipy"),
        ("onnx", "onnx"),
    ):
        versions[name] = importlib.import_module(module).__version__
    described = []
    for case, outcome in zip(cases(), outcomes, strict=True):
        d = case.describe()
        d["refusal"] = None if outcome.refusal is None else dataclasses.asdict(outcome.refusal)
        described.append(d)
    return {
        **versions,
        "numpy": np.__version__,
        "corpus_version": CORPUS_VERSION,
        "created": datetime.date.today().isoformat(),
        "machine": machine(),
        "cases": described,
    }


def main(argv: list[str]) -> int:
    """Write (or with ``--check`` compare) the stored file from the live references."""
    ort = importlib.import_module("onnxruntime")
    modelopt = importlib.import_module("modelopt")
    if (ort.__version__, modelopt.__version__) != (ORT_VERSION, MODELOPT_VERSION):
        print(
            f"the references are onnxruntime {ORT_VERSION} and modelopt {MODELOPT_VERSION}; "
            f"found {ort.__version__} and {modelopt.__version__}",
            file=sys.stderr,
        )
        return 2
    torch = importlib.import_module("torch")
    torch.set_num_threads(1)  # histc's float32 counts depend on threads past 2**24 a bin
    outcomes = reference_outcomes()
    records = CalibRecords.from_outcomes(outcomes)
    path = reference_path()
    if argv == ["--check"]:
        stored, meta = load(path)
        same = stored.equal(records) and [c.get("refusal") for c in meta["cases"]] == [
            c["refusal"] for c in header(outcomes)["cases"]
        ]
        print(f"{path}: {'equal to' if same else 'DIFFERS from'} the live references")
        return 0 if same else 1
    save(records, path, header(outcomes))
    refused = sum(o.refusal is not None for o in outcomes)
    print(
        f"wrote {path} ({path.stat().st_size} bytes, {len(outcomes)} calibrator cases, "
        f"{len(records.op)} rows, {refused} refusals)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
