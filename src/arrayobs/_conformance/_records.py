"""Per-batch results of a corpus run, the stored reference file, and comparison.

Reference file format (``reference-torch-<version>.npz``, NumPy's compressed
npz; ``format_version`` 2). One row per batch and channel of every case
(per-tensor cases: one row per batch), cases in corpus order;
``case_offsets[i]:case_offsets[i + 1]`` are the rows of case ``i``.

- ``channel`` (int32): the row's channel; a batch's rows start at channel 0.
  A never-observed per-channel state (torch's shape (0,)) is one row,
  recorded as (+inf, -inf) with torch's default qparams.
- ``min_bits``, ``max_bits`` (uint32): float32 bits of min_val/max_val after the batch.
- ``scale_bits`` (uint32): float32 bits of ``calculate_qparams()[0][channel]``.
- ``zero_point`` (int64): ``calculate_qparams()[1][channel]``; for a float
  zero point (per_channel_affine_float_qparams) its float32 bits.
- ``zp_int64`` (bool): torch's zero point was int64 (else int32 or float32).
- ``zp_float`` (bool): the zero point is float32 (its bits in ``zero_point``).
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
FORMAT_VERSION = 2
TORCH_VERSION = "2.13.0"
OK, NEVER_OBSERVED, REFUSED = 0, 1, 2
FIELDS = (
    "channel",
    "min_bits",
    "max_bits",
    "scale_bits",
    "zero_point",
    "zp_int64",
    "zp_float",
    "status",
)


def reference_path() -> Path:
    return Path(__file__).with_name(f"reference-torch-{TORCH_VERSION}.npz")


@dataclasses.dataclass
class Step:
    """One batch's outcome, host side: the state and qparams as 1-d arrays
    (length 1 per tensor, C per channel; the state may be empty)."""

    min_val: np.ndarray
    max_val: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    zp_int64: bool
    status: int

    def rows(self) -> list[tuple[int, int, int, int, int, bool, bool, int]]:
        """One row per channel: the shorter of state and qparams (length 1) is repeated."""
        lo, hi = self.min_val, self.max_val
        if lo.size == 0:
            lo, hi = np.asarray([np.inf], np.float32), np.asarray([-np.inf], np.float32)
        n = max(lo.size, self.scale.size)
        zp_float = self.zero_point.dtype.kind == "f"
        zp = _bits(self.zero_point).astype(np.int64) if zp_float else self.zero_point
        cols = [np.broadcast_to(a, (n,)) for a in (_bits(lo), _bits(hi), _bits(self.scale), zp)]
        return [
            (c, int(a), int(b), int(s), int(z), self.zp_int64, zp_float, self.status)
            for c, (a, b, s, z) in enumerate(zip(*cols, strict=True))
        ]


def _bits(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).reshape(-1).view(np.uint32)


@dataclasses.dataclass
class Records:
    """Rows of steps for a list of cases (``case_offsets`` as in the file)."""

    case_offsets: np.ndarray
    channel: np.ndarray
    min_bits: np.ndarray
    max_bits: np.ndarray
    scale_bits: np.ndarray
    zero_point: np.ndarray
    zp_int64: np.ndarray
    zp_float: np.ndarray
    status: np.ndarray

    @classmethod
    def from_steps(cls, per_case: Iterable[list[Step]]) -> Records:
        offsets, rows = [0], []
        for steps in per_case:
            for step in steps:
                rows.extend(step.rows())
            offsets.append(len(rows))
        dtypes = (np.int32, np.uint32, np.uint32, np.uint32, np.int64, bool, bool, np.int8)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(FIELDS)
        return cls(
            np.asarray(offsets, dtype=np.int64),
            *(np.asarray(col, dtype=dt) for col, dt in zip(columns, dtypes, strict=True)),
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
            "channel": "the row's channel (0 starts a batch; per-tensor: always 0)",
            "min_bits": "float32 bits of min_val[channel] after the batch",
            "max_bits": "float32 bits of max_val[channel] after the batch",
            "scale_bits": "float32 bits of scale (calculate_qparams()[0][channel])",
            "zero_point": "calculate_qparams()[1][channel]; float32 bits if zp_float",
            "zp_int64": "torch's zero point dtype was int64 (else int32 or float32)",
            "zp_float": "the zero point is float32 (per_channel_affine_float_qparams)",
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
