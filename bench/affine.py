"""The affine section: torchao's per-block choose + quantize of a 4096 x 4096 float32 weight,
arrayobs on NumPy, torch (CPU) and JAX (jitted) against torchao 0.18.0 on torch, the
variants of a case interleaved round by round.

Cases (torchao's weight paths):

``uint4 asym g128``
    ``MappingType.ASYMMETRIC``, uint4 (0..15 held in uint8, int32 zero point), group 128.
``int4 sym g128``
    ``MappingType.SYMMETRIC``, int4 as torchao holds it (-8..7 in int8), group 128.
``int8 sym per-row``
    ``MappingType.SYMMETRIC``, int8, one block per row (per output channel).

Variants: ``torchao`` (``choose_qparams_affine`` then ``quantize_affine`` of
``torchao.quantization.quant_primitives`` on a torch tensor of the same values);
``arrayobs`` (``affine.choose_qparams_affine`` then ``affine.quantize_affine``; on JAX
both under one ``jax.jit``); ``fast_off`` (the same through the generic Array API
arithmetic: the backend with ``fast=False``; NumPy and torch). Each ``arrayobs`` result
is compared with torchao's, bit for bit (scale bits, zero points, quantized integers;
``agrees_with_torch_ao`` in ``results.json``).
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from arrayobs import _arguments as arguments
from arrayobs import _backends, affine
from arrayobs._compat import to_host
from bench.cases import Loaded, Record, Unavailable, to_backend
from bench.tables import Table, _ratio
from bench.timing import interleaved

KINDS = ("numpy", "torch", "jax")
SHAPE = (4096, 4096)
# name, mapping, arrayobs target, (torchao target name, quant_min, quant_max), block size
CASES = (
    ("uint4 asym g128", "ASYMMETRIC", "uint4", ("uint4", None, None), (1, 128)),
    ("int4 sym g128", "SYMMETRIC", "int4", ("int8", -8, 7), (1, 128)),
    ("int8 sym per-row", "SYMMETRIC", "int8", ("int8", None, None), (1, SHAPE[1])),
)
VARIANTS = ("arrayobs", "fast_off", "torchao")
AF_BEGIN, AF_END = "<!-- affine: begin -->", "<!-- affine: end -->"


@dataclasses.dataclass
class AffineRecord(Record):
    """One measurement of one case; ``backend`` is ``torchao:cpu`` for the reference."""

    case: str = ""


def _torchao() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its CUDA extensions do not load on a CPU machine
        from torchao.quantization import quant_primitives

    return quant_primitives


def _reference(case: tuple[Any, ...], t: Any) -> Callable[[], tuple[Any, Any, Any]]:
    _, mapping, _, (name, qmin, qmax), block = case
    import torch

    tq = _torchao()
    dtype = getattr(torch, name)

    def run() -> tuple[Any, Any, Any]:
        s, z = tq.choose_qparams_affine(t, tq.MappingType[mapping], block, dtype, qmin, qmax)
        return s, z, tq.quantize_affine(t, block, s, z, dtype, qmin, qmax)

    return run


def _ours(be: Loaded, case: tuple[Any, ...], x: Any, fast: bool) -> Callable[[], Any]:
    _, mapping, target, _, block = case
    if be.kind == "jax":
        if not fast:
            raise Unavailable("fast=False is timed on NumPy and torch only")
        import jax

        def both(v: Any) -> tuple[Any, Any, Any]:
            s, z = affine.choose_qparams_affine(v, mapping, block, target)
            return s, z, affine.quantize_affine(v, block, s, z, target)

        jitted = jax.jit(both)

        def run_jit() -> Any:
            out = jitted(x)
            be.sync(*out)
            return out

        return run_jit
    if fast:

        def run() -> Any:
            s, z = affine.choose_qparams_affine(x, mapping, block, target)
            return s, z, affine.quantize_affine(x, block, s, z, target)

        return run
    generic = _backends.new(be.xp, fast=False)
    tgt = arguments.target(target)
    kind = arguments.mapping_type(mapping)

    def run_generic() -> Any:
        s, z = generic.choose_qparams_affine(x, kind, block, tgt, None, None, "int32", False)
        return s, z, generic.quantize_affine(x, block, s, z, tgt)

    return run_generic


def _host(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        return v.detach().numpy()  # type: ignore[no-any-return]
    return np.asarray(to_host(v))


def _agrees(got: tuple[Any, ...], want: tuple[Any, ...]) -> bool:
    """Scale bits, zero points and quantized integers equal (torchao's uint4 read as uint8)."""
    import torch

    uint4 = getattr(torch, "uint4")  # noqa: B009 - missing from torch's stubs
    want = tuple(w.view(torch.uint8) if w.dtype == uint4 else w for w in want)
    return all(
        _host(g).dtype == _host(w).dtype and _host(g).tobytes() == _host(w).tobytes()
        for g, w in zip(got, want, strict=True)
    )


def measure_case(
    backends: list[Loaded], case: tuple[Any, ...], base: np.ndarray, repeats: int, target_s: float
) -> list[AffineRecord]:
    """torchao and every variant on every backend for one case, interleaved round by round."""
    import torch

    name = case[0]
    n = base.size
    records: dict[tuple[str, str], AffineRecord] = {}
    calls: dict[str, Callable[[], object]] = {}
    reference = _reference(case, torch.from_numpy(base))
    calls["torchao:cpu/torchao"] = reference
    records["torchao:cpu", "torchao"] = AffineRecord("torchao:cpu", "float32", n, "torchao", "n/a")
    for be in backends:
        x = to_backend(be, "float32", base, base)
        for variant, fast in (("arrayobs", True), ("fast_off", False)):
            records[be.name, variant] = AffineRecord(be.name, "float32", n, variant, "n/a")
            try:
                calls[f"{be.name}/{variant}"] = _ours(be, case, x, fast)
            except Unavailable as exc:
                records[be.name, variant].note = str(exc)
    for key, timing in interleaved(calls, repeats, target_s).items():
        record = records[tuple(key.split("/"))]  # type: ignore[index]
        if isinstance(timing, Exception):
            record.status, record.note = "error", f"{type(timing).__name__}: {timing}"
        else:
            record.status = "ok"
            for field, value in dataclasses.asdict(timing).items():
                setattr(record, field, value)
    want = reference()
    for be in backends:
        key = f"{be.name}/arrayobs"
        if key in calls and records[be.name, "arrayobs"].status == "ok":
            records[be.name, "arrayobs"].agrees_with_torch_ao = _agrees(calls[key](), want)  # type: ignore[arg-type]
    for record in records.values():
        record.case = name
    return list(records.values())


def log(record: AffineRecord) -> None:
    shown = (
        f"{record.median_s * 1e3:10.2f} ms"
        if record.status == "ok" and record.median_s is not None
        else f"{record.status}: {record.note[:60]}"
    )
    if record.agrees_with_torch_ao is False:
        shown += "  (differs from torchao!)"
    where = f"affine {record.case:<17} {record.backend:>11} {record.variant:<9}"
    print(where, shown, file=sys.stderr, flush=True)


def run_affine(backends: list[Loaded], repeats: int, target_s: float) -> list[AffineRecord]:
    """Every case on the CPU backends of ``KINDS``; torchao needs torch and torchao."""
    chosen = [be for be in backends if be.kind in KINDS and not be.gpu]
    for be in backends:
        if be not in chosen:
            print(f"affine: not on {be.name} (CPU {', '.join(KINDS)} only)", file=sys.stderr)
    base = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    records: list[AffineRecord] = []
    for case in CASES:
        for record in measure_case(chosen, case, base, repeats, target_s):
            log(record)
            records.append(record)
        gc.collect()
    return records


def affine_markdown(
    meta: dict[str, Any], records: list[AffineRecord], extra: dict[str, Any]
) -> str:
    """The affine block of ``results.md``, between the ``AF_BEGIN``/``AF_END`` markers."""
    table = Table(records, key=lambda r: (r.case, r.backend, r.variant))
    settings = extra["settings"]
    out = [
        AF_BEGIN,
        "## torchao's choose_qparams_affine + quantize_affine (4096 x 4096 float32)",
        "",
        f"- date: {meta['date']}; command: `{meta['command']}`; {extra['elapsed_s']} s",
        f"- git {meta['git_commit']}"
        + (" (dirty)" if meta["git_dirty"] else "")
        + f"; torch intra-op threads: {meta['torch_threads']}",
        f"- median over {settings['repeats']} rounds, every variant of a case (torchao"
        " included) interleaved round by round",
        "",
        "`arrayobs`: `affine.choose_qparams_affine` then `affine.quantize_affine` (JAX: both"
        " under one `jax.jit`); `fast off`: the same through the generic Array API arithmetic"
        " (`fast=False`); `torchao`: torchao 0.18.0's `choose_qparams_affine` then"
        " `quantize_affine` on a torch tensor of the same values. `torchao/arrayobs`: how many"
        " times faster arrayobs is. `agrees`: scale bits, zero points and quantized integers"
        " equal torchao's.",
        "",
        "| case | backend | arrayobs ms | fast off ms | torchao ms | torchao/arrayobs | agrees |",
        "|" + "---|" * 7,
    ]
    for case in dict.fromkeys(r.case for r in records):
        ref = table.seconds((case, "torchao:cpu", "torchao"))
        for backend in dict.fromkeys(r.backend for r in records if r.case == case):
            if backend == "torchao:cpu":
                continue
            found = table.by_key.get((case, backend, "arrayobs"))
            agrees = found.agrees_with_torch_ao if found is not None else None
            row = [
                case,
                backend,
                table.cell((case, backend, "arrayobs"), 1e3),
                table.cell((case, backend, "fast_off"), 1e3),
                table.cell((case, "torchao:cpu", "torchao"), 1e3),
                _ratio(ref, table.seconds((case, backend, "arrayobs"))),
                "-" if agrees is None else ("yes" if agrees else "NO"),
            ]
            out.append("| " + " | ".join(row) + " |")
    if table.notes:
        out += ["", "### Notes", ""] + [f"{i}. {text}" for text, i in table.notes.items()]
    out.append(AF_END)
    return "\n".join(out) + "\n"
