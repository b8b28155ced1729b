"""The calibrators section's stored numbers: rows of outputs, refusals, and the file
(its format is described in ``_calib_corpus``'s docstring)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from arrayobs._compat import to_host

ORT_VERSION = "1.31.1"
MODELOPT_VERSION = "0.47.0"
FORMAT = "arrayobs-reference-calib"
FORMAT_VERSION = 1
NAMES = (
    "hist",
    "hist_edges",
    "min",
    "max",
    "threshold",
    "lowest",
    "highest",
    "lo",
    "hi",
    "avg",
    "std",
    "zero_point",
    "scale",
    "calib_hist",
    "calib_bin_edges",
    "num_bins",
    "amax",
)
DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int32",
    "int64",
    "bool",
    "none",
    "same",
)
FIELDS = (
    "calib_case_offsets",
    "calib_op",
    "calib_channel",
    "calib_output_offsets",
    "calib_name",
    "calib_dtype",
    "calib_shape_offsets",
    "calib_shapes",
    "calib_value_offsets",
    "calib_values",
)
MESSAGE_PREFIX = 80  # characters of a refusal's message kept

Output = tuple[str, Any]  # (name, value: a host array, a NumPy/Python scalar, or None)


@dataclasses.dataclass
class Row:
    """One op's numbers (per channel): its outputs, host side."""

    op: int
    channel: int
    outputs: list[Output]


@dataclasses.dataclass
class Refusal:
    """A reference refusal: exception type, message prefix, op index (-1: the
    constructor), channel."""

    type: str
    message: str
    op: int
    channel: int = 0

    @classmethod
    def of(cls, exc: BaseException, op: int, channel: int = 0) -> Refusal:
        return cls(type(exc).__name__, str(exc)[:MESSAGE_PREFIX], op, channel)


@dataclasses.dataclass
class Outcome:
    """A case's rows and its refusal (None: every op ran)."""

    rows: list[Row]
    refusal: Refusal | None = None


def host(value: Any) -> np.ndarray | None:
    """An output as a host NumPy array of its own dtype (torch tensors through
    ``.numpy()``); None stays None."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "__array_namespace__") and not isinstance(value, np.ndarray):
        value = to_host(value)  # JAX, Dask, array-api-strict on any of its devices
    return np.asarray(value)


def _dtype_name(a: np.ndarray) -> str:
    return "bool" if a.dtype == bool else str(a.dtype)


def encode(a: np.ndarray) -> np.ndarray:
    """Values as ``calib_values`` stores them."""
    if a.dtype == np.float64:
        return a.reshape(-1).view(np.uint64)
    if a.dtype in (np.float32, np.float16):
        return a.astype(np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    return a.reshape(-1).astype(np.int64).view(np.uint64)


def decode(dtype: str, encoded: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``calib_values`` back to an array of ``dtype`` and ``shape``."""
    if dtype == "float64":
        return encoded.view(np.float64).reshape(shape)
    if dtype in ("float32", "float16"):
        return encoded.astype(np.uint32).view(np.float32).astype(dtype).reshape(shape)
    return encoded.view(np.int64).astype(dtype).reshape(shape)


@dataclasses.dataclass
class CalibRecords:
    """The stored rows of every case (the file's ``calib_*`` fields, without the prefix)."""

    case_offsets: np.ndarray
    op: np.ndarray
    channel: np.ndarray
    output_offsets: np.ndarray
    name: np.ndarray
    dtype: np.ndarray
    shape_offsets: np.ndarray
    shapes: np.ndarray
    value_offsets: np.ndarray
    values: np.ndarray
    # The stored refusals by case id (from the header; not a field of the file's arrays).
    refused: dict[int, Refusal] = dataclasses.field(default_factory=dict)
    # NumPy's AVX512 dispatch targets that were on where the rows were made (from the
    # header's numpy_simd; None where not recorded).
    numpy_avx512: frozenset[str] | None = None

    @property
    def n_cases(self) -> int:
        return len(self.case_offsets) - 1

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Outcome]) -> CalibRecords:
        cases, ops, channels, outs = [0], [], [], [0]
        names, dtypes, shape_off, value_off = [], [], [0], [0]
        shapes: list[int] = []
        values: list[np.ndarray] = []
        for outcome in outcomes:
            previous: dict[tuple[int, str], np.ndarray | None] = {}
            for row in outcome.rows:
                ops.append(row.op)
                channels.append(row.channel)
                for name, value in row.outputs:
                    a = host(value)
                    key = (row.channel, name)
                    last = previous.get(key)
                    same = (
                        a is not None
                        and last is not None
                        and a.dtype == last.dtype
                        and a.shape == last.shape
                        and np.array_equal(encode(a), encode(last))
                    )
                    previous[key] = a
                    names.append(NAMES.index(name))
                    if a is None or same:
                        dtypes.append(DTYPES.index("none" if a is None else "same"))
                        shape_off.append(shape_off[-1])
                        value_off.append(value_off[-1])
                        continue
                    dtypes.append(DTYPES.index(_dtype_name(a)))
                    shapes.extend(a.shape)
                    shape_off.append(len(shapes))
                    values.append(np.diff(encode(a), prepend=np.uint64(0)))
                    value_off.append(value_off[-1] + a.size)
                outs.append(len(names))
            cases.append(len(ops))
        return cls(
            np.asarray(cases, np.int64),
            np.asarray(ops, np.int32),
            np.asarray(channels, np.int32),
            np.asarray(outs, np.int64),
            np.asarray(names, np.int8),
            np.asarray(dtypes, np.int8),
            np.asarray(shape_off, np.int64),
            np.asarray(shapes, np.int64),
            np.asarray(value_off, np.int64),
            np.concatenate(values) if values else np.zeros(0, np.uint64),
        )

    def case(self, i: int) -> list[Row]:
        """Case ``i``'s rows, decoded (``same`` resolved; ``none`` as None)."""
        rows = []
        previous: dict[tuple[int, str], np.ndarray | None] = {}
        for r in range(int(self.case_offsets[i]), int(self.case_offsets[i + 1])):
            outputs: list[Output] = []
            channel = int(self.channel[r])
            for k in range(int(self.output_offsets[r]), int(self.output_offsets[r + 1])):
                name, dtype = NAMES[self.name[k]], DTYPES[self.dtype[k]]
                if dtype == "same":
                    value = previous[(channel, name)]
                elif dtype == "none":
                    value = None
                else:
                    shape = self.shapes[self.shape_offsets[k] : self.shape_offsets[k + 1]]
                    deltas = self.values[self.value_offsets[k] : self.value_offsets[k + 1]]
                    encoded = np.cumsum(deltas, dtype=np.uint64)
                    value = decode(dtype, encoded, [int(s) for s in shape])
                previous[(channel, name)] = value
                outputs.append((name, value))
            rows.append(Row(int(self.op[r]), channel, outputs))
        return rows

    def fields(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f.removeprefix("calib_")) for f in FIELDS}

    def equal(self, other: CalibRecords) -> bool:
        mine, theirs = self.fields(), other.fields()
        return all(np.array_equal(mine[f], theirs[f]) for f in FIELDS)


def reference_path() -> Path:
    return Path(__file__).with_name(
        f"reference-calib-ort-{ORT_VERSION}-modelopt-{MODELOPT_VERSION}.npz"
    )


def save(records: CalibRecords, path: Path, header: dict[str, Any]) -> None:
    meanings = {
        "calib_case_offsets": "rows of case i: calib_case_offsets[i]:[i+1]",
        "calib_op": "the row's op index in the case's ops",
        "calib_channel": "the row's channel (per-tensor cases: 0)",
        "calib_output_offsets": "outputs of row r: calib_output_offsets[r]:[r+1]",
        "calib_name": "the output's name, an index into names",
        "calib_dtype": "the output's dtype, an index into dtypes (none: None; same: as the "
        "previous row's output of that name and channel)",
        "calib_shape_offsets": "the output's shape: calib_shapes[calib_shape_offsets[k]:[k+1]]",
        "calib_shapes": "the shapes, concatenated",
        "calib_value_offsets": "the output's values: calib_values[calib_value_offsets[k]:[k+1]]",
        "calib_values": "float64 bits; float32 bits of float32 and float16; int64 of integers; "
        "each output's as differences e[0], e[1]-e[0], ... modulo 2**64 (cumsum in uint64)",
    }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fields": meanings,
        "names": list(NAMES),
        "dtypes": list(DTYPES),
        **header,
    }
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    with path.open("wb") as fh:
        arrays: dict[str, Any] = {"header": blob, **records.fields()}
        np.savez_compressed(fh, **arrays)


def load(path: Path | None = None) -> tuple[CalibRecords, dict[str, Any]]:
    """The stored calibrators section and its header; a clear error if of another format."""
    path = reference_path() if path is None else path
    with np.load(path) as data:
        meta = json.loads(bytes(data["header"]).decode())
        if (meta.get("format"), meta.get("format_version")) != (FORMAT, FORMAT_VERSION):
            msg = f"{path} is not an {FORMAT} file of format version {FORMAT_VERSION}"
            raise ValueError(msg)
        fields = {f.removeprefix("calib_"): np.asarray(data[f]) for f in FIELDS}
    simd = (meta.get("machine") or {}).get("numpy_simd")
    avx512 = None
    if isinstance(simd, dict):
        avx512 = frozenset(t for t in simd.get("found", []) if "AVX512" in t or t == "X86_V4")
    return CalibRecords(**fields, refused=refusals(meta), numpy_avx512=avx512), meta


def refusals(meta: dict[str, Any]) -> dict[int, Refusal]:
    """The stored refusals by case id."""
    out = {}
    for c in meta.get("cases", []):
        if c.get("refusal") is not None:
            out[int(c["id"])] = Refusal(**c["refusal"])
    return out
