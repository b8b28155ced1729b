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
  meaning of each field, and every case's parameters (``cases``, and
  ``fake_quant_cases`` for the section below).

The fake-quantize section (format version 3 added it; the fields above are
unchanged) holds one row per output: an op call's result, a module batch's
output, ``scale`` and ``zero_point``, a module's final ``state_dict`` values.

- ``fq_case_offsets`` (int64): rows of fake-quantize case ``i``.
- ``fq_value_offsets`` (int64): values of row ``r``:
  ``fq_value_offsets[r]:fq_value_offsets[r + 1]`` (the output flattened).
- ``fq_dtype`` (int8): the output's dtype, an index into ``FQ_DTYPES``.
- ``fq_values`` (uint64): the values: float64 bits; float32 bits of
  float32, float16 and bfloat16 values (exactly widened); integers as int64
  (two's complement).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

FORMAT = "arrayobs-reference"
FORMAT_VERSION = 3
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


FQ_FIELDS = ("fq_case_offsets", "fq_value_offsets", "fq_dtype", "fq_values")
FQ_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
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

    @property
    def n_cases(self) -> int:
        return len(self.case_offsets) - 1

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


class Output(NamedTuple):
    """One output, host side: its dtype's name and its values (flattened)."""

    dtype: str
    values: np.ndarray

    def encoded(self) -> np.ndarray:
        """The values as ``fq_values`` and ``affine_values`` store them."""
        return encode(self.dtype, self.values)


@dataclasses.dataclass
class OutputRecords:
    """Rows (outputs) of a section's cases, as in the file: the fake-quantize section's
    ``fq_*`` fields (``prefix`` "fq", dtypes ``FQ_DTYPES``) or the affine section's
    ``affine_*`` (``prefix`` "affine", dtypes ``AFFINE_DTYPES``)."""

    prefix: str
    case_offsets: np.ndarray
    value_offsets: np.ndarray
    dtype: np.ndarray
    values: np.ndarray

    @property
    def dtypes(self) -> tuple[str, ...]:
        return _dtypes(self.prefix)

    @property
    def n_cases(self) -> int:
        return len(self.case_offsets) - 1

    @classmethod
    def from_outputs(
        cls, prefix: str, per_case: Iterable[Iterable[tuple[str, np.ndarray]]]
    ) -> OutputRecords:
        """From each case's outputs as (dtype name, host values)."""
        dtypes = _dtypes(prefix)
        cases, offsets, codes, values = [0], [0], [], []
        for outputs in per_case:
            for dtype, host in outputs:
                values.append(encode(dtype, host))
                offsets.append(offsets[-1] + values[-1].size)
                codes.append(dtypes.index(dtype))
            cases.append(len(codes))
        return cls(
            prefix,
            np.asarray(cases, dtype=np.int64),
            np.asarray(offsets, dtype=np.int64),
            np.asarray(codes, dtype=np.int8),
            np.concatenate(values) if values else np.zeros(0, np.uint64),
        )

    @classmethod
    def from_fields(cls, prefix: str, fields: dict[str, np.ndarray]) -> OutputRecords:
        """From the file's fields (``<prefix>_case_offsets``, ...)."""
        return cls(prefix, *(fields[f"{prefix}_{name}"] for name in _OUTPUT_COLUMNS))

    def fields(self) -> dict[str, np.ndarray]:
        """The file's fields."""
        return {f"{self.prefix}_{name}": getattr(self, name) for name in _OUTPUT_COLUMNS}

    def case(self, i: int) -> list[tuple[str, np.ndarray]]:
        """Case ``i``'s rows: (dtype name, encoded values)."""
        rows = range(self.case_offsets[i], self.case_offsets[i + 1])
        off = self.value_offsets
        return [(self.dtypes[self.dtype[r]], self.values[off[r] : off[r + 1]]) for r in rows]

    def equal(self, other: OutputRecords) -> bool:
        return self.prefix == other.prefix and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in _OUTPUT_COLUMNS
        )


_OUTPUT_COLUMNS = ("case_offsets", "value_offsets", "dtype", "values")


def _dtypes(prefix: str) -> tuple[str, ...]:
    """The dtype names a section's ``<prefix>_dtype`` indexes."""
    return FQ_DTYPES if prefix == "fq" else AFFINE_DTYPES


def save(
    records: Records, path: Path, header: dict[str, Any], fake_quant: OutputRecords | None = None
) -> None:
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
    if fake_quant is not None:
        meta["fields"].update(
            {
                "fq_case_offsets": "fake-quantize rows (outputs) of case i",
                "fq_value_offsets": "values of row r: fq_value_offsets[r]:fq_value_offsets[r+1]",
                "fq_dtype": f"the output's dtype, an index into {list(FQ_DTYPES)}",
                "fq_values": "float64 bits; float32 bits of float32/16, bfloat16; int64 of ints",
            }
        )
        arrays.update(fake_quant.fields())
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


def load_fake_quant(path: Path | None = None) -> OutputRecords:
    """The stored fake-quantize section."""
    path = reference_path() if path is None else path
    load(path)  # checks the format
    with np.load(path) as data:
        return OutputRecords.from_fields("fq", {f: np.asarray(data[f]) for f in FQ_FIELDS})


# -- the affine section (torchao) ----------------------------------------------------------
# A file of its own, ``reference-torchao-<version>.npz`` (format "arrayobs-reference-torchao",
# version 1): one row per output, as the fake-quantize section, with float8 outputs (their
# values are exact in float32: float32 bits) and "none" (torchao returned None: no values).
TORCHAO_VERSION = "0.18.0"
AFFINE_FORMAT = "arrayobs-reference-torchao"
AFFINE_FORMAT_VERSION = 1
AFFINE_FIELDS = ("affine_case_offsets", "affine_value_offsets", "affine_dtype", "affine_values")
AFFINE_DTYPES = (*FQ_DTYPES, "float8_e4m3fn", "float8_e5m2", "none")
_FLOAT32_ENCODED = ("float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2")


def affine_reference_path() -> Path:
    return Path(__file__).with_name(f"reference-torchao-{TORCHAO_VERSION}.npz")


def encode(dtype: str, values: np.ndarray) -> np.ndarray:
    """Values as ``affine_values`` stores them: float64 bits; float32 bits of the
    narrower floats (exactly widened); integers as int64 (two's complement)."""
    if dtype == "none":
        return np.zeros(0, np.uint64)
    if dtype == "float64":
        return np.asarray(values, dtype=np.float64).reshape(-1).view(np.uint64)
    if dtype in _FLOAT32_ENCODED:
        return np.asarray(values, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    return np.asarray(values).reshape(-1).astype(np.int64).view(np.uint64)


def save_affine(records: OutputRecords, path: Path, header: dict[str, Any]) -> None:
    meanings = {
        "affine_case_offsets": "rows (outputs) of case i",
        "affine_value_offsets": "values of row r: affine_value_offsets[r]:[r+1]",
        "affine_dtype": f"the output's dtype, an index into {list(AFFINE_DTYPES)}",
        "affine_values": (
            "float64 bits; float32 bits of float32/16, bfloat16, float8; int64 of ints; "
            "none: torchao returned None (no values)"
        ),
    }
    fmt = (AFFINE_FORMAT, AFFINE_FORMAT_VERSION)
    _save_section(path, fmt, meanings, header, records.fields())


def load_affine(path: Path | None = None) -> tuple[OutputRecords, dict[str, Any]]:
    """The stored affine section and its header; a clear error if of another format."""
    path = affine_reference_path() if path is None else path
    fields, meta = _load_section(path, (AFFINE_FORMAT, AFFINE_FORMAT_VERSION), AFFINE_FIELDS)
    return OutputRecords.from_fields("affine", fields), meta


def _save_section(
    path: Path,
    fmt: tuple[str, int],
    meanings: dict[str, str],
    header: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    """A section's stored file: its record ``fields`` and a JSON header (format,
    version, what each field means, and ``header``)."""
    meta = {"format": fmt[0], "format_version": fmt[1], "fields": meanings, **header}
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    with path.open("wb") as fh:
        np.savez_compressed(fh, header=blob, **fields)


def _load_section(
    path: Path, fmt: tuple[str, int], names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A section's record fields ``names`` and its header, from :func:`_save_section`'s
    file; a clear error if the file is of another format or version."""
    with np.load(path) as data:
        meta = json.loads(bytes(data["header"]).decode())
        if (meta.get("format"), meta.get("format_version")) != fmt:
            msg = f"{path} is not an {fmt[0]} file of format version {fmt[1]}"
            raise ValueError(msg)
        return {f: np.asarray(data[f]) for f in names}, meta


# -- the histogram section (HistogramObserver) -----------------------------------------------
# A file of its own, ``reference-histogram-torch-<version>.npz`` (format
# "arrayobs-reference-histogram", version 1): one row per batch of every case, cases in
# corpus order, ``hist_case_offsets[i]:hist_case_offsets[i + 1]`` the rows of case ``i``.
HIST_FORMAT = "arrayobs-reference-histogram"
HIST_FORMAT_VERSION = 1
HIST_FIELDS = (
    "hist_case_offsets",
    "hist_offsets",
    "hist_bits",
    "hist_min_bits",
    "hist_max_bits",
    "hist_scale_bits",
    "hist_zero_point",
    "hist_zp_int64",
    "hist_status",
    "hist_inf_dropped",
)
_HIST_MEANING = {
    "hist_case_offsets": "rows (batches) of case i: hist_case_offsets[i]:hist_case_offsets[i+1]",
    "hist_offsets": "histogram of row r: hist_bits[hist_offsets[r]:hist_offsets[r+1]] (bins)",
    "hist_bits": "float32 bits of the histogram after the batch",
    "hist_min_bits": "float32 bits of min_val after the batch",
    "hist_max_bits": "float32 bits of max_val after the batch",
    "hist_scale_bits": "float32 bits of calculate_qparams()[0][0]",
    "hist_zero_point": "calculate_qparams()[1][0]",
    "hist_zp_int64": "torch's zero point dtype was int64 (else int32)",
    "hist_status": "0 computed, 1 never observed (calculate_qparams warned, defaults)",
    "hist_inf_dropped": "forward warned 'torch.inf detected' (dropped infinite values)",
}


def histogram_reference_path() -> Path:
    return Path(__file__).with_name(f"reference-histogram-torch-{TORCH_VERSION}.npz")


@dataclasses.dataclass
class HistStep:
    """One batch's outcome, host side: the histogram (float32), the state and qparams."""

    histogram: np.ndarray
    min_val: float
    max_val: float
    scale: float
    zero_point: int
    zp_int64: bool
    status: int
    inf_dropped: bool


@dataclasses.dataclass
class HistRecords:
    """Rows (batches) of the histogram cases, as in the file."""

    hist_case_offsets: np.ndarray
    hist_offsets: np.ndarray
    hist_bits: np.ndarray
    hist_min_bits: np.ndarray
    hist_max_bits: np.ndarray
    hist_scale_bits: np.ndarray
    hist_zero_point: np.ndarray
    hist_zp_int64: np.ndarray
    hist_status: np.ndarray
    hist_inf_dropped: np.ndarray

    @property
    def n_cases(self) -> int:
        return len(self.hist_case_offsets) - 1

    @classmethod
    def from_steps(cls, per_case: Iterable[list[HistStep]]) -> HistRecords:
        cases, offsets, steps = [0], [0], []
        for case_steps in per_case:
            for s in case_steps:
                steps.append(s)
                offsets.append(offsets[-1] + s.histogram.size)
            cases.append(len(steps))
        hists = [_bits(s.histogram) for s in steps]

        def scalars(name: str) -> np.ndarray:
            return _bits(np.asarray([getattr(s, name) for s in steps], dtype=np.float32))

        return cls(
            np.asarray(cases, dtype=np.int64),
            np.asarray(offsets, dtype=np.int64),
            np.concatenate(hists) if hists else np.zeros(0, np.uint32),
            scalars("min_val"),
            scalars("max_val"),
            scalars("scale"),
            np.asarray([s.zero_point for s in steps], dtype=np.int64),
            np.asarray([s.zp_int64 for s in steps], dtype=bool),
            np.asarray([s.status for s in steps], dtype=np.int8),
            np.asarray([s.inf_dropped for s in steps], dtype=bool),
        )

    def case(self, i: int) -> dict[str, Any]:
        """Case ``i``'s rows: each per-row field, and ``histograms`` (one bits array a row)."""
        lo, hi = int(self.hist_case_offsets[i]), int(self.hist_case_offsets[i + 1])
        out: dict[str, Any] = {f: getattr(self, f)[lo:hi] for f in HIST_FIELDS[3:]}
        off = self.hist_offsets
        out["histograms"] = [self.hist_bits[off[r] : off[r + 1]] for r in range(lo, hi)]
        return out

    def equal(self, other: HistRecords) -> bool:
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in HIST_FIELDS)


def save_histogram(records: HistRecords, path: Path, header: dict[str, Any]) -> None:
    fields = {f: getattr(records, f) for f in HIST_FIELDS}
    _save_section(path, (HIST_FORMAT, HIST_FORMAT_VERSION), _HIST_MEANING, header, fields)


def load_histogram(path: Path | None = None) -> tuple[HistRecords, dict[str, Any]]:
    """The stored histogram section and its header; a clear error if of another format."""
    path = histogram_reference_path() if path is None else path
    fields, meta = _load_section(path, (HIST_FORMAT, HIST_FORMAT_VERSION), HIST_FIELDS)
    return HistRecords(**fields), meta
