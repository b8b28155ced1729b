"""The conformance corpus, the stored torch reference and the runner behind ``arrayobs compare``."""

from arrayobs._conformance._corpus import CORPUS_VERSION, Case, batches, cases
from arrayobs._conformance._fq_corpus import FQCase
from arrayobs._conformance._fq_corpus import cases as fake_quant_cases
from arrayobs._conformance._fq_runner import run_fq_target, torch_outputs
from arrayobs._conformance._records import (
    FQRecords,
    Records,
    load,
    load_fake_quant,
    reference_path,
    save,
)
from arrayobs._conformance._runner import MODES, Summary, Target, run_target, torch_steps

__all__ = [
    "CORPUS_VERSION",
    "MODES",
    "Case",
    "FQCase",
    "FQRecords",
    "Records",
    "Summary",
    "Target",
    "batches",
    "cases",
    "fake_quant_cases",
    "generate_fake_quant_reference",
    "generate_reference",
    "load",
    "load_fake_quant",
    "reference_path",
    "run_fq_target",
    "run_target",
    "save",
    "torch_outputs",
    "torch_steps",
]


def generate_reference() -> Records:
    """Run the whole corpus on torch.ao (needs torch 2.13.0) and return the records."""
    return Records.from_steps(torch_steps(case) for case in cases())


def generate_fake_quant_reference() -> FQRecords:
    """Run the fake-quantize section on torch 2.13.0 and return its records."""
    return FQRecords.from_outputs(torch_outputs(case) for case in fake_quant_cases())
