"""``arrayobs reference export``: the corpus and torch's numbers as plain files.

Every input batch is a ``.npy`` file (bfloat16 as its uint16 bit pattern); the
expected numbers come from the stored reference files, not from a run, so the
export needs neither torch nor any backend. ``manifest.json`` describes every
case; docs/reference-format.md specifies the format.

Format version 2 added the histogram section (``"histogram"`` in ``sections``,
``histogram_cases``, ``histogram_reference``, files under ``histogram/``); version 3
the calibrators section (``"calibrators"``, ``calibrators_cases``,
``calibrators_reference``, files under ``calibrators/``; ``_calib_export``). Everything
of the earlier versions is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from arrayobs._conformance._calib_export import calib_cases, calib_reference
from arrayobs._conformance._corpus import Case, batches, cases, view_kind
from arrayobs._conformance._fq_corpus import MODULES, FQCase, arguments, module_batches
from arrayobs._conformance._fq_corpus import cases as fq_cases
from arrayobs._conformance._hist_corpus import HistCase
from arrayobs._conformance._hist_corpus import batches as hist_batches
from arrayobs._conformance._hist_corpus import cases as hist_cases
from arrayobs._conformance._records import (
    NEVER_OBSERVED,
    REFUSED,
    TORCH_VERSION,
    HistRecords,
    Records,
    load,
    load_affine,
    load_fake_quant,
    load_histogram,
)
from arrayobs._conformance._runner import _view

FORMAT = "arrayobs-reference-export"
FORMAT_VERSION = 3  # 2: the histogram section; 3: the calibrators section
SECTIONS = ("per-tensor", "per-channel", "fake-quant", "affine", "histogram", "calibrators")
STATUS = {0: "ok", NEVER_OBSERVED: "never-observed", REFUSED: "refused"}
# torch.ao's fake-quantize modules' state_dict keys, in order (every module of the corpus).
STATE_DICT_KEYS = (
    "fake_quant_enabled",
    "observer_enabled",
    "scale",
    "zero_point",
    "activation_post_process.eps",
    "activation_post_process.min_val",
    "activation_post_process.max_val",
)
_VIEWS = {"strided": "x[::2]", "transposed": "x.T", "columns": "x[:, ::2]"}
# The ops' arguments in torch's positional order (the tensors are files).
_OP_ARGS = {
    "fake_quantize_per_tensor_affine": ("input", "scale", "zero_point", "quant_min", "quant_max"),
    "fake_quantize_per_channel_affine": (
        "input",
        "scale",
        "zero_point",
        "axis",
        "quant_min",
        "quant_max",
    ),
    "quantize_per_tensor": ("input", "scale", "zero_point", "quant_min", "quant_max", "dtype"),
    "dequantize_per_tensor": ("input", "scale", "zero_point", "quant_min", "quant_max", "dtype"),
    "quantize_per_channel": (
        "input",
        "scales",
        "zero_points",
        "axis",
        "quant_min",
        "quant_max",
        "dtype",
    ),
    "dequantize_per_channel": (
        "input",
        "scales",
        "zero_points",
        "axis",
        "quant_min",
        "quant_max",
        "dtype",
    ),
}


def f32_hex(bits: Any) -> str:
    """float32 bits as ``0x`` and 8 lowercase hex digits."""
    return f"0x{int(bits) & 0xFFFFFFFF:08x}"


def f64_json(value: float) -> dict[str, str]:
    """A Python float (an IEEE binary64) as its bit pattern."""
    return {"float64": f"0x{int(np.float64(value).view(np.uint64)):016x}"}


def _torch_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments with every float as its bit pattern; names, ints and bools as is."""
    return {k: f64_json(v) if isinstance(v, float) else v for k, v in sorted(kwargs.items())}


class _Writer:
    """Writes .npy files under ``root`` and remembers each file's sha256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, str] = {}

    def array(self, rel: str, a: np.ndarray, dtype: str | None = None) -> dict[str, Any]:
        """Save ``a`` (values as seen, C order) and return its manifest entry."""
        dtype = dtype or str(a.dtype)
        a = np.array(a, order="C")  # ascontiguousarray would make a 0-d array 1-d
        if dtype == "bfloat16":
            # float32 carriers of bfloat16 values: the upper 16 bits are the value.
            a = (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, a, allow_pickle=False)
        self.files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return {"file": rel, "dtype": dtype, "shape": list(a.shape)}


# -- observers -----------------------------------------------------------------------
def observer_name(case: Case) -> str:
    kind = "MinMaxObserver" if case.averaging_constant is None else "MovingAverageMinMaxObserver"
    if not case.per_channel:
        return kind
    return kind.replace("MinMaxObserver", "PerChannelMinMaxObserver")


def _expected(case: Case, rows: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One entry per batch from the case's stored rows (a batch's rows start at channel 0)."""
    starts = [int(i) for i in np.flatnonzero(rows["channel"] == 0)]
    out = []
    for lo, hi in zip(starts, [*starts[1:], len(rows["channel"])], strict=True):
        r = {k: v[lo:hi] for k, v in rows.items()}
        status = int(r["status"][0])
        mins = [f32_hex(b) for b in r["min_bits"]]
        maxs = [f32_hex(b) for b in r["max_bits"]]
        entry: dict[str, Any] = {"status": STATUS[status]}
        if case.per_channel:
            # A never-observed per-channel state is torch's shape (0,) (one stored row).
            empty = status == NEVER_OBSERVED
            entry["min_val"], entry["max_val"] = ([], []) if empty else (mins, maxs)
        else:
            entry["min_val"], entry["max_val"] = mins[0], maxs[0]
        if status == REFUSED:
            entry.update(scale=None, zero_point=None, scale_dtype=None, zero_point_dtype=None)
        else:
            n = 1 if status == NEVER_OBSERVED else len(r["scale_bits"])
            zp_float = bool(r["zp_float"][0])
            entry["scale"] = [f32_hex(b) for b in r["scale_bits"][:n]]
            entry["zero_point"] = [f32_hex(z) if zp_float else int(z) for z in r["zero_point"][:n]]
            entry["scale_dtype"] = "float32"
            entry["zero_point_dtype"] = (
                "float32" if zp_float else "int64" if r["zp_int64"][0] else "int32"
            )
        out.append(entry)
    return out


def observer_case(w: _Writer, case: Case, rows: dict[str, np.ndarray]) -> dict[str, Any]:
    kind = view_kind(case)
    expected = _expected(case, rows)
    hosts = batches(case)
    if len(expected) != len(hosts):
        msg = f"case {case.id}: {len(hosts)} batches but {len(expected)} stored"
        raise ValueError(msg)
    entries = []
    for i, (host, want) in enumerate(zip(hosts, expected, strict=True)):
        entry = w.array(
            f"observers/{case.id:05d}/batch-{i:02d}.npy", _view(host, kind, None), case.input_dtype
        )
        entries.append({**entry, "expected": want})
    return {
        "id": case.id,
        "section": "per-channel" if case.per_channel else "per-tensor",
        "observer": observer_name(case),
        "arguments": _torch_arguments(case.kwargs()),
        "view": _VIEWS.get(kind or ""),
        "generator": {k: case.describe()[k] for k in ("family", "shape", "seed")},
        "batches": entries,
    }


# -- fake quantize -----------------------------------------------------------------------
def decode(dtype: str, encoded: np.ndarray) -> np.ndarray:
    """Stored ``fq_values`` back to values of ``dtype`` (bfloat16: as float32 values)."""
    if dtype == "float64":
        return encoded.view(np.float64)
    if dtype in ("float32", "float16", "bfloat16"):
        f32 = encoded.astype(np.uint32).view(np.float32)
        return f32 if dtype == "bfloat16" else f32.astype(dtype)
    return encoded.view(np.int64).astype(dtype)


def _output(w: _Writer, rel: str, row: tuple[str, np.ndarray], shape: tuple[int, ...]) -> Any:
    dtype, encoded = row
    values = decode(dtype, encoded).reshape(shape)
    return w.array(rel, values, dtype)


def fq_case(w: _Writer, case: FQCase, rows: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    base = f"fake-quant/{case.id:04d}"
    out: dict[str, Any] = {"id": case.id, "section": "fake-quant", "op": case.op}
    if case.op != "module":
        a = arguments(case)
        x = w.array(f"{base}/input.npy", a["x"], case.input_dtype)
        lo, hi = case.quant_range
        values: dict[str, Any] = {"input": x, "quant_min": lo, "quant_max": hi}
        if case.per_channel:
            names = _OP_ARGS[case.op]
            values[names[1]] = w.array(f"{base}/{names[1]}.npy", a["scale"])
            values[names[2]] = w.array(f"{base}/{names[2]}.npy", a["zero_point"])
            values["axis"] = case.axis
        else:
            values["scale"] = f64_json(float(np.float32(case.scale)))
            values["zero_point"] = case.zero_point
        if case.dtype is not None:
            values["dtype"] = case.dtype
        out["arguments"] = {k: values[k] for k in _OP_ARGS[case.op]}
        out["keyword_arguments"] = {"out_dtype": case.out_dtype} if case.out_dtype else {}
        (row,) = rows
        out["expected"] = _output(w, f"{base}/expected.npy", row, a["x"].shape)
        return out
    cls, observer, kw = MODULES[case.module or ""]
    out["module"] = (
        {"factory": case.module}
        if not cls
        else {"class": cls, "observer": observer, "arguments": _torch_arguments(kw)}
    )
    per_channel = "ch_axis" in kw or "per_channel" in (case.module or "")
    steps = []
    for i, ((observe, fake_quant), host) in enumerate(
        zip(case.plan, module_batches(case), strict=True)
    ):
        entry = w.array(f"{base}/batch-{i}.npy", host, case.input_dtype)
        out_row, scale_row, zp_row = rows[3 * i : 3 * i + 3]
        expected = {
            "output": _output(w, f"{base}/output-{i}.npy", out_row, host.shape),
            "scale": _output(w, f"{base}/scale-{i}.npy", scale_row, scale_row[1].shape),
            "zero_point": _output(w, f"{base}/zero_point-{i}.npy", zp_row, zp_row[1].shape),
        }
        steps.append(
            {
                **entry,
                "observer_enabled": bool(observe),
                "fake_quant_enabled": bool(fake_quant),
                "expected": expected,
            }
        )
    out["batches"] = steps
    state = rows[3 * len(case.plan) :]
    if len(state) != len(STATE_DICT_KEYS):
        msg = f"fake-quantize case {case.id}: {len(state)} state_dict values stored"
        raise ValueError(msg)
    out["state_dict"] = {}
    for key, row in zip(STATE_DICT_KEYS, state, strict=True):
        scalar = not per_channel and key.endswith(("min_val", "max_val"))
        shape = () if scalar else row[1].shape
        out["state_dict"][key] = _output(w, f"{base}/state-{key}.npy", row, shape)
    return out


# -- the export ------------------------------------------------------------------------
def _sections(which: str) -> tuple[str, ...]:
    if which == "all":
        return SECTIONS
    if which not in SECTIONS:
        msg = f"unknown section {which!r}; choose from {['all', *SECTIONS]}"
        raise ValueError(msg)
    return (which,)


def export(
    root: Path,
    which: str = "all",
    reference: Path | None = None,
    histogram_reference: Path | None = None,
    calibrators_reference: Path | None = None,
) -> dict[str, Any]:
    """Write the ``which`` sections of the corpus under ``root``; return the manifest.

    ``reference``, ``histogram_reference`` and ``calibrators_reference``: other stored
    files than the package's."""
    sections = _sections(which)
    records, meta = load(reference)
    fq_records = load_fake_quant(reference)
    corpus, fq_corpus = cases(), fq_cases()
    if len(corpus) != records.n_cases or len(fq_corpus) != fq_records.n_cases:
        msg = "the stored reference does not match this corpus"
        raise ValueError(msg)
    if not str(meta["torch"]).startswith(TORCH_VERSION):
        msg = f"the stored reference is torch {meta['torch']}, not {TORCH_VERSION}"
        raise ValueError(msg)
    hist = _histogram_reference(histogram_reference) if "histogram" in sections else None
    calib = calib_reference(calibrators_reference) if "calibrators" in sections else None
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        msg = f"{root} is not empty; export into a new or empty directory"
        raise ValueError(msg)
    w = _Writer(root)
    observer_cases = list(_observer_cases(w, corpus, records, sections))
    fake_quant = (
        [fq_case(w, c, fq_records.case(c.id)) for c in fq_corpus]
        if "fake-quant" in sections
        else []
    )
    affine = _affine_cases(w) if "affine" in sections else []
    histogram = _histogram_cases(w, hist[0]) if hist else []
    calib_versions, calibrators = calib_cases(w, calib) if calib else (None, [])
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "reference": {"torch": meta["torch"], "torchao": "0.18.0" if affine else None},
        "corpus_version": meta["corpus_version"],
        "created": meta.get("created"),
        "sections": list(sections),
        "observer_cases": observer_cases,
        "fake_quant_cases": fake_quant,
        "affine_cases": affine,
        "histogram_reference": hist[1] if hist else None,
        "histogram_cases": histogram,
        "calibrators_reference": calib_versions,
        "calibrators_cases": calibrators,
        "files": dict(sorted(w.files.items())),
    }
    (root / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")) + "\n")
    return manifest


def _observer_cases(
    w: _Writer, corpus: list[Case], records: Records, sections: tuple[str, ...]
) -> Iterable[dict[str, Any]]:
    for case in corpus:
        if ("per-channel" if case.per_channel else "per-tensor") in sections:
            yield observer_case(w, case, records.case(case.id))


# -- affine (torchao) ---------------------------------------------------------------------
def _affine_cases(w: _Writer) -> list[dict[str, Any]]:
    """Every affine case: its inputs, its calls' parameters and torchao's outputs
    (flattened; float8 as their float32 values, a None output as null)."""
    from arrayobs import affine
    from arrayobs._conformance import _affine_corpus as A
    from arrayobs._conformance._affine_runner import _granularity

    records, _ = load_affine()
    corpus = A.cases()
    if len(corpus) != records.n_cases:
        msg = "the stored torchao reference does not match this corpus"
        raise ValueError(msg)
    out = []
    for case in corpus:
        base = f"affine/{case.id:04d}"
        entry: dict[str, Any] = {"id": case.id, "section": "affine", "op": case.op}
        entry["parameters"] = {
            k: v for k, v in case.describe().items() if k not in ("id", "seed", "observer")
        }
        if case.op == "observer":
            _, _, _, kw = A.OBSERVERS[case.observer or 0]
            entry["observer_arguments"] = dict(kw)
            hosts = {f"batch-{i}": h for i, h in enumerate(A.observer_batches(case))}
        else:
            hosts = A.arguments(case)
        if case.op == "float8":
            entry["block_size"] = list(A.float8_block(case))
        elif case.op == "choose":
            entry["block_size"] = list(affine.get_block_size(case.shape, _granularity(case)))
        entry["inputs"] = {
            k: w.array(f"{base}/{k}.npy", h, case.input_dtype) for k, h in hosts.items()
        }
        expected: list[Any] = []
        for i, (dtype, encoded) in enumerate(records.case(case.id)):
            if dtype == "none":
                expected.append(None)
                continue
            f8 = dtype.startswith("float8")
            values = decode("float32" if f8 else dtype, encoded)
            e = w.array(f"{base}/expected-{i}.npy", values, "float32" if f8 else dtype)
            expected.append({**e, "torch_dtype": dtype})
        entry["expected"] = expected
        out.append(entry)
    return out


# -- histogram (HistogramObserver) -------------------------------------------------------------
def hist_case(w: _Writer, case: HistCase, want: dict[str, Any]) -> dict[str, Any]:
    """One HistogramObserver case: its batches, and after each torch's histogram (a float32
    array of ``bins`` counts), state, qparams and warnings (as an observer case's, per tensor)."""
    base = f"histogram/{case.id:04d}"
    hosts = hist_batches(case)
    if len(hosts) != len(want["hist_status"]):
        msg = (
            f"histogram case {case.id}: {len(hosts)} batches but {len(want['hist_status'])} stored"
        )
        raise ValueError(msg)
    entries = []
    for i, host in enumerate(hosts):
        counts = want["histograms"][i].view(np.float32)
        if counts.size != case.bins:
            msg = f"histogram case {case.id} batch {i}: {counts.size} bins stored, not {case.bins}"
            raise ValueError(msg)
        expected = {
            "status": STATUS[int(want["hist_status"][i])],
            "inf_warning": bool(want["hist_inf_dropped"][i]),
            "histogram": w.array(f"{base}/histogram-{i:02d}.npy", counts),
            "min_val": f32_hex(want["hist_min_bits"][i]),
            "max_val": f32_hex(want["hist_max_bits"][i]),
            "scale": [f32_hex(want["hist_scale_bits"][i])],
            "scale_dtype": "float32",
            "zero_point": [int(want["hist_zero_point"][i])],
            "zero_point_dtype": "int64" if want["hist_zp_int64"][i] else "int32",
        }
        entry = w.array(f"{base}/batch-{i:02d}.npy", host, case.input_dtype)
        entries.append({**entry, "expected": expected})
    return {
        "id": case.id,
        "section": "histogram",
        "observer": "HistogramObserver",
        "arguments": _torch_arguments(case.kwargs()),
        "generator": {"family": case.family, "seed": case.seed},
        "batches": entries,
    }


def _histogram_reference(path: Path | None) -> tuple[HistRecords, dict[str, Any]]:
    """The stored histogram reference, checked against this corpus, and its versions."""
    records, meta = load_histogram(path)
    if len(hist_cases()) != records.n_cases:
        msg = "the stored histogram reference does not match this corpus"
        raise ValueError(msg)
    if not str(meta["torch"]).startswith(TORCH_VERSION):
        msg = f"the stored histogram reference is torch {meta['torch']}, not {TORCH_VERSION}"
        raise ValueError(msg)
    return records, {k: meta.get(k) for k in ("torch", "corpus_version", "created")}


def _histogram_cases(w: _Writer, records: HistRecords) -> list[dict[str, Any]]:
    return [hist_case(w, c, records.case(c.id)) for c in hist_cases()]
