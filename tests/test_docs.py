"""The docstring examples and the README's Python examples run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    ("module", "needs"),
    [
        ("arrayobs._observers._per_tensor", None),
        ("arrayobs._observers._per_channel", None),
        ("arrayobs._config", None),
        ("arrayobs.functional", "jax"),
        ("arrayobs._observers._histogram", None),
        ("arrayobs._observers._simple", None),
        ("arrayobs.affine", None),
    ],
)
def test_docstring_examples(module: str, needs: str | None) -> None:
    if needs:
        pytest.importorskip(needs)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def _readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples() -> None:
    assert len(_readme_blocks()) >= 5


@pytest.mark.parametrize("index", range(12))
def test_readme_python_examples(index: int) -> None:
    blocks = _readme_blocks()
    if index >= len(blocks):
        pytest.skip(f"the README has {len(blocks)} Python examples")
    block = blocks[index]
    if block.startswith("# needs:"):
        # Several processes or devices: tests/test_distributed.py and test_jax_sharding.py
        # run the same code.
        pytest.skip(block.splitlines()[0])
    for library in ("jax", "dask"):
        if f"import {library}" in block:
            pytest.importorskip(library)
    exec(compile(block, f"README.md block {index}", "exec"), {})
