"""The calibrators section as plain files, for ``arrayobs reference export`` (format
version 3 adds it; docs/reference-format.md, "Calibrator cases").

Every batch (and, for a merge case, every rank's piece) is a ``.npy`` file, every
expected output too; the numbers come from the stored file
(``reference-calib-ort-1.31.1-modelopt-0.47.0.npz``), so the export needs neither
reference. Paths, under the export's root:

- ``calibrators/NNNN/op-KK-batch-B.npy``: case NNNN's op KK's batch B (for a merge case
  the concatenation of ``op-KK-batch-B-rank-R.npy`` along axis 0, which are also written);
- ``calibrators/NNNN/op-KK-channel-C-NAME.npy``: the expected output NAME of op KK for
  channel C (0 for a per-tensor case).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from arrayobs._conformance._calib_cases import CalibCase
from arrayobs._conformance._calib_corpus import cases, inputs, pieces
from arrayobs._conformance._calib_records import CalibRecords, Row, load
from arrayobs._conformance._calib_runner import CLASSES

SECTION = "calibrators"
REFERENCE_KEYS = (
    "onnxruntime",
    "modelopt",
    "torch",
    "scipy",
    "corpus_version",
    "created",
    "machine",
)
MODULES = {
    "ort": "onnxruntime.quantization.calibrate",
    "modelopt": "modelopt.torch.quantization.calib",
}


def _op(w: Any, base: str, k: int, op: tuple[Any, ...], case: CalibCase) -> dict[str, Any]:
    """Op ``k``'s entry, without its expected outputs."""
    kind = op[0]
    entry: dict[str, Any] = {"op": kind}
    if kind == "collect":
        batches = []
        for b, (host, parts) in enumerate(zip(inputs(case)[k], pieces(case)[k], strict=True)):
            item = w.array(f"{base}/op-{k:02d}-batch-{b}.npy", host)
            if case.ranks > 1:
                item["pieces"] = [
                    w.array(f"{base}/op-{k:02d}-batch-{b}-rank-{r}.npy", p)
                    for r, p in enumerate(parts)
                ]
            batches.append(item)
        entry["batches"] = batches
    elif kind == "result":
        entry["method"], entry["arguments"] = op[1], dict(op[2])
    elif kind == "qparams":
        entry.update(qtype=op[1], reduce_range=op[2], symmetric=op[3])
    elif kind == "scale_zp":
        _, lo, hi, qtype, reduce_range, symmetric = op
        entry.update(
            rmin=_f32_hex(lo), rmax=_f32_hex(hi), qtype=qtype, reduce_range=reduce_range,
            symmetric=symmetric,
        )  # fmt: skip
    return entry


def _f32_hex(value: float) -> str:
    return f"0x{int(np.float32(value).view(np.uint32)):08x}"


def _expected(w: Any, base: str, rows: list[Row]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        outputs: dict[str, Any] = {}
        for name, value in row.outputs:
            rel = f"{base}/op-{row.op:02d}-channel-{row.channel}-{name}.npy"
            outputs[name] = None if value is None else w.array(rel, np.asarray(value))
        out.append({"channel": row.channel, "outputs": outputs})
    return out


def calib_case(w: Any, case: CalibCase, records: CalibRecords) -> dict[str, Any]:
    """One case's manifest entry (its files written through ``w``, the export's writer)."""
    base = f"{SECTION}/{case.id:04d}"
    rows = records.case(case.id)
    ops = []
    for k, op in enumerate(case.ops):
        entry = _op(w, base, k, op, case)
        entry["expected"] = _expected(w, base, [r for r in rows if r.op == k])
        ops.append(entry)
    refusal = records.refused.get(case.id)
    return {
        "id": case.id,
        "section": SECTION,
        "family": case.family,
        "module": MODULES[case.library],
        "class": CLASSES.get(case.family, "compute_scale_zp"),
        "name": case.name,
        "arguments": dict(case.arguments),
        "dtype": case.dtype,
        "channel_axis": case.channel_axis,
        "ranks": case.ranks,
        "ops": ops,
        "refusal": None
        if refusal is None
        else {
            "type": refusal.type,
            "message": refusal.message,
            "op": refusal.op,
            "channel": refusal.channel,
        },
    }


def calib_reference(path: Path | None = None) -> tuple[CalibRecords, dict[str, Any]]:
    """The stored calibrators file (``path``: another than the package's), checked
    against this corpus, and its versions (``calibrators_reference``)."""
    records, meta = load(path)
    if len(cases()) != records.n_cases:
        msg = "the stored calibrators reference does not match this corpus"
        raise ValueError(msg)
    return records, {k: meta.get(k) for k in REFERENCE_KEYS}


def calib_cases(
    w: Any, stored: tuple[CalibRecords, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The section's reference versions (``calibrators_reference``) and its cases
    (``calibrators_cases``), their files written through ``w``; ``stored``: what
    :func:`calib_reference` returned (default: the package's file)."""
    records, reference = calib_reference() if stored is None else stored
    return reference, [calib_case(w, c, records) for c in cases()]
