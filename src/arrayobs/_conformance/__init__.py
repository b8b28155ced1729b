"""The conformance corpus, the stored torch and torchao references and the runner behind
``arrayobs compare`` (sections: observers, fake quantize, affine, histogram)."""

from arrayobs._conformance._affine_corpus import AffineCase
from arrayobs._conformance._affine_corpus import cases as affine_cases
from arrayobs._conformance._affine_runner import run_affine_target, torchao_outputs
from arrayobs._conformance._corpus import CORPUS_VERSION, Case, batches, cases
from arrayobs._conformance._fq_corpus import FQCase
from arrayobs._conformance._fq_corpus import cases as fake_quant_cases
from arrayobs._conformance._fq_runner import run_fq_target, torch_outputs
from arrayobs._conformance._hist_corpus import HistCase
from arrayobs._conformance._hist_corpus import cases as histogram_cases
from arrayobs._conformance._hist_runner import run_hist_target, torch_hist_steps
from arrayobs._conformance._records import (
    HistRecords,
    OutputRecords,
    Records,
    affine_reference_path,
    histogram_reference_path,
    load,
    load_affine,
    load_fake_quant,
    load_histogram,
    reference_path,
    save,
    save_affine,
    save_histogram,
)
from arrayobs._conformance._runner import MODES, Summary, Target, run_target, torch_steps

__all__ = [
    "CORPUS_VERSION",
    "MODES",
    "AffineCase",
    "Case",
    "FQCase",
    "HistCase",
    "HistRecords",
    "OutputRecords",
    "Records",
    "Summary",
    "Target",
    "affine_cases",
    "affine_reference_path",
    "batches",
    "cases",
    "fake_quant_cases",
    "generate_affine_reference",
    "generate_fake_quant_reference",
    "generate_histogram_reference",
    "generate_reference",
    "histogram_cases",
    "histogram_reference_path",
    "load",
    "load_affine",
    "load_fake_quant",
    "load_histogram",
    "reference_path",
    "run_affine_target",
    "run_fq_target",
    "run_hist_target",
    "run_target",
    "save",
    "save_affine",
    "save_histogram",
    "torch_hist_steps",
    "torch_outputs",
    "torch_steps",
    "torchao_outputs",
]


def generate_reference() -> Records:
    """Run the whole corpus on torch.ao (needs torch 2.13.0) and return the records."""
    return Records.from_steps(torch_steps(case) for case in cases())


def generate_fake_quant_reference() -> OutputRecords:
    """Run the fake-quantize section on torch 2.13.0 and return its records."""
    return OutputRecords.from_outputs("fq", (torch_outputs(case) for case in fake_quant_cases()))


def generate_affine_reference() -> OutputRecords:
    """Run the affine section on torchao 0.18.0 and return its records."""
    return OutputRecords.from_outputs("affine", (torchao_outputs(case) for case in affine_cases()))


def generate_histogram_reference() -> HistRecords:
    """Run the histogram section on torch 2.13.0's HistogramObserver and return its records."""
    return HistRecords.from_steps(torch_hist_steps(case) for case in histogram_cases())
