"""Replay an ``arrayobs reference export`` directory against live torch.ao
(its histogram section against torch.ao's HistogramObserver, its affine section
against live torchao).

Reads only the exported files and imports nothing from arrayobs (numpy, json,
hashlib and torch), as a C++ or Rust reader would: this is the format's proof.
``python tests/replay_export.py DIR [--every N] [--hist-every N]`` prints a JSON
report: cases replayed and mismatches per section, and the first mismatches
described.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # registers quantized_decomposed
from torch.ao.quantization import fake_quantize as tfq
from torch.ao.quantization import observer as tobs


def tensor(root: Path, entry: dict[str, Any]) -> torch.Tensor:
    a = np.load(root / entry["file"], allow_pickle=False)
    assert list(a.shape) == entry["shape"], entry
    if entry["dtype"] == "bfloat16":
        assert a.dtype == np.uint16, entry
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    assert str(a.dtype) == entry["dtype"], entry
    return torch.from_numpy(a.copy())


def value(v: Any) -> Any:
    """A JSON argument: {"float64": bits} is a Python float; the rest is literal."""
    if isinstance(v, dict):
        return float(np.array(int(v["float64"], 16), dtype=np.uint64).view(np.float64))
    return v


def hexes(t: torch.Tensor) -> Any:
    # A copy: numpy() on a buffer would make its storage non-resizable for torch.
    bits = t.detach().to(torch.float32).reshape(-1).clone().numpy().view(np.uint32)
    out = [f"0x{int(b):08x}" for b in bits]
    return out[0] if t.dim() == 0 else out


def is_nan_hex(h: Any) -> bool:
    return isinstance(h, str) and (int(h, 16) & 0x7FFFFFFF) > 0x7F800000


def same(got: Any, want: Any) -> bool:
    """Equal JSON values, a float32 NaN matching any NaN."""
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want or (is_nan_hex(got) and is_nan_hex(want)))


def torch_kwargs(arguments: dict[str, Any]) -> dict[str, Any]:
    kw = {k: value(v) for k, v in arguments.items()}
    for name in ("dtype", "qscheme"):
        if name in kw:
            kw[name] = getattr(torch, kw[name])
    return kw


def replay_observer(root: Path, case: dict[str, Any]) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        obs = getattr(tobs, case["observer"])(**torch_kwargs(case["arguments"]))
    bad = []
    for i, batch in enumerate(case["batches"]):
        obs(tensor(root, batch))
        got: dict[str, Any] = {"min_val": hexes(obs.min_val), "max_val": hexes(obs.max_val)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                scale, zp = obs.calculate_qparams()
            except AssertionError:
                got.update(status="refused", scale=None, zero_point=None)
                got.update(scale_dtype=None, zero_point_dtype=None)
            else:
                got["status"] = "never-observed" if caught else "ok"
                got["scale"], got["scale_dtype"] = hexes(scale.reshape(-1)), "float32"
                got["zero_point_dtype"] = str(zp.dtype).removeprefix("torch.")
                is_float = zp.dtype == torch.float32
                got["zero_point"] = hexes(zp.reshape(-1)) if is_float else zp.tolist()
        want = batch["expected"]
        diff = [k for k in want if not same(got.get(k), want[k])]
        if diff or set(got) != set(want):
            bad.append(f"observer case {case['id']} batch {i}: {diff} {got} vs {want}")
    return bad


def equal_arrays(t: torch.Tensor, root: Path, entry: dict[str, Any]) -> bool:
    want = tensor(root, entry)
    if t.dtype != want.dtype or list(t.shape) != entry["shape"]:
        return False
    g, w = t.detach().reshape(-1), want.reshape(-1)
    ok = g.view(torch.int16) == w.view(torch.int16) if g.dtype == torch.bfloat16 else g == w
    if g.is_floating_point():
        ok |= torch.isnan(g) & torch.isnan(w)
    return bool(ok.all())


def _op(name: str) -> Any:
    if name.startswith("fake"):
        return getattr(torch, name)
    return getattr(torch.ops.quantized_decomposed, name)


def replay_fake_quant(root: Path, case: dict[str, Any]) -> list[str]:
    if case["op"] != "module":
        args = [
            tensor(root, v)
            if isinstance(v, dict) and "file" in v
            else getattr(torch, v)
            if k == "dtype"
            else value(v)
            for k, v in case["arguments"].items()
        ]
        kw = {k: getattr(torch, v) for k, v in case["keyword_arguments"].items()}
        out = _op(case["op"])(*args, **kw)
        ok = equal_arrays(out, root, case["expected"])
        return [] if ok else [f"fake-quant case {case['id']} ({case['op']})"]
    spec = case["module"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if "factory" in spec:
            mod = getattr(tfq, spec["factory"])()
        else:
            kw = torch_kwargs(spec["arguments"])
            mod = getattr(tfq, spec["class"])(observer=getattr(tobs, spec["observer"]), **kw)
    bad = []
    for i, batch in enumerate(case["batches"]):
        mod.enable_observer(batch["observer_enabled"])
        mod.enable_fake_quant(batch["fake_quant_enabled"])
        got = {"output": mod(tensor(root, batch)), "scale": mod.scale, "zero_point": mod.zero_point}
        for name, t in got.items():
            if not equal_arrays(t, root, batch["expected"][name]):
                bad.append(f"fake-quant case {case['id']} batch {i}: {name}")
    state = mod.state_dict()
    if list(state) != list(case["state_dict"]):
        return [*bad, f"fake-quant case {case['id']}: state_dict keys {list(state)}"]
    for key, entry in case["state_dict"].items():
        if not equal_arrays(state[key], root, entry):
            bad.append(f"fake-quant case {case['id']}: state_dict {key}")
    return bad


def replay_histogram(root: Path, case: dict[str, Any]) -> list[str]:
    """A HistogramObserver case: after each batch its histogram (an array), state, qparams
    and both warnings (forward dropped infinities; calculate_qparams never observed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reduce_range's deprecation
        obs = getattr(tobs, case["observer"])(**torch_kwargs(case["arguments"]))
    bad = []
    for i, batch in enumerate(case["batches"]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obs(tensor(root, batch))
        got: dict[str, Any] = {
            "inf_warning": any("torch.inf detected" in str(w.message) for w in caught),
            "min_val": hexes(obs.min_val),
            "max_val": hexes(obs.max_val),
        }
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scale, zp = obs.calculate_qparams()
        got["status"] = "never-observed" if caught else "ok"
        got["scale"], got["scale_dtype"] = hexes(scale.reshape(-1)), str(scale.dtype)[6:]
        got["zero_point"], got["zero_point_dtype"] = zp.reshape(-1).tolist(), str(zp.dtype)[6:]
        want = batch["expected"]
        diff = [k for k in want if k != "histogram" and not same(got.get(k), want[k])]
        if not equal_arrays(obs.histogram, root, want["histogram"]):
            diff.append("histogram")
        if diff or set(got) | {"histogram"} != set(want):
            bad.append(f"histogram case {case['id']} batch {i}: {diff} {got} vs {want}")
    return bad


def _torchao() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchao's CUDA extension notice
        from torchao.quantization import granularity, observer, quant_primitives, utils
    return quant_primitives, granularity, observer, utils


def _dtype(name: Any) -> Any:
    return None if name is None else getattr(torch, name)


def _affine_outputs(root: Path, case: dict[str, Any]) -> list[Any]:
    """The case's calls on live torchao, from the manifest's parameters and files."""
    tq, tg, tobs, tu = _torchao()
    p, inputs = case["parameters"], {k: tensor(root, v) for k, v in case["inputs"].items()}
    name, _, arg = p["granularity"].partition(":")
    args = (
        () if not arg else (tuple(int(a) for a in arg.split("x")),) if "x" in arg else (int(arg),)
    )
    gran = getattr(tg, name)(*args)
    # int4 is int8 in -8..7 (torch.int4 does not quantize on the CPU).
    tdt, qmin, qmax = (
        (torch.int8, -8, 7) if p["target"] == "int4" else (_dtype(p["target"]), None, None)
    )
    mapping = tq.MappingType[p["mapping"]]
    if case["op"] == "observer":
        kw = {
            k: _dtype(v) if k.endswith("dtype") else v
            for k, v in case["observer_arguments"].items()
        }
        if "zero_point_domain" in kw:
            kw["zero_point_domain"] = tq.ZeroPointDomain[kw["zero_point_domain"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            obs = tobs.AffineQuantizedMinMaxObserver(mapping, tdt, gran, qmin, qmax, **kw)
        outs: list[Any] = []
        for i in range(len(inputs)):
            obs(inputs[f"batch-{i}"])
            outs += [obs.min_val.clone(), obs.max_val.clone()]
        return outs + list(obs.calculate_qparams())
    if case["op"] == "with_min_max":
        return list(
            tq.choose_qparams_affine_with_min_max(
                inputs["min_val"],
                inputs["max_val"],
                mapping,
                [],
                tdt,
                qmin,
                qmax,
                p["eps"],
                _dtype(p["scale_dtype"]),
                _dtype(p["zero_point_dtype"]),
            )
        )
    x, block = inputs["x"], case["block_size"]
    if case["op"] == "float8":
        f8 = _dtype(p["target"])
        s = tq._choose_scale_float8(x, block, f8, _dtype(p["scale_dtype"]), *p["hp_bounds"])
        q = tq._quantize_affine_float8(x, s, f8)
        return [s, q, tq._dequantize_affine_float8(q, s, _dtype(p["out_dtype"]))]
    assert list(tu.get_block_size(x.shape, gran)) == block, case["id"]
    s, z = tq.choose_qparams_affine(
        x,
        mapping,
        block,
        tdt,
        qmin,
        qmax,
        p["eps"],
        _dtype(p["scale_dtype"]),
        _dtype(p["zero_point_dtype"]),
        p["keepdim"],
    )
    if p["input_dtype"] == "float64":
        return [s, z]
    q = tq.quantize_affine(x, block, s, z, tdt, qmin, qmax)
    d = tq.dequantize_affine(q, block, s, z, tdt, qmin, qmax, output_dtype=_dtype(p["out_dtype"]))
    return [s, z, q, d]


def replay_affine(root: Path, case: dict[str, Any]) -> list[str]:
    outs = _affine_outputs(root, case)
    if len(outs) != len(case["expected"]):
        return [f"affine case {case['id']}: {len(outs)} outputs"]
    bad = []
    for i, (out, entry) in enumerate(zip(outs, case["expected"], strict=True)):
        t = out
        if entry is None or t is None:
            if entry is not t:
                bad.append(f"affine case {case['id']} output {i}: None")
            continue
        name = str(t.dtype).removeprefix("torch.")
        if name == "uint4":
            t, name = t.to(torch.uint8), "uint8"
        if name.startswith("float8"):
            t = t.to(torch.float32)  # exact; the file holds the float32 values
        ok = name == entry["torch_dtype"] and equal_arrays(t.reshape(-1), root, entry)
        if not ok:
            bad.append(f"affine case {case['id']} output {i} ({entry['torch_dtype']})")
    return bad


# -- calibrators: the exported files against the stored npz, read with NumPy alone ----------
def _calib_decode(dtype: str, encoded: np.ndarray, shape: list[int]) -> np.ndarray:
    """The stored file's encoding: float64 bits; float32 bits of float32 and float16;
    integers as int64."""
    if dtype == "float64":
        return encoded.view(np.float64).reshape(shape)
    if dtype in ("float32", "float16"):
        return encoded.astype(np.uint32).view(np.float32).astype(dtype).reshape(shape)
    return encoded.view(np.int64).astype(dtype).reshape(shape)


def calib_stored(path: Path) -> tuple[dict[str, Any], list[list[tuple[int, int, list[Any]]]]]:
    """The stored calibrators file (``reference-calib-*.npz``, described in its header):
    its header, and per case its rows ``(op, channel, [(name, array or None), ...])``."""
    with np.load(path) as d:
        meta = json.loads(bytes(d["header"]).decode())
        f = {k: np.asarray(d[k]) for k in d.files if k != "header"}
    names, dtypes = meta["names"], meta["dtypes"]
    cases, outs = f["calib_case_offsets"], f["calib_output_offsets"]
    out = []
    for i in range(len(cases) - 1):
        rows, previous = [], {}
        for r in range(int(cases[i]), int(cases[i + 1])):
            channel, outputs = int(f["calib_channel"][r]), []
            for k in range(int(outs[r]), int(outs[r + 1])):
                name, dtype = names[f["calib_name"][k]], dtypes[f["calib_dtype"][k]]
                if dtype == "same":
                    v = previous[(channel, name)]
                elif dtype == "none":
                    v = None
                else:
                    lo, hi = f["calib_shape_offsets"][k : k + 2]
                    a, b = f["calib_value_offsets"][k : k + 2]
                    encoded = np.cumsum(f["calib_values"][a:b], dtype=np.uint64)
                    v = _calib_decode(dtype, encoded, [int(s) for s in f["calib_shapes"][lo:hi]])
                previous[(channel, name)] = v
                outputs.append((name, v))
            rows.append((int(f["calib_op"][r]), channel, outputs))
        out.append(rows)
    return meta, out


def _read(root: Path, entry: dict[str, Any]) -> np.ndarray:
    a = np.load(root / entry["file"], allow_pickle=False)
    assert str(a.dtype) == entry["dtype"] and list(a.shape) == entry["shape"], entry
    return a


def replay_calibrator(
    root: Path, case: dict[str, Any], rows: list[tuple[int, int, list[Any]]], stored: Any
) -> list[str]:
    """A calibrator case's expected outputs, in order, against the stored rows (dtype,
    shape and bytes), its refusal against the stored one, and a merge case's batches
    against the concatenation of their pieces."""
    bad, label = [], f"calibrator case {case['id']}"
    found = iter(rows)
    for k, op in enumerate(case["ops"]):
        for batch in op.get("batches", []):
            if "pieces" in batch:
                joined = np.concatenate([_read(root, p) for p in batch["pieces"]], axis=0)
                if joined.tobytes() != _read(root, batch).tobytes():
                    bad.append(f"{label} op {k}: a batch is not its pieces' concatenation")
        for expected in op["expected"]:
            row = next(found, None)
            if row is None or row[:2] != (k, expected["channel"]):
                bad.append(f"{label} op {k} channel {expected['channel']}: stored row {row}")
                continue
            if [n for n, _ in row[2]] != list(expected["outputs"]):
                bad.append(f"{label} op {k}: outputs {list(expected['outputs'])}")
                continue
            for name, want in row[2]:
                got = expected["outputs"][name]
                if want is None or got is None:
                    ok = want is None and got is None
                else:
                    a = _read(root, got)
                    ok = a.dtype == want.dtype and a.shape == want.shape
                    ok = ok and a.tobytes() == want.tobytes()
                if not ok:
                    bad.append(f"{label} op {k} channel {expected['channel']}: {name}")
    if next(found, None) is not None:
        bad.append(f"{label}: stored rows left over")
    if case["refusal"] != stored["refusal"]:
        bad.append(f"{label}: refusal {case['refusal']} vs stored {stored['refusal']}")
    return bad


def replay_calibrators(root: Path, manifest: dict[str, Any], stored_file: Path) -> list[str]:
    """The section's cases and ``calibrators_reference`` against the stored file."""
    meta, stored = calib_stored(stored_file)
    by_id = {c["id"]: c for c in meta["cases"]}
    if len(stored) != len(by_id):
        return [f"calibrators: {len(stored)} cases of rows, {len(by_id)} in the header"]
    reference = manifest["calibrators_reference"]
    bad = [f"calibrators_reference {k}" for k in reference if reference[k] != meta.get(k)]
    cases = manifest["calibrators_cases"]
    for case in cases:
        want = by_id[case["id"]]
        keys = ("family", "name", "arguments", "dtype", "channel_axis", "ranks")
        differ = [k for k in keys if case[k] != want[k]]
        if differ:
            bad.append(f"calibrator case {case['id']}: {differ} not the stored case's")
            continue
        bad += replay_calibrator(root, case, stored[case["id"]], want)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--every", type=int, default=1, help="replay every N-th observer case")
    parser.add_argument(
        "--hist-every",
        type=int,
        default=1,
        help="replay every N-th histogram case (torch's HistogramObserver: ~0.25 s a case)",
    )
    parser.add_argument(
        "--calib-reference",
        type=Path,
        help="the stored calibrators file the export was made from: checks the section's files",
    )
    args = parser.parse_args()
    root = args.root
    manifest = json.loads((root / "manifest.json").read_text())
    corrupt = [
        rel
        for rel, digest in manifest["files"].items()
        if hashlib.sha256((root / rel).read_bytes()).hexdigest() != digest
    ]
    observers = manifest["observer_cases"][:: args.every]
    failures: list[str] = []
    obs_bad = fq_bad = 0
    for case in observers:
        bad = replay_observer(root, case)
        obs_bad, failures = obs_bad + len(bad), failures + bad
    for case in manifest["fake_quant_cases"]:
        bad = replay_fake_quant(root, case)
        fq_bad, failures = fq_bad + len(bad), failures + bad
    affine_bad = 0
    for case in manifest.get("affine_cases", []):
        bad = replay_affine(root, case)
        affine_bad, failures = affine_bad + len(bad), failures + bad
    histogram = manifest.get("histogram_cases", [])[:: args.hist_every]
    hist_bad = 0
    for case in histogram:
        bad = replay_histogram(root, case)
        hist_bad, failures = hist_bad + len(bad), failures + bad
    calibrators = manifest.get("calibrators_cases", [])  # format version 3 and later
    calib_bad = None
    if args.calib_reference is not None and calibrators:
        bad = replay_calibrators(root, manifest, args.calib_reference)
        calib_bad, failures = len(bad), failures + bad
    report = {
        "torch": torch.__version__,
        "reference": manifest["reference"],
        "files": len(manifest["files"]),
        "corrupt_files": corrupt,
        "observer_cases": len(observers),
        "observer_batches": sum(len(c["batches"]) for c in observers),
        "observer_mismatches": obs_bad,
        "fake_quant_cases": len(manifest["fake_quant_cases"]),
        "fake_quant_mismatches": fq_bad,
        "affine_cases": len(manifest.get("affine_cases", [])),
        "affine_mismatches": affine_bad,
        "histogram_cases": len(histogram),
        "histogram_batches": sum(len(c["batches"]) for c in histogram),
        "histogram_mismatches": hist_bad,
        "calibrators_cases": len(calibrators),
        "calibrators_mismatches": calib_bad,
        "failures": failures[:10],
        "arrayobs_imported": sorted(m for m in sys.modules if m.startswith("arrayobs")),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
