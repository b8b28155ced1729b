"""``arrayobs compare``: the conformance corpus on every installed backend, against torch 2.13.0
(and its affine section against torchao 0.18.0).

The histogram section (HistogramObserver) runs on every target (jit and lazy
through its functional core) and, with ``--cases histogram``, on a
``--target`` FACTORY (the protocol's extension: ``_external.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from arrayobs import _conformance as C
from arrayobs._conformance._external import load_factory, run_external, run_external_hist
from arrayobs._conformance._hist_runner import unsupported as hist_unsupported
from arrayobs.testing import BACKENDS, BackendUnavailable

# Modes run besides the eager classes, per library.
_EXTRA_MODES = {"jax": ("jit",), "dask": ("lazy",)}


def _targets(names: list[str] | None) -> tuple[list[C.Target], list[str]]:
    """Targets to run and notes on backends skipped; a requested backend that fails is an error."""
    known = {b.name: b for b in BACKENDS}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        msg = f"unknown backend {unknown}; choose from {sorted(known)}"
        raise ValueError(msg)
    chosen = [known[n] for n in names] if names else list(BACKENDS)
    targets, notes = [], []
    for backend in chosen:
        try:
            xp, device = backend.load()
        except BackendUnavailable as exc:
            if names:
                raise ValueError(str(exc)) from exc
            notes.append(str(exc))
            continue
        target = C.Target(backend.name, xp, device)
        targets.append(target)
        for mode in _EXTRA_MODES.get(target.library, ()):
            targets.append(dataclasses.replace(target, mode=mode))
    return targets, notes


class _Progress:
    """A one-line progress bar on a terminal's stderr; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label, self.live = label, sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.live or (done % 20 and done != total):
            return
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(
            f"\r{self.label:<26} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        )
        if done == total:
            sys.stderr.write("\r" + " " * (width + 50) + "\r")
        sys.stderr.flush()


def _table(rows: list[C.Summary], per: str = "us/update") -> str:
    head = (
        "backend",
        "device",
        "cases",
        "rows",
        "mismatches",
        "deviations",
        "worst ulps",
        per,
    )
    body = [
        (
            r.label,
            r.device,
            str(r.cases),
            str(r.batches),
            str(r.mismatches),
            str(r.deviations),
            str(r.worst_ulps),
            f"{r.seconds_per_update * 1e6:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (head, *body)) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in (head, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        if args.target and (args.backend or args.cases in ("fake-quant", "affine")):
            msg = (
                "--target runs the observer cases (or, with --cases histogram, the histogram "
                "cases): without --backend or --cases fake-quant/affine"
            )
            raise ValueError(msg)
        factory = load_factory(args.target) if args.target else None
        targets, notes = ([], []) if args.target else _targets(args.backend)
        reference, meta = C.load()
    except (ValueError, OSError) as exc:
        print(f"arrayobs: {exc}", file=sys.stderr)
        return 2
    cases = C.cases()
    fq_cases = C.fake_quant_cases()
    fq_reference = C.load_fake_quant()
    affine_cases = C.affine_cases()
    affine_reference, affine_meta = C.load_affine()
    hist_cases = C.histogram_cases()
    hist_reference, hist_meta = C.load_histogram()
    if (
        len(cases) != len(reference.case_offsets) - 1
        or len(fq_cases) != len(fq_reference.fq_case_offsets) - 1
        or len(affine_cases) != len(affine_reference.affine_case_offsets) - 1
        or len(hist_cases) != len(hist_reference.hist_case_offsets) - 1
    ):
        print("arrayobs: the stored reference does not match this corpus", file=sys.stderr)
        return 2
    if args.cases in ("fake-quant", "affine", "histogram"):
        cases = []
    elif args.cases != "all":
        cases = [c for c in cases if c.per_channel == (args.cases == "per-channel")]
    if args.cases not in ("all", "fake-quant"):
        fq_cases = []
    if args.cases not in ("all", "affine") or args.target:
        affine_cases = []
    # With --target, only when asked for: the protocol's histogram needs one more attribute.
    if args.cases not in ("all", "histogram") or (args.target and args.cases == "all"):
        hist_cases = []
    if args.target:
        fq_cases = []  # the protocol covers the observers
    if args.quick:
        cases, fq_cases = cases[:: args.quick], fq_cases[:: args.quick]
        affine_cases = affine_cases[:: args.quick]
        hist_cases = hist_cases[:: args.quick]
    start = time.perf_counter()
    rows = [C.run_target(t, cases, reference, _Progress(t.label)) for t in targets if cases]
    if factory is not None and cases:
        rows.append(run_external(factory, args.target, cases, reference, _Progress(args.target)))
    # The fake-quantize section: the ops (JAX also under jit) and the modules, eagerly.
    fq_rows = [
        C.run_fq_target(t, fq_cases, fq_reference, _Progress(f"{t.label} fq"))
        for t in targets
        if fq_cases and t.mode != "lazy"
    ]
    # The affine section against torchao 0.18.0 (JAX also under jit), eagerly.
    affine_rows = [
        C.run_affine_target(t, affine_cases, affine_reference, _Progress(f"{t.label} affine"))
        for t in targets
        if affine_cases and t.mode != "lazy"
    ]
    # The histogram section against torch 2.13.0's HistogramObserver (the functional
    # core in the jit and lazy modes).
    hist_rows = [
        C.run_hist_target(t, hist_cases, hist_reference, _Progress(f"{t.label} histogram"))
        for t in targets
        if hist_cases and hist_unsupported(t) is None
    ]
    hist_notes = [
        f"histogram section on {t.label}: {hist_unsupported(t)}"
        for t in targets
        if hist_cases and hist_unsupported(t) is not None
    ]
    if factory is not None and hist_cases:
        label = args.target
        hist_rows.append(
            run_external_hist(factory, label, hist_cases, hist_reference, _Progress(label))
        )
    elapsed = time.perf_counter() - start
    all_rows = rows + fq_rows + affine_rows + hist_rows
    failed = any(r.mismatches for r in all_rows)
    if args.json:
        out: dict[str, Any] = {
            "reference": {k: meta[k] for k in ("torch", "corpus_version", "created") if k in meta},
            "cases_in_corpus": len(reference.case_offsets) - 1,
            "cases_run": len(cases),
            "fake_quant_cases_in_corpus": len(fq_reference.fq_case_offsets) - 1,
            "fake_quant_cases_run": len(fq_cases),
            "seconds": round(elapsed, 3),
            "results": [dataclasses.asdict(r) for r in rows],
            "fake_quant_results": [dataclasses.asdict(r) for r in fq_rows],
            "affine_reference": {
                k: affine_meta[k] for k in ("torchao", "torch", "corpus_version", "created")
            },
            "affine_cases_in_corpus": len(affine_reference.affine_case_offsets) - 1,
            "affine_cases_run": len(affine_cases),
            "affine_results": [dataclasses.asdict(r) for r in affine_rows],
            "histogram_reference": {
                k: hist_meta[k] for k in ("torch", "corpus_version", "created") if k in hist_meta
            },
            "histogram_cases_in_corpus": len(hist_reference.hist_case_offsets) - 1,
            "histogram_cases_run": len(hist_cases),
            "histogram_results": [dataclasses.asdict(r) for r in hist_rows],
            "histogram_skipped_targets": hist_notes,
            "skipped_backends": notes,
            "ok": not failed,
        }
        print(json.dumps(out, indent=2))
    else:
        print(
            f"arrayobs compare: {len(cases)} observer cases, {len(fq_cases)} fake-quantize "
            f"cases, {len(hist_cases)} histogram cases vs torch {meta.get('torch')}, "
            f"{len(affine_cases)} affine cases vs torchao {affine_meta.get('torchao')} "
            f"({elapsed:.1f} s)"
        )
        if rows:
            print(_table(rows))
        if fq_rows:
            print("\nfake quantize (rows: outputs of an op call or a module batch):")
            print(_table(fq_rows, "us/call"))
        if affine_rows:
            print("\naffine, torchao (rows: outputs of a call chain or an observer batch):")
            print(_table(affine_rows, "us/call"))
        if hist_rows:
            print(
                "\nhistogram (rows: batches of HistogramObserver; jit, lazy: its functional core):"
            )
            print(_table(hist_rows))
        for r in all_rows:
            for line in r.failures[:5]:
                print(f"MISMATCH {r.label}: {line}")
        for note in notes + hist_notes:
            print(f"skipped: {note}")
        if args.target and args.cases == "all":
            print(
                "histogram section: not run on --target unless --cases histogram (the protocol "
                "adds a histogram attribute; docs/conformance.md: Checking your own implementation)"
            )
        if any(r.deviations for r in rows + affine_rows + hist_rows):
            print(
                "deviations: documented differences (JAX on CPU flushes subnormals to zero; "
                "the sign of a zero min/max, and of a zero scale with eps <= 0; docs/exactness.md)"
            )
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="run the conformance corpus on every installed backend")
    p.add_argument(
        "--backend", action="append", help="a backend to run (repeatable); default: all installed"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quick", type=int, default=0, metavar="N", help="run every N-th case only")
    p.add_argument(
        "--cases",
        choices=("all", "per-tensor", "per-channel", "fake-quant", "affine", "histogram"),
        default="all",
        help=(
            "the whole corpus (default), or only its per-tensor or per-channel observer cases, "
            "or its fake-quantize section (the ops and the modules), or its affine section "
            "(torchao 0.18.0's primitives and AffineQuantizedMinMaxObserver), or its histogram "
            "section (HistogramObserver; eager modes only: not under jax jit or dask lazy)"
        ),
    )
    p.add_argument(
        "--target",
        metavar="MODULE:FACTORY",
        help=(
            "run the observer cases on FACTORY(observer, **torch_arguments) from MODULE "
            "instead of the backends; with --cases histogram, the histogram cases on "
            "FACTORY('HistogramObserver', ...) (not in --cases all: the protocol adds a "
            "histogram attribute; bfloat16 cases skipped) (docs/conformance.md: Checking your own "
            "implementation)"
        ),
    )
    p.set_defaults(run=run)
