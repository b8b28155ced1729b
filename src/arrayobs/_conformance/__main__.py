"""Regenerate the stored references, one entry point for every section:
``python -m arrayobs._conformance [SECTION ...]`` (needs torch 2.13.0).

SECTION is ``observers`` (``reference-torch-2.13.0.npz``: the observers and the
fake-quantize section), ``histogram`` (``reference-histogram-torch-2.13.0.npz``),
``affine`` (``reference-torchao-0.18.0.npz``, torchao 0.18.0; skipped without it) or
``calibrators`` (onnxruntime 1.31.1 and nvidia-modelopt 0.47.0: the same as
``python -m arrayobs._conformance._calib_reference``). Without one: ``observers``,
``histogram`` and ``affine``, as before the calibrators existed (they need two more
references)."""

import datetime
import importlib
import sys
from typing import Any

import numpy as np

from arrayobs._conformance import (
    CORPUS_VERSION,
    affine_cases,
    affine_reference_path,
    cases,
    fake_quant_cases,
    generate_affine_reference,
    generate_fake_quant_reference,
    generate_histogram_reference,
    generate_reference,
    histogram_cases,
    histogram_reference_path,
    reference_path,
    save,
    save_affine,
    save_histogram,
)
from arrayobs._conformance._affine_corpus import CORPUS_VERSION as AFFINE_CORPUS_VERSION
from arrayobs._conformance._hist_corpus import CORPUS_VERSION as HIST_CORPUS_VERSION
from arrayobs._conformance._records import TORCH_VERSION, TORCHAO_VERSION


def main(argv: list[str]) -> int:
    torch = importlib.import_module("torch")
    if not torch.__version__.startswith(TORCH_VERSION):
        print(f"the reference is torch {TORCH_VERSION}; found {torch.__version__}", file=sys.stderr)
        return 2
    if not set(argv) <= set(WRITERS):
        print(f"usage: python -m arrayobs._conformance [{'|'.join(WRITERS)} ...]", file=sys.stderr)
        return 2
    for name in argv or DEFAULT:
        status = WRITERS[name](torch)
        if status:
            return status
    return 0


def observers(torch: object) -> int:
    """The observers' file (with the fake-quantize section), from live torch."""
    records = generate_reference()
    fake_quant = generate_fake_quant_reference()
    header: dict[str, Any] = {
        "torch": getattr(torch, "__version__", ""),
        "numpy": np.__version__,
        "corpus_version": CORPUS_VERSION,
        "created": datetime.date.today().isoformat(),
        "cases": [case.describe() for case in cases()],
        "fake_quant_cases": [case.describe() for case in fake_quant_cases()],
    }
    path = reference_path()
    save(records, path, header, fake_quant)
    print(
        f"wrote {path} ({path.stat().st_size} bytes, {len(header['cases'])} cases, "
        f"{len(records.status)} rows: batches x channels; {len(header['fake_quant_cases'])} "
        f"fake-quantize cases, {len(fake_quant.dtype)} outputs)"
    )
    return 0


def histogram(torch: object) -> int:
    """The histogram section's file, from live torch."""
    records = generate_histogram_reference()
    header: dict[str, Any] = {
        "torch": getattr(torch, "__version__", ""),
        "numpy": np.__version__,
        "corpus_version": HIST_CORPUS_VERSION,
        "created": datetime.date.today().isoformat(),
        "cases": [case.describe() for case in histogram_cases()],
    }
    path = histogram_reference_path()
    save_histogram(records, path, header)
    print(
        f"wrote {path} ({path.stat().st_size} bytes, {len(header['cases'])} histogram cases, "
        f"{len(records.hist_status)} rows: batches)"
    )
    return 0


def affine(torch: object) -> int:
    """The affine section's file, from live torchao."""
    try:
        torchao = importlib.import_module("torchao")
    except ImportError:
        print(f"the affine section needs torchao {TORCHAO_VERSION}; skipped", file=sys.stderr)
        return 0
    if torchao.__version__ != TORCHAO_VERSION:
        print(f"the reference is torchao {TORCHAO_VERSION}; found {torchao.__version__}")
        return 2
    records = generate_affine_reference()
    header = {
        "torch": getattr(torch, "__version__", ""),
        "torchao": torchao.__version__,
        "numpy": np.__version__,
        "corpus_version": AFFINE_CORPUS_VERSION,
        "created": datetime.date.today().isoformat(),
        "cases": [case.describe() for case in affine_cases()],
    }
    path = affine_reference_path()
    save_affine(records, path, header)
    print(
        f"wrote {path} ({path.stat().st_size} bytes, {len(header['cases'])} affine cases, "
        f"{len(records.dtype)} outputs)"
    )
    return 0


def calibrators(torch: object) -> int:
    """The calibrators' file, from live ONNX Runtime and ModelOpt."""
    from arrayobs._conformance import _calib_reference

    return _calib_reference.main([])


# Each section's writer; DEFAULT is what a bare call writes.
WRITERS = {
    "observers": observers,
    "histogram": histogram,
    "affine": affine,
    "calibrators": calibrators,
}
DEFAULT = ("observers", "histogram", "affine")

sys.exit(main(sys.argv[1:]))
