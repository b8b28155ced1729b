"""The corpus's sections, one row each: what ``arrayobs compare`` loops over.

A section names its corpus, its stored reference, its runner (and the runner for a
``--target`` factory, where the protocol covers it), which targets it skips, and how its
results are reported. A new section is one more row of :data:`SECTIONS`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from arrayobs._conformance._affine_corpus import cases as affine_cases
from arrayobs._conformance._affine_runner import run_affine_target
from arrayobs._conformance._calib_corpus import cases as calib_cases
from arrayobs._conformance._calib_records import load as load_calib
from arrayobs._conformance._calib_runner import run_calib_target
from arrayobs._conformance._calib_runner import unsupported as calib_unsupported
from arrayobs._conformance._corpus import cases as observer_cases
from arrayobs._conformance._external import run_external, run_external_hist
from arrayobs._conformance._fq_corpus import cases as fake_quant_cases
from arrayobs._conformance._fq_runner import run_fq_target
from arrayobs._conformance._hist_corpus import cases as histogram_cases
from arrayobs._conformance._hist_runner import run_hist_target
from arrayobs._conformance._hist_runner import unsupported as hist_unsupported
from arrayobs._conformance._records import load, load_affine, load_fake_quant, load_histogram
from arrayobs._conformance._runner import Summary, Target, run_target

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Section:
    """One section of the corpus and how ``arrayobs compare`` reports it."""

    name: str
    choices: tuple[str, ...]  # the --cases values that run it ("all" runs every section)
    cases: Callable[[], list[Any]]
    load: Callable[[], tuple[Any, dict[str, Any]]]  # (records, header)
    run: Callable[[Target, Sequence[Any], Any, Progress], Summary]
    counted: str  # its cases in the first line: "{n} {counted}"
    versus: str  # the reference library, a key of the header ("torch", "torchao")
    json_prefix: str  # its keys in --json: "{prefix}cases_run", ...
    json_reference: tuple[str, ...] = ()  # header keys under "{prefix}reference"
    heading: str | None = None  # the line above its table (None: no line)
    per: str = "us/update"  # the timing column
    progress: str = ""  # after a target's label on the progress bar
    skips: Callable[[Target], str | None] = lambda target: None  # why a target does not run it
    notes_skips: bool = False  # say so ("skipped: ...") where it skips a target
    deviations_note: bool = True  # its deviations call for the footnote on them
    # The runner for a --target factory; and, where --cases all does not run it there, why.
    external: Callable[[Any, str, Sequence[Any], Any, Progress], Summary] | None = None
    external_not_in_all: str | None = None
    select: Callable[[list[Any], str], list[Any]] = lambda cases, choice: cases


def _not_lazy(target: Target) -> str | None:
    return "" if target.mode == "lazy" else None


def _per_kind(cases: list[Any], choice: str) -> list[Any]:
    if choice == "all":
        return cases
    return [c for c in cases if c.per_channel == (choice == "per-channel")]


def _load_calibrators() -> tuple[Any, dict[str, Any]]:
    records, meta = load_calib()
    # Its two references, under one key for the first line's "vs {key} {value}":
    # "vs ONNX Runtime 1.31.1 / ModelOpt 0.47.0".
    both = f"{meta['onnxruntime']} / ModelOpt {meta['modelopt']}"
    return records, {**meta, "ONNX Runtime": both}


def _load_fake_quant() -> tuple[Any, dict[str, Any]]:
    # The section shares the observers' file and header.
    return load_fake_quant(), load()[1]


SECTIONS = (
    Section(
        name="observers",
        choices=("all", "per-tensor", "per-channel"),
        cases=observer_cases,
        load=load,
        run=run_target,
        counted="observer cases",
        versus="torch",
        json_prefix="",
        json_reference=("torch", "corpus_version", "created"),
        external=run_external,
        select=_per_kind,
    ),
    # The ops (JAX also under jit) and the modules, eagerly.
    Section(
        name="fake quantize",
        choices=("all", "fake-quant"),
        cases=fake_quant_cases,
        load=_load_fake_quant,
        run=run_fq_target,
        counted="fake-quantize cases",
        versus="torch",
        json_prefix="fake_quant_",
        heading="fake quantize (rows: outputs of an op call or a module batch):",
        per="us/call",
        progress=" fq",
        skips=_not_lazy,
        deviations_note=False,
    ),
    # torchao 0.18.0's primitives and AffineQuantizedMinMaxObserver (JAX also under jit).
    Section(
        name="affine",
        choices=("all", "affine"),
        cases=affine_cases,
        load=load_affine,
        run=run_affine_target,
        counted="affine cases",
        versus="torchao",
        json_prefix="affine_",
        json_reference=("torchao", "torch", "corpus_version", "created"),
        heading="affine, torchao (rows: outputs of a call chain or an observer batch):",
        per="us/call",
        progress=" affine",
        skips=_not_lazy,
    ),
    # torch 2.13.0's HistogramObserver (its functional core in the jit and lazy modes). On a
    # --target only when asked for: the protocol's histogram needs one more attribute.
    Section(
        name="histogram",
        choices=("all", "histogram"),
        cases=histogram_cases,
        load=load_histogram,
        run=run_hist_target,
        counted="histogram cases",
        versus="torch",
        json_prefix="histogram_",
        json_reference=("torch", "corpus_version", "created"),
        heading="histogram (rows: batches of HistogramObserver; jit, lazy: its functional core):",
        progress=" histogram",
        skips=hist_unsupported,
        notes_skips=True,
        external=run_external_hist,
        external_not_in_all=(
            "not run on --target unless --cases histogram (the protocol adds a histogram "
            "attribute; docs/conformance.md: Checking your own implementation)"
        ),
    ),
    # ONNX Runtime 1.31.1's and ModelOpt 0.47.0's calibrators (arrayobs.calib), eagerly;
    # skipped, with the reason, while arrayobs.calib does not import.
    Section(
        name="calibrators",
        choices=("all", "calibrators"),
        cases=calib_cases,
        load=_load_calibrators,
        run=run_calib_target,
        counted="calibrator cases",
        versus="ONNX Runtime",
        json_prefix="calib_",
        json_reference=("onnxruntime", "modelopt", "torch", "corpus_version", "created", "machine"),
        heading="calibrators, ORT and ModelOpt (rows: a call's state or result, per channel):",
        per="us/call",
        progress=" calib",
        skips=calib_unsupported,
        notes_skips=True,
        deviations_note=False,
    ),
)
