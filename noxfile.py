"""Sessions ``<suite>-<backend>``: suites tests, conformance, conformance-full and
fuzz-full; backends numpy, strict, torch, jax, dask (CPU) and cupy, gpu (skipped
without an NVIDIA GPU). ``fuzz-calib`` fuzzes the calibrators against their references.

``nox`` runs tests-* and conformance-* on the CPU backends, tests-common, tests-numba,
tests-calib, lint, docs (the site, warnings as errors) and front-door (the README's
first command in a fresh venv from a clean clone, then the wheel and sdist). Every
session that tests installs torch 2.13.0, the live reference, through the one
constraints file (constraints.txt) that .ci/run uses too.

The CPU backend sessions share one venv (``.nox/.cache/venv-cpu``: the package with
the extras torch, jax, dask and strict, plus the test dependencies, installed once per
change of this file, pyproject.toml or constraints.txt). ``tests-<backend>`` runs the
tests that take the ``backend`` fixture, on that backend; the tests that take no
backend (CLI, docs, packaging, layers, imports, reference export, the JAX-sharding and
Dask-cluster tests...) run once, in ``tests-common``, with every CPU backend installed
and selected (tests/conftest.py: ARRAYOBS_TEST_SCOPE). ``nox -s tests-jax tests-common``
is everything the tests say about JAX. tests-numba and tests-calib have venvs of their
own: numba switches the kernels on, and no other default session installs the calibrators'
references (ONNX Runtime, ModelOpt); the calibrators' tests (tests/test_calib*.py) run
in tests-calib only, on every CPU backend. Each session spreads its tests over the
CPU cores with pytest-xdist (ARRAYOBS_NOX_WORKERS=0 turns that off).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
_CPU = ("numpy", "strict", "torch", "jax", "dask")
# Every CPU backend, for the sessions that run the tests taking no backend and tests-calib.
_ALL_CPU = "numpy,torch,jax,dask,array_api_strict"
nox.options.sessions = [f"{s}-{b}" for s in ("tests", "conformance") for b in _CPU] + [
    "tests-common",
    "tests-numba",
    "tests-calib",
    "lint",
    "docs",
    "front-door",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

CONSTRAINTS = ("-c", "constraints.txt")
# Test dependencies, mirrored from [dependency-groups] test in pyproject.toml.
TEST_DEPS = (
    "pytest>=8",
    "hypothesis>=6.100",
    "torch==2.13.0",
    "torchao==0.18.0",
    # bfloat16 and float8 on NumPy and Dask (the affine and fake-quantize tests).
    "ml_dtypes>=0.4",
)
# What nox itself adds to pytest: pytest-xdist spreads a session's tests over the
# machine's cores (_workers).
RUNNER_DEPS = ("pytest-xdist>=3.5",)
# The calibrators' tests: tests-calib runs them on every CPU backend, the other CPU
# sessions leave them out.
CALIB_GLOB = "tests/test_calib*.py"
NOT_CALIB = f"--ignore-glob={CALIB_GLOB}"
# The calibrators' references (versions pinned in constraints.txt). ModelOpt imports
# requests and huggingface_hub without declaring them.
CALIB_REFS = ("onnxruntime", "onnx", "nvidia-modelopt", "requests", "huggingface_hub")
# Mirrored from [dependency-groups] docs in pyproject.toml.
DOCS_DEPS = ("sphinx>=7", "numpydoc>=1.6", "myst-parser>=3", "furo>=2024.1")
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
# What the shared CPU venv holds: every CPU extra (SESSIONS) and the test dependencies.
CPU_INSTALL = (*CONSTRAINTS, *TEST_DEPS, *RUNNER_DEPS, "-e", ".[torch,jax,dask,strict]")


# NumPy's CPU dispatch, pinned for the test sessions. On an AVX512 CPU NumPy computes
# float32 powers with SVML: ORT's `distribution` avg then differs by 1 ulp from the
# stored reference numbers, made on AVX2 (docs/exactness.md, "CPU dispatch"); arrayobs
# follows the live references on either. NumPy refuses a name that is not one of its
# dispatch targets, so they are asked of it.
_NUMPY_AVX512 = (
    "try:\n"
    "    from numpy._core._multiarray_umath import __cpu_dispatch__ as d\n"
    "except ImportError:\n"
    "    from numpy.core._multiarray_umath import __cpu_dispatch__ as d\n"
    "print(' '.join(t for t in d if 'AVX512' in t or t == 'X86_V4'))"
)


def _numpy_avx2(python: str) -> dict[str, str]:
    """The environment that pins NumPy (as ``python`` imports it) to its AVX2 kernels;
    a value already set is kept."""
    found = subprocess.run(
        [python, "-c", _NUMPY_AVX512], capture_output=True, text=True, check=True
    ).stdout.strip()
    value = os.environ.get("NPY_DISABLE_CPU_FEATURES", found)
    return {"NPY_DISABLE_CPU_FEATURES": value} if value else {}


def _session_python(session: nox.Session) -> str:
    return str(Path(session.bin) / "python")


def _workers() -> tuple[str, ...]:
    """pytest-xdist's ``-n``: ARRAYOBS_NOX_WORKERS, else the CPU count up to 4 (each
    worker imports torch and JAX); ``0`` runs the tests in the pytest process."""
    workers = os.environ.get("ARRAYOBS_NOX_WORKERS") or str(min(os.cpu_count() or 1, 4))
    return ("-n", workers)


# Suite -> (pytest arguments, extra environment).
SUITES = {
    "tests": (("tests",), {}),
    "conformance": (("conformance",), {}),
    # 10,000 fresh sequences per backend against live torch (not a default session).
    "fuzz-full": (("conformance/test_fuzz.py",), {"ARRAYOBS_FUZZ_EXAMPLES": "10000"}),
    # Every stored case on every target, where the default sessions run a sample on the
    # slow ones (Dask, eager JAX; conformance/conftest.py: sample) (not a default session).
    "conformance-full": (("conformance/test_corpus.py",), {"ARRAYOBS_CONFORMANCE_FULL": "1"}),
}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two nox runs at once build the venv once)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; run one nox at a time there.
        yield
        return
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cpu_venv(session: nox.Session) -> dict[str, str]:
    """The shared CPU venv, built if missing or stale; the environment that runs in it.

    Stale means: a different Python, install line, pyproject.toml or constraints.txt
    than the ones it was built from (its ``stamp``). The package is installed editable,
    so source changes need no rebuild.
    """
    venv = Path(session.cache_dir).resolve() / "venv-cpu"
    venv.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for part in (sys.version, " ".join(CPU_INSTALL)):
        digest.update(part.encode())
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    stamp = venv / "stamp"
    with _locked(venv.parent / "venv-cpu.lock"):
        if not (stamp.is_file() and stamp.read_text() == digest.hexdigest()):
            shutil.rmtree(venv, ignore_errors=True)
            session.log(f"building the shared CPU venv {venv}")
            session.run(sys.executable, "-m", "venv", str(venv), external=True)
            python = str(venv / "bin" / "python")
            session.run(
                python, "-m", "pip", "install", "--quiet", "--upgrade", "pip", external=True
            )
            # pip, not uv: only pip finds the torch wheel on this machine's disk.
            session.run(python, "-m", "pip", "install", *CPU_INSTALL, external=True)
            stamp.write_text(digest.hexdigest())
        else:
            session.log(f"reusing the shared CPU venv {venv}")
    bin_dir = str(venv / "bin")
    return {"VIRTUAL_ENV": str(venv), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}


def _cpu_run(session: nox.Session, *args: str, env: dict[str, str]) -> None:
    """``pytest *args`` in the shared CPU venv (nox would find its own pytest first)."""
    venv_env = _cpu_venv(session)
    pytest = str(Path(venv_env["VIRTUAL_ENV"]) / "bin" / "pytest")
    python = str(Path(venv_env["VIRTUAL_ENV"]) / "bin" / "python")
    env = {**venv_env, **_numpy_avx2(python), **env}
    session.run(pytest, *_workers(), *args, external=True, env=env)


def _define(suite: str, name: str, extra: str, backends: str, gpu: bool) -> None:
    args, env = SUITES[suite]
    # The unit tests that take no backend run once, in tests-common; the calibrators'
    # tests once, in tests-calib (every CPU backend, with their references).
    scope = {"ARRAYOBS_TEST_SCOPE": "backend"} if suite == "tests" else {}
    cpu_args = (*args, NOT_CALIB) if suite == "tests" else args

    if gpu:

        @nox.session(name=f"{suite}-{name}")
        def run_gpu(session: nox.Session) -> None:
            if shutil.which("nvidia-smi") is None:
                session.skip("no NVIDIA GPU here (nvidia-smi not found)")
            session.install(*CONSTRAINTS, *TEST_DEPS, "-e", f".[{extra}]")
            session.run(
                "pytest", *args, *session.posargs, env={"ARRAYOBS_BACKENDS": backends, **env}
            )

        return

    @nox.session(name=f"{suite}-{name}", venv_backend="none")
    def run(session: nox.Session) -> None:
        _cpu_run(
            session,
            *cpu_args,
            *session.posargs,
            env={"ARRAYOBS_BACKENDS": backends, **scope, **env},
        )


for _suite in SUITES:
    for _name, (_extra, _backends, _gpu) in SESSIONS.items():
        _define(_suite, _name, _extra, _backends, _gpu)


@nox.session(name="tests-common", venv_backend="none")
def tests_common(session: nox.Session) -> None:
    """The unit tests that take no ``backend`` fixture (CLI, docs, packaging, layers,
    imports, reference export, the per-library tests that pick their library
    themselves), once, in the shared CPU venv with every CPU backend selected."""
    _cpu_run(
        session,
        "tests",
        NOT_CALIB,
        *session.posargs,
        env={"ARRAYOBS_BACKENDS": _ALL_CPU, "ARRAYOBS_TEST_SCOPE": "common"},
    )


@nox.session(name="tests-numba")
def tests_numba(session: nox.Session) -> None:
    """The compiled CPU kernels (``arrayobs[numba]``): their own tests (each kernel against
    the library path, bit for bit, and HistogramObserver against live torch.ao), the
    calibrators' host fast path against their generic step (tests/test_calib_fast.py; its
    tests against the live calibrator references skip here, tests-calib runs them) and
    conformance on NumPy and torch with the kernels on. The other sessions install no
    numba, so they test the library path."""
    session.install(*CONSTRAINTS, *TEST_DEPS, *RUNNER_DEPS, "-e", ".[numba]")
    session.run(
        "pytest",
        *_workers(),
        "tests/test_kernels.py",
        "tests/test_calib_fast.py",
        "conformance",
        *session.posargs,
        env={"ARRAYOBS_BACKENDS": "numpy,torch", **_numpy_avx2(_session_python(session))},
    )


@nox.session(name="tests-calib")
def tests_calib(session: nox.Session) -> None:
    """The calibrators (``arrayobs.calib``, tests/test_calib*.py) against their live
    references, ONNX Runtime and ModelOpt, on every CPU backend. A missing reference
    fails the session (ARRAYOBS_REQUIRE_REFERENCES=1, tests/conftest.py) instead of
    skipping. The only default session that installs those references (fuzz-calib, not
    a default session, does too)."""
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(CALIB_GLOB))
    if not files:
        session.skip("no tests/test_calib*.py yet")
    _install_calib(session)
    session.run(
        "pytest",
        *_workers(),
        *files,
        *session.posargs,
        env={
            "ARRAYOBS_BACKENDS": _ALL_CPU,
            "ARRAYOBS_REQUIRE_REFERENCES": "1",
            **_numpy_avx2(_session_python(session)),
        },
    )


def _install_calib(session: nox.Session) -> None:
    """The package with every CPU backend, the test dependencies and the calibrators'
    references, through constraints.txt (the references' own requirements must not move
    torch off 2.13.0); plot: matplotlib, for `arrayobs calibrate --plot`."""
    session.install(
        *CONSTRAINTS, *TEST_DEPS, *RUNNER_DEPS, *CALIB_REFS, "-e", ".[torch,jax,dask,strict,plot]"
    )


@nox.session(name="fuzz-calib")
def fuzz_calib(session: nox.Session) -> None:
    """Fresh random calibrator cases (tests/test_calib_fuzz.py with 4,000 examples: 160 a
    family on NumPy, 40 on torch and array-api-strict, 10 on JAX and Dask) against ONNX
    Runtime and ModelOpt (not a default session; tests-calib runs a small seeded sample).
    ``ARRAYOBS_FUZZ_SEED`` repeats a run."""
    seed = os.environ.get("ARRAYOBS_FUZZ_SEED") or str(int.from_bytes(os.urandom(4), "little"))
    session.log(f"ARRAYOBS_FUZZ_SEED={seed}")
    _install_calib(session)
    session.run(
        "pytest",
        *_workers(),
        "tests/test_calib_fuzz.py",
        *session.posargs,
        env={
            "ARRAYOBS_BACKENDS": _ALL_CPU,
            "ARRAYOBS_REQUIRE_REFERENCES": "1",
            "ARRAYOBS_FUZZ_EXAMPLES": "4000",
            "ARRAYOBS_FUZZ_SEED": seed,
            **_numpy_avx2(_session_python(session)),
        },
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*CONSTRAINTS, "ruff>=0.6", "mypy>=1.10", "-e", ".")
    session.run("ruff", "check", "src", "tests", "conformance", "bench", "noxfile.py")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site from docs/ and the docstrings, warnings as errors."""
    session.install(*CONSTRAINTS, *DOCS_DEPS, "-e", ".")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


def _readme_first_command() -> str:
    """The first line of the README's first ``bash`` block: the command a new user runs."""
    block = re.search(r"```bash\n(.+?)\n", (ROOT / "README.md").read_text())
    if block is None:
        msg = "README.md has no ```bash block"
        raise RuntimeError(msg)
    return block.group(1).strip()


@nox.session(name="front-door")
def front_door(session: nox.Session) -> None:
    """What a new user runs: the README's first command in a fresh venv from a clean
    clone (only the package's own dependencies), then ``python -m build`` (sdist, and
    the wheel built from it), the wheel installed into another fresh venv and
    ``arrayobs compare`` run there, away from the source tree."""
    session.install("build>=1")
    tmp = Path(session.create_tmp()).resolve()
    clone, dist = tmp / "clone", tmp / "dist"
    venvs = {name: tmp / f"venv-{name}" for name in ("first", "wheel")}
    for path in (clone, dist, *venvs.values()):
        shutil.rmtree(path, ignore_errors=True)
    session.run("git", "clone", "--quiet", str(ROOT), str(clone), external=True)
    for venv in venvs.values():
        session.run("python", "-m", "venv", str(venv))
    first = _readme_first_command()
    session.log(f"the README's first command: {first}")
    session.run(
        "bash", "-c", f". {venvs['first']}/bin/activate && cd {clone} && {first}", external=True
    )
    session.run("python", "-m", "build", "--outdir", str(dist), str(clone))
    (wheel,) = dist.glob("*.whl")
    session.log(f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB")
    session.run(
        "bash",
        "-c",
        f". {venvs['wheel']}/bin/activate && cd {tmp} && python -m pip install --quiet {wheel}"
        " && arrayobs --version && arrayobs compare",
        external=True,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """bench/run.py: arrayobs against xp.min + xp.max, torch.ao and a read floor.

    ``nox -s bench -- --quick`` caps sizes at 1e7; results land in bench/results/.
    """
    session.install(*CONSTRAINTS, "torch==2.13.0", "matplotlib", "-e", ".[jax,dask]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(name="bench-histogram")
def bench_histogram(session: nox.Session) -> None:
    """bench/histogram.py: HistogramObserver against torch.ao, interleaved (``-- --quick``)."""
    session.install(*CONSTRAINTS, "torch==2.13.0", "-e", ".[jax]")
    session.run("python", "-m", "bench.histogram", *session.posargs)
