"""The documentation is true: the docstring examples, the README's and every docs page's Python
examples run; the API reference names every public name; the torch.ao import mapping resolves;
the reference-format page names every key the exporter writes."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FIRST_COMMAND = "python -m pip install -e . && arrayobs compare"


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
        ("arrayobs._observers._ort_histogram", None),
        ("arrayobs._observers._ort_minmax", None),
        ("arrayobs._core._calib_ort", None),
        ("arrayobs._core._calib_ort_search", None),
        ("arrayobs._observers._modelopt", None),
    ],
)
def test_docstring_examples(module: str, needs: str | None) -> None:
    if needs:
        pytest.importorskip(needs)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def _blocks(path: pathlib.Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def _pages() -> list[pathlib.Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def _examples() -> list[Any]:
    out = []
    for path in [README, *_pages()]:
        name = path.relative_to(ROOT).as_posix()
        out += [pytest.param(block, id=f"{name}-{i}") for i, block in enumerate(_blocks(path))]
    return out


def test_readme_is_a_front_door() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert len(_blocks(README)) >= 3
    first = re.search(r"```bash\n(.*?)\n", text)
    assert first is not None
    assert first.group(1) == FIRST_COMMAND


@pytest.mark.parametrize("block", _examples())
def test_python_examples(block: str) -> None:
    """Every fenced Python example runs. One that needs several processes or devices starts with
    ``# needs:``; tests/test_distributed.py and test_jax_sharding.py run the same code."""
    if block.startswith("# needs:"):
        pytest.skip(block.splitlines()[0])
    for library in ("jax", "dask", "torch", "torchao"):
        if re.search(rf"^\s*(import|from) {library}\b", block, flags=re.M):
            pytest.importorskip(library)
    exec(compile(block, "example", "exec"), {})


def _public_modules() -> list[str]:
    return [
        "arrayobs",
        "arrayobs.functional",
        "arrayobs.affine",
        "arrayobs.testing",
        "arrayobs.calib.ort",
        "arrayobs.calib.modelopt",
    ]


@pytest.mark.parametrize("module", _public_modules())
def test_api_reference_names_every_public_name(module: str) -> None:
    """Each name of ``__all__`` is in an autosummary of the API pages (the submodules have
    their own pages), so the reference cannot fall behind the package."""
    listed = set()
    for page in (DOCS / "api").glob("*.md"):
        text = page.read_text()
        current = re.findall(r"\.\. currentmodule:: (\S+)", text)
        for block in re.findall(r"\.\. autosummary::\n(?:   :.*\n)*\n((?:   \S.*\n)+)", text):
            listed |= {f"{current[0]}.{line.strip()}" for line in block.splitlines()}
    mod = importlib.import_module(module)
    submodules = {"affine", "functional"}
    missing = []
    for name in mod.__all__:
        if name in submodules:
            continue
        home = getattr(mod, name)
        homes = {
            f"{m}.{name}"
            for m in _public_modules()
            if getattr(importlib.import_module(m), name, None) is home
        }
        if not homes & listed:
            missing.append(name)
    assert missing == []


def _mapping() -> list[tuple[str, str]]:
    text = (DOCS / "migrating.md").read_text()
    return re.findall(r"^\| `((?:torch|torchao)\.[\w.]+)` \| `(arrayobs[\w.]+)` \|$", text, re.M)


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return obj
    msg = f"cannot import {dotted}"
    raise ImportError(msg)


def test_torch_ao_mapping_covers_every_shared_name() -> None:
    """Every name arrayobs shares with torch.ao.quantization has a row, and every row's arrayobs
    name exists."""
    import arrayobs

    rows = _mapping()
    for _, ours in rows:
        _resolve(ours)
    sources = {theirs for theirs, _ in rows}
    torch_ao = pytest.importorskip("torch.ao.quantization")
    shared = {f"torch.ao.quantization.{n}" for n in arrayobs.__all__ if hasattr(torch_ao, n)}
    assert shared - sources == set()


def test_torch_ao_mapping_sources_exist() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("torchao")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao's notices on import
        missing = []
        for theirs, _ in _mapping():
            try:
                _resolve(theirs)
            except (ImportError, AttributeError):
                missing.append(theirs)
    assert missing == []


# -- the reference-vector format ------------------------------------------------------------
SPEC = DOCS / "reference-format.md"
# The spec page's section that documents each list of cases.
CASE_SECTIONS = {
    "observer_cases": "Observer cases",
    "fake_quant_cases": "Fake-quantize cases",
    "affine_cases": "Affine cases",
    "histogram_cases": "Histogram cases",
    "calibrators_cases": "Calibrator cases",
}


def _spec_section(title: str) -> str:
    text = SPEC.read_text()
    match = re.search(rf"^## `?{re.escape(title)}`?\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match is not None, title
    return match.group(1)


def _keys(value: Any, out: set[str]) -> set[str]:
    """Every dict key under ``value``; numbered names (``batch-3``) as their pattern."""
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(re.sub(r"-\d+$", "-0", key))
            _keys(item, out)
    elif isinstance(value, list):
        for item in value:
            _keys(item, out)
    return out


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from arrayobs._conformance._export import export

    out: dict[str, Any] = export(tmp_path_factory.mktemp("export") / "ref")
    return out


def test_every_manifest_key_is_documented(manifest: dict[str, Any]) -> None:
    """Each key of the manifest is named (in backticks) in the spec's section for it: the
    top-level keys in the manifest's table, each list's case keys in that list's section."""
    top = _spec_section("manifest.json")
    undocumented = [k for k in manifest if f"`{k}`" not in top]
    for key in ("reference", "histogram_reference", "calibrators_reference"):
        undocumented += [f"{key}.{k}" for k in manifest[key] if f'"{k}"' not in top]
    for list_key, title in CASE_SECTIONS.items():
        assert manifest[list_key], list_key
        section = _spec_section(title)
        keys = _keys(manifest[list_key], set())
        # The array entry's keys and the float encoding are specified once, for every section.
        text = section + _spec_section("Arrays") + _spec_section("Numbers in the JSON")
        undocumented += [
            f"{list_key}: {k}"
            for k in sorted(keys)
            if f"`{k}`" not in text and f'"{k}"' not in text
        ]
    assert not undocumented, undocumented


def test_every_file_kind_is_documented(manifest: dict[str, Any]) -> None:
    """Each exported path, with its numbers as the spec's placeholders, is in the Files table."""
    files = _spec_section("Files")
    kinds = set()
    for path in manifest["files"]:
        section, _, name = path.split("/")
        if section == "calibrators":  # the spec's placeholders: op-KK-batch-B-rank-R.npy...
            name = re.sub(r"^op-\d+-batch-\d+", "op-KK-batch-B", name)
            name = re.sub(r"-rank-\d+\.npy$", "-rank-R.npy", name)
            name = re.sub(r"^op-\d+-channel-\d+-\w+\.npy$", "op-KK-channel-C-NAME.npy", name)
        else:
            name = re.sub(r"-\d+\.npy$", "-N.npy", name)
        kinds.add((section, name))
    undocumented = []
    for section, name in sorted(kinds):
        stem = name.removesuffix(".npy").removesuffix("-N")
        name_re = rf"{re.escape(stem)}(-(BB|I))?\.npy"
        pattern = rf"`{section}/N+/{name_re}`|`{name_re}`"
        if name.startswith("state-"):
            pattern = r"`fake-quant/NNNN/state-KEY\.npy`"
        if section == "calibrators":
            pattern = re.escape(f"`calibrators/NNNN/{name}`")
        if not re.search(pattern, files):
            undocumented.append(f"{section}/{name}")
    assert not undocumented, undocumented
