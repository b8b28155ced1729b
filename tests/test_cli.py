"""The command line: the demo's verdict against torch, and clean errors."""

from __future__ import annotations

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


def test_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arrayobs", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in out.stdout
