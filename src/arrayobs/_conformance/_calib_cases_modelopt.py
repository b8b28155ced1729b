"""The calibrators section's ModelOpt 0.47.0 cases (MaxCalibrator, HistogramCalibrator in
both modes, MseCalibrator; design notes section 8, cases 11-16)."""

from __future__ import annotations

from typing import Any

from arrayobs._conformance._calib_cases import Entry, Op, chain, collect, nrm


def modelopt_max_cases() -> list[Entry]:
    """ModelOpt MaxCalibrator (spec 8.11)."""
    return [
        ("per tensor", {}, chain("normal", (1.0, 2.0, 0.5))),
        ("per tensor float16", {}, chain("normal", (1.0, 3.0)), {"dtype": "float16"}),
        ("axis 0", {"axis": 0}, chain("normal", (1.0, 2.0), (4, 16))),
        ("axis -1", {"axis": -1}, chain("normal", (1.0, 2.0), (4, 16))),
        ("axis (0, 2)", {"axis": [0, 2]}, chain("normal", (1.0, 0.5), (2, 3, 4))),
        ("1-d axis 0", {"axis": 0}, chain("normal", (1.0, 2.0), (8,))),
        ("shape change", {"axis": 0}, [collect(nrm(1.0, (4, 16))), collect(nrm(1.0, (5, 16)))]),
        ("NaN", {}, [collect(nrm(1.0)), collect(("nan", (64,), 1.0))]),
        ("inf", {}, [collect(("inf", (64,), 1.0))]),
        ("empty", {}, [collect(("normal", (0,), 1.0))]),
        ("merge 2 ranks axis 1", {"axis": 1}, chain("normal", (1.0, 3.0), (6, 5)), {"ranks": 2}),
    ]


def modelopt_histogram_cases() -> list[Entry]:
    """ModelOpt HistogramCalibrator in both modes (spec 8.12-8.15)."""

    def results(*extra: Op) -> list[Op]:
        return [
            ("result", "entropy", {}),
            ("result", "mse", {}),
            ("result", "percentile", {"percentile": 99.99}),
            *extra,
        ]

    out: list[Entry] = []
    for torch_hist in (True, False):
        mode = f"torch_hist={torch_hist}"

        def h(torch_hist: bool = torch_hist, **kw: Any) -> dict[str, Any]:
            return {"num_bins": 256, "torch_hist": torch_hist, **kw}

        out += [
            (f"{mode} one call", h(), [collect(nrm(1.0)), *results()]),
            (f"{mode} grow", h(), [*chain("normal", (1.0, 2.7)), *results()]),
            (f"{mode} chain", h(), [*chain("normal", (0.5, 1.2, 0.8, 1.7, 2.3)), *results()]),
            (f"{mode} skip_zeros", h(skip_zeros=True), [*chain("relu", (1.0, 2.0)), *results()]),
            (f"{mode} relu no skip", h(), [*chain("relu", (1.0, 2.0)), *results()]),
            (f"{mode} positive", h(), [*chain("pos", (1.0, 1.4)), *results()]),
            (
                f"{mode} NaN later",
                h(),
                [collect(nrm(1.0)), collect(("nan", (64, 8), 2.0)), *results()],
            ),
            (f"{mode} NaN first", h(), [collect(("nan", (64, 8), 1.0))]),
            (
                f"{mode} float64",
                h(),
                [*chain("normal", (1.0, 2.0)), *results()],
                {"dtype": "float64"},
            ),
            (
                f"{mode} float16",
                h(),
                [*chain("normal", (1.0, 2.0)), *results()],
                {"dtype": "float16"},
            ),
            (
                f"{mode} zeros first",
                h(),
                [collect(("zeros", (32,), 0)), collect(nrm(1.0)), *results()],
            ),
            (f"{mode} empty", h(), [collect(("normal", (0,), 1.0))]),
            (f"{mode} axis 0", h(axis=0), [collect(nrm(1.0))]),
            (
                f"{mode} entropy stride 3 start 64",
                h(),
                [
                    *chain("normal", (1.0, 1.5)),
                    ("result", "entropy", {"stride": 3, "start_bin": 64}),
                ],
            ),
            (
                f"{mode} entropy start_bin > bins",
                h(num_bins=100),
                [collect(nrm(1.0)), ("result", "entropy", {})],
            ),
            (
                f"{mode} entropy twice then percentile",
                h(),
                [
                    collect(nrm(1.0)),
                    ("result", "entropy", {}),
                    ("result", "entropy", {}),
                    ("result", "percentile", {"percentile": 50.0}),
                    ("result", "mse", {}),
                ],
            ),
            (
                f"{mode} percentile then entropy",
                h(),
                [
                    collect(nrm(1.0)),
                    ("result", "percentile", {"percentile": 50.0}),
                    ("result", "entropy", {}),
                    ("result", "percentile", {"percentile": 50.0}),
                ],
            ),
            (f"{mode} 4 bits", h(num_bits=4), [*chain("normal", (1.0, 2.0)), *results()]),
            (f"{mode} unsigned", h(unsigned=True), [*chain("relu", (1.0, 2.0)), *results()]),
            (
                f"{mode} mse above 8",
                h(),
                [
                    *chain("normal", (40.0, 60.0)),
                    *results(("result", "mse", {"start_bin": 100, "stride": 7})),
                ],
            ),
            (
                f"{mode} mse start_bin >= bins",
                h(num_bins=128),
                [collect(nrm(1.0)), ("result", "mse", {})],
            ),
            (
                f"{mode} percentiles",
                h(),
                [
                    *chain("normal", (1.0, 2.0)),
                    *(
                        ("result", "percentile", {"percentile": p})
                        for p in (0.0, 50.0, 99.99, 100.0)
                    ),
                    ("result", "percentile", {"percentile": -1.0}),
                ],
            ),
            (
                f"{mode} no data",
                h(),
                [
                    ("result", "percentile", {"percentile": 99.0}),
                    ("result", "entropy", {}),
                    ("result", "mse", {}),
                ],
            ),
            (f"{mode} reset", h(), [collect(nrm(3.0)), ("reset",), collect(nrm(1.0)), *results()]),
            (
                f"{mode} 2048 bins",
                {"torch_hist": torch_hist},
                [
                    collect(nrm(1.0, (4096,))),
                    collect(nrm(1.2, (4096,))),
                    ("result", "entropy", {"start_bin": 1024, "stride": 16}),
                    ("result", "percentile", {"percentile": 99.9}),
                    ("result", "mse", {"stride": 64}),
                ],
            ),
            (
                f"{mode} per channel axis 0",
                h(),
                [*chain("normal", (1.0, 2.0, 0.6), (3, 96)), *results()],
                {"channel_axis": 0},
            ),
            (
                f"{mode} per channel axis -1",
                h(num_bins=160),
                [*chain("normal", (1.0, 2.5), (40, 4)), *results()],
                {"channel_axis": -1},
            ),
            (
                f"{mode} merge 2 ranks",
                h(),
                [*chain("normal", (1.0, 2.4, 0.3, 5.0), (16, 8)), *results()],
                {"ranks": 2},
            ),
            (
                f"{mode} merge 3 ranks",
                h(),
                [*chain("heavy", (1.0, 3.0), (16, 8)), *results()],
                {"ranks": 3},
            ),
            (
                f"{mode} merge 3 ranks per channel",
                h(),
                [*chain("normal", (1.0, 2.0), (8, 2)), *results()],
                {"ranks": 3, "channel_axis": 1},
            ),
        ]
    return out


def modelopt_mse_cases() -> list[Entry]:
    """ModelOpt MseCalibrator with ``_tensor_quant(x, amax, 8, False)`` (spec 8.16).
    ``amax`` is the initial amax (a float, or nested lists for an axis)."""
    q = {"quant_func": "tensor_quant_8"}
    return [
        ("per tensor", {"amax": 2.5, **q}, chain("normal", (1.0, 1.5))),
        (
            "axis 0",
            {"amax": [[2.5], [3.0], [1.0], [4.0]], "axis": 0, **q},
            chain("normal", (1.0, 1.5), (4, 64)),
        ),
        ("no quant_func", {"amax": 2.5}, [collect(nrm(1.0))]),
        (
            "reset then collect",
            {"amax": 2.5, **q},
            [collect(nrm(1.0)), ("reset",), collect(nrm(1.0))],
        ),
        ("merge 2 ranks", {"amax": 3.0, **q}, chain("normal", (1.0, 2.0), (16, 8)), {"ranks": 2}),
    ]
