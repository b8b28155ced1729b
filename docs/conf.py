"""Sphinx configuration: ``sphinx-build -W --keep-going -b html docs docs/_build/html``.

intersphinx needs the network to fetch numpy's, torch's and JAX's inventories, so
it is off unless ``ARRAYOBS_DOCS_INTERSPHINX=1``: an offline build then has no
warnings, and an online one links ``numpy.ndarray`` and friends to their docs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import arrayobs  # noqa: E402

project = "arrayobs"
author = "the arrayobs authors"
copyright = "2026, the arrayobs authors"
release = arrayobs.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "design"]  # design notes: read in the repository, not built
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

_online = os.environ.get("ARRAYOBS_DOCS_INTERSPHINX") == "1"
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "torch": ("https://docs.pytorch.org/docs/stable", None),
        "jax": ("https://docs.jax.dev/en/latest", None),
    }
    if _online
    else {}
)

html_theme = "furo"
html_title = f"arrayobs {release}"
html_static_path = ["_static"]
