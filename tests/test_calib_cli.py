"""``arrayobs calibrate``: several calibration methods on the same .npy activations.

The command is driven through a stand-in for ``arrayobs.calib`` made of the live
references (tests/test_calib_conformance.py), so its numbers are checked against ORT
1.31.1, ModelOpt 0.47.0 and torch.ao called directly here; the same checks run on
arrayobs.calib itself once it imports (skipped until then).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arrayobs import _cli_calibrate
from arrayobs.cli import main
from tests.test_calib_conformance import stand_in

ALL = _cli_calibrate.METHODS
# Through the stand-in, ModelOpt's own entropy search (about 11 s on 2048 bins) would run
# twice (here and in the command): it is checked on arrayobs.calib only.
QUICK = tuple(m for m in ALL if m != "modelopt-entropy")


def _files(tmp_path: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    batches = [
        rng.standard_normal(3000).astype(np.float32),
        (rng.standard_normal((40, 50)) * 2.5).astype(np.float32),
    ]
    batches[0][0] = 12.0  # the first batch sets the range: the histograms do not grow
    for i, b in enumerate(batches):
        np.save(tmp_path / f"b{i}.npy", b)
    return batches


def _expected(
    batches: list[np.ndarray], methods: tuple[str, ...]
) -> dict[str, tuple[float, float]]:
    """Each method's range, from the references called directly."""
    cal = pytest.importorskip(
        "onnxruntime.quantization.calibrate", reason="reference not installed: onnxruntime 1.31.1"
    )
    mo = pytest.importorskip(
        "modelopt.torch.quantization.calib", reason="reference not installed: ModelOpt 0.47.0"
    )
    torch = importlib.import_module("torch")
    out = {}
    for method, (name, sym, bins, nq, pct) in _cli_calibrate._ORT.items():
        c = cal.HistogramCollector(name, sym, bins, nq, pct, "same")
        with contextlib.redirect_stdout(io.StringIO()):
            for b in batches:
                c.collect({"x": [b]})
            r = c.compute_collection_result()["x"]
        lo, hi = (r.lowest, r.highest) if hasattr(r, "lowest") else (r[0], r[1])
        out[method] = (float(lo), float(hi))
    h, m = mo.HistogramCalibrator(), mo.MaxCalibrator()
    for b in batches:
        h.collect(torch.from_numpy(b))
        m.collect(torch.from_numpy(b))
    for method, kw in _cli_calibrate._MODELOPT.items():
        if method not in methods:
            continue
        a = float(h.compute_amax(method.removeprefix("modelopt-"), **kw))
        out[method] = (-a, a)
    a = float(m.compute_amax())
    out["modelopt-max"] = (-a, a)
    obs = importlib.import_module("torch.ao.quantization").HistogramObserver()
    for b in batches:
        obs(torch.from_numpy(b))
    scale, zp = obs.calculate_qparams()
    s, z = np.float32(scale.item()), int(zp.item())
    out["torch-histogram"] = (float((0 - z) * s), float((255 - z) * s))
    return {m: out[m] for m in methods}


def _check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], methods: tuple[str, ...]
) -> dict[str, Any]:
    batches = _files(tmp_path)
    want = _expected(batches, methods)
    files = [str(tmp_path / "b0.npy"), str(tmp_path / "b1.npy")]
    assert main(["calibrate", *files, "--method", ",".join(methods), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["values"] == 5000 and report["batches"] == files
    got = {r["method"]: tuple(r["range"]) for r in report["methods"]}
    assert list(got) == list(methods)
    assert got == want
    return report


def test_calibrate_through_the_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli_calibrate, "calib_modules", stand_in)
    report = _check(tmp_path, capsys, QUICK)
    ort = next(r for r in report["methods"] if r["method"] == "ort-entropy")
    assert ort["qparams"]["dtype"] == "uint8" and 0 <= ort["qparams"]["zero_point"] <= 255
    # The table names every method, and files may follow an option.
    files = [str(tmp_path / "b0.npy"), "--method", "ort-percentile,modelopt-max"]
    assert main(["calibrate", *files, str(tmp_path / "b1.npy")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 batches, 5000 values") and "modelopt-max" in out
    assert "ort-percentile" in out and "ort-entropy" not in out


def test_calibrate_on_arrayobs_calib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _check(tmp_path, capsys, ALL)


def test_calibrate_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _files(tmp_path)
    f = str(tmp_path / "b0.npy")
    assert main(["calibrate", f, "--method", "ort-entropy,nope"]) == 2
    assert "unknown method ['nope']; choose from torch-histogram" in capsys.readouterr().err
    assert main(["calibrate", str(tmp_path / "missing.txt")]) == 2
    assert "expected a .npy or .npz file" in capsys.readouterr().err
    # torch-histogram alone needs nothing beyond arrayobs.
    assert main(["calibrate", f, "--method", "torch-histogram", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["methods"]
    assert row["qparams"]["dtype"] == "quint8"
    try:
        importlib.import_module("arrayobs.calib")
    except ImportError:
        assert main(["calibrate", f, "--method", "ort-entropy"]) == 2
        assert "the calibrators need arrayobs.calib" in capsys.readouterr().err


def test_calibrate_plot_without_matplotlib(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib, --plot is refused with what to install, and writes nothing."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    _files(tmp_path)
    out = tmp_path / "ranges.png"
    argv = ["calibrate", str(tmp_path / "b0.npy"), "--method", "torch-histogram"]
    assert main([*argv, "--plot", str(out)]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not out.exists()


def test_calibrate_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--plot draws a 1080 x 540 PNG: the values' histogram in grey and each method's
    range as two dashed lines in its own colour of matplotlib's cycle."""
    # The reason's prefix makes tests-calib, which installs arrayobs[plot], fail rather
    # than skip when matplotlib is missing (tests/conftest.py: REFERENCE_MISSING).
    pytest.importorskip("matplotlib", reason="reference not installed: matplotlib (arrayobs[plot])")
    from matplotlib import image

    monkeypatch.setattr(_cli_calibrate, "calib_modules", stand_in)
    _files(tmp_path)
    f, out = str(tmp_path / "b0.npy"), tmp_path / "ranges.png"
    argv = ["calibrate", f, "--method", "ort-entropy,modelopt-max", "--plot", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plot"] == str(out) and len(report["methods"]) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(out)
    assert pixels.shape == (540, 1080, 4)  # figsize (9, 4.5) at 120 dpi
    rgb = pixels[..., :3].reshape(-1, 3) * 255
    # The bars' grey (0.6), and near matplotlib's first two cycle colours (the methods'
    # lines, antialiased): at least a line's height of pixels each.
    for colour in ((153, 153, 153), (31, 119, 180), (255, 127, 14)):
        near = np.linalg.norm(rgb - np.asarray(colour), axis=1) < 64
        assert near.sum() > 300, colour
    # The table names where the picture went.
    assert main(argv[:-1]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {out}")
