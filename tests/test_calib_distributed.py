"""The calibrators with ``process_group=`` (gloo, 2 local processes, spawned once).

Each rank collects its shard of every global batch; after every collect, every
rank's histogram (counts and edges), range and refusal must equal, bit for
bit, the live reference (ONNX Runtime 1.31.1, ModelOpt 0.47.0) fed the
ranks' batches concatenated in rank order. The stream grows and shrinks the
range, leaves one rank empty, puts a NaN on one rank, holds both signed
zeros across the ranks (the gathered path), and an inf on one rank (a
refusal on every rank, the state kept); a float64 batch on one rank is
refused by its own check there and named on the other.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)
if os.environ.get("ARRAYOBS_BACKENDS") and "torch" not in os.environ["ARRAYOBS_BACKENDS"]:
    pytest.skip("torch is not among ARRAYOBS_BACKENDS", allow_module_level=True)

WORLD = 2


def batches() -> list[np.ndarray]:
    """(rows, 3) float32 global batches, split by rows between the ranks (:func:`shard`)."""
    rng = np.random.default_rng(26)
    out = []
    for step, scale in enumerate((1.0, 4.0, 0.5, 10.0, 1.0, 2.0, 30.0)):
        b = (rng.standard_normal((40 + 7 * step, 3)) * scale).astype(np.float32)
        if step == 2:
            b[-3, 1] = np.nan  # on rank 1
        if step == 3:
            b[0, :] = -0.0  # rank 0's first row, and rank 1's last: both signed zeros
            b[-1, :] = 0.0
        if step == 4:
            b[2, 0] = np.inf  # rank 0: refused everywhere
        out.append(b)
    return out


def shard(b: np.ndarray, rank: int, step: int) -> np.ndarray:
    cut = 0 if step == 1 else b.shape[0] // 3  # step 1: rank 0 empty
    return b[:cut] if rank == 0 else b[cut:]


# (name, ORT HistogramCollector arguments, channel_axis)
ORT_CASES = [
    ("entropy", ("entropy", False, 16), None),
    ("percentile_symmetric", ("percentile", True, 16), None),
    ("entropy_per_channel", ("entropy", False, 8), 1),
]
# (name, ModelOpt HistogramCalibrator keyword arguments)
MODELOPT_CASES = [
    ("torch_hist", {"num_bins": 32, "torch_hist": True}),
    ("numpy_hist", {"num_bins": 32, "torch_hist": False}),
    ("numpy_skip_zeros", {"num_bins": 32, "torch_hist": False, "skip_zeros": True}),
]
# (name, ORT MinMaxCalibrater keyword arguments)
MINMAX_CASES = [
    ("plain", {}),
    ("moving_average", {"moving_average": True, "averaging_constant": 0.25}),
    ("symmetric", {"symmetric": True}),
]
MAX_CASES = [("per_tensor", None), ("axis1", 1)]


def _quiet(fn: Any) -> Any:
    """Run ``fn()``; its exception's type name, or ``""``."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn()
        except Exception as exc:  # the type is what is compared
            return type(exc).__name__
    return ""


def _host(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy().copy()
    return np.array(v, copy=True)


def split(x: np.ndarray) -> list[np.ndarray]:
    """One rank's batches of one MinMax ``collect_data`` call (NaN-free: ORT's
    kernel and arrayobs differ on a NaN that does not lead, a documented deviation)."""
    x = np.nan_to_num(x, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return [x[:5].copy(), x[5:].copy()]


def run_all(make: dict[str, Any], feed: Any, calls: Any) -> dict[str, np.ndarray]:
    """Every case's record after every step. ``make[family](...)`` builds a
    calibrator; ``feed(batch, step)`` gives the (numpy) array it collects,
    ``calls(batch, step)`` the batches of a MinMax ``collect_data`` call."""
    records: dict[str, np.ndarray] = {}

    def record(key: str, refused: str, values: list[Any]) -> None:
        records[f"{key}_refused"] = np.array(refused)
        for j, v in enumerate(values):
            records[f"{key}_{j}"] = _host(v)

    for name, args, axis in ORT_CASES:
        cal = make["ort"](args, axis)
        for step, b in enumerate(batches()):
            x = torch.from_numpy(feed(b, step))
            refused = _quiet(lambda cal=cal, x=x: cal.collect(x))
            record(f"ort_{name}_{step}", refused, make["ort_state"](cal))
    for name, kw in MODELOPT_CASES:
        cal = make["modelopt"](kw)
        for step, b in enumerate(batches()):
            x = torch.from_numpy(feed(b, step))
            refused = _quiet(lambda cal=cal, x=x: cal.collect(x))
            record(f"mo_{name}_{step}", refused, make["modelopt_state"](cal))
    for name, kw in MINMAX_CASES:
        cal = make["minmax"](kw)
        for step, b in enumerate(batches()):
            arrays = [torch.from_numpy(c) for c in calls(b, step)]
            refused = _quiet(lambda cal=cal, arrays=arrays: make["minmax_collect"](cal, arrays))
            record(f"minmax_{name}_{step}", refused, make["minmax_state"](cal))
    for name, axis in MAX_CASES:
        cal = make["max"](axis)
        for step, b in enumerate(batches()):
            x = torch.from_numpy(feed(b, step))
            refused = _quiet(lambda cal=cal, x=x: cal.collect(x))
            amax = cal.compute_amax()
            record(f"max_{name}_{step}", refused, [np.array([]) if amax is None else amax])
    return records


# -- the ranks (arrayobs) ---------------------------------------------------------------
def _ours(group: Any) -> dict[str, Any]:
    from arrayobs.calib import modelopt as mo
    from arrayobs.calib import ort

    def ort_state(cal: Any) -> list[Any]:
        if cal._state is None:
            return []
        rows = cal.histogram if cal.channel_axis is not None else [cal.histogram]
        return [v for row in rows for v in row]

    def modelopt_state(cal: Any) -> list[Any]:
        return [] if cal.calib_hist is None else [cal.calib_hist, cal.calib_bin_edges]

    return {
        "ort": lambda args, axis: ort.HistogramCollector(
            *args, 16, 99.9, channel_axis=axis, process_group=group
        ),
        "ort_state": ort_state,
        "modelopt": lambda kw: mo.HistogramCalibrator(**kw, process_group=group),
        "modelopt_state": modelopt_state,
        "minmax": lambda kw: ort.MinMaxCalibrater(**kw, process_group=group),
        "minmax_collect": lambda cal, calls: cal.collect(calls),
        "minmax_state": lambda cal: [] if cal._state is None else list(cal.compute_data()),
        "max": lambda axis: mo.MaxCalibrator(axis=axis, process_group=group),
    }


def _worker(rank: int, port: int, out: str) -> None:
    # numba's fast path is compared with the generic one elsewhere; compiling it
    # in each fresh rank would cost more than this whole test
    os.environ["ARRAYOBS_NUMBA"] = "0"
    dist = torch.distributed
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        group = dist.group.WORLD
        records = run_all(
            _ours(group),
            lambda b, step: shard(b, rank, step),
            lambda b, step: split(shard(b, rank, step)),
        )
        records.update(_refusal(group, rank))
        np.savez(Path(out) / f"rank{rank}.npz", **records)
    finally:
        dist.destroy_process_group()


def _refusal(group: Any, rank: int) -> dict[str, np.ndarray]:
    """A float64 batch on rank 1 only: its own TypeError there, RuntimeError on rank 0,
    and every rank's state as before."""
    from arrayobs.calib import ort

    cal = ort.HistogramCollector("entropy", False, 8, 8, 99.9, process_group=group)
    cal.collect(torch.ones(4, dtype=torch.float32) * (rank + 1))
    before = cal.histogram
    bad = torch.ones(4, dtype=torch.float64 if rank == 1 else torch.float32)
    try:
        cal.collect(bad)
        outcome = "no error"
    except Exception as exc:  # which type each rank raises is the point
        outcome = f"{type(exc).__name__}: {exc}"
    after = cal.histogram
    kept = all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    return {"refusal_outcome": np.array(outcome), "refusal_kept": np.array(kept)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    out = tmp_path_factory.mktemp("calib_group")
    torch.multiprocessing.start_processes(
        _worker, args=(_free_port(), str(out)), nprocs=WORLD, start_method="spawn"
    )
    return [np.load(out / f"rank{r}.npz") for r in range(WORLD)]


# -- the references on the concatenated stream ----------------------------------------------
def _references() -> dict[str, Any]:
    calibrate = pytest.importorskip(
        "onnxruntime.quantization.calibrate", reason="reference not installed: onnxruntime 1.31.1"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ModelOpt's torch.jit.script
        ref_calib = pytest.importorskip(
            "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
        )

    class PerChannel:
        """One ORT collector per channel slice (arrayobs's per-channel definition)."""

        def __init__(self, args: Any, axis: int | None) -> None:
            self.axis = axis
            self.refs: list[Any] = []
            self.args = args

        def collect(self, x: Any) -> None:
            x = x.numpy()
            slices = [x.reshape(-1)] if self.axis is None else list(np.moveaxis(x, self.axis, 0))
            if not self.refs:
                self.refs = [
                    calibrate.HistogramCollector(*self.args, 16, 99.9, "same") for _ in slices
                ]
            for ref, s in zip(self.refs, slices, strict=True):
                ref.collect({"t": [s.reshape(-1)]})

    def ort_state(cal: Any) -> list[Any]:
        return [v for ref in cal.refs for v in ref.histogram_dict.get("t", ())]

    def modelopt_state(cal: Any) -> list[Any]:
        hist = cal._calib_hist
        return [] if hist is None else [hist, cal._calib_bin_edges]

    def minmax_collect(cal: Any, calls: list[Any]) -> None:
        cal.collect(calls)

    return {
        "ort": PerChannel,
        "ort_state": ort_state,
        "modelopt": lambda kw: ref_calib.HistogramCalibrator(**kw),
        "modelopt_state": modelopt_state,
        "minmax": lambda kw: _OrtMinMax(calibrate, **kw),
        "minmax_collect": minmax_collect,
        "minmax_state": lambda cal: cal.state(),
        "max": lambda axis: ref_calib.MaxCalibrator(axis=axis),
    }


class _OrtMinMax:
    """ORT's MinMaxCalibrater on a one-Identity model, fed one collect_data call of
    ``calls`` (the batches in order), as tests/test_calib_ort_minmax.py drives it."""

    def __init__(self, calibrate: Any, **kw: Any) -> None:
        from tests.test_calib_ort_minmax import reference

        self._reference, self._kw, self._calls = reference, kw, []

    def collect(self, calls: list[Any]) -> None:
        self._calls.append([c.numpy() for c in calls])
        self._result = self._reference(_model_folder(), self._calls, **self._kw)

    def state(self) -> list[Any]:
        return [] if not self._calls else list(self._result)


def _model_folder() -> str:
    return str(_FOLDER[0])


_FOLDER: list[Path] = []


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    _FOLDER.append(tmp_path_factory.mktemp("ort_models"))
    return run_all(
        _references(),
        lambda b, step: b,
        lambda b, step: [c for r in range(WORLD) for c in split(shard(b, r, step))],
    )


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    want = np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    if got.dtype.kind == "f":
        both_nan = np.isnan(got) & np.isnan(want)
        return bool(
            np.all((got.view(f"u{got.itemsize}") == want.view(f"u{got.itemsize}")) | both_nan)
        )
    return bool(np.array_equal(got, want))


def test_every_rank_equals_the_reference_on_the_concatenation(
    expected: dict[str, np.ndarray], ranks: list[Any]
) -> None:
    """One test for the whole module: pytest-xdist would otherwise start the ranks
    once per worker that runs one of its tests (``expected`` first: it skips
    without the references before any rank starts)."""
    for family in ("ort", "mo", "minmax", "max"):
        keys = [k for k in expected if k.startswith(f"{family}_")]
        assert keys, family
        for rank, got in enumerate(ranks):
            for key in keys:
                assert key in got, f"rank {rank}: {key} missing"
                assert _same(got[key], expected[key]), (
                    f"rank {rank}, {key}: {got[key]!r} vs the reference {expected[key]!r}"
                )
    # a float64 batch on rank 1 alone: refused on both, no state changed
    own = str(ranks[1]["refusal_outcome"])
    other = str(ranks[0]["refusal_outcome"])
    assert own.startswith("TypeError"), own
    assert other.startswith("RuntimeError: rank 1 of the process group refused"), other
    assert all(bool(r["refusal_kept"]) for r in ranks)


def _classes() -> list[Any]:
    from arrayobs.calib import modelopt as mo
    from arrayobs.calib import ort

    return [
        lambda **kw: ort.HistogramCollector("entropy", False, 8, 8, 99.9, **kw),
        ort.MinMaxCalibrater,
        mo.MaxCalibrator,
        lambda **kw: mo.HistogramCalibrator(num_bins=8, **kw),
    ]


def test_process_group_is_checked_and_never_pickled() -> None:
    """Checked at construction (torch only); shared by a deep copy; never pickled."""
    import copy
    import pickle

    dist = torch.distributed
    # A process group that was never joined: enough to be checked and held, never used.
    group = dist.ProcessGroup(dist.HashStore(), 0, 1)
    for make in _classes():
        with pytest.raises(TypeError, match=r"must be a torch\.distributed\.ProcessGroup"):
            make(process_group="gloo")
        with pytest.raises(TypeError, match="process_group needs torch"):
            make(process_group=group, xp=np)
        cal = make(process_group=group)
        assert copy.deepcopy(cal)._group is group
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(cal)
        pickle.dumps(make())  # without a group: as before
