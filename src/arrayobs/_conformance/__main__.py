"""Regenerate the stored reference: ``python -m arrayobs._conformance`` (needs torch 2.13.0)."""

import datetime
import importlib
import sys

import numpy as np

from arrayobs._conformance import (
    CORPUS_VERSION,
    cases,
    fake_quant_cases,
    generate_fake_quant_reference,
    generate_reference,
    reference_path,
    save,
)
from arrayobs._conformance._records import TORCH_VERSION


def main() -> int:
    torch = importlib.import_module("torch")
    if not torch.__version__.startswith(TORCH_VERSION):
        print(f"the reference is torch {TORCH_VERSION}; found {torch.__version__}", file=sys.stderr)
        return 2
    records = generate_reference()
    fake_quant = generate_fake_quant_reference()
    header = {
        "torch": torch.__version__,
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
        f"fake-quantize cases, {len(fake_quant.fq_dtype)} outputs)"
    )
    return 0


sys.exit(main())
