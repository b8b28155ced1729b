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
from arrayobs._conformance._external import load_factory
from arrayobs._conformance._sections import SECTIONS, Section
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


def _selected(section: Section, cases: list[Any], args: argparse.Namespace) -> list[Any]:
    """The section's cases that ``--cases``, ``--target`` and ``--quick`` leave."""
    if args.cases not in section.choices:
        return []
    if args.target and (
        section.external is None or (args.cases == "all" and section.external_not_in_all)
    ):
        return []
    cases = section.select(cases, args.cases)
    return cases[:: args.quick] if args.quick else cases


@dataclasses.dataclass
class _Ran:
    """A section's run: the cases chosen, its stored records and header, its rows (a target
    each, then the --target factory) and its notes on targets it skipped."""

    section: Section
    cases: list[Any]
    records: Any
    meta: dict[str, Any]
    rows: list[C.Summary] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def run(self, targets: list[C.Target], factory: Any, label: str) -> None:
        section, cases = self.section, self.cases
        if not cases:
            return
        for t in targets:
            reason = section.skips(t)
            if reason is None:
                progress = _Progress(f"{t.label}{section.progress}")
                self.rows.append(section.run(t, cases, self.records, progress))
            elif section.notes_skips:
                self.skipped.append(f"{section.name} section on {t.label}: {reason}")
        if factory is not None and section.external is not None:
            progress = _Progress(label)
            self.rows.append(section.external(factory, label, cases, self.records, progress))


def _json(ran: list[_Ran], notes: list[str], elapsed: float, failed: bool) -> str:
    out: dict[str, Any] = {}
    for r in ran:
        p = r.section.json_prefix
        if r.section.json_reference:
            out[f"{p}reference"] = {k: r.meta[k] for k in r.section.json_reference if k in r.meta}
        out[f"{p}cases_in_corpus"] = r.records.n_cases
        out[f"{p}cases_run"] = len(r.cases)
        out[f"{p}results"] = [dataclasses.asdict(row) for row in r.rows]
        if r.section.notes_skips:
            out[f"{p}skipped_targets"] = r.skipped
    out.update(seconds=round(elapsed, 3), skipped_backends=notes, ok=not failed)
    return json.dumps(out, indent=2)


def _text(ran: list[_Ran], notes: list[str], elapsed: float, args: argparse.Namespace) -> str:
    # Cases counted per reference library, its version from the first section's header.
    versus: dict[str, tuple[Any, list[str]]] = {}
    for r in ran:
        _, counted = versus.setdefault(r.section.versus, (r.meta.get(r.section.versus), []))
        counted.append(f"{len(r.cases)} {r.section.counted}")
    counts = ", ".join(f"{', '.join(n)} vs {lib} {v}" for lib, (v, n) in versus.items())
    lines = [f"arrayobs compare: {counts} ({elapsed:.1f} s)"]
    for r in ran:
        if r.rows:
            lines += [f"\n{r.section.heading}"] if r.section.heading else []
            lines.append(_table(r.rows, r.section.per))
    lines += [f"MISMATCH {row.label}: {f}" for r in ran for row in r.rows for f in row.failures[:5]]
    lines += [f"skipped: {note}" for note in notes + [n for r in ran for n in r.skipped]]
    if args.target and args.cases == "all":
        lines += [
            f"{r.section.name} section: {why}"
            for r in ran
            if (why := r.section.external_not_in_all)
        ]
    if any(row.deviations for r in ran if r.section.deviations_note for row in r.rows):
        lines.append(
            "deviations: documented differences (JAX on CPU flushes subnormals to zero; "
            "the sign of a zero min/max, and of a zero scale with eps <= 0; docs/exactness.md)"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        # The --cases choices (but "all") of sections without a runner for a factory.
        no_external = [c for s in SECTIONS if s.external is None for c in s.choices if c != "all"]
        if args.target and (args.backend or args.cases in no_external):
            msg = (
                "--target runs the observer cases (or, with --cases histogram, the histogram "
                "cases): without --backend or --cases fake-quant/affine"
            )
            raise ValueError(msg)
        factory = load_factory(args.target) if args.target else None
        targets, notes = ([], []) if args.target else _targets(args.backend)
        stored = [section.load() for section in SECTIONS]
    except (ValueError, OSError) as exc:
        print(f"arrayobs: {exc}", file=sys.stderr)
        return 2
    corpora = [section.cases() for section in SECTIONS]
    if any(len(c) != records.n_cases for c, (records, _) in zip(corpora, stored, strict=True)):
        print("arrayobs: the stored reference does not match this corpus", file=sys.stderr)
        return 2
    ran = [
        _Ran(s, _selected(s, c, args), records, meta)
        for s, c, (records, meta) in zip(SECTIONS, corpora, stored, strict=True)
    ]
    start = time.perf_counter()
    for r in ran:
        r.run(targets, factory, args.target or "")
    elapsed = time.perf_counter() - start
    failed = any(row.mismatches for r in ran for row in r.rows)
    print(_json(ran, notes, elapsed, failed) if args.json else _text(ran, notes, elapsed, args))
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
        choices=("all", *(c for s in SECTIONS for c in s.choices if c != "all")),
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
