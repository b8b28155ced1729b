"""One session per backend: ``nox`` runs the default (CPU) ones, ``nox -s tests-gpu`` the GPU ones.

Every test session installs torch 2.13.0, the live reference, through the one
constraints file (constraints.txt) that .ci/run uses too.
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = [
    "tests-numpy",
    "tests-strict",
    "tests-torch",
    "tests-jax",
    "tests-dask",
    "lint",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

CONSTRAINTS = ("-c", "constraints.txt")
# Test dependencies, mirrored from [dependency-groups] test in pyproject.toml.
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100", "torch==2.13.0")
# Session -> (extra to install, ARRAYOBS_BACKENDS, needs a GPU). A backend named in
# ARRAYOBS_BACKENDS that cannot run fails the session.
SESSIONS = {
    "numpy": ("", "numpy", False),
    "strict": (
        "strict",
        "array_api_strict,array_api_strict:device1,array_api_strict:no_x64",
        False,
    ),
    "torch": ("torch", "torch", False),
    "jax": ("jax", "jax", False),
    "dask": ("dask", "dask", False),
    "cupy": ("cupy", "cupy", True),
    # torch CUDA, JAX GPU and CuPy (JAX on the GPU needs jax[cuda12] installed into the session).
    "gpu": ("cupy,jax", "torch:cuda,jax:gpu,cupy", True),
}


def _define(name: str, extra: str, backends: str, gpu: bool) -> None:
    @nox.session(name=f"tests-{name}")
    def tests(session: nox.Session) -> None:
        if gpu and shutil.which("nvidia-smi") is None:
            session.skip("no NVIDIA GPU here (nvidia-smi not found)")
        # pip, not uv: only pip finds the torch wheel on this machine's disk.
        target = f".[{extra}]" if extra else "."
        session.install(*CONSTRAINTS, *TEST_DEPS, "-e", target)
        session.run("pytest", *session.posargs, env={"ARRAYOBS_BACKENDS": backends})


for _name, (_extra, _backends, _gpu) in SESSIONS.items():
    _define(_name, _extra, _backends, _gpu)


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "ruff>=0.6", "mypy>=1.10", "-e", ".")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("mypy")
