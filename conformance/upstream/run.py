"""Run PyTorch's and torchao's own test files against arrayobs, and as a control against the
real torch/torchao. The upstream files are not in this repository (see README.md).

    python conformance/upstream/run.py UPSTREAM_DIR [--work DIR] [--only NAME] [--mode MODE]

For each file and mode, the file's import lines (and nothing else) are rewritten to aoshim's
stand-ins, written under --work, and run by pytest in a subprocess, one at a time. Prints one
row per file and mode (passed, failed, skipped, and the N/A skips aoshim raised) and every
failure's first error line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

# file (relative to UPSTREAM_DIR) -> which imports are rewritten, and the modes run
SUITES = {
    "pytorch/test_workflow_module.py": ("torch", ("control", "fast", "slow")),
    "pytorch/test_workflow_ops.py": ("torch", ("control", "fast", "slow")),
    "pytorch/test_quantized_tensor_decomposed.py": ("torch", ("control", "fast", "slow")),
    "ao/test_quant_primitives.py": ("torchao", ("control", "fast", "numpy", "jax", "jax64")),
    "ao/test_observer.py": ("torchao", ("control", "fast", "numpy", "jax", "jax64")),
    "ao/test_affine_quantized_float.py": ("torchao", ("control", "fast", "numpy", "jax", "jax64")),
}

_TORCH = [
    (re.compile(r"^(\s*)import torch$", re.M), r"\1import aoshim_torch as torch"),
    (
        re.compile(r"^(\s*)import torch\.ao\.quantization\.fx\._decomposed$", re.M),
        r"\1import aoshim_torch as torch",
    ),
    (
        re.compile(r"^(\s*)from torch\.ao\.quantization(\S*) import", re.M),
        r"\1from aoshim_torch.ao.quantization\2 import",
    ),
]
_TORCHAO = [
    (
        re.compile(r"^(\s*)from torchao\.quantization(\.\w+)? import", re.M),
        r"\1from aoshim_torchao.quantization\2 import",
    ),
]


def rewrite(text: str, kind: str) -> str:
    """Rewrite only import statements; everything else stays byte for byte."""
    for pattern, repl in _TORCH if kind == "torch" else _TORCHAO:
        text = pattern.sub(repl, text)
    head = "import aoshim  # registers the stand-ins\n"
    if kind == "torch":
        head += "aoshim.bind_torch()\n"
    return head + text


def run_one(src: Path, kind: str, mode: str, work: Path) -> dict:
    dest_dir = work / mode
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "pytest.ini").write_text(
        "[pytest]\npython_functions = aoshim_collect_no_functions\n"
    )
    text = src.read_text()
    dest = dest_dir / src.name
    dest.write_text(text if mode == "control" else rewrite(text, kind))
    xml = dest_dir / (src.stem + ".xml")
    env = dict(os.environ, AOSHIM_MODE="fast" if mode == "control" else mode)
    extra = os.environ.get("AOSHIM_SITE", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), str(SRC), extra) if p)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *([] if mode == "control" else ["-p", "aoshim"]),
        "-c",
        str(dest_dir / "pytest.ini"),
        f"--junitxml={xml}",
        str(dest),
    ]
    subprocess.run(cmd, cwd=dest_dir, env=env, capture_output=True, check=False)
    return summarize(xml)


def summarize(xml: Path) -> dict:
    result: dict = {"passed": 0, "failed": [], "skipped": 0, "na": {}, "idle": []}
    if not xml.exists():
        result["failed"].append(("<collection>", "no junit xml: import failed?"))
        return result
    for case in ET.parse(xml).iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            result["failed"].append((name, msg[0][:200] if msg else ""))
        elif skip is not None:
            reason = skip.get("message") or ""
            if "aoshim N/A" in reason:
                key = reason.split("aoshim N/A: ", 1)[1][:80]
                result["na"].setdefault(key, []).append(name)
            else:
                result["skipped"] += 1
        else:
            result["passed"] += 1
            calls = [
                p.get("value") for p in case.iter("property") if p.get("name") == "aoshim_calls"
            ]
            if calls and calls[0] == "0":
                result["idle"].append(name)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/aoshim-work"))
    parser.add_argument("--only", default="", help="run the files whose path contains this")
    parser.add_argument("--mode", default="", help="run only this mode")
    args = parser.parse_args()
    for rel, (kind, modes) in SUITES.items():
        if args.only not in rel or not (args.upstream / rel).exists():
            continue
        for mode in modes:
            if args.mode and mode != args.mode:
                continue
            r = run_one(args.upstream / rel, kind, mode, args.work)
            na = sum(len(v) for v in r["na"].values())
            print(
                f"{rel:45} {mode:8} pass {r['passed']:3} fail {len(r['failed']):3} "
                f"skip {r['skipped']:3} n/a {na:3}",
                flush=True,
            )
            for key, names in sorted(r["na"].items()):
                print(f"    n/a {key}: {len(names)} ({', '.join(sorted(names)[:4])}...)")
            if r["idle"]:
                print(f"    passed without calling arrayobs: {', '.join(sorted(r['idle']))}")
            for name, msg in r["failed"]:
                print(f"    FAIL {name}: {msg}")


if __name__ == "__main__":
    main()
