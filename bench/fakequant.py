"""The fake-quantize section: ``fake_quantize_per_tensor_affine`` on float32 at 1e2, 1e6 and
1e8 elements (``--quick``: 1e2 and 1e6), per backend, against the library's own op and a
read+write floor, the variants of a case interleaved round by round.

Variants, per backend (the others of ``--backends`` are reported as not applicable):

``arrayobs``
    ``F.fake_quantize_per_tensor_affine(x, 0.0235, 128, 0, 255)``; on JAX under ``jax.jit``.
``fast_off``
    The same with ``fast=False`` (the generic Array API arithmetic); NumPy and torch.
``torch_op``
    ``torch.fake_quantize_per_tensor_affine`` on the same tensor (torch backends).
``floor_copy``
    A read and a write of the same bytes into a new array: ``x.copy()`` (NumPy),
    ``torch.clone`` (torch), ``jax.jit(jnp.negative)`` (JAX: a copy would be elided).
``floor_copyto``
    ``np.copyto(out, x)`` into an array allocated once (NumPy): the floor without the
    page faults of a new output.

Each output of ``arrayobs`` is compared, bit for bit, with torch's op on the same values
(``agrees_with_torch_ao`` in ``results.json``).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from arrayobs import functional as F
from arrayobs._compat import to_host
from bench.cases import FQ_QPARAMS, FQ_VARIANTS, Loaded, Record, Settings, Unavailable, to_backend
from bench.timing import interleaved

KINDS = ("numpy", "torch", "jax")


def _ours(be: Loaded, x: Any, fast: bool) -> Callable[[], object]:
    if not fast and be.kind not in ("numpy", "torch"):
        raise Unavailable("fast=False is timed on NumPy and torch only")
    if be.kind == "jax":
        import jax

        fq = jax.jit(lambda v: F.fake_quantize_per_tensor_affine(v, *FQ_QPARAMS))
        return lambda: be.sync(fq(x))
    return lambda: be.sync(F.fake_quantize_per_tensor_affine(x, *FQ_QPARAMS, fast=fast))


def _torch_op(be: Loaded, x: Any) -> Callable[[], object]:
    if be.kind != "torch":
        raise Unavailable("torch's op on torch backends only")
    torch = be.lib
    return lambda: be.sync(torch.fake_quantize_per_tensor_affine(x, *FQ_QPARAMS))


def _floor_copy(be: Loaded, x: Any) -> Callable[[], object]:
    if be.kind == "numpy":
        return x.copy  # type: ignore[no-any-return]
    if be.kind == "torch":
        return lambda: be.sync(be.lib.clone(x))
    import jax

    negate = jax.jit(be.lib.negative)
    return lambda: be.sync(negate(x))


def _floor_copyto(be: Loaded, x: Any) -> Callable[[], object]:
    if be.kind != "numpy":
        raise Unavailable("np.copyto on NumPy only")
    out = np.empty_like(x)
    return functools.partial(np.copyto, out, x)


BUILDERS: dict[str, Callable[[Loaded, Any], Callable[[], object]]] = {
    "arrayobs": functools.partial(_ours, fast=True),
    "fast_off": functools.partial(_ours, fast=False),
    "torch_op": _torch_op,
    "floor_copy": _floor_copy,
    "floor_copyto": _floor_copyto,
}


def _agrees(be: Loaded, x: Any, want: np.ndarray) -> bool:
    """Whether arrayobs's output has the bits of torch's op on the same values."""
    if be.kind == "jax":
        import jax

        got = jax.jit(lambda v: F.fake_quantize_per_tensor_affine(v, *FQ_QPARAMS))(x)
    else:
        got = F.fake_quantize_per_tensor_affine(x, *FQ_QPARAMS)
    host = np.asarray(to_host(got))
    return bool(host.dtype == want.dtype and host.tobytes() == want.tobytes())


def measure_case(be: Loaded, base: np.ndarray, settings: Settings) -> list[Record]:
    """Every variant on one backend and size, interleaved round by round."""
    blank = {v: Record(be.name, "float32", base.size, v, "n/a") for v in FQ_VARIANTS}
    x = to_backend(be, "float32", base, base)
    calls: dict[str, Callable[[], object]] = {}
    records: dict[str, Record] = {}
    for variant, build in BUILDERS.items():
        try:
            calls[variant] = build(be, x)
        except Unavailable as exc:
            records[variant] = dataclasses.replace(blank[variant], note=str(exc))
    for variant, timing in interleaved(calls, settings.repeats, settings.target_s).items():
        if isinstance(timing, Exception):
            note = f"{type(timing).__name__}: {timing}"
            records[variant] = dataclasses.replace(blank[variant], status="error", note=note)
        else:
            timed = dataclasses.asdict(timing)
            records[variant] = dataclasses.replace(blank[variant], status="ok", **timed)
    import torch

    want = torch.fake_quantize_per_tensor_affine(torch.from_numpy(base), *FQ_QPARAMS).numpy()
    records["arrayobs"].agrees_with_torch_ao = _agrees(be, x, want)
    return [records[v] for v in FQ_VARIANTS]


def log(record: Record) -> None:
    shown = (
        f"{record.median_s * 1e3:10.4f} ms"
        if record.status == "ok" and record.median_s is not None
        else f"{record.status}: {record.note[:60]}"
    )
    if record.agrees_with_torch_ao is False:
        shown += "  (differs from torch!)"
    where = f"fake-quantize {record.backend:>11} {record.n:>8.0e} {record.variant:<13}"
    print(where, shown, file=sys.stderr, flush=True)


def run_fake_quantize(
    backends: list[Loaded], sizes: tuple[int, ...], settings: Settings
) -> list[Record]:
    """Every size and backend; the data of one size drawn once, arrays freed between sizes."""
    chosen = [be for be in backends if be.kind in KINDS and not be.gpu]
    for be in backends:
        if be not in chosen:
            print(f"fake-quantize: not on {be.name} (CPU {', '.join(KINDS)} only)", file=sys.stderr)
    records: list[Record] = []
    for n in sizes:
        base = np.random.default_rng(0).standard_normal(n, dtype=np.float32) * 3
        for be in chosen:
            for record in measure_case(be, base, settings):
                log(record)
                records.append(record)
            gc.collect()
        del base
    return records
