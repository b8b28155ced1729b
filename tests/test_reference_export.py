"""``arrayobs reference export`` and ``arrayobs compare --target``: the reference numbers
outside arrayobs. The export is replayed against live torch.ao by a reader that imports
nothing from arrayobs (tests/replay_export.py), and the corpus runs on third-party
observers through the ``--target`` protocol (tests/torchao_target.py, tests/wrong_target.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from arrayobs.cli import main

_TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference") / "export"
    assert main(["reference", "export", str(root)]) == 0
    return root


def test_export_replays_on_live_torch_without_arrayobs(exported: Path, torch_ref: Any) -> None:
    """Every case of every section, from the files alone, against torch.ao: 0 mismatches."""
    out = subprocess.run(
        [sys.executable, str(_TESTS / "replay_export.py"), str(exported)],
        capture_output=True,
        text=True,
        check=True,
        cwd=exported,  # not the repository: nothing of arrayobs's source on the path
    )
    report = json.loads(out.stdout)
    assert report["arrayobs_imported"] == [], report
    assert report["corrupt_files"] == [] and report["files"] > 16000
    assert report["observer_cases"] == 1458 and report["observer_batches"] > 14000
    assert report["fake_quant_cases"] == 332
    assert report["affine_cases"] == 268
    assert (
        report["observer_mismatches"]
        == report["fake_quant_mismatches"]
        == report["affine_mismatches"]
        == 0
    ), report
    assert report["reference"] == {"torch": "2.13.0+cpu", "torchao": "0.18.0"}


def test_manifest_format(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["format"] == "arrayobs-reference-export" and manifest["format_version"] == 1
    assert manifest["corpus_version"] == 3
    assert manifest["sections"] == ["per-tensor", "per-channel", "fake-quant", "affine"]
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
    listed = set(manifest["files"])
    on_disk = {str(p.relative_to(exported)) for p in exported.rglob("*.npy")}
    assert listed == on_disk


def test_export_one_section_without_torch(tmp_path: Path) -> None:
    """The numbers come from the stored file: torch unimportable, the export still runs."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from arrayobs.cli import main\n"
        f"sys.exit(main(['reference', 'export', {str(tmp_path / 'pc')!r}, '--cases', "
        "'per-channel']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "294 observer cases, 0 fake-quantize cases, 0 affine cases" in out.stdout
    manifest = json.loads((tmp_path / "pc" / "manifest.json").read_text())
    assert manifest["sections"] == ["per-channel"] and manifest["fake_quant_cases"] == []
    assert manifest["affine_cases"] == [] and manifest["reference"]["torchao"] is None


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
