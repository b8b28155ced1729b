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
# ARRAYOBS_BACKENDS per session: a backend named there that cannot run fails the session.
BACKENDS = {
    "numpy": ("", "numpy"),
    "strict": ("strict", "array_api_strict,array_api_strict:device1,array_api_strict:no_x64"),
    "torch": ("torch", "torch"),
    "jax": ("jax", "jax"),
    "dask": ("dask", "dask"),
    "cupy": ("cupy", "cupy"),
}


def _install(session: nox.Session, extra: str) -> None:
    # pip, not uv: only pip finds the torch wheel on this machine's disk.
    target = f".[{extra}]" if extra else "."
    session.install(*CONSTRAINTS, *TEST_DEPS, "-e", target)


def _test(session: nox.Session, backends: str) -> None:
    session.run("pytest", *session.posargs, env={"ARRAYOBS_BACKENDS": backends})


def _gpu_or_skip(session: nox.Session) -> None:
    if shutil.which("nvidia-smi") is None:
        session.skip("no NVIDIA GPU here (nvidia-smi not found)")


@nox.session(name="tests-numpy")
def tests_numpy(session: nox.Session) -> None:
    _install(session, BACKENDS["numpy"][0])
    _test(session, BACKENDS["numpy"][1])


@nox.session(name="tests-strict")
def tests_strict(session: nox.Session) -> None:
    _install(session, BACKENDS["strict"][0])
    _test(session, BACKENDS["strict"][1])


@nox.session(name="tests-torch")
def tests_torch(session: nox.Session) -> None:
    _install(session, BACKENDS["torch"][0])
    _test(session, BACKENDS["torch"][1])


@nox.session(name="tests-jax")
def tests_jax(session: nox.Session) -> None:
    _install(session, BACKENDS["jax"][0])
    _test(session, BACKENDS["jax"][1])


@nox.session(name="tests-dask")
def tests_dask(session: nox.Session) -> None:
    _install(session, BACKENDS["dask"][0])
    _test(session, BACKENDS["dask"][1])


@nox.session(name="tests-cupy")
def tests_cupy(session: nox.Session) -> None:
    _gpu_or_skip(session)
    _install(session, BACKENDS["cupy"][0])
    _test(session, BACKENDS["cupy"][1])


@nox.session(name="tests-gpu")
def tests_gpu(session: nox.Session) -> None:
    """torch CUDA, JAX GPU and CuPy (install jax[cuda12] yourself for JAX on the GPU)."""
    _gpu_or_skip(session)
    _install(session, "cupy,jax")
    _test(session, "torch:cuda,jax:gpu,cupy")


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "ruff>=0.6", "mypy>=1.10", "-e", ".")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("mypy")
