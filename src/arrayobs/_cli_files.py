"""The command line's files and JSON: the .npy/.npz batches that ``observe`` and
``calibrate`` read, checked before they are loaded, and JSON without bare NaN."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def load_batches(paths: list[str]) -> list[tuple[str, np.ndarray]]:
    """The arrays of ``paths`` (.npy, or each array of an .npz), in order, as
    ``(name, array)``; a clear ValueError naming the file that cannot be read."""
    out = []
    for name in paths:
        path = Path(name)
        if path.suffix not in (".npy", ".npz"):
            msg = f"{name}: expected a .npy or .npz file"
            raise ValueError(msg)
        try:
            out.extend(_read(path, name))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: {exc}") from exc
        except Exception as exc:  # a damaged file fails in many ways: zip, zlib, EOF, memory
            msg = f"{name}: cannot read ({type(exc).__name__}: {exc})"
            raise ValueError(msg) from exc
    return out


def _read(path: Path, name: str) -> list[tuple[str, np.ndarray]]:
    """The arrays of one file, each checked against the file's size before it is read."""
    size = path.stat().st_size
    if size == 0:
        msg = "the file is empty"
        raise ValueError(msg)
    if path.suffix == ".npy":
        with path.open("rb") as f:
            _check_npy_header(f, size)
        return [(name, np.load(path, allow_pickle=False))]
    # Our own file object: np.load leaks its own when the archive is damaged.
    with path.open("rb") as f, np.load(f, allow_pickle=False) as loaded:
        out = []
        names = set(loaded.zip.namelist())
        for key in loaded.files:
            member_name = f"{key}.npy" if f"{key}.npy" in names else key
            with loaded.zip.open(member_name) as member:
                _check_npy_header(member, loaded.zip.getinfo(member_name).file_size)
            out.append((f"{name}:{key}", np.asarray(loaded[key])))
        return out


def _check_npy_header(f: Any, size: int) -> None:
    """Raise ValueError unless the .npy header's shape fits in ``size`` bytes
    (a header may claim 2**40 elements that the file does not hold)."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    need = math.prod(shape) * dtype.itemsize
    if need > size:
        msg = f"its header claims shape {shape} ({need} bytes) but the file has {size} bytes"
        raise ValueError(msg)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as the strings "nan", "inf", "-inf": JSON has
    no such numbers (json.dumps would write bare NaN/Infinity, which parsers refuse)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value
