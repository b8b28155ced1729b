"""State and qparams after every batch, against torch 2.13.0's observers run live."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs.testing import assert_observers_match

KINDS = {"minmax": None, "ma0.01": 0.01, "ma0.5": 0.5, "ma1": 1.0}
RANGES: dict[str, list[tuple[int, int] | None]] = {
    "quint8": [None, (0, 15), (0, 1000)],
    "qint8": [None, (-8, 7), (-127, 127)],
    "int16": [None, (-3, 3)],
    "uint16": [None, (0, 15)],
    "qint32": [None, (-(2**31), 2**31 - 1), (-8, 7)],
    "uint8": [None],
    "quint4x2": [None],
    "float8_e4m3fn": [None],
}
INPUT_DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float64",
    "int8",
    "int32",
    "int64",
    "uint8",
    "bool",
)
QSCHEMES = ("per_tensor_affine", "per_tensor_symmetric")
# Backends where each step costs milliseconds (Dask schedules, JAX compiles per shape).
SLOW = ("dask", "jax")


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def _batch_values(rng: np.random.Generator) -> np.ndarray:
    """float64 values of one batch: mixed scales, signs, constants, zeros."""
    # A few fixed sizes, so JAX compiles each once.
    n = int(rng.choice([1, 5, 64]))
    mode = rng.integers(0, 6)
    scale = 10.0 ** rng.uniform(-4, 4)
    if mode == 0:
        return rng.standard_normal(n) * scale + rng.uniform(-2, 2) * scale
    if mode == 1:
        return np.abs(rng.standard_normal(n)) * scale + scale / 10
    if mode == 2:
        return -np.abs(rng.standard_normal(n)) * scale
    if mode == 3:
        return np.full(n, rng.standard_normal() * scale)
    if mode == 4:
        return np.zeros(n)
    return rng.uniform(-scale, scale, n)


def make_batch(torch: Any, values: np.ndarray, dtype_name: str) -> Any:
    """A CPU tensor of ``dtype_name`` holding ``values`` (integers rounded and clipped)."""
    dtype = getattr(torch, dtype_name)
    if dtype_name == "bool":
        return torch.from_numpy(values > 0)
    if dtype.is_floating_point:
        return torch.from_numpy(values).to(dtype)
    info = torch.iinfo(dtype)
    return torch.from_numpy(np.clip(np.rint(values * 50), info.min, info.max)).to(dtype)


def make_pair(
    torch: Any, kind: str, backend: Any, **kw: Any
) -> tuple[Any, Any, list[Any], list[Any]]:
    """(arrayobs observer, torch observer, warnings of each); construction errors are returned."""
    from torch.ao.quantization import observer as tobs

    c = KINDS[kind]
    tkw = {**kw, "dtype": getattr(torch, kw["dtype"]), "qscheme": getattr(torch, kw["qscheme"])}
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        try:
            ours: Any = (
                MinMaxObserver(**kw, xp=backend.xp, device=backend.device)
                if c is None
                else MovingAverageMinMaxObserver(c, **kw, xp=backend.xp, device=backend.device)
            )
        except Exception as exc:  # compared with torch's below
            ours = exc
    with warnings.catch_warnings(record=True) as ref_w:
        warnings.simplefilter("always")
        try:
            ref: Any = (
                tobs.MinMaxObserver(**tkw)
                if c is None
                else tobs.MovingAverageMinMaxObserver(c, **tkw)
            )
        except Exception as exc:
            ref = exc
    return ours, ref, list(ours_w), list(ref_w)


@pytest.mark.parametrize("dtype", sorted(RANGES))
@pytest.mark.parametrize("qscheme", QSCHEMES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_torch_after_every_batch(
    backend: Any, torch_ref: Any, kind: str, qscheme: str, dtype: str
) -> None:
    torch = torch_ref
    checked = 0
    for reduce_range in (False, True):
        for qrange in RANGES[dtype]:
            kw: dict[str, Any] = {"dtype": dtype, "qscheme": qscheme, "reduce_range": reduce_range}
            if qrange is not None:
                kw["quant_min"], kw["quant_max"] = qrange
            ours, ref, ours_w, ref_w = make_pair(torch, kind, backend, **kw)
            where = f"[{backend.name} {kind} {kw}]"
            if isinstance(ref, Exception):
                # torch refuses symmetric + reduce_range + quint8 with NotImplementedError.
                assert type(ours) is type(ref), f"{where} torch raised {ref!r}, arrayobs {ours!r}"
                continue
            assert not isinstance(ours, Exception), f"{where} arrayobs raised {ours!r}"
            assert [w.category for w in ours_w] == [w.category for w in ref_w], where
            assert (ours.quant_min, ours.quant_max) == (ref.quant_min, ref.quant_max), where
            in_dtypes = [d for d in INPUT_DTYPES if backend.has(d)]
            if backend.library in SLOW:
                # A rotating third of the input dtypes per configuration: together
                # the configurations still cover every input dtype.
                start = _seed(kind, qscheme, dtype, reduce_range, qrange) % len(in_dtypes)
                in_dtypes = (in_dtypes * 2)[start : start + 3]
            for in_dtype in in_dtypes:
                ours.reset_min_max_vals()
                ref.reset_min_max_vals()
                rng = np.random.default_rng(
                    _seed(kind, qscheme, dtype, reduce_range, qrange, in_dtype)
                )
                for step in range(5):
                    values = np.zeros(0) if step == 2 else _batch_values(rng)
                    t = make_batch(torch, values, in_dtype)
                    x = backend.from_torch(t)
                    assert ours(x) is x
                    ref(t)
                    at = f"{where} input {in_dtype} batch {step}"
                    assert_observers_match(
                        ours, ref, xp=backend.xp, device=backend.device, where=at
                    )
                    checked += 1
    assert checked > 0
