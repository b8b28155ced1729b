"""``arrayobs reference export`` and ``arrayobs compare --target``: the reference numbers
outside arrayobs. The export is replayed against live torch.ao by a reader that imports
nothing from arrayobs (tests/replay_export.py), its histogram section also through
arrayobs.HistogramObserver, its calibrators section (with NumPy alone) against the stored
ORT / ModelOpt file, and the corpus runs on third-party observers through the
``--target`` protocol (tests/torchao_target.py, tests/wrong_target.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arrayobs._conformance._calib_records import reference_path as calib_reference_path
from arrayobs.cli import main

_TESTS = Path(__file__).parent
# torch's HistogramObserver takes ~0.25 s a case (its search walks to the end on few bins):
# the test replays every 29th histogram case on torch (5 of 136: float32, float64 and
# bfloat16 batches, 1 to 2048 bins, both statuses and the inf warning; ~0.5 s), arrayobs
# replays the others; `python tests/replay_export.py DIR` replays all on torch (~35 s).
_HIST_EVERY = 29


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference") / "export"
    assert main(["reference", "export", str(root)]) == 0
    return root


def test_export_replays_on_live_torch_without_arrayobs(exported: Path, torch_ref: Any) -> None:
    """Every case of every section, from the files alone, against torch.ao: 0 mismatches."""
    out = subprocess.run(
        [
            sys.executable,
            str(_TESTS / "replay_export.py"),
            str(exported),
            "--hist-every",
            str(_HIST_EVERY),
            "--calib-reference",
            str(calib_reference_path()),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=exported,  # not the repository: nothing of arrayobs's source on the path
    )
    report = json.loads(out.stdout)
    assert report["arrayobs_imported"] == [], report
    assert report["corrupt_files"] == [] and report["files"] > 18000
    assert report["observer_cases"] == 1458 and report["observer_batches"] > 14000
    assert report["fake_quant_cases"] == 332
    assert report["affine_cases"] == 268
    assert report["histogram_cases"] == 5 and report["histogram_batches"] == 21
    assert (
        report["observer_mismatches"]
        == report["fake_quant_mismatches"]
        == report["affine_mismatches"]
        == report["histogram_mismatches"]
        == report["calibrators_mismatches"]
        == 0
    ), report
    assert report["calibrators_cases"] == 148
    assert report["reference"] == {"torch": "2.13.0+cpu", "torchao": "0.18.0"}


def test_manifest_format(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["format"] == "arrayobs-reference-export" and manifest["format_version"] == 3
    assert manifest["corpus_version"] == 3
    assert manifest["sections"] == [
        "per-tensor",
        "per-channel",
        "fake-quant",
        "affine",
        "histogram",
        "calibrators",
    ]
    assert manifest["reference"]["torchao"] == "0.18.0"
    affine = manifest["affine_cases"]
    assert {c["op"] for c in affine} == {"choose", "with_min_max", "float8", "observer"}
    f8 = next(e for c in affine for e in c["expected"] if e and e["torch_dtype"] == "float8_e5m2")
    assert f8["dtype"] == "float32"  # float8 values as their exact float32 values
    cases = manifest["observer_cases"]
    by_section = [c["section"] for c in cases]
    assert by_section.count("per-channel") == 294 and by_section.count("per-tensor") == 1164
    batches = [b for c in cases for b in c["batches"]]
    # bfloat16 as its uint16 bits; the arguments in torch's names.
    bf16 = next(b for b in batches if b["dtype"] == "bfloat16")
    assert np.load(exported / bf16["file"]).dtype == np.uint16
    assert {c["observer"] for c in cases} == {
        "MinMaxObserver",
        "MovingAverageMinMaxObserver",
        "PerChannelMinMaxObserver",
        "MovingAveragePerChannelMinMaxObserver",
    }
    eps = {c["arguments"]["eps"]["float64"] for c in cases}
    assert "0x3e80000000000000" in eps  # 2**-23, as binary64 bits
    statuses = {b["expected"]["status"] for b in batches}
    assert statuses == {"ok", "never-observed", "refused"}
    refused = next(b["expected"] for b in batches if b["expected"]["status"] == "refused")
    assert refused["scale"] is None and refused["zero_point"] is None
    never_pc = next(
        b["expected"]
        for c in cases
        if c["section"] == "per-channel"
        for b in c["batches"]
        if b["expected"]["status"] == "never-observed"
    )
    assert never_pc["min_val"] == [] and never_pc["scale"] == ["0x3f800000"]
    assert never_pc["zero_point"] == [0] and never_pc["zero_point_dtype"] == "int64"
    # A per-tensor module's min_val is 0-d, as torch's.
    module = next(c for c in manifest["fake_quant_cases"] if c["op"] == "module")
    min_val = module["state_dict"]["activation_post_process.min_val"]
    assert min_val["shape"] == [] and np.load(exported / min_val["file"]).shape == ()
    # The histogram section: torch's counts as a float32 array of `bins` after every batch.
    assert manifest["histogram_reference"] == {
        "torch": "2.13.0+cpu",
        "corpus_version": 1,
        "created": manifest["histogram_reference"]["created"],
    }
    hist = manifest["histogram_cases"]
    assert len(hist) == 136 and sum(len(c["batches"]) for c in hist) == 536
    assert {c["observer"] for c in hist} == {"HistogramObserver"}
    assert {b["dtype"] for c in hist for b in c["batches"]} == {
        "float16",
        "bfloat16",
        "float32",
        "float64",
    }
    for c in hist[::17]:
        counts = c["batches"][-1]["expected"]["histogram"]
        assert counts["dtype"] == "float32" and counts["shape"] == [c["arguments"]["bins"]]
        assert np.load(exported / counts["file"]).dtype == np.float32
    expected = [b["expected"] for c in hist for b in c["batches"]]
    assert {e["status"] for e in expected} == {"ok", "never-observed"}
    assert {e["zero_point_dtype"] for e in expected} == {"int32", "int64"}
    assert sum(e["inf_warning"] for e in expected) == 80
    never = next(e for e in expected if e["status"] == "never-observed")
    assert (never["min_val"], never["max_val"]) == ("0x7f800000", "0xff800000")
    assert never["scale"] == ["0x3f800000"] and never["zero_point"] == [0]
    assert hist[6]["arguments"] == {
        "bins": 7,
        "dtype": "quint8",
        "qscheme": "per_tensor_affine",
        "reduce_range": False,
    }
    _check_calibrators(exported, manifest)
    listed = set(manifest["files"])
    on_disk = {str(p.relative_to(exported)) for p in exported.rglob("*.npy")}
    assert listed == on_disk


def _check_calibrators(exported: Path, manifest: dict[str, Any]) -> None:
    """The calibrators section: ORT's and ModelOpt's versions, every family and op, merge
    pieces, per-channel rows, None outputs and refusals (with the channel) as specified."""
    reference = manifest["calibrators_reference"]
    assert (reference["onnxruntime"], reference["modelopt"]) == ("1.31.1", "0.47.0")
    assert set(reference["machine"]) == {
        "torch_cpu_capability",
        "torch_num_threads",
        "torch_default_dtype",
        "numpy_simd",
    }
    calib = manifest["calibrators_cases"]
    assert len(calib) == 148 and {c["section"] for c in calib} == {"calibrators"}
    assert {(c["family"], c["class"]) for c in calib} == {
        ("ort-histogram", "HistogramCollector"),
        ("ort-minmax", "MinMaxCalibrater"),
        ("ort-scale-zp", "compute_scale_zp"),
        ("modelopt-max", "MaxCalibrator"),
        ("modelopt-histogram", "HistogramCalibrator"),
        ("modelopt-mse", "MseCalibrator"),
    }
    ops = [op for c in calib for op in c["ops"]]
    assert {op["op"] for op in ops} == {"collect", "result", "qparams", "scale_zp", "reset"}
    merge = next(c for c in calib if c["ranks"] > 1)
    batch = merge["ops"][0]["batches"][0]
    assert len(batch["pieces"]) == merge["ranks"]
    assert batch["file"] == f"calibrators/{merge['id']:04d}/op-00-batch-0.npy"
    channels = next(c for c in calib if c["channel_axis"] is not None)
    rows = channels["ops"][0]["expected"]
    assert [r["channel"] for r in rows] == list(range(len(rows))) and len(rows) > 1
    refused = [c["refusal"] for c in calib if c["refusal"] is not None]
    assert len(refused) == 31 and set(refused[0]) == {"type", "message", "op", "channel"}
    outputs = [o for op in ops for e in op["expected"] for o in e["outputs"].values()]
    assert None in outputs
    hist = next(o for o in outputs if o and o["file"].endswith("-hist.npy"))
    assert hist["dtype"] == "int64" and np.load(exported / hist["file"]).dtype == np.int64


def test_export_one_section_without_torch(tmp_path: Path) -> None:
    """The numbers come from the stored files: torch unimportable, the export still runs."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from arrayobs.cli import main\n"
        f"sys.exit(main(['reference', 'export', {str(tmp_path / 'pc')!r}, '--cases', "
        f"'per-channel']) or main(['reference', 'export', {str(tmp_path / 'h')!r}, '--cases', "
        "'histogram']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "294 observer cases, 0 fake-quantize cases, 0 affine cases, 0 histogram" in out.stdout
    assert "0 observer cases, 0 fake-quantize cases, 0 affine cases, 136 histogram" in out.stdout
    manifest = json.loads((tmp_path / "pc" / "manifest.json").read_text())
    assert manifest["sections"] == ["per-channel"] and manifest["fake_quant_cases"] == []
    assert manifest["affine_cases"] == [] and manifest["reference"]["torchao"] is None
    assert manifest["histogram_cases"] == [] and manifest["histogram_reference"] is None
    manifest = json.loads((tmp_path / "h" / "manifest.json").read_text())
    assert manifest["sections"] == ["histogram"] and manifest["observer_cases"] == []
    assert len(manifest["histogram_cases"]) == 136 and len(manifest["files"]) == 2 * 536


# -- the histogram section through arrayobs.HistogramObserver -------------------------------
def _hex(v: Any) -> str:
    return f"0x{int(np.asarray(v, dtype=np.float32).reshape(()).view(np.uint32)):08x}"


def replay_histogram(root: Path, case: dict[str, Any]) -> list[str]:
    """One exported histogram case through arrayobs.HistogramObserver, from the files alone
    (NumPy arrays; bfloat16 batches as torch tensors: NumPy has no bfloat16); the mismatches."""
    from arrayobs import HistogramObserver
    from arrayobs._compat import to_host

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        obs = HistogramObserver(**case["arguments"])  # names, ints and bools: no floats
    bad = []
    for i, batch in enumerate(case["batches"]):
        x = np.load(root / batch["file"], allow_pickle=False)
        assert list(x.shape) == batch["shape"], batch
        if batch["dtype"] == "bfloat16":
            import torch

            x = torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs(x)
        inf_warning = any("torch.inf detected" in str(w.message) for w in caught)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scale, zp = obs.calculate_qparams()
        scale, zp = np.asarray(to_host(scale)), np.asarray(to_host(zp))
        got = {
            "status": "never-observed" if caught else "ok",
            "inf_warning": inf_warning,
            "min_val": _hex(to_host(obs.min_val)),
            "max_val": _hex(to_host(obs.max_val)),
            "scale": [_hex(s) for s in scale.reshape(-1)],
            "scale_dtype": str(scale.dtype),
            "zero_point": zp.reshape(-1).tolist(),
            "zero_point_dtype": str(zp.dtype),
        }
        want = batch["expected"]
        diff = [k for k in want if k != "histogram" and got.get(k) != want[k]]
        counts = np.asarray(to_host(obs.histogram))
        stored = np.load(root / want["histogram"]["file"], allow_pickle=False)
        if not (
            counts.dtype == stored.dtype == np.float32
            and list(stored.shape) == want["histogram"]["shape"]
            and np.array_equal(counts.view(np.uint32), stored.view(np.uint32))
        ):
            diff.append("histogram")
        if diff:
            bad.append(f"histogram case {case['id']} batch {i}: {diff} {got} vs {want}")
    return bad


def test_export_histogram_replays_through_arrayobs(exported: Path, torch_ref: Any) -> None:
    """Every float16/32/64 histogram case (on NumPy) and the bfloat16 ones of at most 256 bins
    (on torch: arrayobs re-bins 2048 or 4096 bfloat16 bins there in 0.5 to 1.4 s a case)
    reproduce the exported numbers bit for bit."""
    cases = json.loads((exported / "manifest.json").read_text())["histogram_cases"]
    bf16 = [c for c in cases if c["batches"][0]["dtype"] == "bfloat16"]
    chosen = [c for c in cases if c not in bf16]
    chosen += [c for c in bf16 if c["arguments"]["bins"] <= 256]
    assert len(chosen) == 114 + 16
    failures = [line for c in chosen for line in replay_histogram(exported, c)]
    assert failures == [], failures[:3]


def _corrupted_histogram_reference(path: Path, case_id: int) -> Path:
    """The stored histogram reference with case ``case_id``'s last histogram one count higher
    in its first bin and its first batch's scale one ulp off."""
    from arrayobs._conformance import load_histogram, save_histogram

    records, meta = load_histogram()
    lo, hi = records.hist_case_offsets[case_id : case_id + 2]
    first_bin = records.hist_offsets[hi - 1]
    counts = records.hist_bits[first_bin : first_bin + 1].view(np.float32)
    records.hist_bits[first_bin] = (counts + np.float32(1)).view(np.uint32)[0]
    records.hist_scale_bits[lo] += 1
    save_histogram(records, path, meta)
    return path


def test_corrupted_histogram_value_is_detected(tmp_path: Path, torch_ref: Any) -> None:
    """A value changed in the stored reference travels into the export, and both replays
    (arrayobs, and live torch.ao in replay_export.py) name it."""
    from arrayobs._conformance._export import export
    from tests.replay_export import replay_histogram as replay_on_torch

    bad_file = _corrupted_histogram_reference(tmp_path / "bad.npz", 60)
    root = tmp_path / "export"
    manifest = export(root, "histogram", histogram_reference=bad_file)
    case = manifest["histogram_cases"][60]  # constant batches, 1 bin, float32: fast on torch
    for replay in (replay_histogram, replay_on_torch):
        failures = replay(root, case)
        assert [f.split(":")[0] for f in failures] == [
            "histogram case 60 batch 0",
            "histogram case 60 batch 2",
        ], failures
        assert "['scale']" in failures[0] and "['histogram']" in failures[1]
    assert replay_histogram(root, manifest["histogram_cases"][59]) == []


def test_export_refuses_a_non_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["reference", "export", str(tmp_path), "--cases", "fake-quant"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_target_torchao_has_no_mismatch(torch_ref: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole observer corpus on torch.ao's classes through the protocol."""
    assert main(["compare", "--target", "tests.torchao_target:make", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["results"]
    assert row["label"] == "tests.torchao_target:make"
    assert row["cases"] == report["cases_in_corpus"] == 1458 and row["batches"] == 17790
    assert row["mismatches"] == 0 and report["fake_quant_results"] == []


def test_target_wrong_implementation_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--target", "tests.wrong_target:make", "--quick", "10"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tests.wrong_target:make "))
    assert int(row.split()[4]) > 0, row
    assert "MISMATCH tests.wrong_target:make: case " in out
    assert "histogram section: not run on --target unless --cases histogram" in out


def test_target_histogram_section(torch_ref: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``--cases histogram`` on torch.ao's HistogramObserver through the protocol (every 29th
    case: torch's search is slow), on a wrong one, and on a factory that declines."""
    argv = ["compare", "--cases", "histogram", "--quick", "29", "--json", "--target"]
    assert main([*argv, "tests.torchao_target:make"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"] == [] and report["histogram_cases_run"] == 5
    (row,) = report["histogram_results"]
    # Case 116 is bfloat16: skipped (a NumPy array cannot say bfloat16).
    assert (row["cases"], row["skipped"], row["batches"], row["mismatches"]) == (4, 1, 17, 0)
    assert main([*argv, "tests.wrong_target:make"]) == 1
    (row,) = json.loads(capsys.readouterr().out)["histogram_results"]
    assert row["cases"] == 4 and row["mismatches"] == row["batches"] == 17, row
    assert "histogram" in row["failures"][1] and "inf warning" in row["failures"][3], row
    assert main([*argv, "tests.torchao_target:minmax_only"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["histogram_results"]
    assert (row["cases"], row["skipped"], row["batches"]) == (0, 5, 0), row


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--target", "no_colon"], "expected MODULE:FACTORY"),
        (["--target", "tests.nonexistent:make"], "ModuleNotFoundError"),
        (["--target", "tests.wrong_target:missing"], "AttributeError"),
        (["--target", "tests.wrong_target:make", "--backend", "numpy"], "without --backend"),
        (["--target", "tests.wrong_target:make", "--cases", "fake-quant"], "observer cases"),
    ],
)
def test_target_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err


def test_corrupted_calibrator_value_is_detected(tmp_path: Path) -> None:
    """A value changed in the stored calibrators file travels into the export, and the
    NumPy-only replay (replay_export.py, against the package's file) names it."""
    from arrayobs._conformance._calib_records import load as load_calib
    from arrayobs._conformance._calib_records import save as save_calib
    from arrayobs._conformance._export import export
    from tests.replay_export import replay_calibrators

    records, meta = load_calib()
    first = int(records.output_offsets[records.case_offsets[7]])  # case 7's first output
    at = int(records.value_offsets[first])
    records.values[at] += np.uint64(1)  # its first value's bits, one higher
    bad = tmp_path / "bad.npz"
    save_calib(records, bad, {k: v for k, v in meta.items() if k not in ("names", "dtypes")})
    root = tmp_path / "export"
    manifest = export(root, "calibrators", calibrators_reference=bad)
    failures = replay_calibrators(root, manifest, calib_reference_path())
    assert failures == [f"calibrator case 7 op 0 channel 0: {manifest_name(manifest, 7)}"]


def manifest_name(manifest: dict[str, Any], case_id: int) -> str:
    """The name of case ``case_id``'s first expected output."""
    return next(iter(manifest["calibrators_cases"][case_id]["ops"][0]["expected"][0]["outputs"]))
