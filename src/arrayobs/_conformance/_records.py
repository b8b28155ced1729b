"""Per-batch results of a corpus run, the stored reference file, and comparison.

Reference file format (``reference-torch-<version>.npz``, NumPy's compressed
npz; ``format_version`` 1). One row per batch of every case, cases in corpus
order; ``case_offsets[i]:case_offsets[i + 1]`` are the rows of case ``i``.

- ``min_bits``, ``max_bits`` (uint32): float32 bits of min_val/max_val after the batch.
- ``scale_bits`` (uint32): float32 bits of ``calculate_qparams()[0][0]``.
- ``zero_point`` (int64): ``calculate_qparams()[1][0]``.
- ``zp_int64`` (bool): torch's zero point was int64 (else int32).
- ``status`` (int8): 0 qparams computed; 1 never observed (torch warned and
  returned defaults); 2 torch refused (``min_val > max_val``).
- ``header``: UTF-8 JSON: format, versions (torch, numpy, corpus), the
  meaning of each field, and every case's parameters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "arrayobs-reference"
FORMAT_VERSION = 1
TORCH_VERSION = "2.13.0"
OK, NEVER_OBSERVED, REFUSED = 0, 1, 2
FIELDS = ("min_bits", "max_bits", "scale_bits", "zero_point", "zp_int64", "status")


def reference_path() -> Path:
    return Path(__file__).with_name(f"reference-torch-{TORCH_VERSION}.npz")


@dataclasses.dataclass
class Step:
    """One batch's outcome, host side."""

    min_val: float
    max_val: float
    scale: float
    zero_point: int
    zp_int64: bool
    status: int


def _bits(v: float) -> int:
    return int(np.asarray(v, dtype=np.float32).view(np.uint32))


@dataclasses.dataclass
class Records:
    """Rows of steps for a list of cases (``case_offsets`` as in the file)."""

    case_offsets: np.ndarray
    min_bits: np.ndarray
    max_bits: np.ndarray
    scale_bits: np.ndarray
    zero_point: np.ndarray
    zp_int64: np.ndarray
    status: np.ndarray

    @classmethod
    def from_steps(cls, per_case: Iterable[list[Step]]) -> Records:
        offsets, rows = [0], []
        for steps in per_case:
            rows.extend(steps)
            offsets.append(len(rows))
        return cls(
            case_offsets=np.asarray(offsets, dtype=np.int64),
            min_bits=np.asarray([_bits(s.min_val) for s in rows], dtype=np.uint32),
            max_bits=np.asarray([_bits(s.max_val) for s in rows], dtype=np.uint32),
            scale_bits=np.asarray([_bits(s.scale) for s in rows], dtype=np.uint32),
            zero_point=np.asarray([s.zero_point for s in rows], dtype=np.int64),
            zp_int64=np.asarray([s.zp_int64 for s in rows], dtype=bool),
            status=np.asarray([s.status for s in rows], dtype=np.int8),
        )

    def case(self, i: int) -> dict[str, np.ndarray]:
        lo, hi = self.case_offsets[i], self.case_offsets[i + 1]
        return {f: getattr(self, f)[lo:hi] for f in FIELDS}

    def equal(self, other: Records) -> bool:
        return all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in ("case_offsets", *FIELDS)
        )


def save(records: Records, path: Path, header: dict[str, Any]) -> None:
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fields": {
            "case_offsets": "rows of case i: case_offsets[i]:case_offsets[i+1]",
            "min_bits": "float32 bits of min_val after the batch",
            "max_bits": "float32 bits of max_val after the batch",
            "scale_bits": "float32 bits of scale (calculate_qparams()[0][0])",
            "zero_point": "calculate_qparams()[1][0]",
            "zp_int64": "torch's zero point dtype was int64 (else int32)",
            "status": "0 computed, 1 never observed (warned, defaults), 2 refused (min > max)",
        },
        **header,
    }
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    arrays = {f: getattr(records, f) for f in ("case_offsets", *FIELDS)}
    with path.open("wb") as fh:
        np.savez_compressed(fh, header=blob, **arrays)


def load(path: Path | None = None) -> tuple[Records, dict[str, Any]]:
    """The stored reference and its header; a clear error if absent or of another format."""
    path = reference_path() if path is None else path
    with np.load(path) as data:
        meta = json.loads(bytes(data["header"]).decode())
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            msg = f"{path} is not an {FORMAT} file of format version {FORMAT_VERSION}"
            raise ValueError(msg)
        fields = {f: np.asarray(data[f]) for f in ("case_offsets", *FIELDS)}
    return Records(**fields), meta
