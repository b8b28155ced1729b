"""The command line: the demo's verdict against torch, and clean errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest

from arrayobs.cli import main


@pytest.mark.parametrize("observer", ["minmax", "moving-average"])
@pytest.mark.parametrize("qscheme", ["per_tensor_affine", "per_tensor_symmetric"])
def test_demo_matches_torch(
    torch_ref: Any, capsys: pytest.CaptureFixture[str], observer: str, qscheme: str
) -> None:
    assert main(["demo", "--observer", observer, "--qscheme", qscheme, "--dtype", "qint8"]) == 0
    out = capsys.readouterr().out
    assert "bit for bit: identical" in out
    assert "torch.ao: scale=" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["demo", "--dtype", "foo"], "dtype 'foo' is not supported"),
        (["demo", "--quant-min", "3", "--quant-max", "9"], "must include 0"),
        (["demo", "--batches", "0"], "--batches must be at least 1"),
    ],
)
def test_demo_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_demo_defaults(torch_ref: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "bit for bit: identical" in capsys.readouterr().out


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arrayobs", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout


def test_compare_numpy_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--backend", "numpy", "--quick", "25"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("numpy "))
    cells = row.split()
    assert cells[1] == "cpu" and int(cells[2]) > 0 and cells[4] == "0", row


def test_compare_per_channel_cases(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["compare", "--backend", "torch", "--cases", "per-channel", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases_run"] == 294 and report["results"][0]["mismatches"] == 0
    assert report["results"][0]["batches"] > report["cases_run"]  # rows: batches x channels


def test_compare_fake_quant_section(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    pytest.importorskip("array_api_strict")
    argv = ["compare", "--backend", "array_api_strict", "--cases", "fake-quant", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases_run"] == 0 and report["results"] == []
    assert report["fake_quant_cases_run"] == report["fake_quant_cases_in_corpus"] > 300
    (row,) = report["fake_quant_results"]
    assert row["label"] == "array_api_strict" and row["mismatches"] == 0
    assert 0 < row["cases"] < report["fake_quant_cases_run"]  # no float16 there: skipped
    assert main(["compare", "--backend", "numpy", "--quick", "40"]) == 0
    out = capsys.readouterr().out
    assert "fake quantize (rows: outputs" in out and "affine, torchao (rows" in out
    assert "histogram (rows: batches" in out and "calibrators, ORT and ModelOpt (rows" in out
    assert out.count("\nnumpy ") == 5  # observers, fake quantize, affine, histogram, calibrators


def test_compare_json_and_bad_backend(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["compare", "--backend", "numpy", "--quick", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["results"][0]["mismatches"] == 0
    assert report["reference"]["torch"].startswith("2.13.0")
    assert main(["compare", "--backend", "nope"]) == 2
    assert "unknown backend" in capsys.readouterr().err


def test_observe_files_match_torch(
    tmp_path: Any, torch_ref: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import numpy as np
    from torch.ao.quantization import MinMaxObserver as TorchMinMax

    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(50).astype(np.float32) * s for s in (1, 4, 2))
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "bc.npz", b=b, c=c)
    argv = ["observe", str(tmp_path / "a.npy"), str(tmp_path / "bc.npz"), "--observer", "minmax"]
    assert main([*argv, "--dtype", "qint8", "--qscheme", "per_tensor_symmetric", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = TorchMinMax(dtype=torch_ref.qint8, qscheme=torch_ref.per_tensor_symmetric)
    for x in (a, b, c):
        ref(torch_ref.from_numpy(x))
    scale, zp = ref.calculate_qparams()
    assert got["scale"] == float(scale[0]) and got["zero_point"] == int(zp[0])
    assert got["zero_point_dtype"] == "int64" and len(got["batches"]) == 3


@pytest.mark.parametrize("ch_axis", [0, -1])
@pytest.mark.parametrize("qscheme", [None, "per_channel_affine_float_qparams"])
def test_observe_per_channel_matches_torch(
    tmp_path: Any, torch_ref: Any, capsys: pytest.CaptureFixture[str], ch_axis: int, qscheme: Any
) -> None:
    import json

    import numpy as np
    from torch.ao.quantization import MovingAveragePerChannelMinMaxObserver as TorchMA

    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((4, 3, 6)).astype(np.float32) * s for s in (1, 3)]
    for i, b in enumerate(batches):
        np.save(tmp_path / f"{i}.npy", b)
    argv = ["observe", *(str(tmp_path / f"{i}.npy") for i in range(2)), "--ch-axis", str(ch_axis)]
    if qscheme:
        argv += ["--qscheme", qscheme]
    assert main([*argv, "--averaging-constant", "0.25", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = TorchMA(
        0.25, ch_axis=ch_axis, qscheme=getattr(torch_ref, qscheme or "per_channel_affine")
    )
    for b in batches:
        ref(torch_ref.from_numpy(b))
    scale, zp = ref.calculate_qparams()
    assert got["observer"] == "MovingAveragePerChannelMinMaxObserver"
    assert got["min_val"] == ref.min_val.tolist() and got["max_val"] == ref.max_val.tolist()
    assert got["scale"] == scale.tolist() and got["zero_point"] == zp.tolist()
    assert got["zero_point_dtype"] == str(zp.dtype).removeprefix("torch.")
    # A batch without the axis: a clean error naming the file.
    np.save(tmp_path / "flat.npy", np.ones(3, np.float32))
    assert main(["observe", str(tmp_path / "flat.npy"), "--ch-axis", "2"]) == 2
    assert "flat.npy: ch_axis 2 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p / "missing.npy", "cannot read"),
        (lambda p: (p / "x.txt").write_text("1") and p / "x.txt", "expected a .npy or .npz"),
        (lambda p: (np_save(p / "z.npy", [1 + 2j]), p / "z.npy")[1], "real or bool dtype"),
    ],
)
def test_observe_errors_exit_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], make: Any, fragment: str
) -> None:
    assert main(["observe", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def np_save(path: Any, values: Any) -> None:
    import numpy as np

    np.save(path, np.asarray(values))


def _damaged(tmp_path: Any, kind: str) -> Any:
    """A file that is not what its name says, in one of the ways files break."""
    import struct

    import numpy as np

    path = tmp_path / f"{kind}.{'npz' if 'npz' in kind else 'npy'}"
    if kind.startswith("empty"):
        path.write_bytes(b"")
    elif kind == "zip_garbage_npz":
        path.write_bytes(b"PK\x03\x04" + bytes(60))
    elif kind == "corrupt_member_npz":
        np.savez_compressed(path, a=np.arange(1000, dtype=np.float32))
        data = bytearray(path.read_bytes())
        at = data.find(b"a.npy") + 60
        data[at : at + 20] = b"\xff" * 20
        path.write_bytes(bytes(data))
    else:  # a header that claims 2**40 float32 elements
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }"
        header += " " * (-(10 + len(header) + 1) % 64) + "\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        path.write_bytes(path.read_bytes() + header.encode() + bytes(16))
    return path


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("empty_npy", "empty"),
        ("empty_npz", "empty"),
        ("zip_garbage_npz", "cannot read"),
        ("corrupt_member_npz", "cannot read"),
        ("huge_header", "header claims shape (1099511627776,)"),
    ],
)
def test_damaged_files_exit_2_with_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], kind: str, fragment: str
) -> None:
    assert main(["observe", str(_damaged(tmp_path, kind))]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "argv",
    [
        ["observe", "a.npy", "--ch-axis", "0", "--dtype", "int16", "--quant-min", "-4294967296"],
        ["demo", "--dtype", "uint8", "--quant-min", "0", "--quant-max", "4294967296"],
    ],
)
def test_ranges_beyond_int32_exit_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    import numpy as np

    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    argv = [str(tmp_path / a) if a.endswith(".npy") else a for a in argv]
    if "--quant-max" not in argv:
        argv += ["--quant-max", "10"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit int32" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["observe"], ["frobnicate"]])
def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error:" in err, err


def test_observe_takes_files_after_options(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import numpy as np

    np.save(tmp_path / "a.npy", np.asarray([[1.0, -2.0]], np.float32))
    np.save(tmp_path / "b.npy", np.asarray([[5.0, 0.5]], np.float32))
    a, b = str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    assert main(["observe", a, "--ch-axis", "1", b, "--observer", "minmax", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["batches"] == [a, b] and got["max_val"] == [5.0, 0.5]


def test_demo_nan_on_both_sides_is_identical(
    torch_ref: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--averaging-constant", "nan"]) == 0
    out = capsys.readouterr().out
    assert "scale=nan" in out and "bit for bit: identical" in out


def test_compare_affine_section(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    argv = ["compare", "--backend", "numpy", "--cases", "affine", "--quick", "3", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases_run"] == report["fake_quant_cases_run"] == 0
    assert report["affine_reference"]["torchao"] == "0.18.0"
    assert report["affine_cases_run"] == -(-report["affine_cases_in_corpus"] // 3)
    (row,) = report["affine_results"]
    assert row["label"] == "numpy" and row["mismatches"] == 0
    assert row["cases"] == report["affine_cases_run"] and row["batches"] > row["cases"]
    if importlib.util.find_spec("array_api_strict") is not None:
        argv = ["compare", "--backend", "array_api_strict", "--cases", "affine", "--quick", "3"]
        assert main(argv) == 0
        assert "affine, torchao (rows: outputs" in capsys.readouterr().out


def test_compare_histogram_section(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    argv = ["compare", "--backend", "numpy", "--cases", "histogram", "--quick", "4", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases_run"] == report["fake_quant_cases_run"] == report["affine_cases_run"] == 0
    assert report["histogram_reference"]["torch"] == "2.13.0+cpu"
    assert report["histogram_cases_in_corpus"] == 136 and report["histogram_cases_run"] == 34
    (row,) = report["histogram_results"]
    assert row["label"] == "numpy" and row["mismatches"] == 0
    # NumPy has no bfloat16: those cases are skipped; the rest ran, a row per batch.
    assert row["cases"] + row["skipped"] == 34 and row["cases"] > 25
    assert row["batches"] > 3 * row["cases"]
    if importlib.util.find_spec("array_api_strict") is not None:
        argv = ["compare", "--backend", "array_api_strict:no_x64", "--cases", "histogram"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "histogram (rows" not in out
        assert "skipped: histogram section on array_api_strict:no_x64: searchsorted" in out


def test_compare_histogram_detects_a_corrupted_reference(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One count and one scale bit changed in the stored histogram reference: two mismatches."""
    import numpy as np

    from arrayobs._conformance import _records

    records, meta = _records.load_histogram()
    lo, hi = records.hist_case_offsets[60:62]  # constant batches, 1 bin, float32
    records.hist_bits[records.hist_offsets[hi - 1]] ^= np.uint32(1)
    records.hist_scale_bits[lo] ^= np.uint32(1)
    _records.save_histogram(records, tmp_path / "bad.npz", meta)
    monkeypatch.setattr(_records, "histogram_reference_path", lambda: tmp_path / "bad.npz")
    argv = ["compare", "--backend", "numpy", "--cases", "histogram", "--quick", "20"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("numpy "))
    assert row.split()[4] == "2", row  # mismatching rows: batches 0 and 2
    line = next(line for line in out.splitlines() if line.startswith("MISMATCH"))
    assert line.startswith("MISMATCH numpy: hist case 60 (constant bins=1 float32"), line
    assert "batch 0: scale differ" in line  # the first mismatching batch, described
