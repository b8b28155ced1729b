"""The package version, read by pyproject.toml (setuptools' dynamic version) and ``--version``."""

__version__ = "0.2.0"
