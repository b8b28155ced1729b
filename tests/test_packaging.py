"""The version users see, and the package metadata that pip reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import arrayobs

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_flag_prints_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "arrayobs", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[:2] == ["arrayobs", arrayobs.__version__]
    assert "torch 2.13.0" in out.stdout
    assert "torchao 0.18.0" in out.stdout


def test_pyproject_reads_the_version_from_the_package() -> None:
    meta = tomllib.loads(PYPROJECT.read_text())
    assert "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) == arrayobs.__version__


def test_all_extra_names_every_cpu_backend() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    (everything,) = extras["all"]
    named = set(everything.removeprefix("arrayobs[").removesuffix("]").split(","))
    assert named == {"torch", "jax", "dask", "strict"}
    assert named <= set(extras)
