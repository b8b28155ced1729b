"""The calibrators section's cases: what a case is, the ops and batches it is written
with, and ONNX Runtime's cases (``_calib_cases_modelopt`` holds ModelOpt's; the corpus,
``_calib_corpus``, puts them in order)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

Batch = tuple[Any, ...]
Op = tuple[Any, ...]
# A case before numbering: (name, arguments, ops) or (name, arguments, ops, options).
Entry = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class CalibCase:
    """One calibrator and the ops it runs (see the module's docstring)."""

    id: int
    family: str
    name: str
    arguments: dict[str, Any]
    ops: tuple[Op, ...]
    dtype: str = "float32"
    channel_axis: int | None = None
    ranks: int = 1
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ops"] = [list(op) for op in self.ops]
        return out

    @property
    def library(self) -> str:
        return self.family.split("-")[0]


def _ort(method: str, **kw: Any) -> dict[str, Any]:
    """HistogramCollector's arguments (the calibraters' defaults where not given)."""
    args = {
        "method": method,
        "symmetric": False,
        "num_bins": 128,
        "num_quantized_bins": 128,
        "percentile": 99.999,
        "scenario": "same",
    }
    args.update(kw)
    return args


def collect(*batches: Batch) -> Op:
    return ("collect", tuple(batches))


RESULT: Op = ("result", None, {})
QPARAMS: tuple[Op, ...] = (
    ("qparams", "int8", False, False),
    ("qparams", "uint8", False, False),
    ("qparams", "int8", False, True),
    ("qparams", "uint8", True, False),
)


def nrm(scale: float, shape: tuple[int, ...] = (64, 8)) -> Batch:
    return ("normal", shape, scale)


def chain(kind: str, scales: Sequence[float], shape: tuple[int, ...] = (64, 8)) -> list[Op]:
    return [collect((kind, shape, s)) for s in scales]


def ort_histogram_cases() -> list[Entry]:
    """(name, arguments, ops, options) of the ORT HistogramCollector cases (spec 8.5-8.9)."""
    end = (RESULT, *QPARAMS)
    value: list[Entry] = [
        ("value one call", _ort("entropy"), [collect(nrm(1.0)), *end]),
        ("value grow", _ort("entropy"), [collect(nrm(1.0)), collect(nrm(3.5)), *end]),
        ("value shrink grow", _ort("entropy"), [*chain("normal", (2.0, 0.5, 5.0)), *end]),
        (
            "value zeros first",
            _ort("entropy"),
            [collect(("zeros", (32,), 0)), collect(nrm(1.0)), *end],
        ),
        (
            "value empty first",
            _ort("entropy"),
            [collect(("normal", (0,), 1.0)), collect(nrm(2.0)), *end],
        ),
        (
            "value odd bins",
            _ort("entropy", num_bins=127, num_quantized_bins=31),
            [*chain("normal", (1.0, 2.5)), *end],
        ),
        (
            "value float64",
            _ort("entropy"),
            [*chain("normal", (1.0, 3.0)), *end],
            {"dtype": "float64"},
        ),
        ("value chain", _ort("entropy"), [*chain("normal", (0.6, 1.4, 0.9, 2.1, 3.0)), *end]),
        (
            "value t equals T0",
            _ort("entropy"),
            [
                collect(("values", [-2.0, 1.0, 2.0, 0.5])),
                collect(("values", [2.0, -1.5, -2.0])),
                collect(nrm(1.0)),
                *end,
            ],
        ),
        (
            "value two batches one call",
            _ort("entropy"),
            [
                collect(nrm(1.0, (32,)), nrm(2.0, (32,))),
                collect(nrm(0.5, (32,)), nrm(3.0, (32,))),
                *end,
            ],
        ),
        (
            "value NaN dropped",
            _ort("entropy"),
            [collect(nrm(1.0)), collect(("nan", (64, 8), 2.0)), *end],
        ),
        ("value all NaN", _ort("entropy"), [collect(nrm(1.0)), collect(("allnan", (16,), 1.0))]),
        ("value inf", _ort("entropy"), [collect(nrm(1.0)), collect(("inf", (64,), 1.0))]),
        ("value heavy", _ort("entropy", num_bins=256), [*chain("heavy", (1.0, 2.0)), *end]),
        (
            "entropy 2048/128",
            _ort("entropy", num_bins=2048),
            [collect(nrm(1.0, (4096,))), collect(nrm(1.3, (4096,))), *end],
        ),
        ("entropy single bin", _ort("entropy"), [collect(("const", (32,), 1.5)), *end]),
        ("entropy bins < quantized", _ort("entropy", num_bins=64), [collect(nrm(1.0)), RESULT]),
        (
            "entropy spikes",
            _ort("entropy", num_bins=512),
            [collect(("spikes", (256,), 3.0)), *end],
        ),
    ]
    pct: list[Entry] = []
    for p in (0.0, 50.0, 99.9, 99.999, 100.0):
        for sym in (False, True):
            pct.append(
                (
                    f"percentile {p} {'sym' if sym else 'asym'}",
                    _ort("percentile", symmetric=sym, num_bins=256, percentile=p),
                    [*chain("normal", (1.0, 2.2)), *end],
                )
            )
    pct += [
        (
            "percentile sym positive",
            _ort("percentile", symmetric=True),
            [*chain("pos", (1.0, 1.5)), *end],
        ),
        ("percentile 101", _ort("percentile", percentile=101.0), [collect(nrm(1.0)), RESULT]),
        (
            "abs smaller dropped",
            _ort("percentile", symmetric=True),
            [
                collect(("pos", (64,), 1.0)),
                collect(nrm(0.01, (64,))),
                collect(nrm(3.0, (64,))),
                *end,
            ],
        ),
        (
            "abs chain",
            _ort("percentile", symmetric=True, num_bins=200),
            [*chain("normal", (0.5, 1.1, 0.7, 1.6, 2.4)), *end],
        ),
        ("abs NaN first", _ort("percentile", symmetric=True), [collect(("nan", (64,), 1.0))]),
        (
            "abs NaN later",
            _ort("percentile", symmetric=True),
            [collect(nrm(1.0)), collect(("nan", (64,), 2.0)), *end],
        ),
        ("abs inf first", _ort("percentile", symmetric=True), [collect(("inf", (64,), 1.0))]),
        (
            "abs inf later",
            _ort("percentile", symmetric=True),
            [collect(nrm(1.0)), collect(("inf", (64,), 1.0))],
        ),
        (
            "abs float64",
            _ort("percentile", symmetric=True),
            [collect(nrm(1.0))],
            {"dtype": "float64"},
        ),
        (
            "abs empty first",
            _ort("percentile", symmetric=True),
            [collect(("normal", (0,), 1.0)), collect(nrm(1.0)), *end],
        ),
    ]
    dist: list[Entry] = []
    for bins in (512, 2048):
        for scenario in ("same", "p3"):
            dist.append(
                (
                    f"distribution {scenario} {bins}",
                    _ort("distribution", num_bins=bins, scenario=scenario),
                    [*chain("normal", (1.0, 1.2), (512,)), *end],
                )
            )
    dist += [
        ("distribution 128 bins", _ort("distribution"), [collect(nrm(1.0)), RESULT]),
        (
            "distribution scenario x",
            _ort("distribution", num_bins=512, scenario="x"),
            [collect(nrm(1.0)), RESULT],
        ),
    ]
    per_channel: list[Entry] = [
        (
            "per channel entropy axis 1",
            _ort("entropy"),
            [*chain("normal", (1.0, 2.5, 0.7), (48, 4)), *end],
            {"channel_axis": 1},
        ),
        (
            "per channel percentile sym axis 0",
            _ort("percentile", symmetric=True, percentile=99.9),
            [*chain("normal", (1.0, 3.0), (3, 64)), *end],
            {"channel_axis": 0},
        ),
        (
            "per channel percentile asym axis -1",
            _ort("percentile", percentile=99.0),
            [*chain("normal", (1.0, 2.0), (8, 16, 3)), *end],
            {"channel_axis": -1},
        ),
        (
            "per channel distribution axis 0",
            _ort("distribution", num_bins=512),
            [*chain("normal", (1.0, 1.7), (2, 128)), *end],
            {"channel_axis": 0},
        ),
    ]
    merge: list[Entry] = [
        (
            "merge 2 ranks entropy",
            _ort("entropy"),
            [*chain("normal", (1.0, 2.5, 0.4, 6.0), (16, 8)), *end],
            {"ranks": 2},
        ),
        (
            "merge 3 ranks entropy",
            _ort("entropy", num_bins=255, num_quantized_bins=63),
            [*chain("heavy", (1.0, 1.9), (16, 8)), *end],
            {"ranks": 3},
        ),
        (
            "merge 2 ranks abs",
            _ort("percentile", symmetric=True, percentile=99.9),
            [*chain("normal", (1.0, 3.0, 2.0), (16, 8)), *end],
            {"ranks": 2},
        ),
        (
            "merge 3 ranks abs",
            _ort("percentile", symmetric=True),
            [*chain("normal", (0.5, 2.0, 3.0), (16, 8)), *end],
            {"ranks": 3},
        ),
        (
            "merge 3 ranks distribution",
            _ort("distribution", num_bins=512, scenario="p3"),
            [*chain("normal", (1.0, 2.0), (16, 8)), *end],
            {"ranks": 3},
        ),
        (
            "merge 2 ranks per channel",
            _ort("entropy"),
            [*chain("normal", (1.0, 3.0), (16, 3)), *end],
            {"ranks": 2, "channel_axis": 1},
        ),
    ]
    return [*value, *pct, *dist, *per_channel, *merge]


def ort_minmax_cases() -> list[Entry]:
    """ORT MinMaxCalibrater on a one-node Relu model's input (spec 8.1-8.4); batches (N, 3)."""
    three = tuple(nrm(s, (5, 3)) for s in (1.0, 2.0, 0.5))
    end = (("result", None, {}), *QPARAMS)
    nan = ("nan", (5, 3), 10.0)
    return [
        ("one call plain", {}, [collect(*three), *end]),
        ("one call symmetric", {"symmetric": True}, [collect(*three), *end]),
        ("one call moving average", {"moving_average": True}, [collect(*three), *end]),
        ("one call per channel", {"per_channel": True}, [collect(*three)]),
        ("three calls plain", {}, [*(collect(b) for b in three), *end]),
        ("three calls ema 0.01", {"moving_average": True}, [*(collect(b) for b in three), *end]),
        (
            "three calls ema 0.5",
            {"moving_average": True, "averaging_constant": 0.5},
            [*(collect(b) for b in three), *end],
        ),
        ("three calls symmetric", {"symmetric": True}, [*(collect(b) for b in three), *end]),
        ("NaN batch ignored", {}, [collect(three[0], nan, three[1]), *end]),
        (
            "NaN batch ignored moving average",
            {"moving_average": True},
            [collect(three[0], nan), collect(nan, three[2]), *end],
        ),
        ("all-NaN call", {}, [collect(nan)]),
        ("negative zeros", {}, [collect(("negzeros", (4, 3), 0)), *end]),
        (
            "per channel second call",
            {"per_channel": True},
            [collect(three[0]), collect(three[1])],
        ),
        ("max_intermediate_outputs 2", {"max_intermediate_outputs": 2}, [collect(*three), *end]),
        (
            "averaging_constant 1.5",
            {"moving_average": True, "averaging_constant": 1.5},
            [collect(*three)],
        ),
        (
            "merge 2 ranks ema",
            {"moving_average": True, "averaging_constant": 0.25},
            [*(collect(b) for b in three), *end],
            {"ranks": 2},
        ),
        ("merge 3 ranks plain", {}, [*(collect(b) for b in three), *end], {"ranks": 3}),
    ]


def scale_zp_cases() -> list[Entry]:
    """``compute_scale_zp`` directly (spec 8.10)."""
    ops = []
    for lo, hi in (
        (-1.5, 2.25),
        (0.0, 0.0),
        (0.5, 3.0),
        (-7.0, -0.25),
        (-1e-30, 1e-30),
        (-3.4e38, 3.4e38),
    ):
        for qtype in ("int8", "uint8"):
            for reduce_range, symmetric in ((False, False), (False, True), (True, False)):
                ops.append(("scale_zp", lo, hi, qtype, reduce_range, symmetric))
    return [("compute_scale_zp", {}, ops)]
