"""The conformance corpus, the stored torch reference and the runner behind ``arrayobs compare``."""

from arrayobs._conformance._corpus import CORPUS_VERSION, Case, batches, cases
from arrayobs._conformance._records import Records, load, reference_path, save
from arrayobs._conformance._runner import MODES, Summary, Target, run_target, torch_steps

__all__ = [
    "CORPUS_VERSION",
    "MODES",
    "Case",
    "Records",
    "Summary",
    "Target",
    "batches",
    "cases",
    "generate_reference",
    "load",
    "reference_path",
    "run_target",
    "save",
    "torch_steps",
]


def generate_reference() -> Records:
    """Run the whole corpus on torch.ao (needs torch 2.13.0) and return the records."""
    return Records.from_steps(torch_steps(case) for case in cases())
